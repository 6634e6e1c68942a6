"""Fine-tune strategies: which parameters train, on which batches and with what loss, on the same engine.

A strategy is a tiny class plus one registration line. It says which tasks it serves (``tasks``) and asks
the run's task (``warmstart.tasks``) for the loss, the batches and the probe, so one class trains classifiers,
regressors and taggers alike. The pipeline builds the task's model, calls ``setup(context)`` (which returns
the module the engine trains), then runs ``warmstart.engine.fit`` on ``streams(context)`` with
``param_groups`` and ``loss``. The first stream defines the epoch; the others
cycle (unlabeled batches beside labeled ones).

Options every strategy takes (``strategy_args``): ``augment`` — ``"none"`` or ``"weak"`` (the modality's light
training view: for images ``Augment.weak()``, a small crop/shift + horizontal flip that helps few-label
fine-tuning; give ``scratch`` the same when comparing; refused for modalities without one).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from warmstart.config import FinetuneConfig
from warmstart.data import DataBundle
from warmstart.engine import Stream, fit
from warmstart.errors import UserError
from warmstart.registry import Registry

STRATEGIES: Registry[type["Strategy"]] = Registry("strategy")
AUGMENTS = ("none", "weak")


@dataclass
class FinetuneContext:
    """What a strategy may use: the config, the data and its task, the labeled/unlabeled rows of the training
    split, the model being trained and (for ``joint``) the pretraining objective rebuilt around its encoder."""

    config: FinetuneConfig
    data: DataBundle
    task: Any  # a warmstart.tasks.Task
    labeled: np.ndarray
    unlabeled: np.ndarray
    model: nn.Module
    objective: nn.Module | None = None
    privacy: Any = None  # a warmstart.privacy.PrivateTraining for DP-SGD runs


def labeled_stream(ctx: FinetuneContext, batch_size: int | None = None) -> Stream:
    """The task's labeled batches ``(inputs, targets)`` of the labeled rows."""
    return ctx.task.stream(ctx.data, ctx.labeled, batch_size or ctx.config.batch_size)


def pool_stream(ctx: FinetuneContext, index: np.ndarray, batch_size: int, targets: Any = None) -> Stream:
    """Batches of training rows ``index`` (labels withheld); with ``targets`` (one entry per training row,
    e.g. self-training's soft targets) each batch carries its rows' targets, batched by the task."""
    if targets is None:
        return ctx.data.input_stream(index, batch_size)
    return ctx.task.soft_stream(ctx.data, index, batch_size, targets)


def pool_epochs(epochs: int | None, ctx: FinetuneContext, pool_size: int, batch: int) -> int:
    """Passes over the pool: ``epochs`` if given, else as many steps as plain fine-tuning would take
    (``config.epochs`` passes over the labels) rounded up to whole passes over the pool."""
    if epochs is not None:
        return epochs
    labeled_steps = ctx.config.epochs * max(1, len(ctx.labeled) // min(ctx.config.batch_size, len(ctx.labeled)))
    return max(1, -(-labeled_steps // max(1, pool_size // min(batch, pool_size))))


class Strategy:
    """Base: train everything from the pretrained encoder with the task's loss on the labeled batches."""

    #: Start from the pretrained encoder's weights (False only for the `scratch` baseline).
    load_pretrained = True
    #: Train the encoder (False freezes it: a linear probe).
    train_encoder = True
    #: Needs the pretraining objective with its heads (saved by `pretrain` as objective.safetensors).
    needs_objective = False
    #: The tasks (keys of ``warmstart.tasks.TASKS``) this strategy can train.
    tasks: tuple[str, ...] = ("classify", "regress", "tag", "segment", "detect", "rank", "rate")
    #: Why DP-SGD cannot make this strategy private ("": it can; see ``warmstart.privacy``).
    not_private = ""

    def __init__(self, augment: str = "none") -> None:
        if augment not in AUGMENTS:
            raise ValueError(f"augment must be one of {', '.join(AUGMENTS)}, got {augment!r}")
        self.augment = augment

    def check(self, task, data: DataBundle, name: str) -> None:
        """Refuse, in one line and before any work, a task or modality this strategy (named ``name``) cannot serve."""
        if task.name not in self.tasks:
            raise UserError(f"strategy '{name}' does not apply to the {task.name} task; it serves "
                            f"{', '.join(self.tasks)}")
        if self.augment != "none" and self.augment not in data.handler.augments:
            raise UserError(f"strategy '{name}': augment={self.augment!r} does not apply to {data.modality} data; "
                            "use strategy_args.augment=none")

    def privacy_problem(self) -> str:
        """Why this strategy, with its options, cannot be trained privately ("" when it can)."""
        if getattr(self, "head_init", None) == "probe":
            return ("head_init=probe fits its closed-form head on the labeled rows without noise "
                    "(give strategy_args.head_init=random)")
        return self.not_private

    def train(self, ctx: FinetuneContext, run_dir=None, resume: bool = False, after_step=None,
              selector=None) -> list[dict]:
        """Train ``ctx.model`` in place with the engine; returns its per-epoch metrics. ``selector`` (a
        ``warmstart.selection.EpochSelector``) scores the validation rows at the end of its epochs."""
        trained = self.setup(ctx)
        settings = self.settings(ctx.config)
        if selector is not None:
            selector.start(settings.epochs)
        return fit(
            trained, lambda *batches: self.loss(ctx.model, *batches), self.streams(ctx), settings,
            param_groups=self.param_groups(ctx.model), run_dir=run_dir, resume=resume,
            desc=f"finetune {ctx.config.strategy}", config=ctx.config.model_dump(mode="json"), after_step=after_step,
            on_epoch_end=selector,
            privacy=ctx.privacy,
        )

    def bind(self, ctx: FinetuneContext) -> None:
        """Remember the run's task and modality (``setup`` calls it; the loss and the views need them)."""
        self.task, self.modality = ctx.task, ctx.data.handler

    def setup(self, ctx: FinetuneContext) -> nn.Module:
        """Prepare before training; return the module whose state the engine trains and checkpoints."""
        self.bind(ctx)
        return ctx.model

    def streams(self, ctx: FinetuneContext) -> list[Stream]:
        return [labeled_stream(ctx)]

    def settings(self, config: FinetuneConfig) -> FinetuneConfig:
        """The engine settings for the main fit (strategies that train over the pool count epochs there)."""
        return config

    def param_groups(self, model: nn.Module) -> list[dict]:
        model.freeze_encoder(not self.train_encoder)
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]

    def view(self, x: torch.Tensor) -> torch.Tensor:
        """The training view of an input batch: the modality's augmentation named by ``augment``."""
        return self.modality.augment(x, self.augment)

    def supervised(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, dict]:
        x, y = self.task.view(self.modality, *batch[:2], self.augment)  # masks and boxes move with the pixels
        return self.task.loss(model(x), y, model)

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, ...], *extra) -> tuple[torch.Tensor, dict]:
        return self.supervised(model, batch)


