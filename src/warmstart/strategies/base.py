"""Fine-tune strategies: which parameters train, on which batches and with what loss, on the same engine.

A strategy is a tiny class plus one registration line. The pipeline builds the classifier, calls
``setup(context)`` (which returns the module the engine trains), then runs ``warmstart.engine.fit`` on
``streams(context)`` with ``param_groups`` and ``loss``. The first stream defines the epoch; the others
cycle (unlabeled batches beside labeled ones).

Options every strategy takes (``strategy_args``): ``augment`` — ``"none"`` or ``"weak"`` (``Augment.weak()``:
a small crop/shift + horizontal flip on image batches, the light augmentation that helps
few-label fine-tuning; give ``scratch`` the same when comparing).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from warmstart.augment import Augment
from warmstart.config import FinetuneConfig
from warmstart.data import DataBundle
from warmstart.engine import Stream, fit
from warmstart.models.heads import Classifier
from warmstart.registry import Registry

STRATEGIES: Registry[type["Strategy"]] = Registry("strategy")
AUGMENTS = ("none", "weak")
WEAK = Augment.weak()


@dataclass
class FinetuneContext:
    """What a strategy may use: the config, the data, the labeled/unlabeled rows of the training split,
    the classifier being trained and (for ``joint``) the pretraining objective rebuilt around its encoder."""

    config: FinetuneConfig
    data: DataBundle
    labeled: np.ndarray
    unlabeled: np.ndarray
    model: Classifier
    objective: nn.Module | None = None
    #: The pipeline's labeled stream (e.g. token-tagging batches for text); None: built from ``data``.
    stream: Stream | None = None


def labeled_stream(ctx: FinetuneContext, batch_size: int | None = None) -> Stream:
    if ctx.stream is not None and batch_size is None:
        return ctx.stream
    data, index = ctx.data, ctx.labeled

    def make(rows: np.ndarray) -> tuple[torch.Tensor, ...]:
        return data.batch(data.x_train, index[rows]), torch.from_numpy(data.y_train[index[rows]])

    return Stream(len(index), min(batch_size or ctx.config.batch_size, len(index)), make)


def pool_stream(
    ctx: FinetuneContext, index: np.ndarray, batch_size: int, targets: torch.Tensor | None = None
) -> Stream:
    """Batches of training rows ``index`` (labels withheld); with ``targets`` each batch carries its rows' targets."""
    data = ctx.data

    def make(rows: np.ndarray) -> tuple[torch.Tensor, ...]:
        x = data.batch(data.x_train, index[rows])
        return (x,) if targets is None else (x, targets[rows])

    return Stream(len(index), min(batch_size, len(index)), make)


