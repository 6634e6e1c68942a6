"""`selftrain`: distil soft targets (label spreading, a probe, a fine-tuned teacher) into a student over the pool."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from warmstart.config import FinetuneConfig
from warmstart.engine import Stream, fit
from warmstart.errors import UserError
from warmstart.evaluate import embed
from warmstart.rundir import ENCODER_FILE
from warmstart.strategies.base import (
    STRATEGIES, FinetuneContext, Full, Strategy, labeled_stream, pool_epochs, pool_stream,
)

SOURCES = ("teacher", "propagate", "probe")
GRAPHS = ("teacher", "pretrained")


def parse_sources(targets: str) -> tuple[str, ...]:
    """``"probe+propagate"`` → ``("probe", "propagate")``; ``"both"`` is teacher+propagate."""
    sources = ("teacher", "propagate") if targets == "both" else tuple(targets.split("+"))
    if not sources or not set(sources) <= set(SOURCES):
        raise ValueError(f"targets must be one of {', '.join(SOURCES)} or several joined by '+' "
                         f"(e.g. probe+propagate), got {targets!r}")
    return sources


@STRATEGIES.register("selftrain")
class SelfTrain(Strategy):
    """Distil soft targets into a student over the whole unlabeled pool (SimCLRv2's third step,
    Chen et al., 2020, "Big Self-Supervised Models are Strong Semi-Supervised Learners").

    1. Targets: a soft target for every training row, computed once by the task (``targets`` below): a class
       distribution (``classify``), standardised values (``regress``) or per-word tag distributions (``tag``);
       labeled rows keep their true targets.
    2. Student: the same architecture from the pretrained encoder, trained on those soft targets over the
       pool for ``epochs`` passes (None: as many steps as plain fine-tuning would take, rounded up to whole
       passes; weakly augmented when ``augment='weak'``).

    ``targets`` says where the soft targets come from, one source or several joined by ``+`` (averaged);
    None takes the task's default (``propagate`` for classes, ``probe`` for values and tags).
    ``"propagate"`` is label spreading over L2-normalised features (a kNN graph of ``neighbors`` per row over
    the whole pool, seeded with the labels, ``spread_alpha`` the share each iteration takes from the
    neighbours; for ``regress``, the distance-weighted mean of the nearest labeled rows);
    ``"probe"`` is the task's linear probe (``warmstart.probes``: logistic, or ridge for values) fitted on
    the standardised features of the labeled rows (``probe_c``: the logistic probe's C, None for 1;
    ridge picks its own penalty); ``"teacher"`` is SimCLRv2's fine-tuned teacher
    (``"both"``: teacher+propagate). Tagging has no ``propagate`` (no graph of words) and no
    ``features_from`` (its features are per word).
    ``graph`` picks the features the graph and the probe see: ``"teacher"`` (after fine-tuning on the
    labels) or ``"pretrained"`` (the encoder as pretraining left it, before a few labels could bend it; no
    teacher is trained unless ``targets`` asks for one). ``features_from`` adds the encoders of other
    pretraining runs (e.g. a SimCLR MLP next to a SimCLR CNN student): their features are concatenated,
    each L2-normalised, so the student learns from an ensemble it could not be on its own.
    ``student="scratch"`` trains a student of any architecture (``encoder``, ``encoder_args``) from random
    init, e.g. a CNN wider than the one pretraining could afford, on targets from the ``features_from`` runs
    and, with ``targets`` holding ``teacher``, from a teacher of its own architecture trained from random init
    on the labels (classic self-training; ``graph="teacher"`` adds the teacher's features to the probe's).
    ``from_teacher=True`` starts the student from the trained teacher's weights instead of from where the
    teacher started: the passes over the pool refine the teacher on the averaged targets rather than
    distil them into a fresh copy, which a pass or two cannot do. On Fashion-MNIST at 1000 labels (seed 0,
    5000 validation rows; a width-16 CNN from random init as teacher, averaged with a probe over an 8-epoch
    SimCLR MLP, 2 passes) the fresh student scored 0.789, the one started from the teacher 0.829.
    ``labeled_batch`` adds that many labeled rows, with cross-entropy on their true labels, to every
    student step (without it 1000 labels are 1.7 % of a 60k pool's rows).

    Measured: on digits at 50 labels (seeds 0-2): teacher 0.881, propagate 0.906, both 0.900, against
    scratch 0.855 and ``full`` 0.871. On Fashion-MNIST from a 2-epoch SimCLR CNN (one student pass):
    teacher 0.528 at 100 labels (seeds 0-1), propagate 0.628, against 0.623 for ``full`` — a student is
    only as good as its targets. From the 40-epoch SimCLR MLP of ``bench/accuracy.py`` (seed 0), the share
    of the pool whose target is right, at 100 / 1000 labels: propagate 0.731 / 0.811, probe 0.773 / 0.834;
    with the 8-epoch SimCLR CNN's features added (``features_from``) probe+propagate gives 0.787 / 0.848.
    A CNN student (SimCLR-initialised, 5 passes) on the MLP's spread targets scored 0.767 / 0.823 on the
    test set; a second, noisy-student round on the student's own features did not help (0.769 / 0.818);
    ``labeled_batch=64`` added a point at 1000 labels (0.833), 32 cost 0.6 at 100. On the two-encoder
    probe+propagate targets (``bench/accuracy.py``, seeds 0-2): the SimCLR CNN as student 0.774 / 0.836, a
    CNN of width 32 from scratch (``student="scratch"``) 0.780 / 0.851, and 0.863 at 1000 labels with 8
    passes instead of 4, against 0.752 / 0.822 for the best frozen probe. The student ends near its
    targets: better features, not more rounds, move it.

    Why distillation rather than FixMatch: on this CPU a FixMatch step costs a weak and a strong forward
    of ``mu`` unlabeled batches per labeled one, and a plain FixMatch measured here plateaued at 0.71–0.73
    at 100 Fashion-MNIST labels after 12 CPU minutes (100 labels overfit, 15–18 % of confident
    pseudo-labels wrong). Distillation costs one forward of the pool plus a plain supervised pass per
    epoch, uses every unlabeled image (not just confident ones) and never feeds its own errors back.
    """

    #: Every task with soft targets: classes, values, tags and ratings. Masks and boxes would need their own (not
    #: built); ``rank`` has none (its "labels" are the interactions themselves).
    tasks = ("classify", "regress", "tag", "rate")
    not_private = ("its soft targets (label spreading, a probe or a teacher) are fitted on the labeled rows "
                   "without noise and then taught to the student on every row")

    def __init__(
        self, augment: str = "none", temperature: float = 1.0, epochs: int | None = None, batch: int = 256,
        layer_decay: float | None = None, targets: str | None = None, neighbors: int = 10, graph: str = "teacher",
        features_from: list[str] = (), labeled_batch: int = 0, student: str = "pretrained",
        from_teacher: bool = False, spread_alpha: float = 0.2, probe_c: float | None = None,
    ) -> None:
        super().__init__(augment)
        if temperature <= 0 or (epochs is not None and epochs < 1) or batch < 1 or neighbors < 1 or labeled_batch < 0:
            raise ValueError("temperature must be > 0, epochs >= 1, batch >= 1, neighbors >= 1 and labeled_batch >= 0")
        if not 0 < spread_alpha < 1:
            raise ValueError(f"spread_alpha must be between 0 and 1 (exclusive), got {spread_alpha}")
        if probe_c is not None and probe_c <= 0:
            raise ValueError(f"probe_c (the logistic probe's C) must be > 0, got {probe_c}")
        self.probe_c = probe_c
        self.targets_spec = targets
        chosen = parse_sources(targets) if targets is not None else ()
        if graph not in GRAPHS:
            raise ValueError(f"graph must be one of {', '.join(GRAPHS)}, got {graph!r}")
        if isinstance(features_from, str):
            raise ValueError(f"features_from must be a list of pretraining run directories, got {features_from!r}")
        if student not in ("pretrained", "scratch"):
            raise ValueError(f"student must be pretrained or scratch, got {student!r}")
        # Without other runs' features a scratch student learns from its teacher alone, or from the teacher's
        # predictions and features (graph=teacher); the probe and the graph have nothing else to read.
        teacher_suffices = "teacher" in chosen and (chosen == ("teacher",) or graph == "teacher")
        if student == "scratch" and not features_from and not teacher_suffices:
            raise ValueError("student='scratch' has no pretrained features: give features_from, or targets=teacher "
                             "(a teacher of its architecture trained on the labels)")
        if from_teacher and "teacher" not in chosen and not (student == "pretrained" and graph == "teacher"):
            raise ValueError("from_teacher=True starts the student from the teacher: give targets with teacher "
                             "(or graph=teacher with student=pretrained)")
        self.from_teacher = from_teacher
        self.load_pretrained = student == "pretrained"  # scratch: any architecture, from random init
        self.graph, self.features_from = graph, [str(run) for run in features_from]
        self.temperature, self.epochs, self.batch = temperature, epochs, batch
        self.neighbors, self.spread_alpha, self.labeled_batch = neighbors, spread_alpha, labeled_batch
        self.teacher_strategy = Full(augment, layer_decay)

    def sources(self, task) -> tuple[str, ...]:
        """The target sources: the ``targets`` option, or the task's default."""
        return parse_sources(self.targets_spec or task.default_pseudo)

    def check(self, task, data, name: str) -> None:
        super().check(task, data, name)
        missing = [run for run in self.features_from if not (Path(run) / ENCODER_FILE).exists()]
        if missing:
            raise UserError(f"strategy '{name}': features_from: no {ENCODER_FILE} in {', '.join(missing)}; "
                            "list finished `warmstart pretrain` run directories")
        wrong = [s for s in self.sources(task) if s not in task.pseudo_sources]
        if wrong:
            raise UserError(f"strategy '{name}': targets={wrong[0]} does not apply to the {task.name} task; use "
                            f"strategy_args.targets={' or '.join(task.pseudo_sources)}")
        if self.probe_c is not None and ("probe" not in self.sources(task) or task.probe_kind != "logistic"):
            raise UserError(f"strategy '{name}': probe_c does not apply here (it is the logistic probe's C; the "
                            f"{task.name} task's targets {'+'.join(self.sources(task))} have no logistic probe); "
                            "drop it or add probe to strategy_args.targets")
        if self.features_from and not task.row_features:
            raise UserError(f"strategy '{name}': features_from does not apply to the {task.name} task (its probe reads "
                            "per-word features of the student's own encoder); drop it")

    def setup(self, ctx: FinetuneContext) -> nn.Module:
        self.bind(ctx)
        self.teacher_strategy.bind(ctx)
        sources = self.sources(ctx.task)
        self.pool = np.union1d(ctx.labeled, ctx.unlabeled)  # every training row but the validation rows
        self.passes = pool_epochs(self.epochs, ctx, len(self.pool), self.batch)
        # The teacher is a copy: this encoder stays as pretrained. A scratch student's own features are noise.
        graph_encoder, teacher = (ctx.model.encoder if self.load_pretrained else None), None
        if "teacher" in sources or (self.graph == "teacher" and self.load_pretrained):
            teacher = copy.deepcopy(ctx.model)
            fit(teacher, lambda b: self.teacher_strategy.loss(teacher, b), [labeled_stream(ctx)], ctx.config,
                param_groups=self.teacher_strategy.param_groups(teacher), desc="selftrain teacher")
            if self.graph == "teacher":
                graph_encoder = teacher.encoder
        features = None
        if ctx.task.row_features and {"propagate", "probe"} & set(sources):
            features = self.features(graph_encoder, ctx)
        # The task's probe over per-word features (tagging) reads the graph encoder through a stand-in model.
        probe_model = ctx.model if graph_encoder is None or graph_encoder is ctx.model.encoder else teacher
        parts = [ctx.task.pseudo_targets(source, ctx.data, ctx.labeled, features=features, teacher=teacher,
                                         model=probe_model, temperature=self.temperature, neighbors=self.neighbors,
                                         alpha=self.spread_alpha, probe_c=self.probe_c or 1.0)
                 for source in sources]
        self.targets = ctx.task.keep_labeled(sum(parts) / len(parts), ctx.data, ctx.labeled, ctx.model)
        if self.from_teacher:  # refine the teacher on the pool rather than distil it into a fresh copy
            ctx.model.load_state_dict(teacher.state_dict())
        return ctx.model

    def features(self, encoder: nn.Module | None, ctx: FinetuneContext) -> np.ndarray:
        """The graph encoder's features of every training row (if any), then those of each ``features_from``
        run's encoder, each L2-normalised so every encoder weighs the same in the kNN graph and the probe."""
        from sklearn.preprocessing import normalize

        from warmstart.models.build import check_input_shape
        from warmstart.rundir import load_run

        encoders = [] if encoder is None else [encoder]
        for run in self.features_from:
            other, meta = load_run(run, "encoder")
            check_input_shape(meta["input_shape"], ctx.data, f"features_from: {run} was pretrained on",
                              "list runs pretrained on this data")
            encoders.append(other)
        return np.hstack([normalize(embed(e, ctx.data, ctx.data.x_train)) for e in encoders])

    def streams(self, ctx: FinetuneContext) -> list[Stream]:
        pool = pool_stream(ctx, self.pool, self.batch, self.targets)
        return [pool, labeled_stream(ctx, self.labeled_batch)] if self.labeled_batch else [pool]

    def settings(self, config: FinetuneConfig) -> FinetuneConfig:
        return config.model_copy(update={"epochs": self.passes})

    def param_groups(self, model: nn.Module) -> list[dict]:
        return self.teacher_strategy.param_groups(model)

    def loss(self, model: nn.Module, batch, *labeled) -> tuple[torch.Tensor, dict]:
        x, target = batch
        output = model(self.view(x))
        loss, logs = self.task.soft_loss(output, target, self.temperature)
        logs = {**logs, "agreement": self.task.agreement(output, target)}
        if labeled:  # the true labels, a batch every step: 100 rows in a 60k pool would otherwise barely count
            logs["loss_labeled"] = self.supervised(model, labeled[0])[0]
            loss = loss + logs["loss_labeled"]
        return loss, logs
