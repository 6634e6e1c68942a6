"""Heads that sit on an encoder's ``(B, feature_dim)`` features: decoder, classifier, regressor."""
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


class Regressor(Classifier):
    """Encoder + linear head for ``k`` real targets: ``(B, *input_shape) -> (B, k)`` *standardised* values.

    ``target_mean`` / ``target_std`` (buffers, so checkpoints carry them) are set from the labeled rows before
    training; ``destandardise`` turns outputs back into the data's units.
    """

    def __init__(self, encoder: nn.Module, outputs: int) -> None:
        super().__init__(encoder, outputs)
        self.register_buffer("target_mean", torch.zeros(outputs))
        self.register_buffer("target_std", torch.ones(outputs))

    def set_scaling(self, mean, std) -> None:
        self.target_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.target_std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def standardise(self, y: torch.Tensor) -> torch.Tensor:
        return (y.float() - self.target_mean) / self.target_std

    def destandardise(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.target_std + self.target_mean
