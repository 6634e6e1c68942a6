"""Dense heads on an encoder's feature pyramid: a light FPN decoder, a segmentation head, a CenterNet head.

They read ``encoder.pyramid(x)`` — feature maps at ``encoder.pyramid_strides``, finest first — so any
convolutional encoder (``cnn``, ``resnet``) serves segmentation and detection without changing its
weights or their names.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from warmstart.errors import UserError
from warmstart.models.heads import Classifier


def check_pyramid(encoder: nn.Module, user: str) -> None:
    """Refuse an encoder without feature maps (``pyramid_strides``) for ``user``, e.g. "the segment task"
    or "the dense-contrast objective": dense heads and dense objectives both read the maps."""
    if not getattr(encoder, "pyramid_strides", ()):
        name = getattr(encoder, "spec", {}).get("encoder", type(encoder).__name__)
        raise UserError(f"{user} needs an encoder with feature maps (cnn or resnet), not {name}; "
                        "use --encoder cnn or --encoder resnet")


def separable(c_in: int, c_out: int) -> nn.Sequential:
    """A depthwise 3×3 then pointwise 1×1 conv (MobileNet's block): a 3×3 context at ~1/9 of the cost."""
    return nn.Sequential(nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False),
                         nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class FPNDecoder(nn.Module):
    """The top-down path of a Feature Pyramid Network (Lin et al., 2017): a 1×1 lateral conv brings every
    level to ``dim`` channels, each coarser level is upsampled (nearest) and added to the next finer one
    down to the level of stride ``out_stride``, and a separable 3×3 conv smooths the sum.

    ``maps``: the encoder's pyramid, finest first → ``(B, dim, H / out_stride, W / out_stride)``.
    """

    def __init__(self, channels: tuple[int, ...], strides: tuple[int, ...], dim: int, out_stride: int) -> None:
        super().__init__()
        if out_stride not in strides:
            raise ValueError(f"out_stride {out_stride} is not one of the pyramid's strides {strides}")
        self.out_level = strides.index(out_stride)
        self.laterals = nn.ModuleList(nn.Conv2d(c, dim, 1) for c in channels[self.out_level:])
        self.smooth = separable(dim, dim)

    def forward(self, maps: list[torch.Tensor]) -> torch.Tensor:
        maps = maps[self.out_level:]
        y = self.laterals[-1](maps[-1])
        for lateral, finer in zip(reversed(self.laterals[:-1]), reversed(maps[:-1])):
            y = F.interpolate(y, size=finer.shape[-2:], mode="nearest") + lateral(finer)
        return self.smooth(y)


class SegmentationHead(nn.Module):
    """FPN decoder to stride 1 and a 1×1 classifier: pyramid → ``(B, classes, H, W)`` per-pixel logits."""

    def __init__(self, channels: tuple[int, ...], strides: tuple[int, ...], classes: int) -> None:
        super().__init__()
        dim = 2 * channels[0]
        self.decoder = FPNDecoder(channels, strides, dim, strides[0])
        self.classify = nn.Conv2d(dim, classes, 1)
        self.stride = strides[0]

    def forward(self, maps: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        logits = self.classify(self.decoder(maps))
        return logits if logits.shape[-2:] == size else F.interpolate(logits, size=size, mode="bilinear")


#: CenterNet's prior for the heatmap's initial bias: sigmoid(-2.19) = 0.1 (Zhou et al., 2019, §4).
HEAT_PRIOR_BIAS = -2.19


class CenterNetHead(nn.Module):
    """CenterNet (Zhou et al., 2019, "Objects as Points"): on the FPN map at ``stride``, one shared 3×3
    conv, then per location a heatmap of ``classes`` object centres, the box size (w, h) and the
    sub-pixel offset of the centre, both in output-map pixels.

    pyramid → ``(B, classes + 4, H / stride, W / stride)``: heatmap logits, then w, h, dx, dy.
    """

    def __init__(self, channels: tuple[int, ...], strides: tuple[int, ...], classes: int, stride: int) -> None:
        super().__init__()
        dim = 2 * channels[0]
        self.decoder = FPNDecoder(channels, strides, dim, stride)
        self.shared = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1, bias=False), nn.BatchNorm2d(dim),
                                    nn.ReLU(inplace=True))
        self.out = nn.Conv2d(dim, classes + 4, 1)
        with torch.no_grad():
            self.out.bias[:classes].fill_(HEAT_PRIOR_BIAS)
        self.classes, self.stride = classes, stride

    def forward(self, maps: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        return self.out(self.shared(self.decoder(maps)))


class DenseModel(Classifier):
    """Encoder + a dense head on its pyramid: ``(B, C, H, W)`` → the head's maps. Freezing the encoder
    (``linear``) works as for ``Classifier``: no gradients, BatchNorm statistics kept as pretrained."""

    def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
        nn.Module.__init__(self)  # Classifier's own __init__ would build a linear head
        self.encoder, self.head, self.encoder_frozen = encoder, head, False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.encoder_frozen:
            with torch.no_grad():
                maps = self.encoder.pyramid(x)
        else:
            maps = self.encoder.pyramid(x)
        return self.head(maps, tuple(x.shape[-2:]))
