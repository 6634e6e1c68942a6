"""``warmstart explain``: what a fine-tuned model looks at, and whether the explanation is faithful.

For ``n`` test rows, each model's prediction (``Task.explain_outputs``: the predicted class, the predicted
value, a word's tag) is attributed to the input's units (``views.py``: pixels, table columns, tokens) by
Captum's Integrated Gradients, Saliency and SmoothGrad, or, for transformers, by attention rollout
(``rollout.py``); wrong predictions are also attributed to the true label. Every method is checked with
deletion and insertion curves against a random ranking (``faithfulness.py``). PCA and t-SNE maps of the
test set's encoder features show each model side by side (typically the pretrained model beside scratch).
Needs the ``explain`` extra (``pip install 'warmstart[explain]'``).

>>> # explain(["runs/ft"], out="runs/ft-explained")   # writes explain.html, attributions.safetensors, ...
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from warmstart.errors import UserError
from warmstart.explain import image as _image, table as _table, text as _text  # noqa: F401 (registers)
from warmstart.explain.run import PICKS, SubjectResult, check_methods, choose_rows, embed_subject, explain_subject
from warmstart.explain.run import load_subject, seeded
from warmstart.explain.views import VIEWS

__all__ = ["ExplainResult", "VIEWS", "explain"]


@dataclass
class ExplainResult:
    results: list[SubjectResult]
    rows: object
    task: str
    data: str
    methods: list[str]
    wall_s: float
    cpu_s: float
    view: object = None
    out: Path | None = None


def check_out(out: str | Path | None) -> Path | None:
    if out is None:
        return None
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path} is a file; give a directory path")
    if path.is_dir() and any(path.iterdir()):
        raise UserError(f"--out {path} is not empty; choose a new directory for the explanations")
    return path


def explain(models: list[str | Path], data=None, out: str | Path | None = None, *, n: int = 16,
            methods: list[str] | None = None, seed: int = 0, pick: str = "balanced", data_dir: str | None = None,
            maps: bool = True, labels: list[str] | None = None) -> ExplainResult:
    """Explain the fine-tuned models in run directories ``models`` (the first is the model; the others,
    e.g. a scratch run on the same labels, are shown beside it) on ``n`` test rows of ``data`` (a source
    spec or a ``DataBundle``; default: the data the first model was fine-tuned on). ``labels`` name the
    models (default: their strategies). Writes ``out`` when given; checks everything before any work starts."""
    from warmstart.data.sources import load_data
    from warmstart.explain.methods import require_captum
    from warmstart.pipeline import model_data
    from warmstart.tasks import TASKS

    started, cpu = time.perf_counter(), time.process_time()
    require_captum()
    if not models:
        raise UserError("explain needs --model RUN_DIR, a `warmstart finetune` run directory")
    subjects = []
    for run_dir in models:
        subjects.append(load_subject(run_dir, {s.label for s in subjects}))
    for subject, label in zip(subjects, labels or []):
        subject.label = label
    first = subjects[0].meta
    tasks = {s.meta.get("task", "classify") for s in subjects}
    if len(tasks) > 1:
        raise UserError(f"--model and --compare runs must share one task; got {', '.join(sorted(tasks))}")
    task = TASKS.get(tasks.pop())
    if data is None:
        data = first.get("data")
        if not data:
            raise UserError(f"{subjects[0].run_dir} does not record its data; pass --data SOURCE")
    bundle = data if not isinstance(data, str) else load_data(data, data_dir)
    for s in subjects:
        s.bundle = model_data(s.run_dir, s.meta, bundle, "explain", s.model)
        s.bundle = s.bundle.handler.prepare(s.bundle, s.model.encoder)
    if bundle.modality not in VIEWS:
        raise UserError(f"explain does not handle {bundle.modality} data yet; it explains "
                        f"{', '.join(VIEWS.names())} data")
    view = VIEWS.get(bundle.modality)
    methods = check_methods(methods, view, bundle.modality)
    size = len(bundle.y_test)
    if not 1 <= n <= size:
        raise UserError(f"--n {n}: the test split of {bundle.name} has {size} rows; use --n 1..{size}")
    if pick not in PICKS:
        raise UserError(f"unknown pick '{pick}'; choose one of: {', '.join(PICKS)}")
    path = check_out(out)

    seeded(seed)
    rows, explained = choose_rows(task, subjects[0], n, seed, pick)
    results = [explain_subject(s, task, view, rows, methods, seed, explained if i == 0 else None)
               for i, s in enumerate(subjects)]
    if maps:
        from warmstart.explain.figures import map_rows

        shown = map_rows(size, seed)
        for r in results:
            embed_subject(r, shown, seed)
    result = ExplainResult(results, rows, task.name, bundle.name, methods, time.perf_counter() - started,
                           time.process_time() - cpu, view)
    if path is not None:
        from warmstart.explain.write import write_explanations

        write_explanations(result, path, seed)
        result.out = path
    return result
