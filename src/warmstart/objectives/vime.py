"""VIME's self-supervised objective (Yoon et al., NeurIPS 2020, "VIME: Extending the Success of Self- and
Semi-supervised Learning to Tabular Domain")."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from warmstart.models.encoders import Encoder
from warmstart.objectives.base import Objective
from warmstart.objectives.scarf import table_schema


class VIME(Objective):
    """Mask and reconstruct: corrupt columns, then predict which columns were corrupted and what they held.

    Every column is masked with probability ``mask_prob`` and its value replaced by a draw from the column's
    training marginal (VIME draws from the unlabeled set's empirical marginals; here the schema's, fitted on
    the training split). From the encoder's features of the corrupted row, a mask estimator predicts per
    column whether it changed (binary cross-entropy against the columns whose value actually changed, as
    VIME's code labels them) and a feature estimator reconstructs the original row: squared error for
    numeric columns (value and missing indicator), cross-entropy over the slots of categorical ones.
    ``loss = mask_loss + alpha · reconstruction_loss``. Paper defaults: ``mask_prob`` 0.3, ``alpha`` 2.0,
    linear estimators.

    Shapes: ``x`` ``(B, width)`` encoded rows → a scalar loss.
    """

    modalities = ("table",)

    def __init__(self, encoder: Encoder, mask_prob: float = 0.3, alpha: float = 2.0) -> None:
        super().__init__(encoder)
        if not 0 < mask_prob < 1:
            raise ValueError(f"mask_prob must lie strictly between 0 and 1, got {mask_prob}")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.schema = table_schema(encoder, "vime")
        self.mask_prob, self.alpha = mask_prob, alpha
        self.mask_head = nn.Linear(encoder.feature_dim, len(self.schema.columns))
        self.feature_head = nn.Linear(encoder.feature_dim, self.schema.width)

    def corrupt(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(corrupted x, (B, columns) float mask of the columns whose value changed)``."""
        chosen = torch.rand(len(x), len(self.schema.columns)) < self.mask_prob
        corrupted = torch.where(self.schema.expand(chosen.to(x.device)), self.schema.draw(len(x)).to(x), x)
        changed = torch.stack([(corrupted[:, a:b] != x[:, a:b]).any(1) for a, b in self.schema.blocks], 1)
        return corrupted, changed.float()

    def reconstruction(self, recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Mean over columns of each column's reconstruction loss (numeric: MSE; categorical: cross-entropy)."""
        losses = []
        for c, (a, b) in zip(self.schema.columns, self.schema.blocks):
            if c.kind == "numeric":
                losses.append(F.mse_loss(recon[:, a:b], x[:, a:b]))
            else:
                losses.append(F.cross_entropy(recon[:, a:b], x[:, a:b].argmax(1)))
        return torch.stack(losses).mean()

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        corrupted, changed = self.corrupt(x)
        h = self.encoder(corrupted)
        mask_loss = F.binary_cross_entropy_with_logits(self.mask_head(h), changed)
        recon_loss = self.reconstruction(self.feature_head(h), x)
        loss = mask_loss + self.alpha * recon_loss
        return loss, {"mask_loss": mask_loss.detach(), "reconstruction": recon_loss.detach()}
