"""SCARF (Bahri et al., ICLR 2022, "SCARF: Self-Supervised Contrastive Learning using Random Feature Corruption")."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from warmstart.models.encoders import Encoder
from warmstart.objectives.base import Objective
from warmstart.objectives.simclr import ProjectionHead


def table_schema(encoder: Encoder, objective: str):
    """The column schema a table encoder was built with, with its training marginals (or one clear error)."""
    schema = getattr(encoder, "schema", None)
    if schema is None or not schema.has_marginals:
        raise ValueError(f"{objective} draws from the training split's column marginals; build the encoder from "
                         "a table bundle (build_encoder(..., schema=bundle.schema))")
    return schema


def column_mask(batch: int, columns: int, rate: float, device) -> torch.Tensor:
    """``(B, columns)`` boolean: exactly ``max(1, round(rate · columns))`` random columns per row."""
    hidden = max(1, round(rate * columns))
    ranks = torch.rand(batch, columns).argsort(1).argsort(1)
    return (ranks < hidden).to(device)


class SCARF(Objective):
    """Contrastive learning of table rows against a corrupted copy of themselves.

    For each row, ``corruption_rate`` of its columns (exactly ``round(rate · columns)``, at least one) are
    replaced by values drawn from those columns' empirical marginals *of the training split* (the schema's
    marginals: quantiles and level counts, never the batch or the test rows). The anchor ``x`` and the
    corrupted view go through the encoder and a projection head; InfoNCE with temperature ``temperature``
    pulls each anchor towards its own view, away from the batch's other views. Paper defaults:
    corruption_rate 0.6, temperature 1.0, a two-layer head; the encoder's features (before the head) are kept.

    Shapes: ``x`` ``(B, width)`` encoded rows (``data/modalities/table_schema.py``) → a scalar loss.
    """

    modalities = ("table",)

    def __init__(self, encoder: Encoder, corruption_rate: float = 0.6, temperature: float = 1.0,
                 proj_hidden: int = 256, proj_dim: int = 128) -> None:
        super().__init__(encoder)
        if not 0 < corruption_rate < 1:
            raise ValueError(f"corruption_rate must lie strictly between 0 and 1, got {corruption_rate}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.schema = table_schema(encoder, "scarf")
        self.corruption_rate, self.temperature = corruption_rate, temperature
        self.head = ProjectionHead(encoder.feature_dim, proj_hidden, proj_dim)

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` with ``corruption_rate`` of each row's columns replaced by draws from the training marginals."""
        mask = self.schema.expand(column_mask(len(x), len(self.schema.columns), self.corruption_rate, x.device))
        return torch.where(mask, self.schema.draw(len(x)).to(x), x)

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if len(x) < 2:
            raise ValueError("SCARF needs batches of at least 2 rows (the others are the negatives)")
        z = self.head(self.encoder(torch.cat([x, self.corrupt(x)])))  # one pass: BatchNorm sees both
        anchor, positive = F.normalize(z, dim=1).chunk(2)
        logits = anchor @ positive.T / self.temperature  # (B, B): row i's own view is column i
        target = torch.arange(len(x), device=x.device)
        loss = F.cross_entropy(logits, target)
        top1 = (logits.detach().argmax(1) == target).float().mean()
        return loss, {"info_nce": loss.detach(), "pair_top1": top1}