@STRATEGIES.register("scratch")
class Scratch(Strategy):
    """The baseline: the same architecture from random initialisation, everything trains."""

    load_pretrained = False


HEAD_INITS = ("random", "probe")


def _check_head_init(head_init: str) -> str:
    if head_init not in HEAD_INITS:
        raise ValueError(f"head_init must be one of {', '.join(HEAD_INITS)}, got {head_init!r}")
    return head_init


@STRATEGIES.register("linear")
class Linear(Strategy):
    """Linear probe: the pretrained encoder is frozen (and kept in eval mode); only the head trains.

    ``head_init="probe"`` (the default) starts the head as the task's closed-form linear probe on the frozen
    features of the labeled rows (logistic regression for classes and tags, ridge for values;
    ``warmstart.probes``), which the epochs then refine with the task's loss; ``"random"`` starts it at random
    (with few labels a few dozen gradient steps leave a random head far from the probe). Tasks whose head is
    not one linear layer (``segment``, ``detect``: a decoder) have no such probe and start it at random.
    """

    train_encoder = False

    def __init__(self, augment: str = "none", head_init: str = "probe") -> None:
        super().__init__(augment)
        self.head_init = _check_head_init(head_init)

    def setup(self, ctx: FinetuneContext) -> nn.Module:
        self.bind(ctx)
        if self.head_init == "probe" and ctx.task.linear_probe:
            ctx.task.probe_head(ctx.model, ctx.data, ctx.labeled)
        return ctx.model


def layer_ids(encoder: nn.Module) -> dict[int, int]:
    """Depth of every encoder parameter (by ``id``): each Conv/Linear starts a new layer, norms join it."""
    depth, ids = -1, {}
    for module in encoder.modules():
        own = list(module.parameters(recurse=False))
        if not own:
            continue
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)) or depth < 0:
            depth += 1
        for p in own:
            ids[id(p)] = depth
    return ids


@STRATEGIES.register("full")
class Full(Strategy):
    """Full fine-tuning: encoder and head train together from the pretrained weights.

    ``layer_decay`` (e.g. 0.75; BEiT/ELECTRA's layer-wise LR decay) scales the LR of encoder layer ``i``
    of ``L`` by ``layer_decay ** (L - i)`` and keeps the head at 1, so the early, most general layers move
    least. ``None`` trains every parameter at the same LR.

    ``head_init="probe"`` is LP-FT (Kumar et al., 2022, "Fine-Tuning can Distort Pretrained Features and
    Underperform Out-of-Distribution"): the head starts as the task's linear probe (logistic regression for
    classes and tags, ridge for real targets; ``warmstart.probes``) fitted on the frozen features of the
    labeled rows, so the first gradients do not come from a random head and
    fine-tuning starts from the probe's accuracy instead of wrecking the features to fit one.
    """

    def __init__(self, augment: str = "none", layer_decay: float | None = None, head_init: str = "random") -> None:
        super().__init__(augment)
        if layer_decay is not None and not 0 < layer_decay <= 1:
            raise ValueError(f"layer_decay must lie in (0, 1], got {layer_decay}")
        self.layer_decay, self.head_init = layer_decay, _check_head_init(head_init)

    def check(self, task, data: DataBundle, name: str) -> None:
        super().check(task, data, name)
        if self.head_init == "probe" and not task.linear_probe:
            raise UserError(f"strategy '{name}': head_init=probe does not apply to the {task.name} task (its head is "
                            "not one linear layer); use strategy_args.head_init=random")

    def setup(self, ctx: FinetuneContext) -> nn.Module:
        self.bind(ctx)
        if self.head_init == "probe":
            ctx.task.probe_head(ctx.model, ctx.data, ctx.labeled)
        return ctx.model

    def param_groups(self, model: nn.Module) -> list[dict]:
        if self.layer_decay is None:
            return super().param_groups(model)
        model.freeze_encoder(False)
        ids = layer_ids(model.encoder)
        depth = max(ids.values()) + 1
        groups: dict[int, list] = {}
        for p in model.encoder.parameters():
            groups.setdefault(ids[id(p)], []).append(p)
        out = [{"params": ps, "lr_scale": self.layer_decay ** (depth - i)} for i, ps in sorted(groups.items())]
        return out + [{"params": list(model.head.parameters()), "lr_scale": 1.0}]
