"""Heads that sit on an encoder's ``(B, feature_dim)`` features."""
from __future__ import annotations

import math

import torch
from torch import nn


class Decoder(nn.Module):
    """Features → a reconstruction of the input, ``(B, F) -> (B, *output_shape)``.

    ``hidden=0`` makes it a single linear map (the textbook autoencoder's decoder). ``sigmoid`` keeps
    reconstructions of [0, 1] pixels in range.
    """

    def __init__(self, feature_dim: int, output_shape: tuple[int, ...], hidden: int = 256, sigmoid: bool = True):
        super().__init__()
        self.output_shape = tuple(output_shape)
        out = math.prod(self.output_shape)
        if hidden > 0:
            self.net = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))
        else:
            self.net = nn.Linear(feature_dim, out)
        self.sigmoid = sigmoid

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        y = self.net(z).view(-1, *self.output_shape)
        return torch.sigmoid(y) if self.sigmoid else y


class Classifier(nn.Module):
    """Encoder + linear classification head: ``(B, *input_shape) -> (B, num_classes)`` logits."""

    def __init__(self, encoder: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.feature_dim, num_classes)
        self.encoder_frozen = False

    def freeze_encoder(self, frozen: bool = True) -> None:
        """Stop the encoder training: no gradients and BatchNorm statistics kept as pretrained."""
        self.encoder_frozen = frozen
        self.encoder.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> "Classifier":
        super().train(mode)
        if self.encoder_frozen:
            self.encoder.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.encoder_frozen:
            with torch.no_grad():  # no activations kept for a frozen encoder: a probe costs one forward
                features = self.encoder(x)
            return self.head(features)
        return self.head(self.encoder(x))
