"""Fine-tune strategies: which parameters train and how, on the same engine.

A strategy is a tiny class plus one registration line. It decides whether the pretrained weights are
loaded, which parameters the optimiser sees (with per-group LR scales) and the loss on a labeled batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from warmstart.models.heads import Classifier
from warmstart.registry import Registry

STRATEGIES: Registry[type["Strategy"]] = Registry("strategy")


class Strategy:
    """Base: train everything from the pretrained encoder with cross-entropy."""

    #: Start from the pretrained encoder's weights (False only for the `scratch` baseline).
    load_pretrained = True
    #: Train the encoder (False freezes it: a linear probe).
    train_encoder = True

    def param_groups(self, model: Classifier) -> list[dict]:
        model.freeze_encoder(not self.train_encoder)
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]

    def loss(self, model: Classifier, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, dict]:
        x, y = batch
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        return loss, {"train_accuracy": (logits.detach().argmax(1) == y).float().mean()}


@STRATEGIES.register("scratch")
class Scratch(Strategy):
    """The baseline: the same architecture from random initialisation, everything trains."""

    load_pretrained = False


@STRATEGIES.register("linear")
class Linear(Strategy):
    """Linear probe: the pretrained encoder is frozen (and kept in eval mode); only the head trains."""

    train_encoder = False


@STRATEGIES.register("full")
class Full(Strategy):
    """Full fine-tuning: encoder and head train together from the pretrained weights."""
