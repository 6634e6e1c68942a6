"""The ``embedding`` encoder for interactions, and the heads that score (user, item) pairs.

``EmbeddingEncoder`` holds one vector per user and per item (matrix factorisation), optionally plus a linear
map of the side features, optionally propagated over the training graph (LightGCN, He et al., SIGIR 2020:
``E^(k+1) = D^-1/2 A D^-1/2 E^(k)``, the layers averaged). Its features for a row are the user's vector
(user rows), the item's (item rows) or their elementwise product ``u ⊙ i`` (interactions), so a linear head
over them is a weighted inner product: ``Ranker`` starts as the plain one, ``Rater`` adds user and item biases
(biased matrix factorisation, Koren et al., 2009). Users and items without a training interaction get zero
id vectors: nothing was learned about them, and random ones would be noise.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from warmstart.errors import UserError
from warmstart.models.encoders import ENCODERS, Encoder
from warmstart.models.heads import Classifier, Regressor


@ENCODERS.register("embedding")
class EmbeddingEncoder(Encoder):
    """User and item tables of ``dim`` columns (``N(0, init_std²)``); ``side=True`` adds ``W_u · side(u)``
    (``W_i · side(i)``) to each vector; ``layers`` > 0 propagates them LightGCN-style over the training graph
    (``ego``: average ``E^(0)`` in too, as LightGCN does; SimGCL leaves it out). The catalogue sizes and its
    fingerprint come from the data (``data_args``) and are kept in the spec."""

    modalities = ("interactions",)
    modality = "interactions"

    def __init__(self, input_shape: tuple[int, ...], num_users: int, num_items: int, user_side_dim: int = 0,
                 item_side_dim: int = 0, catalog: str = "", dim: int = 64, side: bool = False, layers: int = 0,
                 ego: bool = True, init_std: float = 0.1) -> None:
        super().__init__(input_shape)
        if num_users < 1 or num_items < 1 or dim < 1 or layers < 0 or init_std <= 0:
            raise ValueError(f"need num_users, num_items, dim >= 1, layers >= 0 and init_std > 0, got "
                             f"{num_users}, {num_items}, {dim}, {layers}, {init_std}")
        self.num_users, self.num_items, self.catalog = num_users, num_items, catalog
        self.feature_dim, self.side, self.layers, self.ego = dim, bool(side), layers, ego
        self.user_table, self.item_table = nn.Embedding(num_users, dim), nn.Embedding(num_items, dim)
        for table in (self.user_table, self.item_table):
            nn.init.normal_(table.weight, std=init_std)
        self.user_side = nn.Linear(user_side_dim, dim, bias=False) if side and user_side_dim else None
        self.item_side = nn.Linear(item_side_dim, dim, bias=False) if side and item_side_dim else None
        self.side_dims = (user_side_dim, item_side_dim)
        self.graph = None
        self._bound: dict[str, tuple[torch.Tensor, ...]] = {}

    @classmethod
    def data_args(cls, corpus) -> dict:
        return {"num_users": corpus.num_users, "num_items": corpus.num_items, "catalog": corpus.fingerprint,
                "user_side_dim": corpus.user_features.shape[1], "item_side_dim": corpus.item_features.shape[1]}

    def bind(self, catalog) -> None:
        """Read the training graph and side tables of ``catalog``, refusing one it was not built for."""
        if (catalog.num_users, catalog.num_items) != (self.num_users, self.num_items) or (
                self.catalog and catalog.fingerprint != self.catalog):
            raise UserError(f"the embedding encoder was trained on {self.num_users} users × {self.num_items} items "
                            f"(catalogue {self.catalog}) but {catalog.name} is {catalog.num_users} × "
                            f"{catalog.num_items} (catalogue {catalog.fingerprint}): another data set or split; "
                            "use the same source options (split, ratio, min_rating, ...) as its pretraining")
        dims = (catalog.user_features.shape[1], catalog.item_features.shape[1])
        if self.side and dims != self.side_dims:
            raise UserError(f"the encoder was pretrained with {self.side_dims[0]} user / {self.side_dims[1]} item "
                            f"side-feature columns but {catalog.name} has {dims[0]} / {dims[1]} (a target= column is "
                            "withheld from them); pretrain on this source spec, or with encoder_args.side=false")
        self.graph = catalog.graph
        self._tables = (torch.from_numpy(catalog.user_features), torch.from_numpy(catalog.item_features),
                        torch.from_numpy(catalog.graph.seen_users).float()[:, None],
                        torch.from_numpy(catalog.graph.seen_items).float()[:, None])
        self._bound = {}

    def _on_device(self) -> tuple[torch.Tensor, ...]:
        device = self.user_table.weight.device
        if self.graph is None:
            raise RuntimeError("bind the embedding encoder to its catalogue first (the modality's prepare does)")
        if str(device) not in self._bound:
            self._bound[str(device)] = tuple(t.to(device) for t in self._tables)
        return self._bound[str(device)]

    def propagation(self, layers: int, ego: bool) -> None:
        """Set LightGCN's layers (objectives call it, so the saved encoder propagates as it was trained)."""
        self.layers, self.ego = layers, ego
        if hasattr(self, "spec"):
            self.spec["encoder_args"].update(layers=layers, ego=ego)

    def ego_vectors(self, users: torch.Tensor | None = None, items: torch.Tensor | None = None):
        """``E^(0)``: id vectors (zero for unseen ids) plus the side map, of ``users``/``items`` (None: all)."""
        user_side, item_side, seen_users, seen_items = self._on_device()

        def one(table, side_map, side, seen, ids):
            ids = torch.arange(table.num_embeddings, device=seen.device) if ids is None else ids
            vectors = table(ids) * seen[ids]
            return vectors + side_map(side[ids]) if side_map is not None else vectors
        return (one(self.user_table, self.user_side, user_side, seen_users, users),
                one(self.item_table, self.item_side, item_side, seen_items, items))

    def tables(self, noise: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Final ``(U, F)`` and ``(I, F)`` vectors: ``E^(0)`` or the mean of the propagated layers; ``noise``
        > 0 adds SimGCL's ``sign(E) ⊙ ε · normalize(uniform)`` to every propagated layer."""
        users, items = self.ego_vectors()
        if self.layers == 0:
            return users, items
        layer = torch.cat([users, items])
        adjacency = self.graph.adjacency(layer.device)
        kept = [layer] if self.ego else []
        for _ in range(self.layers):
            layer = torch.sparse.mm(adjacency, layer)
            if noise > 0:
                layer = layer + torch.sign(layer) * F.normalize(torch.rand_like(layer), dim=1) * noise
            kept.append(layer)
        final = torch.stack(kept).mean(0)
        return final[:self.num_users], final[self.num_users:]

    def lookup(self, users: torch.Tensor, items: torch.Tensor, noise: float = 0.0):
        """Final vectors of ``users`` and of ``items`` (ids), one propagation for both."""
        if self.layers == 0 and noise == 0:
            return self.ego_vectors(users, items)
        all_users, all_items = self.tables(noise)
        return all_users[users], all_items[items]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 2) [user, item] ids -> (B, dim)
        users, items = self.lookup(x[:, 0].clamp(min=0), x[:, 1].clamp(min=0))
        user_rows, item_rows = (x[:, 1] < 0)[:, None], (x[:, 0] < 0)[:, None]
        return torch.where(user_rows, users, torch.where(item_rows, items, users * items))


