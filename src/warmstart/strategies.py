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

import copy
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from warmstart.augment import Augment
from warmstart.config import FinetuneConfig
from warmstart.data import DataBundle
from warmstart.engine import Stream, fit
from warmstart.evaluate import embed
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


@STRATEGIES.register("full")
class Full(Strategy):
    """Full fine-tuning: encoder and head train together from the pretrained weights.

    ``layer_decay`` (e.g. 0.75; BEiT/ELECTRA's layer-wise LR decay) scales the LR of encoder layer ``i``
    of ``L`` by ``layer_decay ** (L - i)`` and keeps the head at 1, so the early, most general layers move
    least. ``None`` trains every parameter at the same LR.
    """

    def __init__(self, augment: str = "none", layer_decay: float | None = None) -> None:
        super().__init__(augment)
        if layer_decay is not None and not 0 < layer_decay <= 1:
            raise ValueError(f"layer_decay must lie in (0, 1], got {layer_decay}")
        self.layer_decay = layer_decay

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


class JointModule(nn.Module):
    """The classifier and the pretraining objective (sharing one encoder), plus a step counter for the λ
    schedule; a buffer, so it travels in checkpoints and a resumed run follows the same schedule."""

    def __init__(self, model: Classifier, objective: nn.Module) -> None:
        super().__init__()
        self.model, self.objective = model, objective
        self.register_buffer("step", torch.zeros((), dtype=torch.long))


