"""BPR (Rendle et al., 2009, "BPR: Bayesian Personalized Ranking from Implicit Feedback") on interactions."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from warmstart.models.embedding import require_embedding
from warmstart.models.encoders import Encoder
from warmstart.objectives.base import Objective


class BPR(Objective):
    """Matrix factorisation trained to rank a user's training item above a uniformly drawn item it has not
    interacted with: ``-log σ(u·i⁺ - u·i⁻)``, plus ``reg/2 · (‖u⁰‖² + ‖i⁺⁰‖² + ‖i⁻⁰‖²)`` per triple on the
    layer-0 vectors (LightGCN's regulariser). Batches of interactions are used as they are; a batch of users
    (or items) draws one training item (user) for each, as LightGCN's sampler does.

    Args:
        reg: L2 weight on the batch's layer-0 vectors (1e-4, LightGCN's and RecBole's default).

    >>> # objective = BPR(build_encoder("embedding", (2,), {}, "interactions", corpus=catalog)); objective.loss(pairs)
    """

    modalities = ("interactions",)

    def __init__(self, encoder: Encoder, reg: float = 1e-4) -> None:
        super().__init__(encoder)
        require_embedding(encoder, type(self).__name__)
        if reg < 0:
            raise ValueError(f"reg must be >= 0, got {reg}")
        self.reg = reg

    def triples(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(users, positive items, negative items)`` for a batch of rows."""
        self.encoder._on_device()  # refuses an encoder not bound to its catalogue
        users, positives = self.encoder.graph.positives(x)
        return users, positives, self.encoder.graph.negatives(users)

    def ranking_loss(self, users, positives, negatives, noise: float = 0.0):
        """BPR's loss and its AUC on the triples, and the L2 term."""
        u, items = self.encoder.lookup(users, torch.cat([positives, negatives]), noise)
        pos, neg = items.chunk(2)
        margin = (u * pos).sum(1) - (u * neg).sum(1)
        ego_u, ego_i = self.encoder.ego_vectors(users, torch.cat([positives, negatives]))
        l2 = 0.5 * (ego_u.pow(2).sum() + ego_i.pow(2).sum()) / max(len(users), 1)
        return -F.logsigmoid(margin).mean(), (margin > 0).float().mean(), self.reg * l2

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        bpr, auc, l2 = self.ranking_loss(*self.triples(x))
        return bpr + l2, {"bpr": bpr.detach(), "auc": auc}
