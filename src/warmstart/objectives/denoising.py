"""Denoising autoencoder (Vincent et al., 2008): reconstruct the clean input from a corrupted one."""
from __future__ import annotations

import torch

from warmstart.models.encoders import Encoder
from warmstart.objectives.autoencoder import Autoencoder


class DenoisingAutoencoder(Autoencoder):
    """Autoencoder whose encoder sees ``x`` with Gaussian noise added and a fraction of inputs zeroed.

    Args:
        noise_std: standard deviation of the additive Gaussian noise (inputs in model units).
        drop_prob: probability of zeroing each input value ("masking noise" in the paper).
    """

    def __init__(
        self, encoder: Encoder, noise_std: float = 0.2, drop_prob: float = 0.25, decoder_hidden: int = 256,
        sigmoid: bool | None = None,
    ) -> None:
        super().__init__(encoder, decoder_hidden, sigmoid)
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        if not 0 <= drop_prob < 1:
            raise ValueError(f"drop_prob must lie in [0, 1), got {drop_prob}")
        self.noise_std = noise_std
        self.drop_prob = drop_prob

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        noisy = x + self.noise_std * torch.randn_like(x)
        if self.drop_prob:
            noisy = noisy * (torch.rand_like(x) >= self.drop_prob)
        return noisy
