"""Explaining fine-tuned models: which rows, which outputs, the attributions and their faithfulness.

Everything a user can get wrong (the run directory, the data, the methods, ``n``, ``--out``) is checked
in ``load`` before any work starts; ``explain_subject`` computes one model's attributions and curves in
memory. Writing is ``explain/write.py``'s.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from warmstart.errors import UserError
from warmstart.explain import faithfulness as faith
from warmstart.explain.views import CLASS_DEPENDENT, SIGNED, Example, InputView
from warmstart.tasks.base import Explained, Task

#: How many random test rows are scanned for wrong predictions when ``pick="balanced"``.
POOL_PER_EXAMPLE = 20
PICKS = ("balanced", "random")


@dataclass
class Subject:
    """One fine-tuned model to explain, with the data prepared for its encoder."""

    label: str
    run_dir: Path
    model: nn.Module
    meta: dict[str, Any]
    bundle: Any


@dataclass
class SubjectResult:
    """One model's explanations of the chosen rows."""

    subject: Subject
    explained: list[Explained]
    examples: list[Example]
    attributions: dict[str, list[np.ndarray]] = field(default_factory=dict)  # method -> per-unit, predicted
    true_attributions: dict[str, list[np.ndarray]] = field(default_factory=dict)  # ... for the true label
    raw: dict[str, list[np.ndarray]] = field(default_factory=dict)  # method -> input-shaped, predicted
    faithfulness: dict[str, dict] = field(default_factory=dict)  # method or "random" -> faith.summarise(...)
    versus: dict[str, dict] = field(default_factory=dict)  # method -> faith.versus_random(...)
    seconds: dict[str, float] = field(default_factory=dict)  # method -> attribution seconds; "curves"
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # "PCA"/"t-SNE" -> (n, 2)


def load_subject(run_dir: str | Path, labels: set[str]) -> Subject:
    """The fine-tuned model in ``run_dir``; a pretraining run or anything else is one clear line."""
    from warmstart.rundir import ENCODER_FILE, MODEL_FILE, load_run

    path = Path(run_dir)
    if not (path / MODEL_FILE).is_file():
        what = (" holds a pretrained encoder, not a fine-tuned model: fine-tune it first "
                f"(`warmstart finetune --from {path} ...`) and explain that run"
                if (path / ENCODER_FILE).is_file() else
                f" is not a fine-tuned model (no {MODEL_FILE}); point --model at a `warmstart finetune` run directory")
        raise UserError(f"{path}{what}")
    model, meta = load_run(path, "model")
    model.eval()
    label = str(meta.get("strategy") or path.name)
    if label in labels:
        label = f"{label} ({path.name})"
    return Subject(label, path, model, meta, None)


def check_methods(methods: list[str] | None, view: InputView, modality: str) -> list[str]:
    """The methods asked for (default: every method of ``view``), each one that applies to ``modality``."""
    from warmstart.explain.views import METHOD_DOCS

    if not methods:
        return list(view.methods)
    for method in methods:
        if method not in METHOD_DOCS:
            raise UserError(f"unknown explanation method '{method}'; methods: {', '.join(METHOD_DOCS)}")
        if method not in view.methods:
            raise UserError(f"method '{method}' does not apply to {modality} data; methods for {modality} data: "
                            f"{', '.join(view.methods)}")
    return list(dict.fromkeys(methods))


def choose_rows(task: Task, subject: Subject, n: int, seed: int, pick: str) -> tuple[np.ndarray, list[Explained]]:
    """``n`` test rows (sorted) and their ``Explained``: a seeded random draw, or with ``balanced`` up to half
    of them wrong predictions (found among ``POOL_PER_EXAMPLE · n`` random rows) so both kinds are shown."""
    bundle = subject.bundle
    size = len(bundle.y_test)
    order = np.random.default_rng(seed).permutation(size)
    pool = order[:n] if pick == "random" else order[:min(size, max(n, POOL_PER_EXAMPLE * n))]
    explained = task.explain_outputs(subject.model, bundle, bundle.x_test[pool], bundle.y_test[pool])
    if pick == "random" or all(e.correct is None for e in explained):
        keep = list(range(n))
    else:
        wrong = [i for i, e in enumerate(explained) if e.correct is False]
        right = [i for i, e in enumerate(explained) if e.correct is not False]
        chosen = wrong[:n // 2]
        chosen += right[:n - len(chosen)]
        chosen += wrong[n // 2:n // 2 + n - len(chosen)]
        keep = sorted(chosen)
    rows = pool[keep]
    by_row = {int(pool[i]): explained[i] for i in keep}
    rows = np.sort(rows)
    return rows, [by_row[int(r)] for r in rows]


def explain_subject(subject: Subject, task: Task, view: InputView, rows: np.ndarray, methods: list[str],
                    seed: int, explained: list[Explained] | None = None) -> SubjectResult:
    """Attributions (of the prediction and, where it is wrong, of the true label) and deletion/insertion
    curves for each method and for ``RANDOM_DRAWS`` random rankings, on test rows ``rows``."""
    bundle, model = subject.bundle, subject.model
    if explained is None:
        explained = task.explain_outputs(model, bundle, bundle.x_test[rows], bundle.y_test[rows])
    examples = []
    for row, e in zip(rows, explained):
        example = view.example(bundle, model, bundle.x_test[row])
        example.extra["focus"] = e.focus
        examples.append(example)
    result = SubjectResult(subject, explained, examples)
    rng = np.random.default_rng(seed)
    curves: dict[str, list[list[faith.Curves]]] = {m: [] for m in [*methods, "random"]}
    result.seconds = {m: 0.0 for m in [*methods, "curves"]}
    for example, e in zip(examples, explained):
        sign = faith.direction(example, e.score)
        for method in methods:
            started = time.perf_counter()
            raw = view.attribute(method, model, e.score, example, e.focus)
            units = example.per_unit(raw)
            true = units
            if e.true_score is not None and method in CLASS_DEPENDENT:
                true = example.per_unit(view.attribute(method, model, e.true_score, example, e.focus))
            result.seconds[method] += time.perf_counter() - started
            result.attributions.setdefault(method, []).append(units)
            result.true_attributions.setdefault(method, []).append(true)
            result.raw.setdefault(method, []).append(raw.detach().double().numpy().reshape(example.x.shape[1:]))
            started = time.perf_counter()
            ranking = faith.order(units, sign if method in SIGNED else 1.0)
            curves[method].append([faith.curves(example, e.score, ranking)])
            result.seconds["curves"] += time.perf_counter() - started
        started = time.perf_counter()
        orders = faith.random_orders(len(example.units), rng)
        curves["random"].append([faith.curves(example, e.score, o) for o in orders])
        result.seconds["curves"] += time.perf_counter() - started
    result.faithfulness = {name: faith.summarise(c) for name, c in curves.items()}
    result.versus = {m: faith.versus_random(result.faithfulness[m], result.faithfulness["random"], seed)
                     for m in methods}
    return result


def embed_subject(result: SubjectResult, map_rows: np.ndarray, seed: int) -> None:
    """PCA and t-SNE maps of the model's encoder features of test rows ``map_rows``."""
    from warmstart.evaluate import embed
    from warmstart.explain.figures import embedding_maps

    subject = result.subject
    features = embed(subject.model.encoder, subject.bundle, subject.bundle.x_test[map_rows])
    result.maps = embedding_maps(features, seed)


def seeded(seed: int) -> None:
    torch.manual_seed(seed)  # SmoothGrad's noise
    np.random.seed(seed)
