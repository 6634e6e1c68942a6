"""Dense contrastive learning: SimCLR on the pooled vector plus InfoNCE between the feature-map locations of
two views that see the same place of the image.

SimCLR on a scene of several objects makes the pooled vector describe the scene's mixture; a segmentation
decoder reads the feature maps, where each location should describe its own object. As in DenseCL (Wang et
al., 2021, "Dense Contrastive Learning for Self-Supervised Visual Pre-Training") the loss adds a pixel-level
term to the global one, but the correspondence between the views is exact rather than matched in feature
space, as in PixPro (Xie et al., 2021): the augmentation's own affines say where each location of view 1
lies in view 2, whose projected map is resampled there. A location is a positive only with its own place in
the other view; the other sampled locations of the batch are its negatives. Locations are sampled where the
view has detail (local pixel spread), so the flat background of a scene, which is the same everywhere,
does not dominate the negatives.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from warmstart.models.dense import check_pyramid
from warmstart.models.encoders import Encoder
from warmstart.objectives.simclr import SimCLR


class DenseContrast(SimCLR):
    """``(1 - dense_weight) ·`` SimCLR's NT-Xent on the pooled deepest map ``+ dense_weight ·`` a symmetric
    InfoNCE over ``locations`` sampled cells per image of the deepest feature map.

    Shapes: ``x`` ``(B, C, H, W)`` → two views ``(2B, C, H, W)`` with affines ``(2B, 2, 3)``;
    ``encoder.pyramid(views)[-1]`` ``(2B, D, h, w)``; its spatial mean is the pooled vector (what
    ``encoder(x)`` returns for ``cnn`` and ``resnet``) and a 1×1-conv head projects each cell to
    ``dense_dim``.

    Args:
        temperature: the global NT-Xent's ``τ`` (SimCLR's).
        dense_temperature: the dense InfoNCE's ``τ`` (DenseCL's 0.2).
        dense_weight: the dense term's share of the loss (DenseCL's 0.5); 0 is SimCLR, 1 only the dense term.
        locations: cells sampled per image; pairs that fall outside the other view are dropped.
        dense_dim: width of the dense projection.
        proj_hidden, proj_dim, augment: as for :class:`~warmstart.objectives.simclr.SimCLR`.

    >>> from warmstart.models.encoders import CNNEncoder
    >>> objective = DenseContrast(CNNEncoder((1, 32, 32), width=8))
    >>> loss, logs = objective.loss(torch.rand(4, 1, 32, 32))
    >>> sorted(logs)
    ['contrastive', 'dense', 'dense_pairs', 'dense_top1']
    """

    modalities = ("image",)

    def __init__(self, encoder: Encoder, temperature: float = 0.5, dense_temperature: float = 0.2,
                 dense_weight: float = 0.5, locations: int = 16, dense_dim: int = 64, proj_hidden: int = 512,
                 proj_dim: int = 128, augment: dict[str, Any] | None = None) -> None:
        check_pyramid(encoder, "the dense-contrast objective")
        super().__init__(encoder, temperature, proj_hidden, proj_dim, augment)
        if not 0 <= dense_weight <= 1:
            raise ValueError(f"dense_weight must lie in [0, 1], got {dense_weight}")
        if dense_temperature <= 0 or locations < 1 or dense_dim < 1:
            raise ValueError(f"dense_temperature must be > 0 and locations, dense_dim >= 1, got "
                             f"{dense_temperature}, {locations}, {dense_dim}")
        self.dense_weight, self.dense_temperature, self.locations = dense_weight, dense_temperature, locations
        self.stride = encoder.pyramid_strides[-1]
        c = encoder.pyramid_channels[-1]
        self.dense_head = nn.Sequential(nn.Conv2d(c, c, 1), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                                        nn.Conv2d(c, dense_dim, 1))

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if len(x) < 2:
            raise ValueError("dense-contrast needs batches of at least 2 examples (the others are the negatives)")
        views, theta = self.augment(torch.cat([x, x]), with_affine=True)
        deep = self.encoder.pyramid(views)[-1]  # one pass over both views, as SimCLR's
        z1, z2 = self.head(deep.mean(dim=(2, 3))).chunk(2)
        global_loss = self.criterion(z1, z2)
        dense_loss, logs = self.dense_loss(self.dense_head(deep), theta, views[: len(x)])
        loss = (1 - self.dense_weight) * global_loss + self.dense_weight * dense_loss
        return loss, {"contrastive": global_loss.detach(), **logs}

    def dense_loss(self, q: torch.Tensor, theta: torch.Tensor, first_views: torch.Tensor
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``q`` ``(2B, E, h, w)`` projected maps of both views, ``theta`` their affines → InfoNCE between
        sampled cells of view 1 and the same places of the image in view 2."""
        q1, q2 = q.chunk(2)
        b, _, h, w = q1.shape
        u2, valid = self.correspondence(theta, h, w)
        keys = F.grid_sample(q2, u2, mode="bilinear", align_corners=False)  # view 2 at view 1's cells
        cells = self.sample_cells(first_views, valid, h, w)  # (B, K) flat cell indices
        rows = torch.arange(b, device=q.device).unsqueeze(1).expand_as(cells)
        keep = valid.flatten(1)[rows, cells]
        queries = q1.flatten(2).transpose(1, 2)[rows, cells][keep]  # (N, E)
        keys = keys.flatten(2).transpose(1, 2)[rows, cells][keep]
        pairs = len(queries)
        if pairs < 2:  # the views barely overlap: nothing to contrast in this batch
            zero = q.sum() * 0.0
            return zero, {"dense": zero.detach(), "dense_pairs": torch.tensor(float(pairs)),
                          "dense_top1": torch.tensor(0.0)}
        logits = F.normalize(queries, dim=1) @ F.normalize(keys, dim=1).T / self.dense_temperature
        target = torch.arange(pairs, device=q.device)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        top1 = (logits.detach().argmax(1) == target).float().mean()
        return loss, {"dense": loss.detach(), "dense_pairs": torch.tensor(float(pairs)), "dense_top1": top1}

    @staticmethod
    def correspondence(theta: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        """View 1's ``h × w`` cell centres → their coordinates in view 2 ``(B, h, w, 2)`` (x, y in [-1, 1],
        ``grid_sample``'s convention) and ``(B, h, w)`` True where that place is inside the image and view 2."""
        theta1, theta2 = theta.chunk(2)
        ys = (2 * torch.arange(h, dtype=theta.dtype) + 1) / h - 1
        xs = (2 * torch.arange(w, dtype=theta.dtype) + 1) / w - 1
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).view(1, h * w, 2)  # (1, hw, (x, y))
        image = grid @ theta1[:, :, :2].transpose(1, 2) + theta1[:, :, 2].unsqueeze(1)  # view 1 → image
        inverse = torch.linalg.inv(theta2[:, :, :2])
        u2 = (image - theta2[:, :, 2].unsqueeze(1)) @ inverse.transpose(1, 2)  # image → view 2
        inside = (image.abs() <= 1).all(-1) & (u2.abs() <= 1).all(-1)
        return u2.view(-1, h, w, 2).to(theta), inside.view(-1, h, w)

    def sample_cells(self, views: torch.Tensor, valid: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """``(B, K)`` cells of view 1 drawn without replacement, more often where the pixels under a cell's
        neighbourhood vary (valid cells only, unless an image has fewer than ``K``)."""
        gray = views.mean(1, keepdim=True)
        size = 2 * self.stride + 1
        mean = F.avg_pool2d(gray, size, stride=1, padding=self.stride, count_include_pad=False)
        square = F.avg_pool2d(gray ** 2, size, stride=1, padding=self.stride, count_include_pad=False)
        spread = (square - mean ** 2).clamp(min=0).sqrt()
        detail = F.adaptive_avg_pool2d(spread, (h, w)).flatten(1)  # (B, hw)
        weight = (detail + 1e-3 * detail.mean(1, keepdim=True) + 1e-8) * valid.flatten(1)
        gumbel = -torch.log(-torch.log(torch.rand_like(weight).clamp(1e-9, 1 - 1e-9)))
        scores = torch.where(weight > 0, weight.log() + gumbel, torch.full_like(weight, -float("inf")))
        return scores.topk(min(self.locations, h * w), dim=1).indices