@STRATEGIES.register("joint")
class Joint(Strategy):
    """``L_fine + λ(t)·L_pre``: cross-entropy on labeled batches plus the pretraining loss on unlabeled
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

    def param_groups(self, model: Classifier) -> list[dict]:
        model.freeze_encoder(False)
        heads = [p for n, p in self.module.objective.named_parameters() if not n.startswith("encoder.")]
        return [{"params": list(model.parameters()) + heads}]

    def weight(self) -> float:
        if self.schedule == "constant":
            return self.lam
        return self.lam * max(0.0, 1.0 - float(self.module.step) / self.total)

    def loss(self, model: Classifier, unlabeled, labeled, *extra) -> tuple[torch.Tensor, dict]:
        fine, logs = self.supervised(model, labeled)
        pre, _ = self.module.objective.loss(unlabeled[0])
        lam = self.weight()
        self.module.step += 1
        return fine + lam * pre, {**logs, "loss_fine": fine.detach(), "loss_pre": pre.detach(),
                                  "lam": torch.tensor(lam)}


TARGETS = ("teacher", "propagate", "both")


def propagate(features: np.ndarray, ctx: FinetuneContext, neighbors: int) -> torch.Tensor:
    """Label spreading (Zhou et al., 2004; scikit-learn's kNN kernel) over L2-normalised ``(N, F)``
    features of the training split, seeded with the labeled rows → ``(N, classes)`` label distributions."""
    from sklearn.preprocessing import normalize
    from sklearn.semi_supervised import LabelSpreading

    y = np.full(len(features), -1)
    y[ctx.labeled] = ctx.data.y_train[ctx.labeled]
    with warnings.catch_warnings():  # rows the kNN graph never reaches get a uniform distribution
        warnings.simplefilter("ignore", RuntimeWarning)
        spread = LabelSpreading(kernel="knn", n_neighbors=neighbors, max_iter=100).fit(normalize(features), y)
    dist = torch.from_numpy(np.nan_to_num(spread.label_distributions_, nan=0.0)).float()
    dist[dist.sum(1) == 0] = 1.0 / dist.shape[1]
    return dist / dist.sum(1, keepdim=True)


@STRATEGIES.register("selftrain")
class SelfTrain(Strategy):
    """Distil a fine-tuned teacher into a student over the whole unlabeled pool (SimCLRv2's third step,
    Chen et al., 2020, "Big Self-Supervised Models are Strong Semi-Supervised Learners").

    1. Teacher: full fine-tuning of the pretrained encoder on the labels (``config.epochs`` passes).
    2. Its softened predictions ``softmax(logits / temperature)`` on every training row, computed once;
       labeled rows keep their true one-hot label.
    3. Student: the same architecture from the pretrained encoder, trained on those soft targets over the
       pool for ``epochs`` passes (None: as many steps as the teacher took, rounded up to whole passes;
       weakly augmented when ``augment='weak'``).

    ``targets="propagate"`` (the default, since it won everywhere it was measured) replaces the teacher's
    predictions by label spreading over the teacher's L2-normalised features (a kNN graph of the whole
    pool, seeded with the labels); ``"teacher"`` keeps SimCLRv2's soft predictions; ``"both"`` averages
    the two. On digits at 50 labels (seeds 0-2): teacher 0.881, propagate 0.906, both 0.900, against
    scratch 0.855 and ``full`` 0.871. On Fashion-MNIST from a 2-epoch SimCLR CNN (one student pass):
    teacher targets 0.528 at 100 labels (seeds 0-1), propagate 0.628, against 0.623 for ``full``; at 1000
    labels (seed 0) 0.721 and 0.750 against 0.770 — a student is only as good as its teacher, and a teacher
    at 0.62 has little to give; sharpening (temperature 0.3, two passes) gave 0.563.

    Why distillation rather than FixMatch: on this CPU a FixMatch step costs a weak and a strong forward
    of ``mu`` unlabeled batches per labeled one, and a plain FixMatch measured here plateaued at 0.71–0.73
    at 100 Fashion-MNIST labels after 12 CPU minutes (100 labels overfit, 15–18 % of confident
    pseudo-labels wrong). Distillation costs one forward of the pool plus a plain supervised pass per
    epoch, uses every unlabeled image (not just confident ones) and never feeds its own errors back.
    """

    def __init__(
        self, augment: str = "none", temperature: float = 1.0, epochs: int | None = None, batch: int = 256,
        layer_decay: float | None = None, targets: str = "propagate", neighbors: int = 10,
    ) -> None:
        super().__init__(augment)
        if temperature <= 0 or (epochs is not None and epochs < 1) or batch < 1 or neighbors < 1:
            raise ValueError("temperature must be > 0, epochs >= 1, batch >= 1 and neighbors >= 1")
        if targets not in TARGETS:
            raise ValueError(f"targets must be one of {', '.join(TARGETS)}, got {targets!r}")
        self.temperature, self.epochs, self.batch = temperature, epochs, batch
        self.targets_from, self.neighbors = targets, neighbors
        self.teacher_strategy = Full(augment, layer_decay)

    def setup(self, ctx: FinetuneContext) -> nn.Module:
        teacher = copy.deepcopy(ctx.model)
        fit(teacher, lambda b: self.teacher_strategy.loss(teacher, b), [labeled_stream(ctx)], ctx.config,
            param_groups=self.teacher_strategy.param_groups(teacher), desc="selftrain teacher")
        self.pool = np.arange(len(ctx.data.x_train))
        self.passes = pool_epochs(self.epochs, ctx, len(self.pool), self.batch)
        targets = []
        with torch.no_grad():
            teacher.eval()
            for start in range(0, len(self.pool), 1024):
                x = ctx.data.batch(ctx.data.x_train, self.pool[start:start + 1024])
                targets.append(F.softmax(teacher(x) / self.temperature, dim=1))
        self.targets = torch.cat(targets)
        if self.targets_from != "teacher":
            spread = propagate(embed(teacher.encoder, ctx.data, ctx.data.x_train), ctx, self.neighbors)
            self.targets = spread if self.targets_from == "propagate" else (self.targets + spread) / 2
        self.targets[ctx.labeled] = F.one_hot(torch.from_numpy(ctx.data.y_train[ctx.labeled]),
                                              self.targets.shape[1]).float()
        return ctx.model

    def streams(self, ctx: FinetuneContext) -> list[Stream]:
        return [pool_stream(ctx, self.pool, self.batch, self.targets)]

    def settings(self, config: FinetuneConfig) -> FinetuneConfig:
        return config.model_copy(update={"epochs": self.passes})

    def param_groups(self, model: Classifier) -> list[dict]:
        return self.teacher_strategy.param_groups(model)

    def loss(self, model: Classifier, batch, *extra) -> tuple[torch.Tensor, dict]:
        x, target = batch
        logits = model(self.view(x))
        loss = -(target * F.log_softmax(logits / self.temperature, dim=1)).sum(1).mean()
        return loss, {"agreement": (logits.detach().argmax(1) == target.argmax(1)).float().mean()}

