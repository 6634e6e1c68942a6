"""Variational autoencoder (Kingma & Welling, 2014, "Auto-Encoding Variational Bayes")."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from warmstart.models.encoders import Encoder
from warmstart.models.heads import Decoder
from warmstart.objectives.base import Objective


class VAE(Objective):
    """Maximise the ELBO with a Gaussian posterior whose **mean is the encoder's feature vector**.

    ``mu = encoder(x)`` ``(B, F)``, ``log σ² = logvar_head(mu)`` ``(B, F)``, ``z = mu + σ·ε`` (the
    reparameterisation trick), ``decoder(z)`` ``(B, *input_shape)``. The latent size is therefore
    ``encoder.feature_dim``, and fine-tuning, which keeps only ``objective.encoder``, receives exactly the
    posterior mean — the feature the VAE recipe uses downstream — with nothing left behind but the
    variance head, which only matters for sampling. (A separate mean head on top of the encoder would be
    thrown away with the objective, leaving fine-tuning a feature the KL term never shaped.) Encoders that
    end in a ReLU give a non-negative mean; the prior is still ``N(0, I)`` and the KL term keeps it in check.

    Loss per example, divided by the number of input values so it reads on a per-pixel scale:
    ``reconstruction + beta · KL(q(z|x) || N(0, I))`` with a Bernoulli likelihood (binary cross-entropy,
    the paper's choice for MNIST; needs inputs in [0, 1]) or a unit-variance Gaussian one (half squared error).

    Args:
        beta: weight of the KL term (1 is the ELBO; Higgins et al.'s β-VAE raises it).
        likelihood: ``"bernoulli"``, ``"gaussian"`` or ``None`` (Bernoulli for images, Gaussian for tables).
        decoder_hidden: width of the MLP decoder's hidden layer (0: linear decoder).

    >>> from warmstart.models.encoders import MLPEncoder
    >>> objective = VAE(MLPEncoder((1, 8, 8), feature_dim=16))
    >>> loss, logs = objective.loss(torch.rand(4, 1, 8, 8))
    >>> sorted(logs)
    ['kl', 'recon']
    """

    def __init__(
        self, encoder: Encoder, beta: float = 1.0, likelihood: str | None = None, decoder_hidden: int = 256,
    ) -> None:
        super().__init__(encoder)
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        if decoder_hidden < 0:
            raise ValueError(f"decoder_hidden must be >= 0, got {decoder_hidden}")
        likelihood = likelihood or ("bernoulli" if encoder.modality == "image" else "gaussian")
        if likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}")
        self.beta, self.likelihood = beta, likelihood
        self.logvar_head = nn.Linear(encoder.feature_dim, encoder.feature_dim)
        # Start with small posterior variances (σ² ≈ e⁻⁴) so early samples stay near the mean.
        nn.init.zeros_(self.logvar_head.weight)
        nn.init.constant_(self.logvar_head.bias, -4.0)
        self.decoder = Decoder(encoder.feature_dim, encoder.input_shape, decoder_hidden, sigmoid=False)

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mu = self.encoder(x)  # (B, F): the posterior mean is the feature
        logvar = self.logvar_head(mu).clamp(-10, 10)  # (B, F); clamped so exp() cannot overflow early on
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        out = self.decoder(z)  # (B, *input_shape): logits (Bernoulli) or means (Gaussian)
        values = math.prod(self.encoder.input_shape)
        if self.likelihood == "bernoulli":
            recon = F.binary_cross_entropy_with_logits(out, x, reduction="sum") / len(x)
        else:
            recon = 0.5 * ((out - x) ** 2).sum() / len(x)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum() / len(x)
        loss = (recon + self.beta * kl) / values
        return loss, {"recon": recon.detach() / values, "kl": kl.detach() / values}
