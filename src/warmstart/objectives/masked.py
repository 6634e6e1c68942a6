"""Masked autoencoding: hide part of the input, reconstruct it, score only what was hidden.

MAE (He et al., 2022, "Masked Autoencoders Are Scalable Vision Learners") drops masked patches from a
ViT's token sequence; a CNN or MLP cannot drop positions, so here masked patches are *replaced in input
space* by a learned per-channel fill value — the SimMIM recipe (Xie et al., 2022, "SimMIM: A Simple
Framework for Masked Image Modeling"), which works with any encoder. The loss is MAE's: mean squared
error on the masked positions only, so the visible pixels cost nothing to copy.
"""
from __future__ import annotations

import torch
from torch import nn

from warmstart.models.encoders import Encoder
from warmstart.models.heads import Decoder
from warmstart.objectives.base import Objective


def auto_patch_size(height: int, width: int) -> int:
    """4-pixel patches (7×7 of them on 28×28), smaller when that leaves fewer than 16 patches (8×8 digits → 2)."""
    for size in (4, 2, 1):
        if height % size == 0 and width % size == 0 and (height // size) * (width // size) >= 16:
            return size
    return 1


class MaskedAutoencoder(Objective):
    """Mask ``mask_ratio`` of the patches (images) or features (table rows), reconstruct the whole input
    from the encoder's features, and average the squared error over the masked values only.

    Shapes: ``x`` ``(B, C, H, W)`` with a ``(B, 1, H/p, W/p)`` patch mask upsampled to pixels, or ``(B, D)``
    with a ``(B, D)`` feature mask; ``decoder(encoder(x_masked))`` has ``x``'s shape.

    Args:
        mask_ratio: fraction of patches/features hidden per example. MAE uses 0.75 on 224×224 ViTs, SimMIM
            0.6 with 32-pixel patches on CNN-style inputs; 0.6 is the default here, since a 28×28 image has
            far less redundancy than a 224×224 one.
        patch_size: side of the square patches masked together (images only); ``None`` picks
            :func:`auto_patch_size`; 1 masks single pixels. Must divide the image's height and width.
        decoder_hidden: width of the MLP decoder's hidden layer (0: linear decoder).
        sigmoid: squash reconstructions into [0, 1]; ``None`` means yes for images (pixels are in [0, 1]
            in model units), no for table rows.

    >>> from warmstart.models.encoders import CNNEncoder
    >>> objective = MaskedAutoencoder(CNNEncoder((1, 28, 28), width=8))
    >>> objective.patch_size, objective.loss(torch.rand(4, 1, 28, 28))[0].shape
    (4, torch.Size([]))
    """

    def __init__(
        self, encoder: Encoder, mask_ratio: float = 0.6, patch_size: int | None = None, decoder_hidden: int = 256,
        sigmoid: bool | None = None,
    ) -> None:
        super().__init__(encoder)
        if not 0 < mask_ratio < 1:
            raise ValueError(f"mask_ratio must lie strictly between 0 and 1, got {mask_ratio}")
        if decoder_hidden < 0:
            raise ValueError(f"decoder_hidden must be >= 0, got {decoder_hidden}")
        shape = encoder.input_shape
        self.is_image = encoder.modality == "image"
        if self.is_image:
            c, h, w = shape
            patch_size = auto_patch_size(h, w) if patch_size is None else patch_size
            if patch_size < 1 or h % patch_size or w % patch_size:
                raise ValueError(
                    f"patch_size {patch_size} must be >= 1 and divide the image size {h}x{w}; try patch_size=1"
                )
            self.grid = (h // patch_size, w // patch_size)
            self.fill = nn.Parameter(torch.full((c, 1, 1), 0.5))  # learned "mask token" in pixel space
        else:
            if patch_size not in (None, 1):
                raise ValueError(f"patch_size applies to images only; the inputs have shape {shape}")
            patch_size = 1
            self.fill = nn.Parameter(torch.zeros(shape))
        self.patch_size, self.mask_ratio = patch_size, mask_ratio
        sigmoid = self.is_image if sigmoid is None else sigmoid
        self.decoder = Decoder(encoder.feature_dim, shape, decoder_hidden, sigmoid)

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        """A boolean mask of ``x``'s shape, True where hidden; exactly ``round(ratio · positions)`` per example."""
        b = x.shape[0]
        positions = self.grid[0] * self.grid[1] if self.is_image else x[0].numel()
        hidden = max(1, round(self.mask_ratio * positions))
        # Rank random scores: the `hidden` lowest positions of each row are masked (MAE's shuffle trick).
        ranks = torch.rand(b, positions, device=x.device).argsort(1).argsort(1)
        mask = ranks < hidden  # (B, positions)
        if not self.is_image:
            return mask.view_as(x)
        mask = mask.view(b, 1, *self.grid).repeat_interleave(self.patch_size, 2).repeat_interleave(self.patch_size, 3)
        return mask.expand_as(x)  # (B, C, H, W)

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mask = self.mask(x)
        visible = torch.where(mask, self.fill.expand_as(x), x)
        recon = self.decoder(self.encoder(visible))  # (B, *input_shape)
        weights = mask.float()
        loss = ((recon - x) ** 2 * weights).sum() / weights.sum()
        with torch.no_grad():
            seen = ((recon - x) ** 2 * (1 - weights)).sum() / (1 - weights).sum().clamp(min=1)
        return loss, {"masked_mse": loss.detach(), "visible_mse": seen}
