"""The ``image`` modality: ``(N, C, H, W)`` pixels (uint8 or float) scaled to model units at batch time."""
from __future__ import annotations

import numpy as np
import torch

from warmstart.augment import Augment
from warmstart.data.modalities.base import MODALITIES, Modality, numeric_batch

WEAK = Augment.weak()


class ImageModality(Modality):
    """Images: float32 batches, a weak crop/shift/flip augmentation, flattened pixels for the baselines."""

    name = "image"
    description = "(C, H, W) images"
    augments = ("weak",)

    def batch(self, bundle, rows: np.ndarray) -> torch.Tensor:
        return numeric_batch(bundle, rows)

    def augment(self, x: torch.Tensor, kind: str) -> torch.Tensor:
        # Augment.weak(): a small crop/shift + horizontal flip, the light view that helps few-label fine-tuning.
        return WEAK(x) if kind == "weak" else x

    def augment_spatial(self, x: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        return WEAK(x, with_affine=True) if kind == "weak" else (x, None)


MODALITIES.register("image")(ImageModality())
