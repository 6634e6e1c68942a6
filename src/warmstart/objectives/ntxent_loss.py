"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al., 2020, eq. 1)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class NTXentLoss(nn.Module):
    """Contrastive loss over two views: each embedding must pick its partner among the ``2B - 1`` others.

    ``z1, z2``: ``(B, D)`` projections of two views of the same ``B`` inputs (row ``i`` of each is a
    positive pair). Embeddings are L2-normalised, similarities divided by ``temperature``, and the loss is
    the mean cross-entropy over all ``2B`` anchors, the ``2(B - 1)`` other images serving as negatives.

    Args:
        temperature: ``τ > 0``. Default 0.5, the value Chen et al. found best for CIFAR-10-scale runs with
            batches of a few hundred (Appendix B.9). With only ``2B - 2 ≈ 500`` negatives many of the
            hardest ones are same-class images; a low ``τ`` such as ImageNet's 0.1 concentrates the gradient
            on exactly those and pushes same-class images apart, while 0.5 spreads it over all negatives.

    >>> loss = NTXentLoss()(torch.randn(8, 16), torch.randn(8, 16))
    >>> loss.shape
    torch.Size([])
    """

    def __init__(self, temperature: float = 0.5) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        if z1.shape != z2.shape or z1.dim() != 2:
            raise ValueError(f"NT-Xent needs two (B, D) tensors of one shape, got {tuple(z1.shape)}, {tuple(z2.shape)}")
        b = z1.shape[0]
        z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2B, D)
        logits = z @ z.T / self.temperature  # (2B, 2B) cosine similarities / τ
        logits.fill_diagonal_(float("-inf"))  # an embedding is not its own negative
        target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)  # partner of each row
        return F.cross_entropy(logits, target)
