"""The catalogue of an interaction data set: users, items, the training interactions and optional side tables.

Every bundle of the ``interactions`` modality carries one ``Catalog``, whatever its rows are (interactions
for ``rank`` and ``rate``, users or items for a downstream ``classify``). Encoders are sized by it and read
its training graph (``InteractionGraph``: who interacted with what, the sampler of positives and negatives
and LightGCN's normalised adjacency); the held-out interactions are never part of it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch

#: Rejection rounds for negative sampling; a user who has seen nearly every item may keep a positive after them.
NEGATIVE_ROUNDS = 10


@dataclass
class Catalog:
    """Users and items (raw ids; internal ids are positions), the training interactions ``(E, 2)`` and
    the side-feature tables ``(U, Du)`` / ``(I, Di)`` (float32, one-hot or standardised columns, named)."""

    name: str
    users: np.ndarray
    items: np.ndarray
    train: np.ndarray
    user_features: np.ndarray | None = None
    item_features: np.ndarray | None = None
    user_feature_names: list[str] = field(default_factory=list)
    item_feature_names: list[str] = field(default_factory=list)
    has_ratings: bool = False

    def __post_init__(self) -> None:
        if self.user_features is None:
            self.user_features = np.zeros((len(self.users), 0), np.float32)
        if self.item_features is None:
            self.item_features = np.zeros((len(self.items), 0), np.float32)

    @property
    def num_users(self) -> int:
        return len(self.users)

    @property
    def num_items(self) -> int:
        return len(self.items)

    @cached_property
    def fingerprint(self) -> str:
        """A hash of the sizes and the training interactions: an encoder trained on one catalogue is refused on
        another (another split could hold this one's test interactions in its training part)."""
        digest = hashlib.sha256(np.array([self.num_users, self.num_items], np.int64).tobytes())
        digest.update(np.ascontiguousarray(self.train, dtype=np.int64).tobytes())
        return digest.hexdigest()[:16]

    @cached_property
    def graph(self) -> InteractionGraph:
        return InteractionGraph(self.train, self.num_users, self.num_items)


class InteractionGraph:
    """The bipartite user–item graph of the training interactions (``(E, 2)`` pairs, no duplicates).

    Samples a training item of each user (or a training user of each item) and uniform negatives that the
    user has not interacted with (rejection sampling, ``NEGATIVE_ROUNDS`` rounds), from torch's global RNG,
    which the engine checkpoints. ``adjacency()`` is LightGCN's ``D^-1/2 A D^-1/2`` over the ``U + I`` nodes.
    """

    def __init__(self, pairs: np.ndarray, num_users: int, num_items: int) -> None:
        self.num_users, self.num_items = num_users, num_items
        pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
        self.user_degree = np.bincount(pairs[:, 0], minlength=num_users)
        self.item_degree = np.bincount(pairs[:, 1], minlength=num_items)
        self._by_user = _csr(pairs[:, 0], pairs[:, 1], num_users)
        self._by_item = _csr(pairs[:, 1], pairs[:, 0], num_items)
        self._keys = torch.from_numpy(np.sort(pairs[:, 0] * num_items + pairs[:, 1]))
        self.pairs = pairs
        self._adjacency: dict[str, torch.Tensor] = {}

    @property
    def seen_users(self) -> np.ndarray:
        return self.user_degree > 0

    @property
    def seen_items(self) -> np.ndarray:
        return self.item_degree > 0

    def items_of(self, user: int) -> np.ndarray:
        indptr, indices = self._by_user
        return indices[indptr[user]:indptr[user + 1]]

    def user_items(self) -> tuple[np.ndarray, np.ndarray]:
        """The CSR ``(indptr (U+1,), items (E,))`` of every user's training items."""
        return self._by_user

    def contains(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Whether each ``(user, item)`` is a training interaction."""
        keys = users.cpu() * self.num_items + items.cpu()
        at = torch.searchsorted(self._keys, keys).clamp(max=max(len(self._keys) - 1, 0))
        return (self._keys[at] == keys) if len(self._keys) else torch.zeros_like(keys, dtype=torch.bool)

    def negatives(self, users: torch.Tensor) -> torch.Tensor:
        """One uniform item per user that is not among its training items."""
        items = torch.randint(self.num_items, users.shape)
        for _ in range(NEGATIVE_ROUNDS):
            hit = self.contains(users, items)
            if not hit.any():
                break
            items[hit] = torch.randint(self.num_items, (int(hit.sum()),))
        return items.to(users.device)

    def positives(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(users, items)`` training interactions for a batch of rows: pairs as they are, a user row gets
        one of its training items at random, an item row one of its training users; rows of a user or item
        without training interactions are dropped."""
        users, items = rows[:, 0].cpu().clone(), rows[:, 1].cpu().clone()
        user_rows, item_rows = items < 0, users < 0
        items[user_rows] = self._draw(self._by_user, users[user_rows])
        users[item_rows] = self._draw(self._by_item, items[item_rows])
        keep = (users >= 0) & (items >= 0)
        return users[keep].to(rows.device), items[keep].to(rows.device)

    @staticmethod
    def _draw(csr: tuple[np.ndarray, np.ndarray], nodes: torch.Tensor) -> torch.Tensor:
        indptr, indices = (torch.from_numpy(a) for a in csr)
        start, degree = indptr[nodes], indptr[nodes + 1] - indptr[nodes]
        offset = (torch.rand(nodes.shape) * degree).long().clamp(max=(degree - 1).clamp(min=0))
        drawn = indices[start + offset] if len(indices) else torch.zeros_like(nodes)
        return torch.where(degree > 0, drawn, torch.full_like(nodes, -1))

    def adjacency(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """The symmetric normalised adjacency ``D^-1/2 A D^-1/2`` ``(U+I, U+I)`` (sparse COO), cached per device."""
        key = str(device)
        if key not in self._adjacency:
            u, i = self.pairs[:, 0], self.pairs[:, 1] + self.num_users
            rows, cols = np.concatenate([u, i]), np.concatenate([i, u])
            degree = np.concatenate([self.user_degree, self.item_degree]).astype(np.float64)
            scale = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1)), 0.0)
            values = (scale[rows] * scale[cols]).astype(np.float32)
            n = self.num_users + self.num_items
            matrix = torch.sparse_coo_tensor(torch.from_numpy(np.stack([rows, cols])), torch.from_numpy(values), (n, n),
                                             check_invariants=True)
            self._adjacency[key] = matrix.coalesce().to(device)
        return self._adjacency[key]


def _csr(rows: np.ndarray, cols: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((cols, rows))
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return indptr, cols[order].astype(np.int64)
