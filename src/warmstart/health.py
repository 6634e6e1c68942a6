"""Label-free health checks of an encoder during pretraining, logged each epoch to ``metrics.jsonl``.

A self-supervised loss going down does not prove the features are any good: contrastive and
reconstruction objectives can collapse (every input mapped to nearly the same vector, or onto a few
directions) while the loss still looks fine. These checks watch the embeddings themselves on a fixed
sample of training inputs, without labels:

* ``rankme`` — effective rank of the embedding matrix (Garrido et al., 2023, "RankMe: Assessing the
  Downstream Performance of Pretrained Self-Supervised Representations via Their Rank"):
  ``exp(H(p))`` with ``p_k = σ_k / Σσ + ε`` over the singular values; 1 = total collapse, up to
  ``min(N, D)`` for embeddings that use every direction. Higher rank tracks better downstream accuracy.
* ``feature_std`` — mean per-dimension standard deviation of the L2-normalised embeddings times ``√D``
  (SimSiam's collapse monitor, Chen & He, 2021): 0 when all embeddings coincide, about 1 for embeddings
  spread evenly over the sphere, whatever the features' scale.
* ``knn_accuracy`` — only when a small labeled probe set is given: leave-one-out k-nearest-neighbour
  accuracy (cosine) on the probe set. Its labels serve this report only; they never reach the loss.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.neighbors import NearestNeighbors
from torch import nn

from warmstart.data import DataBundle
from warmstart.data.splits import LabelBudget
from warmstart.errors import UserError


@torch.no_grad()
def rankme(features: torch.Tensor, eps: float = 1e-7) -> float:
    """Effective rank of ``features`` ``(N, D)`` (RankMe, Garrido et al. 2023, eq. 1)."""
    s = torch.linalg.svdvals(features.double())
    if s.sum() <= 0:
        return 1.0
    p = s / s.sum() + eps
    return float(torch.exp(-(p * p.log()).sum()))


@torch.no_grad()
def feature_std(features: torch.Tensor) -> float:
    """``√D`` × mean per-dimension std of the L2-normalised ``(N, D)`` features: 0 = collapsed, ~1 = spread."""
    z = F.normalize(features.double(), dim=1)
    return float(z.std(0).mean() * math.sqrt(z.shape[1]))


def knn_accuracy(features: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Leave-one-out ``k``-NN accuracy (cosine distance, majority vote) of ``(N, D)`` features."""
    k = min(k, len(features) - 1)
    neighbours = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(features).kneighbors(
        features, return_distance=False)[:, 1:]  # (N, k), dropping each point itself
    votes = np.zeros((len(labels), int(labels.max()) + 1))
    np.add.at(votes, (np.arange(len(labels))[:, None], labels[neighbours]), 1)
    return float((votes.argmax(1) == labels).mean())


class HealthMonitor:
    """``on_epoch_end`` hook for ``engine.fit``: embeds fixed inputs and returns the checks as a dict.

    Args:
        encoder: the encoder being pretrained (evaluated in eval mode; the engine restores train mode).
        x: ``(N, *input_shape)`` fixed sample of training inputs.
        probe_x, probe_y: optional labeled probe set for ``knn_accuracy``.
        min_std, min_rank: below either, the embeddings count as collapsed and a warning is raised.

    >>> from warmstart.models.encoders import MLPEncoder
    >>> monitor = HealthMonitor(MLPEncoder((1, 8, 8), feature_dim=16), torch.rand(64, 1, 8, 8))
    >>> sorted(monitor(1))
    ['feature_std', 'rankme']
    """

    def __init__(
        self, encoder: nn.Module, x: torch.Tensor, probe_x: torch.Tensor | None = None,
        probe_y: np.ndarray | None = None, min_std: float = 0.05, min_rank: float = 1.5,
    ) -> None:
        self.encoder, self.x, self.probe_x, self.probe_y = encoder, x, probe_x, probe_y
        self.min_std, self.min_rank = min_std, min_rank

    @classmethod
    def from_bundle(
        cls, encoder: nn.Module, data: DataBundle, samples: int, probe_labels: int, seed: int
    ) -> HealthMonitor | None:
        """A monitor on ``samples`` seeded random training inputs (and ``probe_labels`` labeled ones),
        or None when both are 0. Raises ``UserError`` for a probe the training split cannot supply."""
        if not samples and not probe_labels:
            return None
        # numpy's generator, not torch's: choosing the sample must not shift the training RNG stream.
        rows = np.sort(np.random.default_rng(seed).permutation(len(data.x_train))[:samples])
        probe_x = probe_y = None
        if probe_labels and data.task != "classify":
            raise UserError(f"probe_labels (the kNN-accuracy health check) needs class labels but {data.name} has "
                            f"{data.task} targets; set probe_labels=0")
        if probe_labels:
            try:
                labeled, _ = LabelBudget("count", probe_labels).split(data.y_train, seed)
            except UserError as err:
                raise UserError(f"probe_labels={probe_labels}: {err}") from err
            probe_x, probe_y = data.batch(data.x_train, labeled), data.y_train[labeled]
        return cls(encoder, data.batch(data.x_train, rows) if samples else None, probe_x, probe_y)

    @torch.no_grad()
    def embed(self, x: torch.Tensor, chunk: int = 512) -> torch.Tensor:
        self.encoder.eval()
        device = next(self.encoder.parameters(), torch.empty(0)).device  # the GPU while training there
        return torch.cat([self.encoder(x[i:i + chunk].to(device)).cpu() for i in range(0, len(x), chunk)]).float()

    def __call__(self, epoch: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.x is not None:
            features = self.embed(self.x)  # (N, D)
            out["rankme"], out["feature_std"] = round(rankme(features), 3), round(feature_std(features), 4)
            if out["feature_std"] < self.min_std or out["rankme"] < self.min_rank:
                warnings.warn(
                    f"epoch {epoch}: the embeddings look collapsed (RankMe {out['rankme']:.2f}, normalised std "
                    f"{out['feature_std']:.3f}); the features carry little information — lower the learning "
                    "rate, check the objective's settings (e.g. a higher SimCLR temperature) or its augmentations",
                    RuntimeWarning, stacklevel=2,
                )
        if self.probe_x is not None:
            out["knn_accuracy"] = round(knn_accuracy(self.embed(self.probe_x).numpy(), self.probe_y), 4)
        return out