class Ranker(Classifier):
    """Scores items for users: ``head(u ⊙ i)``, a weighted inner product that starts as the plain one
    (weights 1), so an untrained head ranks exactly as the pretrained embeddings do; no bias (a ranking
    loss cannot see one). ``(B, 1 + k)`` rows ``[user, item_1..item_k]`` → ``(B, k)`` scores."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__(encoder, 1)
        self.head = nn.Linear(encoder.feature_dim, 1, bias=False)
        self.reset_head()

    def reset_head(self) -> None:
        with torch.no_grad():
            self.head.weight.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.encoder_frozen):
            users, items = self.encoder.lookup(x[:, 0], x[:, 1:].reshape(-1))
        items = items.view(len(x), x.shape[1] - 1, -1)
        return self.head(users[:, None, :] * items).squeeze(-1)

    @torch.no_grad()
    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """``(len(users), I)`` scores of every item for ``users``."""
        all_users, all_items = self.encoder.tables()
        return (all_users[users] * self.head.weight[0]) @ all_items.T


class Rater(Regressor):
    """Predicts ratings: ``head(u ⊙ i) + b_u + b_i`` in standardised units (``Regressor`` keeps the mean
    and scale); the biases start at zero and stay zero for ids without training interactions."""

    def __init__(self, encoder: nn.Module, outputs: int = 1) -> None:
        super().__init__(encoder, outputs)
        self.user_bias = nn.Embedding(encoder.num_users, outputs)
        self.item_bias = nn.Embedding(encoder.num_items, outputs)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 2) -> (B, outputs)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.encoder_frozen):
            features = self.encoder(x)
        return self.head(features) + self.user_bias(x[:, 0].clamp(min=0)) + self.item_bias(x[:, 1].clamp(min=0))


def require_embedding(encoder: nn.Module, what: str) -> None:
    if not isinstance(encoder, EmbeddingEncoder):
        raise ValueError(f"{what} needs the embedding encoder (--encoder embedding)")
