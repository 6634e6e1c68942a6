"""SimGCL (Yu et al., SIGIR 2022, "Are Graph Augmentations Necessary? Simple Graph Contrastive Learning for
Recommendation"): LightGCN's BPR plus InfoNCE between two noise-perturbed views of the propagated embeddings."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from warmstart.models.encoders import Encoder
from warmstart.objectives.bpr import BPR


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE of ``(N, F)`` views: row ``k`` of ``a`` should pick row ``k`` of ``b`` among all rows of ``b``."""
    logits = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(a), device=a.device))


class SimGCL(BPR):
    """``L_BPR + λ (InfoNCE(users) + InfoNCE(items))``: each view adds ``sign(E) ⊙ ε · normalize(U(0,1))`` to
    every propagated layer (no graph augmentation), the views' layer means (without ``E^(0)``, as in the
    paper) of the batch's distinct users and items are contrasted; the clean propagation is ranked by BPR
    and kept as the encoder's output.

    Args:
        layers: propagation layers (the paper reports 2-3; 2 here).
        eps: noise radius ε (the paper's 0.1).
        lam: contrastive weight λ (0.5 in the paper's Yelp/Amazon runs).
        temperature: InfoNCE τ (the paper's 0.2).
        reg: L2 weight on the layer-0 vectors (1e-4).
    """

    def __init__(self, encoder: Encoder, layers: int = 2, eps: float = 0.1, lam: float = 0.5,
                 temperature: float = 0.2, reg: float = 1e-4) -> None:
        super().__init__(encoder, reg)
        if layers < 1 or eps < 0 or lam < 0 or temperature <= 0:
            raise ValueError(f"need layers >= 1, eps >= 0, lam >= 0 and temperature > 0, got {layers}, {eps}, {lam}, "
                             f"{temperature}")
        self.eps, self.lam, self.temperature = eps, lam, temperature
        encoder.propagation(layers, ego=False)

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        users, positives, negatives = self.triples(x)
        bpr, auc, l2 = self.ranking_loss(users, positives, negatives)
        distinct_users, distinct_items = torch.unique(users), torch.unique(positives)
        first = self.encoder.lookup(distinct_users, distinct_items, self.eps)
        second = self.encoder.lookup(distinct_users, distinct_items, self.eps)
        contrast = (info_nce(first[0], second[0], self.temperature)
                    + info_nce(first[1], second[1], self.temperature))
        return bpr + self.lam * contrast + l2, {"bpr": bpr.detach(), "auc": auc, "contrastive": contrast.detach()}
