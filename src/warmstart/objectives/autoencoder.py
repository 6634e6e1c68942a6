"""The classical autoencoder (Hinton & Salakhutdinov, 2006): reconstruct the input through the features."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from warmstart.models.encoders import Encoder
from warmstart.models.heads import Decoder
from warmstart.objectives.base import Objective


class Autoencoder(Objective):
    """Mean-squared reconstruction error of ``decoder(encoder(x))`` against ``x``.

    Args:
        encoder: any encoder; the decoder is an MLP from its features back to the input shape.
        decoder_hidden: width of the decoder's hidden layer; 0 makes the decoder linear.
        sigmoid: squash reconstructions into [0, 1]; None means yes for images (pixels in model units), no
            for table rows (standardised values and one-hot levels).

    >>> from warmstart.models.encoders import MLPEncoder
    >>> objective = Autoencoder(MLPEncoder((1, 8, 8), feature_dim=16))
    >>> loss, logs = objective.loss(torch.rand(4, 1, 8, 8))
    """

    def __init__(self, encoder: Encoder, decoder_hidden: int = 256, sigmoid: bool | None = None) -> None:
        super().__init__(encoder)
        if decoder_hidden < 0:
            raise ValueError(f"decoder_hidden must be >= 0, got {decoder_hidden}")
        sigmoid = encoder.modality == "image" if sigmoid is None else sigmoid
        self.decoder = Decoder(encoder.feature_dim, encoder.input_shape, decoder_hidden, sigmoid)

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """The input the encoder sees; the plain autoencoder sees it clean."""
        return x

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        recon = self.decoder(self.encoder(self.corrupt(x)))  # (B, *input_shape)
        loss = F.mse_loss(recon, x)
        return loss, {"recon": loss.detach()}
