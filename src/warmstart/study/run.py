"""``warmstart study``: run the cells of a plan (``study/plan.py``) into a directory, resumably.

Every cell is an independent, seeded computation. Pretraining runs once per objective (or once per objective
and seed) in ``pretrain/<name>/`` — an ordinary ``warmstart pretrain`` run directory, resumed from its
checkpoint if a study was killed mid-pretraining — and its encoder is reused by every budget, strategy and
seed. A finished cell is written atomically to ``cells/<cell>.json`` and ``results.csv`` (one column per
metric of the task) is rebuilt from those files, in grid order, after every cell. Running the same command
again skips finished cells and ends with the same ``results.csv`` (wall-time columns aside) as an
uninterrupted run. The labeled rows of budget ``b`` and seed ``s`` are the task's split with that seed for
every method, so all rows at one (budget, seed) saw the same labels; ``labeled_hash`` lets one check.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.decomposition import PCA
from tqdm.auto import tqdm

from warmstart.baselines import BASELINES, BaselineData, baseline_inputs
from warmstart.checkpoint import atomic_write_text, save_tensors
from warmstart.config import StudyConfig, to_yaml
from warmstart.evaluate import embed
from warmstart.pipeline import finetune, pretrain
from warmstart.study.plan import Cell, StudyPlan, open_study_dir, plan_study

#: Columns before and after the task's metric columns.
LEADING = ["method", "kind", "objective", "strategy", "budget", "labels", "seed"]
TRAILING = ["wall_s", "images_per_s", "labeled_hash"]
#: Columns a study has only when some cell fills them: the swept setting, a private run's spent ε and δ.
OPTIONAL = ["setting", "epsilon", "delta"]
#: Columns that measure the machine, not the method: they differ between two runs of one study.
TIMING_COLUMNS = ("wall_s", "images_per_s")
EMBEDDING_FILE = "embedding.safetensors"
PRETRAIN_INFO = "pretrain_info.json"


def columns(task, rows: list[dict[str, Any]] = ()) -> list[str]:
    return [*LEADING, *task.metric_names, *TRAILING, *[c for c in OPTIONAL if any(c in r for r in rows)]]


def _labeled_hash(labeled: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(labeled, dtype=np.int64).tobytes()).hexdigest()[:12]


def _throughput(history: list[dict[str, Any]]) -> float:
    seconds = sum(r.get("seconds", 0.0) for r in history)
    examples = sum(r.get("seconds", 0.0) * r.get("examples_per_s", 0.0) for r in history)
    return round(examples / seconds, 1) if seconds else 0.0


def colour_values(task, data) -> tuple[np.ndarray, list[str]]:
    """What a test embedding map is coloured by: the class, the first target's value, or a tagged
    sentence's first entity type; and the class names (empty for a continuous value). A task may say
    otherwise (``Task.embedding_colours``)."""
    custom = task.embedding_colours(data)
    if custom is not None:
        return custom
    if task.name == "classify":
        return data.y_test.astype(np.float32), list(data.class_names)
    if task.name == "tag":
        first = [int((t[t > 0][0] - 1) // 2) if (t > 0).any() else data.num_classes for t in data.y_test]
        return np.array(first, np.float32), [*data.class_names, "(no entity)"]
    return np.asarray(data.y_test, np.float32).reshape(len(data.y_test), -1)[:, 0], []  # regress, rate, rank


class StudyRunner:
    """Runs the cells of one plan into ``out``; pretrained encoders are built once and kept in memory."""

    def __init__(self, plan: StudyPlan, out: Path, echo: Callable[[str], None] = print) -> None:
        self.plan, self.out, self.config, self.data, self.echo = plan, out, plan.config, plan.data, echo
        self.task = plan.task
        self.objectives: dict[str, torch.nn.Module] = {}  # pretrained objectives (encoder + heads) by run name
        self._inputs: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # baseline input kind -> (train, test)

    def pretrain_name(self, cell: Cell) -> tuple[str, int]:
        if self.config.pretrain_per_seed:
            return f"{cell.objective}-seed{cell.seed}", cell.seed
        return cell.objective, 0

    def objective_for(self, cell: Cell) -> torch.nn.Module:
        """The pretrained objective of ``cell`` (its ``.encoder`` for every strategy, all of it for ``joint``)."""
        name, seed = self.pretrain_name(cell)
        if name not in self.objectives:
            run_dir = self.out / "pretrain" / name
            cached = (run_dir / PRETRAIN_INFO).exists()
            self.echo(f"{'loading' if cached else 'pretraining'} {name} encoder in {run_dir}")
            started = time.perf_counter()
            result = pretrain(self.config.pretrain_config(cell.objective, seed), run_dir, resume=True, data=self.data)
            info = run_dir / PRETRAIN_INFO
            if not info.exists():  # first finish: the wall time of an uninterrupted pretraining
                last = result.history[-1] if result.history else {}
                atomic_write_text(info, json.dumps({
                    "objective": cell.objective, "seed": seed, "wall_s": round(time.perf_counter() - started, 2),
                    "images_per_s": _throughput(result.history), "final_loss": last.get("loss"),
                    **({"epsilon": result.privacy["epsilon"], "delta": result.privacy["delta"]}
                       if result.privacy else {})}))
            if not (run_dir / EMBEDDING_FILE).exists():
                self.save_embedding(result.encoder, run_dir / EMBEDDING_FILE, cell.objective)
            self.objectives[name] = result.objective
        return self.objectives[name]

    def save_embedding(self, encoder: torch.nn.Module, path: Path, objective: str) -> None:
        """A 2-D PCA map of the test split's features, so ``warmstart report`` never recomputes it."""
        features = embed(encoder, self.data.handler.prepare(self.data, encoder), self.data.x_test)
        pca = PCA(2, svd_solver="full")
        xy = pca.fit_transform(features).astype(np.float32)
        values, names = colour_values(self.task, self.data)
        save_tensors(path, {"xy": torch.from_numpy(xy), "y": torch.from_numpy(values)}, {
            "objective": objective, "explained_variance": pca.explained_variance_ratio_.round(4).tolist(),
            "class_names": names,
            "coloured_by": self.data.target_names[0] if not names and self.data.target_names else ""})

    def run_baseline(self, cell: Cell) -> tuple[dict, np.ndarray, float]:
        kind = BASELINES.get(cell.strategy).inputs
        if kind not in self._inputs:
            self._inputs[kind] = baseline_inputs(cell.strategy, self.task, self.data)
        x_train, x_test = self._inputs[kind]
        labeled, _ = self.task.split(self.data, cell.budget, cell.seed)
        started = time.perf_counter()
        predicted = BASELINES.get(cell.strategy).fit_predict(
            BaselineData(x_train, self.data.y_train, labeled, x_test, cell.seed,
                         self.data.handler.feature_groups(self.data)))
        speed = round(len(x_train) / max(time.perf_counter() - started, 1e-9), 1)
        return self.task.metrics(self.data, self.data.y_test, predicted), labeled, speed

    def finetune_cell(self, cell: Cell, out: Path | None = None):
        """Fine-tune ``cell``'s model as the study does (into the run directory ``out`` when given: the
        Explanations section re-runs a cell this way, with the same seed and settings)."""
        objective = self.objective_for(cell) if cell.kind == "pretrained" else None
        config = self.config.finetune_config(cell.strategy, cell.budget, cell.seed, cell.setting)
        return finetune(config, out, data=self.data, objective=objective,
                        encoder=objective.encoder if objective is not None else None)

    def run_cell(self, cell: Cell) -> dict[str, Any]:
        started = time.perf_counter()
        if cell.kind == "baseline":
            metrics, labeled, speed = self.run_baseline(cell)
        else:
            if cell.kind == "pretrained":
                self.objective_for(cell)
            started = time.perf_counter()  # pretraining is shared: it is timed on its own
            result = self.finetune_cell(cell)
            metrics, labeled, speed = result.metrics, result.labeled, _throughput(result.history)
            samples = self.task.report_samples(result.model, result.data)
            if samples is not None:  # what the task's report section draws (e.g. predicted masks)
                save_tensors(self.out / "cells" / f"{cell.key}.samples.safetensors",
                             {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in samples.items()}, {})
        row = {"method": cell.method, "kind": cell.kind, "objective": cell.objective, "strategy": cell.strategy,
               "budget": cell.budget, "labels": int(len(labeled)), "seed": cell.seed}
        row.update({name: round(float(metrics[name]), 6) for name in self.task.metric_names})
        row.update({"wall_s": round(time.perf_counter() - started, 3), "images_per_s": speed,
                    "labeled_hash": _labeled_hash(labeled)})
        if "confusion_matrix" in metrics:
            row["confusion_matrix"] = metrics["confusion_matrix"]
        if cell.setting:
            row["setting"] = cell.setting
        row.update({k: metrics[k] for k in ("epsilon", "delta") if k in metrics})
        return row


