"""The ``table`` modality: ``(N, D)`` numeric feature rows (standardised by the source)."""
from __future__ import annotations

import numpy as np
import torch

from warmstart.data.modalities.base import MODALITIES, Modality, numeric_batch


class TableModality(Modality):
    """Tables: rows of numeric features; no augmentation at fine-tuning time (SCARF-style corruption is an
    objective's business); the baselines see the rows as they are."""

    name = "table"
    description = "(D,) rows of numeric features"

    def batch(self, bundle, rows: np.ndarray) -> torch.Tensor:
        return numeric_batch(bundle, rows)


MODALITIES.register("table")(TableModality())
