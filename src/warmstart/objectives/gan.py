"""Adversarial pretraining whose discriminator trunk is the encoder: the "GAN features" recipe of DCGAN
(Radford, Metz & Chintala, 2016, "Unsupervised Representation Learning with Deep Convolutional GANs").
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from warmstart.models.encoders import Encoder, LinearEncoder
from warmstart.objectives.base import Objective


class Generator(nn.Module):
    """DCGAN generator: noise ``(B, noise_dim)`` → images ``(B, C, H, W)`` in [0, 1].

    A linear layer to a ``(2·width, ⌈H/4⌉, ⌈W/4⌉)`` map, then two stride-2 transposed convolutions
    with BatchNorm and ReLU between (DCGAN's guidelines), a sigmoid, and a crop to ``H × W``.
    """

    def __init__(self, noise_dim: int, image_shape: tuple[int, ...], width: int = 64) -> None:
        super().__init__()
        c, self.height, self.width = image_shape
        self.start = (2 * width, math.ceil(self.height / 4), math.ceil(self.width / 4))
        self.fc = nn.Sequential(nn.Linear(noise_dim, math.prod(self.start), bias=False),
                                nn.BatchNorm1d(math.prod(self.start)), nn.ReLU(inplace=True))
        self.net = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width, c, 4, 2, 1), nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(-1, *self.start))[:, :, :self.height, :self.width]


class GAN(Objective):
    """Discriminator ``head(encoder(x))`` against a :class:`Generator`, both trained by one ``loss()``.

    The engine takes one backward pass and one optimiser step per batch, so the two players' losses are
    summed into one scalar built so that each player's parameters receive exactly its own gradient:

    * ``d_loss = BCE(D(x), 1) + BCE(D(G(z).detach()), 0)`` — the fake images are detached, so this term
      sends no gradient into the generator;
    * ``g_loss = BCE(D̄(G(z)), 1)`` — the non-saturating generator loss (Goodfellow et al., 2014), where
      ``D̄`` is the discriminator evaluated with *detached copies* of its parameters
      (``torch.func.functional_call``): the gradient flows through ``D̄``'s activations into ``G`` but
      never into the discriminator's weights.

    Hence ``∂(d_loss + g_loss)/∂θ_D = ∂d_loss/∂θ_D`` and ``∂(d_loss + g_loss)/∂θ_G = ∂g_loss/∂θ_G``,
    and one optimiser step is a *simultaneous* gradient step of both players (instead of DCGAN's
    alternating one; a test checks the gradients). The fake passes use throw-away copies of the BatchNorm
    buffers, so the encoder's running statistics describe real data only — they are what it uses downstream.
    The cost is three discriminator passes per step (real, fake for D, fake for G).

    Needs image data (the generator draws images); any non-linear encoder can be the trunk (MLP as in the
    original GAN, CNN/ResNet as in DCGAN). A linear encoder is refused: a linear discriminator only matches
    the data mean and its "features" learn nothing. Measured on 8×8 digits (``tests/test_objectives_learn.py``):
    an MLP discriminator's features beat random MLP features under a 50-label linear probe (0.86 vs 0.80);
    a CNN discriminator, global-average-pooled over a 2×2 map, did not beat random CNN features there.

    Args:
        noise_dim: size of the generator's input noise (DCGAN: 100; 64 suffices for 28×28).
        generator_width: channels of the generator's last hidden map.

    >>> from warmstart.models.encoders import CNNEncoder
    >>> objective = GAN(CNNEncoder((1, 28, 28), width=8))
    >>> loss, logs = objective.loss(torch.rand(8, 1, 28, 28))
    >>> sorted(logs)
    ['d_fake', 'd_loss', 'd_real', 'g_loss']
    """

    not_private = ("one loss trains the generator against the discriminator's view of the whole batch; clipping "
                   "per-example gradients does not bound what the generator learns from a row")

    modalities = ("image",)

    def __init__(self, encoder: Encoder, noise_dim: int = 64, generator_width: int = 64) -> None:
        super().__init__(encoder)
        if encoder.modality != "image":
            raise ValueError(f"the generator draws (C, H, W) images but the inputs have shape {encoder.input_shape}")
        if isinstance(encoder, LinearEncoder):
            raise ValueError("a linear encoder makes a linear discriminator, which learns no features; "
                             "use encoder mlp, cnn or resnet")
        if noise_dim < 1 or generator_width < 1:
            raise ValueError(f"noise_dim and generator_width must be >= 1, got {noise_dim}, {generator_width}")
        self.noise_dim = noise_dim
        self.head = nn.Linear(encoder.feature_dim, 1)
        self.generator = Generator(noise_dim, encoder.input_shape, generator_width)

    def discriminate(self, x: torch.Tensor, *, frozen: bool = False, keep_stats: bool = True) -> torch.Tensor:
        """Logits ``(B,)``. ``frozen``: detached weights (no gradient to D); ``keep_stats=False``: BatchNorm
        running statistics are updated on copies and dropped."""
        if not frozen and keep_stats:
            return self.head(self.encoder(x)).squeeze(1)
        modules = (self.encoder, self.head)
        out = x
        for module in modules:
            state = {k: (v.detach() if frozen else v) for k, v in module.named_parameters()}
            state.update({k: v.clone() for k, v in module.named_buffers()})
            out = functional_call(module, state, (out,))
        return out.squeeze(1)

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if len(x) < 2:
            raise ValueError("GAN training needs batches of at least 2 examples")
        fake = self.generator(torch.randn(len(x), self.noise_dim, device=x.device))  # (B, C, H, W)
        real_logit = self.discriminate(x)
        fake_logit = self.discriminate(fake.detach(), keep_stats=False)
        d_loss = (F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit))
                  + F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit)))
        g_logit = self.discriminate(fake, frozen=True, keep_stats=False)
        g_loss = F.binary_cross_entropy_with_logits(g_logit, torch.ones_like(g_logit))
        logs = {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(),
                "d_real": (real_logit.detach() > 0).float().mean(), "d_fake": (fake_logit.detach() < 0).float().mean()}
        return d_loss + g_loss, logs
