"""`joint`: L_fine + λ·L_pre on labeled and unlabeled batches together (one objective, one loop)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from warmstart.config import FinetuneConfig
from warmstart.engine import Stream
from warmstart.strategies.base import (
    STRATEGIES, FinetuneContext, Strategy, labeled_stream, pool_epochs, pool_stream,
)


class JointModule(nn.Module):
    """The classifier and the pretraining objective (sharing one encoder), plus a step counter for the λ
    schedule; a buffer, so it travels in checkpoints and a resumed run follows the same schedule."""

    def __init__(self, model: nn.Module, objective: nn.Module) -> None:
        super().__init__()
        self.model, self.objective = model, objective
        self.register_buffer("step", torch.zeros((), dtype=torch.long))


@STRATEGIES.register("joint")
class Joint(Strategy):
    """``L_fine + λ(t)·L_pre``: the task's loss on labeled batches plus the pretraining loss on unlabeled
    batches, from the pretrained encoder and the objective's pretrained heads, trained as one objective.

    Args:
        lam: weight λ of the pretraining loss at the start.
        schedule: ``"constant"`` or ``"linear"`` (λ decays linearly to 0, handing over to the labels).
        epochs: passes over the unlabeled pool (the unlabeled stream defines the epoch; labeled batches
            cycle); None: as many steps as plain fine-tuning, rounded up to whole passes.
        unlabeled_batch: unlabeled examples per step (contrastive objectives want a few hundred).

    Measured on digits (50 labels, seeds 0-2, denoising-MLP encoder, 100 steps): λ = 1 constant, λ = 10
    constant and λ = 30 decaying linearly all gave 0.870-0.871, the same as ``full`` (0.871): a
    reconstruction loss of ~0.02 is a weak pull. Fashion-MNIST from a 2-epoch SimCLR CNN (λ = 1 decaying
    linearly to 0, one pass over the 60k pool, batches of 256, weak augmentation on the labels; seeds
    0-2): 0.689 at 100 labels against 0.644 for ``full`` with the same labels, 0.750 at 1000
    against 0.775 — the extra SimCLR pass helps when the labels are few (BENCHMARKS.md, ``accuracy``).
    """

    needs_objective = True
    not_private = ("each step adds the pretraining loss on unlabeled pool batches to the labeled loss, and "
                   "DP-SGD clips and noises one stream of private rows")

    def __init__(
        self, augment: str = "none", lam: float = 1.0, schedule: str = "constant", epochs: int | None = None,
        unlabeled_batch: int = 256,
    ) -> None:
        super().__init__(augment)
        if lam < 0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        if schedule not in ("constant", "linear"):
            raise ValueError(f"schedule must be 'constant' or 'linear', got {schedule!r}")
        if (epochs is not None and epochs < 1) or unlabeled_batch < 2:
            raise ValueError("epochs must be >= 1 and unlabeled_batch >= 2")
        self.lam, self.schedule, self.epochs, self.unlabeled_batch = lam, schedule, epochs, unlabeled_batch
        self.total = 1

    def setup(self, ctx: FinetuneContext) -> nn.Module:
        self.bind(ctx)
        self.module = JointModule(ctx.model, ctx.objective)
        pool = len(ctx.labeled) + len(ctx.unlabeled)
        self.passes = pool_epochs(self.epochs, ctx, pool, self.unlabeled_batch)
        self.total = self.passes * max(1, pool // min(self.unlabeled_batch, pool))
        return self.module

    def streams(self, ctx: FinetuneContext) -> list[Stream]:
        pool = np.sort(np.concatenate([ctx.labeled, ctx.unlabeled]))
        return [pool_stream(ctx, pool, self.unlabeled_batch), labeled_stream(ctx)]

    def settings(self, config: FinetuneConfig) -> FinetuneConfig:
        return config.model_copy(update={"epochs": self.passes})

    def param_groups(self, model: nn.Module) -> list[dict]:
        model.freeze_encoder(False)
        heads = [p for n, p in self.module.objective.named_parameters() if not n.startswith("encoder.")]
        return [{"params": list(model.parameters()) + heads}]

    def weight(self) -> float:
        if self.schedule == "constant":
            return self.lam
        return self.lam * max(0.0, 1.0 - float(self.module.step) / self.total)

    def loss(self, model: nn.Module, unlabeled, labeled, *extra) -> tuple[torch.Tensor, dict]:
        fine, logs = self.supervised(model, labeled)
        pre, _ = self.module.objective.loss(unlabeled[0])
        lam = self.weight()
        self.module.step += 1
        return fine + lam * pre, {**logs, "loss_fine": fine.detach(), "loss_pre": pre.detach(),
                                  "lam": torch.tensor(lam)}
