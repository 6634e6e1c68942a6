"""The files of a study directory besides the cells' runs: ``results.csv``'s columns and text, ``study_info.json``,
``recipes/<name>.yaml``, and where each finished cell's row and the pretraining runs live (and reading them
back, for the report)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import yaml

from warmstart.checkpoint import atomic_write_text
from warmstart.study_config import StudyConfig
from warmstart.data.validation import Validation, draw_rows
from warmstart.study.plan import Cell, StudyPlan

#: Columns before and after the task's metric columns (and its validation score, ``val_<primary>``).
LEADING = ["method", "kind", "objective", "strategy", "budget", "labels", "seed"]
TRAILING = ["val_rows", "train_labels", "wall_s", "cpu_s", "images_per_s", "labeled_hash"]
#: Columns a study has only when some cell fills them: the swept setting, a private run's spent ε and δ.
OPTIONAL = ["setting", "epsilon", "delta"]
#: Columns that measure the machine, not the method: they differ between two runs of one study.
TIMING_COLUMNS = ("wall_s", "cpu_s", "images_per_s")


def columns(task, rows: list[dict[str, Any]] = ()) -> list[str]:
    return [*LEADING, *task.metric_names, f"val_{task.primary}", *TRAILING,
            *[c for c in OPTIONAL if any(c in r for r in rows)]]


def results_csv(rows: list[dict[str, Any]], task) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns(task, rows), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def pretrain_root(out: Path, config: StudyConfig) -> Path:
    return Path(config.pretrain_dir) if config.pretrain_dir else out / "pretrain"


def pretrain_dirs(run_dir: Path, info: dict) -> list[Path]:
    """The pretraining run directories the study used (older studies: everything in ``RUN_DIR/pretrain``)."""
    root = Path(info.get("pretrain_dir") or run_dir / "pretrain")
    if "pretrain_runs" in info:
        return [root / name for name in info["pretrain_runs"]]
    return sorted(p for p in (run_dir / "pretrain").glob("*") if p.is_dir())


def cell_path(out: Path, cell: Cell) -> Path:
    """Where a finished cell's row is kept (written atomically by whichever process finished it)."""
    return out / "cells" / f"{cell.key}.json"


def read_cells(run_dir: Path) -> dict[tuple[str, str, int], dict]:
    """Every finished cell's record (``cells/*.json``: its row, with what results.csv leaves out, e.g. the
    confusion matrix), keyed by ``(method, budget, seed)``."""
    found = {}
    for path in sorted((run_dir / "cells").glob("*.json")):
        cell = json.loads(path.read_text())
        found[cell["method"], cell["budget"], int(cell["seed"])] = cell
    return found


def write_info(out: Path, plan: StudyPlan, runs: list[str]) -> None:
    d, task = plan.data, plan.task
    metric = plan.config.metric or task.primary  # what the report ranks by
    atomic_write_text(out / "study_info.json", json.dumps({
        "data": d.name, "spec": d.spec, "modality": d.modality, "task": task.name, "primary": metric,
        "higher_is_better": task.higher_is_better_for(metric), "metrics": list(task.metric_names),
        "input_shape": list(d.input_shape), "class_names": d.class_names, "target_names": d.target_names,
        "n_train": int(len(d.y_train)), "n_test": int(d.n_test), "budgets": plan.sizes,
        "baselines": plan.baselines, "validation": str(Validation.parse(plan.config.validation)),
        "pretrain_dir": str(pretrain_root(out, plan.config)), "pretrain_runs": runs,
        "validation_rows": {spec: int(len(draw_rows(task, d, spec, plan.config.validation, 0).validation))
                            for spec in plan.sizes},
        "recipes": {m.choice.asked: {"ran": m.choice.recipe.label, "why": m.choice.why,
                                     "summary": m.choice.recipe.summary,
                                     "runs": m.runs}
                    for m in plan.methods.methods.values() if m.choice is not None}}))


def write_recipes(out: Path, plan: StudyPlan) -> None:
    """Each recipe as it runs here — the file it came from, and ``auto``'s choice with its reasons."""
    for method in plan.methods.methods.values():
        if method.choice is not None:
            recipe = method.choice.recipe
            text = (f"# {method.label}: {method.choice.why}\n"
                    + yaml.safe_dump({"asked": method.choice.asked, "why": method.choice.why,
                                      "recipe": recipe.model_dump(mode="json", by_alias=True, exclude_none=True)},
                                     sort_keys=False))
            (out / "recipes").mkdir(exist_ok=True)
            atomic_write_text(out / "recipes" / f"{method.choice.asked}.yaml", text)
