"""Unsupervised SimCSE (Gao, Yao & Chen, 2021): a sentence and itself under two dropout masks are positives."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from warmstart.objectives.base import Objective


class SimCSE(Objective):
    """InfoNCE over in-batch sentences: ``z1 = f(x)``, ``z2 = f(x)`` with independent dropout, ``(B, H)``
    each; loss = cross-entropy of ``cos(z1_i, z2_j) / temperature`` with the diagonal as targets.

    Args:
        encoder: any text encoder with dropout (dropout is the only augmentation).
        temperature: the paper's 0.05.
    """

    not_private = ("NT-Xent scores each example against the others of its batch (its negatives), so one "
                   "example's gradient depends on the rest of the batch")

    modalities = ("text",)

    def __init__(self, encoder, temperature: float = 0.05) -> None:
        super().__init__(encoder)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def loss(self, ids: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z1, z2 = F.normalize(self.encoder(ids), dim=1), F.normalize(self.encoder(ids), dim=1)  # (B, H)
        logits = z1 @ z2.T / self.temperature  # (B, B)
        targets = torch.arange(len(ids))
        loss = F.cross_entropy(logits, targets)
        return loss, {"pair_accuracy": (logits.detach().argmax(1) == targets).float().mean()}
