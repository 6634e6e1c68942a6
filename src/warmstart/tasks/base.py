"""What a task is: everything that depends on the kind of label, and nothing that depends on the inputs.

A task checks the targets, draws the label budget, builds the head, computes the loss (hard targets and the
soft targets of self-training), predicts in the data's own units, scores predictions (with a primary metric
and its direction), fits the linear probe that LP-FT and self-training start from, and names its classical
baselines. Strategies ask the task instead of assuming cross-entropy and argmax; one file and one
registration line per task (``tasks/__init__.py``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from warmstart.data.splits import LabelBudget
from warmstart.engine import Stream
from warmstart.errors import UserError
from warmstart.registry import Registry

if TYPE_CHECKING:
    from warmstart.data.bundle import DataBundle

TASKS: Registry["Task"] = Registry("task")


@dataclass
class Explained:
    """One example's prediction as ``warmstart explain`` attributes it (``Task.explain_outputs``).

    ``score`` maps a batch of model inputs ``(B, ...)`` (variants of this example: interpolated, noised,
    with parts removed) to the ``(B,)`` scalar being explained — the predicted class's probability, the
    predicted value in the data's units, a word's predicted tag's probability. ``true_score`` is the same
    for the true label when it differs from the prediction. ``focus`` is the token position whose output
    is explained (``tag``); None means the pooled output.
    """

    score: Callable[[torch.Tensor], torch.Tensor]
    prediction: str
    truth: str
    correct: bool | None = None  # None: the task has no right or wrong (regress)
    true_score: Callable[[torch.Tensor], torch.Tensor] | None = None
    focus: int | None = None


class Task:
    """Base class; one instance per registered task. Subclasses fill in the targets, head, loss and metrics."""

    name = ""
    description = ""
    #: The metric a study ranks methods by, and whether higher is better.
    primary = ""
    higher_is_better = True
    #: Scalar metrics of ``metrics()``, primary first: the task's columns in a study's results.csv.
    metric_names: tuple[str, ...] = ()
    #: Those of ``metric_names`` where lower is better (errors); the others are scores.
    lower_is_better: tuple[str, ...] = ()
    #: Modalities the task can label (None: any).
    modalities: tuple[str, ...] | None = None
    #: Label-budget kinds that make sense for these targets, and the default budget.
    budget_kinds: tuple[str, ...] = ("per_class", "count", "fraction")
    default_budget = "per_class=5"
    #: Where self-training may take soft targets from, and its default.
    pseudo_sources: tuple[str, ...] = ("teacher", "propagate", "probe")
    default_pseudo = "propagate"
    #: Probes and self-training graphs read one pooled feature vector per row (False: per word, ``tag``).
    row_features = True
    #: The kind of ``warmstart.probes.LinearProbe`` the task fits (``probe_head`` and ``probe`` targets).
    probe_kind = "logistic"
    #: The head can start as a linear probe (``probe_head``; LP-FT's ``head_init=probe``).
    linear_probe = True
    #: Why DP-SGD cannot train this task privately ("": it can; its loss is a mean of per-example terms).
    not_private = ""
    #: Why validation rows cannot be carved from this task's training rows ("": they can; ``data/validation.py``).
    no_validation = ""

    def higher_is_better_for(self, metric: str) -> bool:
        """The direction of ``metric``, one of ``metric_names`` (a study may rank by any of them)."""
        return metric not in self.lower_is_better

    # --- targets -----------------------------------------------------------------------------------

    def check(self, bundle: DataBundle) -> None:
        """Validate (and normalise the dtype of) ``bundle.y_*`` in place; ``UserError`` names the fix."""
        raise NotImplementedError

    def adopt(self, bundle: DataBundle) -> DataBundle:
        """``bundle`` (whose source inferred another task) re-read as this task, or a ``UserError`` saying why
        not. The default refuses; tasks whose targets can be read from another's override it."""
        why = f" ({bundle.inferred})" if bundle.inferred else ""
        raise UserError(f"{bundle.name} holds {bundle.task} targets{why}, which --task {self.name} cannot use; "
                        f"drop --task to use the inferred task '{bundle.task}'")

    def strata(self, bundle: DataBundle, size: int | None) -> tuple[np.ndarray, list[str] | None]:
        """Per-row groups the budget is stratified over (and their names), for a budget of ``size`` labels."""
        return np.asarray(bundle.y_train), bundle.class_names

    def budget(self, spec: str | None) -> LabelBudget:
        """The parsed budget ``spec`` (None: the task's default), refused when its kind does not apply."""
        budget = LabelBudget.parse(spec if spec is not None else self.default_budget)
        if budget.kind not in self.budget_kinds:
            raise UserError(f"label budget {budget} does not apply to the {self.name} task; use "
                            + " or ".join(f"{k}=..." for k in self.budget_kinds))
        return budget

    def split(self, bundle: DataBundle, spec: str | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Sorted, disjoint ``(labeled, unlabeled)`` training rows for budget ``spec``, drawn with ``seed``."""
        budget = self.budget(spec)
        size = None if budget.kind == "fraction" else int(budget.value)
        strata, names = self.strata(bundle, size)
        return budget.split(strata, seed, class_names=names)

    def size(self, bundle: DataBundle, spec: str | None) -> int:
        """How many labels budget ``spec`` keeps (raises like ``split`` would)."""
        budget = self.budget(spec)
        strata, _ = self.strata(bundle, None if budget.kind == "fraction" else int(budget.value))
        return budget.size(strata)

    # --- model ---------------------------------------------------------------------------------------

    def info(self, bundle: DataBundle) -> dict[str, Any]:
        """What the head needs to be rebuilt (saved in the model checkpoint's metadata)."""
        return {"class_names": list(bundle.class_names)}

    def build_model(self, encoder: nn.Module, info: dict[str, Any]) -> nn.Module:
        raise NotImplementedError

    def init_model(self, model: nn.Module, bundle: DataBundle, labeled: np.ndarray) -> None:
        """Set label-derived state before training (e.g. the target scaling of ``regress``)."""

    # --- batches and losses --------------------------------------------------------------------------

    def target_tensor(self, y: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(y))

    def make_batch(self, bundle: DataBundle, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``(inputs, targets)`` of training rows ``index``."""
        return bundle.batch(bundle.x_train, index), self.target_tensor(bundle.y_train[index])

    def stream(self, bundle: DataBundle, index: np.ndarray, batch_size: int) -> Stream:
        """Labeled batches of training rows ``index``."""
        return Stream(len(index), min(batch_size, len(index)), lambda rows: self.make_batch(bundle, index[rows]))

    def view(self, modality, x: torch.Tensor, target: Any, kind: str) -> tuple[torch.Tensor, Any]:
        """The training view of a labeled batch: the modality's augmentation ``kind`` of ``x``, with the
        targets moved alongside where they are spatial (masks, boxes); other tasks' targets are unchanged."""
        return modality.augment(x, kind), target

    def loss(self, output: torch.Tensor, target: torch.Tensor, model: nn.Module) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def soft_stream(self, bundle: DataBundle, index: np.ndarray, batch_size: int, soft: Any) -> Stream:
        """Batches ``(inputs, soft targets)`` of training rows ``index``; ``soft`` holds one entry per row of
        the training split (what ``pseudo_targets`` returned)."""
        def make(rows: np.ndarray) -> tuple[torch.Tensor, ...]:
            return bundle.batch(bundle.x_train, index[rows]), soft[torch.as_tensor(index[rows])]
        return Stream(len(index), min(batch_size, len(index)), make)

    def soft_loss(self, output: torch.Tensor, soft: torch.Tensor, temperature: float) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    # --- predictions and metrics ---------------------------------------------------------------------

    def predict(self, model: nn.Module, bundle: DataBundle, x: np.ndarray) -> np.ndarray:
        """Predictions for rows ``x`` in the data's own units (class indices, target values, tag ids)."""
        raise NotImplementedError

    def metrics(self, bundle: DataBundle, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
        raise NotImplementedError

    def evaluate(self, model: nn.Module, bundle: DataBundle) -> dict[str, Any]:
        """Metrics of ``model`` on the test split."""
        return self.metrics(bundle, bundle.y_test, self.predict(model, bundle, bundle.x_test))

    # --- probes and pseudo targets -------------------------------------------------------------------

    def probe_data(self, encoder: nn.Module, bundle: DataBundle, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(features (n, F), targets (n, ...))`` a linear probe of training rows ``index`` learns from."""
        from warmstart.evaluate import embed

        return embed(encoder, bundle, bundle.x_train[index]), np.asarray(bundle.y_train[index])

    def probe_head(self, model: nn.Module, bundle: DataBundle, labeled: np.ndarray) -> None:
        """Set ``model.head`` to the task's linear probe on the frozen features of the labeled rows (LP-FT)."""
        raise NotImplementedError

    def pseudo_targets(self, source: str, bundle: DataBundle, labeled: np.ndarray, *, features: np.ndarray | None,
                       teacher: nn.Module | None, model: nn.Module, temperature: float, neighbors: int,
                       alpha: float, probe_c: float) -> Any:
        """Soft targets for every training row from ``source`` (one of ``pseudo_sources``): from the
        fine-tuned ``teacher``, or from ``features`` ``(N, F)`` of the training split (tasks without
        ``row_features`` read ``model.encoder`` instead). ``model`` carries the head's size and scaling;
        ``neighbors`` and ``alpha`` shape ``propagate``'s graph and spreading (tasks that spread labels);
        ``probe_c`` is the ``probe`` source's logistic C (tasks whose ``probe_kind`` is logistic)."""
        raise NotImplementedError

    def keep_labeled(self, soft: Any, bundle: DataBundle, labeled: np.ndarray, model: nn.Module) -> Any:
        """``soft`` with the labeled rows' entries replaced by their true targets."""
        raise NotImplementedError

    def agreement(self, output: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
        """A logged score of how well a student batch's outputs follow its soft targets."""
        return torch.zeros(())

    # --- explanations --------------------------------------------------------------------------------

    def explain_outputs(self, model: nn.Module, bundle: DataBundle, x: np.ndarray, y: np.ndarray) -> list[Explained]:
        """For each row of ``x`` (with targets ``y``), the model output ``warmstart explain`` attributes.
        The default refuses; a task that can be explained overrides it."""
        raise UserError(f"the {self.name} task does not say which output to explain yet, so its models cannot "
                        "be explained; explain a classify, regress or tag model")

    # --- baselines -----------------------------------------------------------------------------------

    def baselines(self, modality: str) -> list[str]:
        """The classical baselines a study runs by default for this task on ``modality`` inputs."""
        return []

    def baseline_inputs(self, bundle: DataBundle) -> tuple[np.ndarray, np.ndarray]:
        """What the baselines read as inputs: the modality's flat features."""
        return bundle.handler.flat_features(bundle)

    # --- reports -------------------------------------------------------------------------------------

    def embedding_colours(self, bundle: DataBundle) -> tuple[np.ndarray, list[str]] | None:
        """What a study's map of test embeddings is coloured by (values, class names); None: the study's
        own choice for classes, values and tags."""
        return None

    def report_samples(self, model: nn.Module, bundle: DataBundle) -> dict[str, np.ndarray] | None:
        """Arrays a study keeps beside each fine-tuned cell for ``report_sections`` (e.g. a few test inputs
        with their targets and predictions), or None; saved as ``cells/<cell>.samples.safetensors``."""
        return None

    def report_sections(self, run_dir, summary) -> tuple[list[tuple], dict[str, bytes]]:
        """Extra report blocks (``study/report.py``'s block format) and the PNGs they show, drawn only from
        what the study saved under ``run_dir``; the default adds nothing."""
        return [], {}
