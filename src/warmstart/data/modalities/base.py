"""What a modality is: everything that depends on what the inputs are, and nothing that depends on the labels.

A modality turns stored rows into model inputs (``batch``), readies a bundle for an encoder (``prepare``:
text gets the encoder's tokenizer), gives the light training-time augmentation (``augment``) and the flat
features the classical baselines see (``flat_features``). Objectives and encoders declare the modalities
they accept (``modalities = (...)``); nothing else asks "is this text?" or looks at a tensor's rank.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from warmstart.registry import Registry

if TYPE_CHECKING:
    from warmstart.data.bundle import DataBundle

MODALITIES: Registry["Modality"] = Registry("modality")


class Modality:
    """Base class; one instance per registered modality."""

    name = ""
    description = ""
    #: Augmentations ``augment`` knows, besides "none".
    augments: tuple[str, ...] = ()

    def check(self, bundle: DataBundle) -> None:
        """Validate (and complete, e.g. a table's default schema) ``bundle``'s inputs when it is made."""

    def input_shape(self, bundle: DataBundle) -> tuple[int, ...]:
        """The shape of one model input (what encoders are built for): by default one stored row's."""
        return tuple(int(d) for d in bundle.x_train.shape[1:])

    def batch(self, bundle: DataBundle, rows: np.ndarray) -> torch.Tensor:
        """Stored rows (already selected) → one model-input tensor."""
        raise NotImplementedError

    def prepare(self, bundle: DataBundle, encoder) -> DataBundle:
        """``bundle`` made ready to batch for ``encoder`` (a no-op unless the modality needs the encoder)."""
        return bundle

    def augment(self, x: torch.Tensor, kind: str) -> torch.Tensor:
        """A training view of the batch ``x``; ``kind`` is "none" or one of ``augments`` (others: unchanged)."""
        return x

    def augment_spatial(self, x: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``augment`` plus how it moved the inputs: the ``(B, 2, 3)`` affine of each view (None when
        nothing moved), so a task with spatial targets (masks, boxes) can move them the same way."""
        return self.augment(x, kind), None

    def flat_features(self, bundle: DataBundle) -> tuple[np.ndarray, np.ndarray]:
        """``(N, D)`` float32 train and test features for the scikit-learn baselines (labels unused)."""
        return _flat(bundle, bundle.x_train), _flat(bundle, bundle.x_test)

    def feature_groups(self, bundle: DataBundle) -> dict[str, np.ndarray]:
        """Named groups of ``flat_features`` columns that baselines may read alone (interactions: ``history``
        and ``side``); empty for most modalities."""
        return {}

    def corpus(self, bundle: DataBundle):
        """What an encoder built for this bundle sizes itself from (``Encoder.data_args``): the training inputs
        (text trains its tokenizer on them); interactions: the catalogue of users and items."""
        return bundle.x_train

    def pretrain_stream(self, bundle: DataBundle, batch_size: int):
        """The unlabeled batches pretraining reads: every training row (interactions: every training
        interaction of the catalogue, whether the bundle's rows are interactions, users or items)."""
        return bundle.input_stream(np.arange(len(bundle.x_train)), batch_size)


def _flat(bundle: DataBundle, x: np.ndarray) -> np.ndarray:
    """``(N, D)`` float32 model-unit inputs (a new array, never a view of the data set)."""
    return np.asarray(x, dtype=np.float32).reshape(len(x), -1) * np.float32(bundle.scale)


def numeric_batch(bundle: DataBundle, rows: np.ndarray) -> torch.Tensor:
    """Rows as a float32 tensor times ``bundle.scale`` (uint8 pixels stay uint8 until this step)."""
    batch = np.ascontiguousarray(rows, dtype=np.float32)
    if np.may_share_memory(batch, rows):
        batch = batch.copy()  # float32 rows come back as themselves, maybe the data set: scaling would write into it
    return torch.from_numpy(batch).mul_(bundle.scale)