def pool_epochs(epochs: int | None, ctx: FinetuneContext, pool_size: int, batch: int) -> int:
    """Passes over the pool: ``epochs`` if given, else as many steps as plain fine-tuning would take
    (``config.epochs`` passes over the labels) rounded up to whole passes over the pool."""
    if epochs is not None:
        return epochs
    labeled_steps = ctx.config.epochs * max(1, len(ctx.labeled) // min(ctx.config.batch_size, len(ctx.labeled)))
    return max(1, -(-labeled_steps // max(1, pool_size // min(batch, pool_size))))


class Strategy:
    """Base: train everything from the pretrained encoder with cross-entropy on the labeled batches."""

    #: Start from the pretrained encoder's weights (False only for the `scratch` baseline).
    load_pretrained = True
    #: Train the encoder (False freezes it: a linear probe).
    train_encoder = True
    #: Needs the pretraining objective with its heads (saved by `pretrain` as objective.safetensors).
    needs_objective = False

    def __init__(self, augment: str = "none") -> None:
        if augment not in AUGMENTS:
            raise ValueError(f"augment must be one of {', '.join(AUGMENTS)}, got {augment!r}")
        self.augment = augment

    def train(self, ctx: FinetuneContext, run_dir=None, resume: bool = False, after_step=None) -> list[dict]:
        """Train ``ctx.model`` in place with the engine; returns its per-epoch metrics."""
        trained = self.setup(ctx)
        return fit(
            trained, lambda *batches: self.loss(ctx.model, *batches), self.streams(ctx), self.settings(ctx.config),
            param_groups=self.param_groups(ctx.model), run_dir=run_dir, resume=resume,
            desc=f"finetune {ctx.config.strategy}", config=ctx.config.model_dump(mode="json"), after_step=after_step,
        )

    def setup(self, ctx: FinetuneContext) -> nn.Module:
        """Prepare before training; return the module whose state the engine trains and checkpoints."""
        return ctx.model

    def streams(self, ctx: FinetuneContext) -> list[Stream]:
        return [labeled_stream(ctx)]

    def settings(self, config: FinetuneConfig) -> FinetuneConfig:
        """The engine settings for the main fit (strategies that train over the pool count epochs there)."""
        return config

    def param_groups(self, model: Classifier) -> list[dict]:
        model.freeze_encoder(not self.train_encoder)
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]

    def view(self, x: torch.Tensor) -> torch.Tensor:
        """The training view of an input batch (augmented when ``augment='weak'`` and the input is an image)."""
        return WEAK(x) if self.augment == "weak" and x.dim() == 4 else x

    def supervised(self, model: Classifier, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, dict]:
        x, y = batch
        logits = model(self.view(x))
        loss = F.cross_entropy(logits, y)
        return loss, {"train_accuracy": (logits.detach().argmax(1) == y).float().mean()}

    def loss(self, model: Classifier, batch: tuple[torch.Tensor, ...], *extra) -> tuple[torch.Tensor, dict]:
        return self.supervised(model, batch)


@STRATEGIES.register("scratch")
class Scratch(Strategy):
    """The baseline: the same architecture from random initialisation, everything trains."""

    load_pretrained = False


@STRATEGIES.register("linear")
class Linear(Strategy):
    """Linear probe: the pretrained encoder is frozen (and kept in eval mode); only the head trains."""

    train_encoder = False


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


HEAD_INITS = ("random", "probe")


@torch.no_grad()
def probe_head(ctx: FinetuneContext, chunk: int = 512) -> None:
    """Set ``ctx.model.head`` to scikit-learn's logistic regression on the frozen features of the labeled rows."""
    from sklearn.linear_model import LogisticRegression

    stream, model = labeled_stream(ctx), ctx.model
    model.encoder.eval()
    features, labels = [], []
    for start in range(0, stream.size, chunk):
        x, y = stream.make_batch(np.arange(start, min(start + chunk, stream.size)))[:2]
        if y.dim() != 1:
            raise ValueError("head_init='probe' needs one label per example (not per token)")
        features.append(model.encoder(x.to(model.head.weight.device)).float().cpu())
        labels.append(y)
    z, y = torch.cat(features).double().numpy(), torch.cat(labels).numpy()
    # Standardised features (1-2 points better than raw ones for a SimCLR CNN on Fashion-MNIST); the
    # scaling is folded into the head: w·(z - mean)/scale + b = (w/scale)·z + (b - w·mean/scale).
    mean, scale = z.mean(0), z.std(0) + 1e-6
    probe = LogisticRegression(max_iter=2000).fit((z - mean) / scale, y)
    coef = probe.coef_ / scale
    intercept = probe.intercept_ - coef @ mean
    weight, bias = torch.zeros_like(model.head.weight), torch.zeros_like(model.head.bias)
    classes = torch.as_tensor(probe.classes_)
    if len(classes) == 2:  # scikit-learn's binary form: one logit for class 1 against 0
        weight[classes[1]] = torch.as_tensor(coef[0], dtype=weight.dtype)
        bias[classes[1]] = float(intercept[0])
    else:
        weight[classes] = torch.as_tensor(coef, dtype=weight.dtype)
        bias[classes] = torch.as_tensor(intercept, dtype=bias.dtype)
    model.head.weight.copy_(weight)
    model.head.bias.copy_(bias)


@STRATEGIES.register("full")
class Full(Strategy):
    """Full fine-tuning: encoder and head train together from the pretrained weights.

    ``layer_decay`` (e.g. 0.75; BEiT/ELECTRA's layer-wise LR decay) scales the LR of encoder layer ``i``
    of ``L`` by ``layer_decay ** (L - i)`` and keeps the head at 1, so the early, most general layers move
    least. ``None`` trains every parameter at the same LR.

    ``head_init="probe"`` is LP-FT (Kumar et al., 2022, "Fine-Tuning can Distort Pretrained Features and
    Underperform Out-of-Distribution"): the head starts as a logistic-regression probe fitted on the
    frozen features of the labeled rows, so the first gradients do not come from a random head and
    fine-tuning starts from the probe's accuracy instead of wrecking the features to fit one.
    """

    def __init__(self, augment: str = "none", layer_decay: float | None = None, head_init: str = "random") -> None:
        super().__init__(augment)
        if layer_decay is not None and not 0 < layer_decay <= 1:
            raise ValueError(f"layer_decay must lie in (0, 1], got {layer_decay}")
        if head_init not in HEAD_INITS:
            raise ValueError(f"head_init must be one of {', '.join(HEAD_INITS)}, got {head_init!r}")
        self.layer_decay, self.head_init = layer_decay, head_init

    def setup(self, ctx: FinetuneContext) -> nn.Module:
        if self.head_init == "probe":
            probe_head(ctx)
        return ctx.model

    def param_groups(self, model: Classifier) -> list[dict]:
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
