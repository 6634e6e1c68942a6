"""Batched augmentations: every transform is a handful of tensor ops on a whole ``(B, C, H, W)`` batch.

No per-sample Python loop and no torchvision: each sample draws its own crop, flip, jitter and erasing
box from one vectorised random draw, and the geometry (crop + flip + shift) is a single
``F.affine_grid`` / ``F.grid_sample`` call. Randomness comes from torch's global RNG (which the engine
checkpoints, so a resumed run sees the same views) or from an explicit ``generator``.

Measured on this 2-core machine (``bench/objectives_throughput.py``): the SimCLR preset runs far faster
than any encoder here consumes images; see ``BENCHMARKS.md``.

Tabular rows ``(B, D)`` get SCARF-style corruption instead (Bahri et al., 2022, "SCARF: Self-Supervised
Contrastive Learning using Random Feature Corruption"): a random subset of features is replaced by the
same feature of another row of the batch, i.e. a draw from its empirical marginal.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(shape, generator=generator) * (high - low) + low


def _check_range(name: str, pair: tuple[float, float], low: float, high: float) -> None:
    if len(pair) != 2 or not low <= pair[0] <= pair[1] <= high:
        raise ValueError(f"{name} must be a pair low <= high within [{low}, {high}], got {pair}")


@dataclass
class Augment:
    """A random view of every image in a batch: ``Augment(...)(x)`` with ``x`` of shape ``(B, C, H, W)``.

    Order (as in SimCLR, Chen et al. 2020, Appendix A): random resized crop with optional shift and
    horizontal flip → brightness/contrast jitter → Gaussian noise → random erasing (Zhong et al., 2020).
    Values are clamped to the batch's own ``[min, max]`` so pixels stay in the data's range.

    Args:
        crop_scale: range of the crop's area as a fraction of the image (``(1, 1)`` = no crop).
        crop_ratio: range of the crop's aspect ratio (width / height), drawn log-uniformly.
        shift: extra translation as a fraction of the side, filled with zeros (pad-and-crop style).
        flip: probability of a horizontal flip.
        brightness, contrast: jitter strengths; factors are drawn from ``[1 - s, 1 + s]``.
        jitter_prob: probability that a sample gets the brightness/contrast jitter at all.
        noise_std: standard deviation of additive Gaussian noise (model units).
        erase_prob: probability of erasing (zeroing) one rectangle per sample.
        erase_scale: range of the erased area as a fraction of the image.

    The defaults are the SimCLR recipe adapted to small grayscale images (no hue/saturation to jitter,
    a milder minimum crop than ImageNet's 0.08 because a 28×28 image has little to spare):

    >>> views = Augment()(torch.rand(256, 1, 28, 28))
    >>> views.shape
    torch.Size([256, 1, 28, 28])
    """

    crop_scale: tuple[float, float] = (0.3, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    shift: float = 0.0
    flip: float = 0.5
    brightness: float = 0.4
    contrast: float = 0.4
    jitter_prob: float = 0.8
    noise_std: float = 0.0
    erase_prob: float = 0.25
    erase_scale: tuple[float, float] = (0.02, 0.2)

    def __post_init__(self) -> None:
        self.crop_scale, self.crop_ratio = tuple(self.crop_scale), tuple(self.crop_ratio)
        self.erase_scale = tuple(self.erase_scale)
        _check_range("crop_scale", self.crop_scale, 1e-3, 1.0)
        _check_range("crop_ratio", self.crop_ratio, 1e-2, 1e2)
        _check_range("erase_scale", self.erase_scale, 0.0, 1.0)
        for name in ("flip", "jitter_prob", "erase_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} is a probability and must lie in [0, 1], got {getattr(self, name)}")
        for name in ("shift", "brightness", "contrast", "noise_std"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.brightness >= 1 or self.contrast >= 1:
            raise ValueError("brightness and contrast must be < 1 so the factors stay positive")

    @classmethod
    def weak(cls) -> Augment:
        """The light view for fine-tuning and FixMatch's weak branch: flip plus a small shift/crop."""
        return cls(crop_scale=(0.8, 1.0), shift=0.1, flip=0.5, brightness=0.0, contrast=0.0, jitter_prob=0.0,
                   noise_std=0.0, erase_prob=0.0)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None,
                 with_affine: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``x``: ``(B, C, H, W)`` → an augmented batch of the same shape and dtype; with ``with_affine``
        also the ``(B, 2, 3)`` affine each view was resampled with (``warp_masks`` / ``warp_boxes`` move
        per-pixel and box targets the same way)."""
        if x.dim() != 4:
            raise ValueError(f"Augment expects a (B, C, H, W) image batch, got shape {tuple(x.shape)}")
        low, high = x.amin(), x.amax()
        theta = self.affine(x.shape[0], generator)
        x = resample(x, theta)
        x = self.jitter(x, generator)
        if self.noise_std:
            x = x + self.noise_std * torch.randn(x.shape, generator=generator).to(x)
        x = self.erase(x, generator)
        return (x.clamp(low, high), theta) if with_affine else x.clamp(low, high)

    def geometry(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Random resized crop + shift + flip as one affine resampling of the batch."""
        return resample(x, self.affine(x.shape[0], generator))

    def affine(self, b: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(b, 2, 3)`` random crop + shift + flip affines: output coordinates in [-1, 1] → input ones."""
        area = _uniform((b,), *self.crop_scale, generator)
        log_ratio = _uniform((b,), math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1]), generator)
        ratio = log_ratio.exp()
        # Crop width/height as fractions of the side; the grid maps output [-1, 1] to input w·u + t.
        w = (area * ratio).sqrt().clamp(max=1.0)
        h = (area / ratio).sqrt().clamp(max=1.0)
        tx = (torch.rand(b, generator=generator) * 2 - 1) * (1 - w + 2 * self.shift)
        ty = (torch.rand(b, generator=generator) * 2 - 1) * (1 - h + 2 * self.shift)
        sign = torch.where(torch.rand(b, generator=generator) < self.flip, -1.0, 1.0)
        theta = torch.zeros(b, 2, 3)
        theta[:, 0, 0], theta[:, 0, 2] = w * sign, tx
        theta[:, 1, 1], theta[:, 1, 2] = h, ty
        return theta

    def jitter(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Brightness (scale) then contrast (blend with the per-image mean), per sample."""
        if not (self.jitter_prob and (self.brightness or self.contrast)):
            return x
        b = x.shape[0]
        on = (torch.rand(b, generator=generator) < self.jitter_prob).float()
        bright = 1 + on * _uniform((b,), -self.brightness, self.brightness, generator)
        contrast = 1 + on * _uniform((b,), -self.contrast, self.contrast, generator)
        bright, contrast = bright.view(b, 1, 1, 1).to(x), contrast.view(b, 1, 1, 1).to(x)
        x = x * bright
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * contrast + mean

    def erase(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Zero one random rectangle in a random subset of the samples (Random Erasing)."""
        if not self.erase_prob:
            return x
        b, _, height, width = x.shape
        on = torch.rand(b, generator=generator) < self.erase_prob
        area = _uniform((b,), *self.erase_scale, generator)
        ratio = _uniform((b,), math.log(0.3), math.log(1 / 0.3), generator).exp()
        eh = (area / ratio).sqrt().clamp(max=1.0) * height
        ew = (area * ratio).sqrt().clamp(max=1.0) * width
        y0 = torch.rand(b, generator=generator) * (height - eh)
        x0 = torch.rand(b, generator=generator) * (width - ew)
        rows = torch.arange(height).view(1, height, 1)
        cols = torch.arange(width).view(1, 1, width)
        box = ((rows >= y0.view(b, 1, 1)) & (rows < (y0 + eh).view(b, 1, 1))
               & (cols >= x0.view(b, 1, 1)) & (cols < (x0 + ew).view(b, 1, 1)) & on.view(b, 1, 1))  # (B, H, W)
        return x.masked_fill(box.unsqueeze(1).to(x.device), 0.0)


def resample(x: torch.Tensor, theta: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """``x`` ``(B, C, H, W)`` resampled through the affines ``theta`` ``(B, 2, 3)``; outside is zero."""
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)


def warp_masks(masks: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Integer per-pixel targets ``(B, H, W)`` moved like the pixels under ``theta`` (nearest neighbour;
    what comes from outside the image is 0, the background, like the zero-filled pixels)."""
    return resample(masks.unsqueeze(1).float(), theta, "nearest").squeeze(1).round().to(masks.dtype)


def warp_boxes(boxes: torch.Tensor, theta: torch.Tensor, size: tuple[int, int], min_visible: float = 0.3
               ) -> torch.Tensor:
    """Boxes ``(B, M, 4+)`` (``x1, y1, x2, y2`` in pixels, then e.g. a label; label -1 marks padding) moved
    like the pixels of an ``(H, W) = size`` image under ``theta``: the box enclosing the moved corners,
    clipped to the image. A box with less than ``min_visible`` of its area left inside becomes padding."""
    height, width = size
    scale = torch.tensor([width / 2, height / 2], dtype=boxes.dtype)
    a, t = theta[:, :, :2].to(boxes), theta[:, :, 2].to(boxes)  # input = a @ output + t, in [-1, 1] units
    corners = boxes[..., [0, 1, 2, 1, 0, 3, 2, 3]].reshape(*boxes.shape[:2], 4, 2)  # (B, M, 4, 2)
    inside = corners / scale - 1  # pixels → [-1, 1]
    moved = torch.einsum("bij,bmkj->bmki", torch.linalg.inv(a), inside - t[:, None, None, :])
    moved = (moved + 1) * scale
    low, high = moved.amin(2), moved.amax(2)  # (B, M, 2)
    limit = torch.tensor([width, height], dtype=boxes.dtype)
    clipped_low, clipped_high = low.clamp(min=0), torch.minimum(high, limit)
    area = (high - low).prod(-1)
    visible = (clipped_high - clipped_low).clamp(min=0).prod(-1)
    out = torch.cat([clipped_low, clipped_high, boxes[..., 4:]], -1)
    dropped = visible < min_visible * area.clamp(min=1e-9)
    if boxes.shape[-1] > 4:
        out[..., 4] = torch.where(dropped, torch.full_like(out[..., 4], -1), out[..., 4])
    return out


def feature_corruption(
    x: torch.Tensor, rate: float = 0.6, generator: torch.Generator | None = None
) -> torch.Tensor:
    """SCARF view of tabular rows ``(B, D)``: each feature is, with probability ``rate``, replaced by
    the same feature of a random other row of the batch (0.6 is the paper's default corruption rate).

    >>> feature_corruption(torch.rand(32, 10)).shape
    torch.Size([32, 10])
    """
    if not 0 <= rate <= 1:
        raise ValueError(f"rate must lie in [0, 1], got {rate}")
    b = x.shape[0]
    donor = torch.randint(0, b, x.shape, generator=generator).to(x.device)  # (B, D) row to copy from
    replaced = x.gather(0, donor)
    mask = (torch.rand(x.shape, generator=generator) < rate).to(x.device)
    return torch.where(mask, replaced, x)
