"""What every self-supervised objective is: a module that owns its heads and turns a batch into a loss."""
from __future__ import annotations

import torch
from torch import nn

from warmstart.models.encoders import Encoder


class Objective(nn.Module):
    """Base class for pretraining objectives.

    Subclasses take ``(encoder, **paper_defaults)`` in ``__init__``, build their own heads, check their
    settings on the spot (``ValueError`` with the reason), and implement ``loss``. The encoder is the
    submodule ``self.encoder``; after pretraining only its weights are kept for fine-tuning.
    """

    #: Data modalities the objective understands (keys of ``data.modalities.MODALITIES``); it reads the
    #: encoder's ``modality`` to pick how to treat a batch (e.g. image augmentations or feature corruption).
    modalities: tuple[str, ...] = ("image", "table")
    #: Why DP-SGD cannot train this objective privately ("": its loss is a mean of per-example terms).
    not_private = ""

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        self.encoder = encoder

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``x``: a ``(B, *input_shape)`` batch of unlabeled inputs → (scalar loss, detached logs)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.loss(x)[0]