def results_csv(rows: list[dict[str, Any]], task) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns(task, rows), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _eta(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _write_info(out: Path, plan: StudyPlan) -> None:
    d, task = plan.data, plan.task
    metric = plan.config.metric or task.primary  # what the report ranks by
    atomic_write_text(out / "study_info.json", json.dumps({
        "data": d.name, "spec": d.spec, "modality": d.modality, "task": task.name, "primary": metric,
        "higher_is_better": task.higher_is_better_for(metric), "metrics": list(task.metric_names),
        "input_shape": list(d.input_shape), "class_names": d.class_names, "target_names": d.target_names,
        "n_train": int(len(d.y_train)), "n_test": int(len(d.y_test)), "budgets": plan.sizes,
        "baselines": plan.baselines}))


def run_study(
    config: StudyConfig, out: str | Path, *, data=None, after_cell: Callable[[Cell, dict], None] | None = None,
    echo: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run (or continue) the study ``config`` in ``out``; return the rows of ``results.csv``.

    ``after_cell(cell, row)`` runs after each newly finished cell is saved (tests use it to simulate a kill).
    """
    out = Path(out)
    plan = plan_study(config, data)
    open_study_dir(out, config)  # everything is checked: only now is anything written
    (out / "cells").mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "study.yaml", to_yaml(config))
    _write_info(out, plan)
    interactive = sys.stderr.isatty()
    runner = StudyRunner(plan, out, tqdm.write if interactive else echo)
    rows: dict[str, dict[str, Any]] = {}
    for cell in plan.cells:
        path = out / "cells" / f"{cell.key}.json"
        if path.exists():
            rows[cell.key] = json.loads(path.read_text())
    total, started, fresh = len(plan.cells), time.perf_counter(), 0
    bar = tqdm(total=total, initial=len(rows), desc="study", unit="cell", disable=not interactive, position=0)
    if rows:
        echo(f"resuming {out}: {len(rows)}/{total} cells already done")
    primary = config.metric or plan.task.primary
    for cell in plan.cells:
        if cell.key in rows:
            continue
        row = runner.run_cell(cell)
        atomic_write_text(out / "cells" / f"{cell.key}.json", json.dumps(row))
        rows[cell.key] = row
        done = [rows[c.key] for c in plan.cells if c.key in rows]
        atomic_write_text(out / "results.csv", results_csv(done, plan.task))
        fresh += 1
        eta = _eta((time.perf_counter() - started) / fresh * (total - len(rows)))
        line = (f"[{len(rows)}/{total}] {cell.method:<28} {cell.budget:<12} seed {cell.seed}: "
                f"{primary} {row[primary]:.4f}  ({row['wall_s']:.1f} s, ETA {eta})")
        bar.update(1)
        (tqdm.write if interactive else echo)(line)
        if after_cell is not None:
            after_cell(cell, row)
    bar.close()
    final = [rows[c.key] for c in plan.cells]
    atomic_write_text(out / "results.csv", results_csv(final, plan.task))
    if config.explain:
        from warmstart.explain.study import explain_study

        explain_study(runner, final)
    from warmstart.study.report import write_report

    write_report(out)
    return final
