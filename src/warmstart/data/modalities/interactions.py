"""The ``interactions`` modality: rows ``[user, item]`` (``-1`` for none) of a bundle that carries a ``Catalog``.

A row is an interaction ``[u, i]`` (``rank``, ``rate``), a user ``[u, -1]`` or an item ``[-1, i]`` (a downstream
task on the embeddings). Batches are the int64 ids; ``prepare`` binds the encoder to the bundle's catalogue
(its training graph and side tables), refusing an encoder trained on another catalogue. Pretraining reads
the catalogue's training interactions whatever the rows are, so one pretrained encoder serves every task.
"""
from __future__ import annotations

import numpy as np
import torch

from warmstart.data.modalities.base import MODALITIES, Modality
from warmstart.errors import UserError


def row_kind(x: np.ndarray) -> str:
    """"user", "item" or "pair": what the rows of ``x`` are."""
    if len(x) and (x[:, 1] < 0).all():
        return "user"
    if len(x) and (x[:, 0] < 0).all():
        return "item"
    return "pair"


class InteractionsModality(Modality):
    """Interactions: id rows, no augmentation; the baselines see a row's training history (which items a user
    interacted with, or which users an item had) and its side features."""

    name = "interactions"
    description = "[user, item] rows of an interaction log (users [u, -1] or items [-1, i] for downstream tasks)"

    def batch(self, bundle, rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(rows, dtype=np.int64, copy=True))

    def prepare(self, bundle, encoder):
        if bundle.catalog is None:
            raise UserError(f"{bundle.name}: interaction rows need their catalogue; load them through a source")
        encoder.bind(bundle.catalog)
        return bundle

    def corpus(self, bundle):
        return bundle.catalog

    def pretrain_stream(self, bundle, batch_size: int):
        from warmstart.engine import Stream

        pairs = bundle.catalog.train
        size = len(pairs)
        return Stream(size, min(batch_size, size), lambda rows: (torch.from_numpy(pairs[rows]),))

    def flat_features(self, bundle) -> tuple[np.ndarray, np.ndarray]:
        """``[history | side]`` per row: user rows get the 0/1 row of the training user × item matrix and the
        user's side features, item rows the column and the item's; interaction rows the side features of
        both (their histories would be as wide as the catalogue twice)."""
        return self._features(bundle, bundle.x_train), self._features(bundle, bundle.x_test)

    def feature_groups(self, bundle) -> dict[str, np.ndarray]:
        width = self._features(bundle, bundle.x_train[:1]).shape[1]
        side = self._side(bundle.catalog, row_kind(bundle.x_train)).shape[1]
        return {"history": np.arange(width - side), "side": np.arange(width - side, width)}

    @staticmethod
    def _side(catalog, kind: str) -> np.ndarray:
        if kind == "user":
            return catalog.user_features
        if kind == "item":
            return catalog.item_features
        return np.zeros((0, catalog.user_features.shape[1] + catalog.item_features.shape[1]), np.float32)

    def _features(self, bundle, x: np.ndarray) -> np.ndarray:
        catalog, kind = bundle.catalog, row_kind(bundle.x_train)
        if kind == "pair":
            return np.hstack([catalog.user_features[x[:, 0]], catalog.item_features[x[:, 1]]]).astype(np.float32)
        column = 0 if kind == "user" else 1
        ids, other = x[:, column], catalog.train[:, 1 - column]
        n_other = catalog.num_items if kind == "user" else catalog.num_users
        history = np.zeros((len(x), n_other), np.float32)
        position = {int(e): k for k, e in enumerate(ids)}
        owners = catalog.train[:, column]
        keep = np.isin(owners, ids)
        rows = np.array([position[int(o)] for o in owners[keep]], np.int64)
        history[rows, other[keep]] = 1.0
        return np.hstack([history, self._side(catalog, kind)[ids]]).astype(np.float32)


MODALITIES.register("interactions")(InteractionsModality())
