"""CenterNet's training targets, loss and decoding in plain torch (Zhou et al., 2019, "Objects as Points").

Each object is a peak at its centre in a per-class heatmap at the head's output stride, drawn as a
Gaussian whose radius keeps a box shifted within it at IoU >= 0.7 (CenterNet's ``gaussian_radius``); the
heatmap is trained with the penalty-reduced focal loss (α = 2, β = 4), the box size and the centre's
sub-pixel offset with L1 at the peak (weights 0.1 and 1, the paper's). Decoding keeps the local maxima of
the heatmap (a 3×3 max-pool stands in for NMS) and reads each peak's size and offset.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

ALPHA, BETA = 2.0, 4.0
SIZE_WEIGHT, OFFSET_WEIGHT = 0.1, 1.0
MIN_OVERLAP = 0.7


def gaussian_radius(h: torch.Tensor, w: torch.Tensor, min_overlap: float = MIN_OVERLAP) -> torch.Tensor:
    """CenterNet's radius for boxes ``h`` × ``w`` (its three cases, written as in its reference code)."""
    m = min_overlap
    b1, c1 = h + w, w * h * (1 - m) / (1 + m)
    r1 = (b1 + (b1 ** 2 - 4 * c1).clamp(min=0).sqrt()) / 2
    b2, c2 = 2 * (h + w), (1 - m) * w * h
    r2 = (b2 + (b2 ** 2 - 16 * c2).clamp(min=0).sqrt()) / 2
    b3, c3 = -2 * m * (h + w), (m - 1) * w * h
    r3 = (b3 + (b3 ** 2 - 16 * m * c3).clamp(min=0).sqrt()) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


def centre_targets(boxes: torch.Tensor, classes: int, grid: tuple[int, int], stride: int):
    """Training targets from padded boxes ``(B, M, 5)`` (``x1, y1, x2, y2`` pixels, label; label < 0 is
    padding) on an output grid ``(Ho, Wo)``: ``heat (B, K, Ho, Wo)``, the valid-object mask ``(B, M)``,
    their integer centres ``(B, M, 2)`` (x, y), sizes ``(B, M, 2)`` and offsets ``(B, M, 2)`` in grid units."""
    ho, wo = grid
    valid = boxes[..., 4] >= 0
    xy1, xy2 = boxes[..., 0:2] / stride, boxes[..., 2:4] / stride
    centre = (xy1 + xy2) / 2
    size = (xy2 - xy1).clamp(min=1e-3)
    limit = torch.tensor([wo - 1, ho - 1], dtype=centre.dtype)
    cell = torch.minimum(centre.floor().clamp(min=0), limit)
    radius = gaussian_radius(size[..., 1], size[..., 0]).floor().clamp(min=0)  # (B, M)
    sigma = (2 * radius + 1) / 6
    gx = torch.arange(wo, dtype=centre.dtype).view(1, 1, 1, wo)
    gy = torch.arange(ho, dtype=centre.dtype).view(1, 1, ho, 1)
    dx, dy = gx - cell[..., 0, None, None], gy - cell[..., 1, None, None]  # (B, M, 1|Ho, Wo|1)
    r = radius[..., None, None]
    gauss = torch.exp(-(dx ** 2 + dy ** 2) / (2 * sigma[..., None, None] ** 2))
    gauss = gauss * ((dx.abs() <= r) & (dy.abs() <= r) & valid[..., None, None])  # (B, M, Ho, Wo)
    onehot = F.one_hot(boxes[..., 4].long().clamp(min=0), classes).to(gauss) * valid[..., None]  # (B, M, K)
    heat = (gauss[:, :, None] * onehot[..., None, None]).amax(1) if boxes.shape[1] else \
        torch.zeros(boxes.shape[0], classes, ho, wo)
    return heat, valid, cell.long(), size, centre - cell


def focal_loss(logits: torch.Tensor, heat: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced pixel-wise focal loss, normalised by the number of peaks."""
    p = logits.sigmoid().clamp(1e-4, 1 - 1e-4)
    peak = heat.eq(1).float()
    positive = (1 - p) ** ALPHA * p.log() * peak
    negative = (1 - heat) ** BETA * p ** ALPHA * (1 - p).log() * (1 - peak)
    return -(positive.sum() + negative.sum()) / peak.sum().clamp(min=1)


def centernet_loss(output: torch.Tensor, boxes: torch.Tensor, classes: int, stride: int):
    """Total loss and its parts for head outputs ``(B, K + 4, Ho, Wo)`` and padded boxes ``(B, M, 5)``."""
    heat, valid, cell, size, offset = centre_targets(boxes, classes, tuple(output.shape[-2:]), stride)
    heat_loss = focal_loss(output[:, :classes], heat)
    b, m = valid.nonzero(as_tuple=True)
    if len(b):
        at = output[b, classes:, cell[b, m, 1], cell[b, m, 0]]  # (n, 4): w, h, dx, dy
        size_loss = F.l1_loss(at[:, :2], size[b, m])
        offset_loss = F.l1_loss(at[:, 2:], offset[b, m])
    else:
        size_loss = offset_loss = output.sum() * 0.0
    total = heat_loss + SIZE_WEIGHT * size_loss + OFFSET_WEIGHT * offset_loss
    return total, {"loss_heat": heat_loss.detach(), "loss_size": size_loss.detach(),
                   "loss_offset": offset_loss.detach()}


def decode(output: torch.Tensor, classes: int, stride: int, image_size: tuple[int, int], top_k: int = 100):
    """Detections of head outputs ``(B, K + 4, Ho, Wo)``: boxes ``(B, k, 4)`` in input pixels (clipped to
    ``image_size`` = (H, W)), scores ``(B, k)`` and labels ``(B, k)``, best first, at most ``top_k``."""
    heat = output[:, :classes].sigmoid()
    peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)  # local maxima only
    b, _, ho, wo = heat.shape
    scores, index = peaks.flatten(1).topk(min(top_k, peaks[0].numel()), dim=1)
    labels, place = index // (ho * wo), index % (ho * wo)
    ys, xs = (place // wo).float(), (place % wo).float()
    extra = output[:, classes:].flatten(2).gather(2, place[:, None].expand(-1, 4, -1))  # (B, 4, k)
    w, h, dx, dy = extra.unbind(1)
    cx, cy = xs + dx, ys + dy
    boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1) * stride
    height, width = image_size
    limit = torch.tensor([width, height, width, height], dtype=boxes.dtype)
    return torch.minimum(boxes.clamp(min=0), limit), scores, labels
