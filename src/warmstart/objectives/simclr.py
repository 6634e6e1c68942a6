"""SimCLR (Chen et al., 2020, "A Simple Framework for Contrastive Learning of Visual Representations")."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from warmstart.augment import Augment, feature_corruption
from warmstart.models.encoders import Encoder
from warmstart.objectives.base import Objective
from warmstart.objectives.ntxent_loss import NTXentLoss


class ProjectionHead(nn.Module):
    """SimCLR's MLP ``g``: ``(B, F) -> (B, out_dim)``, Linear → BatchNorm → ReLU → Linear.

    The loss is applied after ``g`` and the features before it are kept: Chen et al. (section 4.2) found
    the pre-projection features 10+ points better for downstream tasks.
    """

    def __init__(self, feature_dim: int, hidden: int = 512, out_dim: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(feature_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class SimCLR(Objective):
    """Two random views per input, encoded together, projected, and pulled together by NT-Xent.

    Images ``(B, C, H, W)`` get :class:`warmstart.augment.Augment` views (crop, flip, jitter, erasing);
    table rows ``(B, D)`` get SCARF feature corruption, so the objective also serves the MLP on tables.

    Args:
        temperature: NT-Xent's ``τ`` (0.5 for batches of a few hundred; see :class:`NTXentLoss`).
        proj_hidden, proj_dim: width of the projection MLP and of its output (the paper's 128).
        augment: options for :class:`Augment` overriding its SimCLR defaults, e.g. ``{"flip": 0}`` for
            digits whose mirror image is another symbol.
        corruption_rate: fraction of features replaced in a table view (SCARF's 0.6).

    >>> from warmstart.models.encoders import CNNEncoder
    >>> objective = SimCLR(CNNEncoder((1, 28, 28), width=8))
    >>> loss, logs = objective.loss(torch.rand(16, 1, 28, 28))   # (B, C, H, W) -> scalar
    """

    not_private = ("NT-Xent scores each example against the others of its batch (its negatives), so one "
                   "example's gradient depends on the rest of the batch")

    def __init__(
        self, encoder: Encoder, temperature: float = 0.5, proj_hidden: int = 512, proj_dim: int = 128,
        augment: dict[str, Any] | None = None, corruption_rate: float = 0.6,
    ) -> None:
        super().__init__(encoder)
        if proj_hidden < 1 or proj_dim < 1:
            raise ValueError(f"proj_hidden and proj_dim must be >= 1, got {proj_hidden} and {proj_dim}")
        if not 0 < corruption_rate <= 1:
            raise ValueError(f"corruption_rate must lie in (0, 1], got {corruption_rate}")
        self.criterion = NTXentLoss(temperature)
        self.head = ProjectionHead(encoder.feature_dim, proj_hidden, proj_dim)
        self.augment = Augment(**(augment or {}))
        self.corruption_rate = corruption_rate

    def views(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, *input_shape)`` → ``(2B, *input_shape)``: two independent random views, stacked."""
        both = torch.cat([x, x])
        if self.encoder.modality == "image":
            return self.augment(both)
        flat = both.flatten(1)
        return feature_corruption(flat, self.corruption_rate).view_as(both)

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if len(x) < 2:
            raise ValueError("SimCLR needs batches of at least 2 examples (the others are the negatives)")
        # One encoder pass over both views: BatchNorm statistics span both, as in the paper's global BN.
        z = self.head(self.encoder(self.views(x)))  # (2B, proj_dim)
        z1, z2 = z.chunk(2)
        loss = self.criterion(z1, z2)
        with torch.no_grad():
            sim = torch.nn.functional.normalize(z1, dim=1) @ torch.nn.functional.normalize(z2, dim=1).T
            top1 = (sim.argmax(1) == torch.arange(len(z1), device=z.device)).float().mean()
        return loss, {"contrastive": loss.detach(), "pair_top1": top1}
