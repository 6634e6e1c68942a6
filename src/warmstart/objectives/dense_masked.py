"""Dense masked image modelling: each masked patch is reconstructed from the feature map at its place.

``masked`` squeezes the whole image through the pooled feature vector and an MLP decoder, so only the
vector learns to describe the image; dense tasks read the feature maps. Here, as in SimMIM (Xie et al.,
2022, "SimMIM: A Simple Framework for Masked Image Modeling"), the prediction head is one 1×1 conv on the
encoder's deepest feature map (stride ``s``) that emits the ``s × s`` pixels under each location (pixel
shuffle), so every location of the map must describe its own neighbourhood. Masked patches are replaced
in input space by a learned fill value, and the loss is the squared error on the masked pixels only
(MAE's); the mask patch is twice the feature stride, SimMIM's best ratio of mask patch to token size.
"""
from __future__ import annotations

import torch
from torch import nn

from warmstart.models.dense import check_pyramid
from warmstart.models.encoders import Encoder
from warmstart.objectives.base import Objective


class DenseMaskedAutoencoder(Objective):
    """Mask ``mask_ratio`` of the ``patch_size`` patches, predict every pixel from the deepest feature map's
    location above it, average the squared error over the masked pixels.

    Shapes: ``x`` ``(B, C, H, W)``; ``encoder.pyramid(x)[-1]`` ``(B, D, H/s, W/s)`` → ``(B, C·s², H/s, W/s)``
    → pixel shuffle → ``(B, C, H, W)``.

    Args:
        mask_ratio: fraction of patches hidden per image (SimMIM's 0.6).
        patch_size: side of the square patches masked together; None: twice the deepest stride. Must be a
            multiple of that stride and divide the image size.
        sigmoid: squash predictions into [0, 1] (pixels in model units).

    >>> from warmstart.models.encoders import CNNEncoder
    >>> objective = DenseMaskedAutoencoder(CNNEncoder((1, 32, 32), width=8))
    >>> objective.patch_size, objective.loss(torch.rand(4, 1, 32, 32))[0].shape
    (8, torch.Size([]))
    """

    modalities = ("image",)

    def __init__(self, encoder: Encoder, mask_ratio: float = 0.6, patch_size: int | None = None,
                 sigmoid: bool = True) -> None:
        super().__init__(encoder)
        check_pyramid(encoder, "the masked-dense objective")
        if not 0 < mask_ratio < 1:
            raise ValueError(f"mask_ratio must lie strictly between 0 and 1, got {mask_ratio}")
        c, h, w = encoder.input_shape
        stride = encoder.pyramid_strides[-1]
        patch_size = 2 * stride if patch_size is None else patch_size
        if patch_size < stride or patch_size % stride or h % patch_size or w % patch_size:
            raise ValueError(f"patch_size {patch_size} must be a multiple of the feature stride {stride} and divide "
                             f"the image size {h}x{w}")
        self.patch_size, self.mask_ratio, self.sigmoid = patch_size, mask_ratio, sigmoid
        self.grid = (h // patch_size, w // patch_size)
        self.fill = nn.Parameter(torch.full((c, 1, 1), 0.5))  # learned "mask token" in pixel space
        self.head = nn.Sequential(nn.Conv2d(encoder.pyramid_channels[-1], c * stride * stride, 1),
                                  nn.PixelShuffle(stride))

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` boolean mask, True where hidden; exactly ``round(ratio · patches)`` per image."""
        b, patches = x.shape[0], self.grid[0] * self.grid[1]
        hidden = max(1, round(self.mask_ratio * patches))
        ranks = torch.rand(b, patches, device=x.device).argsort(1).argsort(1)
        mask = (ranks < hidden).view(b, 1, *self.grid)
        mask = mask.repeat_interleave(self.patch_size, 2).repeat_interleave(self.patch_size, 3)
        return mask.expand_as(x)

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mask = self.mask(x)
        visible = torch.where(mask, self.fill.expand_as(x), x)
        recon = self.head(self.encoder.pyramid(visible)[-1])  # (B, C, H, W)
        recon = torch.sigmoid(recon) if self.sigmoid else recon
        weights = mask.float()
        loss = ((recon - x) ** 2 * weights).sum() / weights.sum()
        with torch.no_grad():
            seen = ((recon - x) ** 2 * (1 - weights)).sum() / (1 - weights).sum().clamp(min=1)
        return loss, {"masked_mse": loss.detach(), "visible_mse": seen}
