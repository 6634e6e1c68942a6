"""Encoders: backbones that map an input batch to a ``(B, feature_dim)`` feature matrix.

Each encoder is one class plus one registration line. ``norm="group"`` swaps BatchNorm for GroupNorm,
which per-sample-gradient methods (DP-SGD) need and tiny batches prefer.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from warmstart.registry import Registry

ENCODERS: Registry[type["Encoder"]] = Registry("encoder")


class Encoder(nn.Module):
    """Base class: remembers its input shape and feature size so heads can be built against it.

    Convolutional encoders also expose their feature maps (``pyramid``): one ``(B, C_i, H/s_i, W/s_i)`` map
    per stage, finest first, with ``pyramid_channels`` and ``pyramid_strides`` describing them, for dense
    heads (segmentation decoders, detection heads). Encoders without spatial features leave them empty.
    """

    feature_dim: int
    pyramid_channels: tuple[int, ...] = ()
    pyramid_strides: tuple[int, ...] = ()
    #: The data modalities (``data/modalities/``) this architecture reads.
    modalities: tuple[str, ...] = ("image", "table")
    #: The modality of the data it was built for (set by ``models.build.build_encoder``).
    modality = "image"

    def __init__(self, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.input_size = math.prod(self.input_shape)

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The feature maps of ``x`` at ``pyramid_strides``, finest first (the layers ``forward`` pools)."""
        if not self.pyramid_strides:
            raise NotImplementedError(f"{type(self).__name__} has no spatial feature maps")
        maps = []
        for i, layer in enumerate(self.net):
            if i in self._pyramid_taps:
                maps.append(x)
            if i == self._pyramid_taps[-1]:
                return maps
            x = layer(x)
        return maps
    @classmethod
    def data_args(cls, corpus) -> dict:
        """Options the data fixes (the embedding encoder's table sizes, from the modality's ``corpus``); they are
        merged under the user's options when the encoder is first built and kept in its spec."""
        return {}


def _norm1d(kind: str, width: int) -> nn.Module:
    return nn.BatchNorm1d(width) if kind == "batch" else nn.GroupNorm(min(8, width), width)


def _norm2d(kind: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.GroupNorm(min(8, channels), channels)


def _check_norm(norm: str) -> None:
    if norm not in ("batch", "group"):
        raise ValueError(f"norm must be 'batch' or 'group', got {norm!r}")


@ENCODERS.register("linear")
class LinearEncoder(Encoder):
    """One linear map of the flattened input: the textbook autoencoder's encoder (784 → 10)."""

    def __init__(self, input_shape: tuple[int, ...], feature_dim: int = 10) -> None:
        super().__init__(input_shape)
        self.feature_dim = feature_dim
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(self.input_size, feature_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, *input_shape) -> (B, feature_dim)
        return self.net(x)


@ENCODERS.register("mlp")
class MLPEncoder(Encoder):
    """Flatten, then ``depth`` blocks of Linear → norm → ReLU; the last block's width is the feature size."""

    def __init__(
        self, input_shape: tuple[int, ...], width: int = 256, feature_dim: int = 128, depth: int = 2,
        norm: str = "batch",
    ) -> None:
        super().__init__(input_shape)
        _check_norm(norm)
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self.feature_dim = feature_dim
        widths = [self.input_size] + [width] * (depth - 1) + [feature_dim]
        layers: list[nn.Module] = [nn.Flatten()]
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [nn.Linear(w_in, w_out), _norm1d(norm, w_out), nn.ReLU(inplace=True)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _conv_block(c_in: int, c_out: int, norm: str) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), _norm2d(norm, c_out), nn.ReLU(inplace=True)]


@ENCODERS.register("cnn")
class CNNEncoder(Encoder):
    """A small VGG-style convnet: three stages of conv blocks, 2×2 max-pool between, global average pool."""

    modalities = ("image",)

    def __init__(self, input_shape: tuple[int, ...], width: int = 32, norm: str = "batch") -> None:
        super().__init__(input_shape)
        _check_norm(norm)
        channels = input_shape[0]
        w = width
        self.feature_dim = 4 * w
        self.net = nn.Sequential(
            *_conv_block(channels, w, norm), *_conv_block(w, w, norm), nn.MaxPool2d(2),
            *_conv_block(w, 2 * w, norm), *_conv_block(2 * w, 2 * w, norm), nn.MaxPool2d(2),
            *_conv_block(2 * w, 4 * w, norm),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        # The maps entering each max-pool and the global pool: strides 1, 2, 4 (indices into ``net``).
        self._pyramid_taps = [i for i, m in enumerate(self.net) if isinstance(m, (nn.MaxPool2d, nn.AdaptiveAvgPool2d))]
        self.pyramid_channels, self.pyramid_strides = (w, 2 * w, 4 * w), (1, 2, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, 4*width)
        return self.net(x)


class BasicBlock(nn.Module):
    """The ResNet basic block (He et al., 2016): two 3×3 convs and an identity or 1×1 shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), _norm2d(norm, c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), _norm2d(norm, c_out),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), _norm2d(norm, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


@ENCODERS.register("resnet")
class ResNetEncoder(Encoder):
    """A small ResNet for 28×28-sized images: a 3×3 stem and three stages of basic blocks (strides 1, 2, 2)."""

    modalities = ("image",)

    def __init__(
        self, input_shape: tuple[int, ...], width: int = 32, blocks: int = 1, norm: str = "batch"
    ) -> None:
        super().__init__(input_shape)
        _check_norm(norm)
        w = width
        self.feature_dim = 4 * w
        layers: list[nn.Module] = [
            nn.Conv2d(input_shape[0], w, 3, padding=1, bias=False), _norm2d(norm, w), nn.ReLU(inplace=True)
        ]
        c_in = w
        taps = []
        for stage, c_out in enumerate((w, 2 * w, 4 * w)):
            for i in range(blocks):
                layers.append(BasicBlock(c_in, c_out, 2 if (stage and i == 0) else 1, norm))
                c_in = c_out
            taps.append(len(layers))  # the map after each stage's last block: strides 1, 2, 4
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.net = nn.Sequential(*layers)
        self._pyramid_taps = taps
        self.pyramid_channels, self.pyramid_strides = (w, 2 * w, 4 * w), (1, 2, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
