"""``warmstart study``: run the cells of a plan (``study/plan.py``) into a directory, resumably.

Every cell is an independent, seeded computation. Pretraining runs once per run label (or once per label
and seed) in ``pretrain/<name>/`` — an ordinary ``warmstart pretrain`` run directory, resumed from its
checkpoint if a study was killed mid-pretraining — and its encoder is reused by every budget, strategy and
seed. A fine-tuning cell trains in ``runs/<cell>/`` (an ordinary ``warmstart finetune`` run directory, so a
cell killed mid-training resumes from its last epoch); once finished, its row is written atomically to
``cells/<cell>.json`` and ``results.csv`` (one column per metric of the task) is rebuilt from those files,
in grid order. Running the same command again skips finished cells and ends with the same ``results.csv``
(timing columns aside) as an uninterrupted run. The labeled rows of budget ``b`` and seed ``s`` are the
task's split with that seed for every method, so all rows at one (budget, seed) saw the same labels
(``labeled_hash`` lets one check); so are the validation rows, which no method trains on and every method
is scored on (``val_<metric>``). The test split is read only by each cell's final evaluation and, after
the last cell, by the report's test embedding maps.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

from warmstart.baselines import BASELINES, BaselineData, baseline_inputs
from warmstart.checkpoint import atomic_write_text, save_tensors
from warmstart.config import to_yaml
from warmstart.study_config import StudyConfig
from warmstart.data.bundle import final_evaluation
from warmstart.data.validation import Rows, draw_rows
from warmstart.engine import CHECKPOINT
from warmstart.errors import UserError
from warmstart.pipeline import finetune, pretrain
from warmstart.rundir import load_run
from warmstart.selection import BEST_FILE
from warmstart.study import executors, locks
from warmstart.study.embeddings import EMBEDDING_FILE, save_embedding
from warmstart.study.files import cell_path, pretrain_root, results_csv, write_info, write_recipes
from warmstart.study.plan import Cell, StudyPlan, open_study_dir, plan_study

#: Steps between a cell's checkpoints unless finetune.checkpoint_every says otherwise (the end always is one).
CELL_CHECKPOINT_STEPS = 200
PRETRAIN_INFO = "pretrain_info.json"


def _labeled_hash(labeled: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(labeled, dtype=np.int64).tobytes()).hexdigest()[:12]


def _throughput(history: list[dict[str, Any]]) -> float:
    seconds = sum(r.get("seconds", 0.0) for r in history)
    examples = sum(r.get("seconds", 0.0) * r.get("examples_per_s", 0.0) for r in history)
    return round(examples / seconds, 1) if seconds else 0.0


def _same_settings(run_dir: Path, config) -> None:
    """Refuse to reuse a (shared) pretraining directory that was made with other settings."""
    saved = run_dir / "config.yaml"
    if saved.is_file():
        old = yaml.safe_load(saved.read_text()) or {}
        new = config.model_dump(mode="json")
        changed = [k for k in new if k not in ("data", "threads", "device") and old.get(k) != new[k]]
        if changed:
            raise UserError(f"{run_dir} holds a pretraining run with other settings ({', '.join(changed)}); "
                            "delete it, or give this study another pretrain_dir")


class StudyRunner:
    """Runs the cells of one plan into ``out``; pretrained encoders are built once and kept in memory."""

    def __init__(self, plan: StudyPlan, out: Path, echo: Callable[[str], None] = print) -> None:
        self.plan, self.out, self.config, self.data, self.echo = plan, out, plan.config, plan.data, echo
        self.task = plan.task
        # Pretrained objectives (encoder + heads: ``joint`` keeps training them) by run directory name.
        self.objectives: dict[str, torch.nn.Module] = {}
        self._inputs: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # baseline input kind -> (train, test)
        self.pretrain_root = pretrain_root(out, plan.config)

    def run_dir(self, label: str, seed: int) -> tuple[Path, int]:
        """Where pretraining ``label`` for a cell of ``seed`` lives, and the seed it pretrains with."""
        if self.config.pretrain_per_seed:
            return self.pretrain_root / f"{label}-seed{seed}", seed
        return self.pretrain_root / label, 0

    def used_runs(self) -> list[str]:
        """The directory names of every pretraining run this study's cells use."""
        seeds = range(self.config.seed_start, self.config.seed_start + self.config.seeds)
        return sorted({self.run_dir(label, seed)[0].name for label in self.plan.methods.pretrainings for seed in seeds})

    def objective_of(self, label: str, seed: int) -> torch.nn.Module:
        """Pretraining ``label`` (trained, resumed or loaded), its objective kept for the next cells."""
        run_dir, pre_seed = self.run_dir(label, seed)
        if run_dir.name not in self.objectives:
            with locks.pretraining(run_dir, self.echo):  # another study sharing pretrain_dir may be training it
                self.objectives[run_dir.name] = self._pretrain(label, run_dir, pre_seed)
        return self.objectives[run_dir.name]

    def _pretrain(self, label: str, run_dir: Path, pre_seed: int) -> torch.nn.Module:
        """Train, resume or load pretraining ``label`` in ``run_dir``; its first finish writes its info."""
        cached = (run_dir / PRETRAIN_INFO).exists()
        self.echo(f"{'loading' if cached else 'pretraining'} {run_dir.name} encoder in {run_dir}")
        started, cpu = time.perf_counter(), time.process_time()
        config = self.plan.methods.pretrainings[label].config(self.config, pre_seed, len(self.data.x_train))
        _same_settings(run_dir, config)
        result = pretrain(config, run_dir, resume=True, data=self.data)
        info = run_dir / PRETRAIN_INFO
        if not info.exists():  # first finish: the wall time of an uninterrupted pretraining
            last = result.history[-1] if result.history else {}
            atomic_write_text(info, json.dumps({
                "objective": config.objective, "label": label, "seed": pre_seed, "epochs": config.epochs,
                "wall_s": round(time.perf_counter() - started, 2),
                # summed over the epochs' records, so a pretraining resumed after a kill counts all of them
                "cpu_s": round(sum(r.get("cpu_s", 0.0) for r in result.history) or time.process_time() - cpu, 2),
                "images_per_s": _throughput(result.history), "final_loss": last.get("loss"),
                **({"epsilon": result.privacy["epsilon"], "delta": result.privacy["delta"]}
                   if result.privacy else {})}))
        return result.objective

    def save_embeddings(self) -> None:
        """A 2-D PCA map of the test split's features per pretraining run, so ``warmstart report`` never
        recomputes it; made after the last cell (it reads the test split)."""
        for run_dir in (self.pretrain_root / name for name in self.used_runs()):
            if (run_dir / PRETRAIN_INFO).exists() and not (run_dir / EMBEDDING_FILE).exists():
                kept = self.objectives.get(run_dir.name)
                encoder = kept.encoder if kept is not None else load_run(run_dir, "encoder")[0]
                label = json.loads((run_dir / PRETRAIN_INFO).read_text()).get("label", run_dir.name)
                save_embedding(encoder, self.data, self.task, run_dir / EMBEDDING_FILE, label)

    def rows(self, cell: Cell) -> Rows:
        return draw_rows(self.task, self.data, cell.budget, self.config.validation, cell.seed)

    def run_baseline(self, cell: Cell, rows: Rows) -> tuple[dict, float | None, int, float]:
        """Fit on the labeled rows with the validation rows left out of the pool; predict the validation rows
        and then, as the final evaluation, the test split."""
        with final_evaluation():  # the flat features of both splits are computed once, test rows included
            kind = BASELINES.get(cell.strategy).inputs
            if kind not in self._inputs:
                self._inputs[kind] = baseline_inputs(cell.strategy, self.task, self.data)
            x_train, x_test = self._inputs[kind]
            keep = np.setdiff1d(np.arange(len(x_train)), rows.validation)
            x_eval = np.concatenate([x_train[rows.validation], x_test]) if len(rows.validation) else x_test
            started = time.perf_counter()
            predicted = BASELINES.get(cell.strategy).fit_predict(BaselineData(
                x_train[keep], self.data.y_train[keep], np.searchsorted(keep, rows.labeled), x_eval, cell.seed,
                self.data.handler.feature_groups(self.data)))
            speed = round(len(x_train) / max(time.perf_counter() - started, 1e-9), 1)
            n_val = len(rows.validation)
            metrics = self.task.metrics(self.data, self.data.y_test, predicted[n_val:])
        val = (float(self.task.metrics(self.data, self.data.y_train[rows.validation], predicted[:n_val])
                     [self.task.primary]) if n_val else None)
        return metrics, val, len(rows.labeled), speed

    def finetune_cell(self, cell: Cell, out: Path | None = None, resume: bool = False):
        """Fine-tune ``cell``'s method as the study does, into the run directory ``out`` (the Explanations
        section re-runs a cell this way, with the same seed, rows and settings)."""
        method = self.plan.method(cell)
        budget = len(self.rows(cell).budget)
        _, start, features_from = method.at(budget)
        objective = self.objective_of(start, cell.seed) if start else None
        runs = {label: str(self.run_dir(label, cell.seed)[0]) for label in features_from}
        config = method.config(self.config, cell.budget, budget, cell.seed, len(self.data.x_train), runs,
                               cell.setting)
        if resume and not config.checkpoint_every:  # a cell of a few seconds restarts; a long one resumes
            config = config.model_copy(update={"checkpoint_every": CELL_CHECKPOINT_STEPS})
        return finetune(config, out, resume=resume, data=self.data, objective=objective,
                        encoder=objective.encoder if objective is not None else None)

    def run_finetune(self, cell: Cell, rows: Rows) -> tuple[dict, float | None, int, float, dict]:
        """Fine-tune the cell's method in ``runs/<cell>/`` (resumed if a kill left it half-done)."""
        method = self.plan.method(cell)
        run_dir = self.out / "runs" / cell.key
        result = self.finetune_cell(cell, run_dir, resume=True)
        for leftover in (CHECKPOINT, BEST_FILE):  # the finished model stays; the resume state is spent
            (run_dir / leftover).unlink(missing_ok=True)
        with final_evaluation():  # what the task's report section draws (e.g. predicted masks) reads test rows
            samples = self.task.report_samples(result.model, result.data)
        if samples is not None:
            save_tensors(self.out / "cells" / f"{cell.key}.samples.safetensors",
                         {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in samples.items()}, {})
        chosen = result.validation or {}
        extra = {"validation": chosen} if chosen else {}
        if method.choice is not None:
            extra["recipe"] = {"asked": method.choice.asked, "ran": method.choice.recipe.label,
                               "why": method.choice.why}
        return result.metrics, chosen.get("score"), len(rows.labeled), _throughput(result.history), extra

    def pretrainings(self, cell: Cell, rows: Rows | None = None) -> list[str]:
        """The labels of the pretraining runs ``cell`` starts from or reads features of (none for baselines)."""
        if cell.kind == "baseline":
            return []
        _, start, features_from = self.plan.method(cell).at(len((rows or self.rows(cell)).budget))
        return [label for label in (start, *features_from) if label]

    def run_cell(self, cell: Cell) -> dict[str, Any]:
        started, cpu = time.perf_counter(), time.process_time()
        rows = self.rows(cell)
        extra: dict[str, Any] = {}
        if cell.kind == "baseline":
            metrics, val, trained, speed = self.run_baseline(cell, rows)
        else:
            for label in self.pretrainings(cell, rows):  # pretraining is shared: it is timed on its own
                self.objective_of(label, cell.seed)
            started, cpu = time.perf_counter(), time.process_time()
            metrics, val, trained, speed, extra = self.run_finetune(cell, rows)
        row = {"method": cell.method, "kind": cell.kind, "objective": cell.objective, "strategy": cell.strategy,
               "budget": cell.budget, "labels": int(len(rows.budget)), "seed": cell.seed}
        row.update({name: round(float(metrics[name]), 6) for name in self.task.metric_names})
        row[f"val_{self.task.primary}"] = None if val is None else round(val, 6)  # an empty cell in results.csv
        row.update({"val_rows": int(len(rows.validation)), "train_labels": int(trained),
                    "wall_s": round(time.perf_counter() - started, 3), "cpu_s": round(time.process_time() - cpu, 3),
                    "images_per_s": speed, "labeled_hash": _labeled_hash(rows.budget)})
        row.update({k: metrics[k] for k in ("confusion_matrix", "per_class_iou") if k in metrics})
        if cell.setting:
            row["setting"] = cell.setting
        row.update({k: metrics[k] for k in ("epsilon", "delta") if k in metrics})
        return {**row, **extra}


def _eta(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def run_study(
    config: StudyConfig, out: str | Path, *, data=None, after_cell: Callable[[Cell, dict], None] | None = None,
    echo: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run (or continue) the study ``config`` in ``out``; return the rows of ``results.csv``.

    With ``config.workers`` > 1 or another ``config.executor`` the cells run on worker processes
    (``study/executors.py``); ``results.csv`` is the same either way (timing columns aside).
    ``after_cell(cell, row)`` runs after each newly finished cell is saved (tests use it to simulate a kill).
    """
    out = Path(out)
    plan = plan_study(config, data)
    executors.check(config)  # a missing extra or a bad executor setting stops here too
    open_study_dir(out, config)  # everything is checked: only now is anything written
    (out / "cells").mkdir(parents=True, exist_ok=True)
    with locks.locked(out):
        return _run_locked(plan, out, data, after_cell, echo)


def _run_locked(plan: StudyPlan, out: Path, data, after_cell, echo) -> list[dict[str, Any]]:
    config = plan.config
    atomic_write_text(out / "study.yaml", to_yaml(config))
    interactive = sys.stderr.isatty()
    runner = StudyRunner(plan, out, tqdm.write if interactive else echo)
    write_info(out, plan, runner.used_runs())
    write_recipes(out, plan)
    rows: dict[str, dict[str, Any]] = {}
    for cell in plan.cells:
        path = cell_path(out, cell)
        if path.exists():
            rows[cell.key] = json.loads(path.read_text())
    total, started, fresh = len(plan.cells), time.perf_counter(), 0
    bar = tqdm(total=total, initial=len(rows), desc="study", unit="cell", disable=not interactive, position=0)
    if rows:
        echo(f"resuming {out}: {len(rows)}/{total} cells already done")
    primary = config.metric or plan.task.primary

    def finished(cell: Cell, row: dict[str, Any]) -> None:
        """A new row (already in ``cells/``): ``results.csv`` rebuilt in grid order, a progress line."""
        nonlocal fresh
        rows[cell.key] = row
        done = [rows[c.key] for c in plan.cells if c.key in rows]
        atomic_write_text(out / "results.csv", results_csv(done, plan.task))
        fresh += 1
        eta = _eta((time.perf_counter() - started) / fresh * (total - len(rows)))
        val = f", val {row[f'val_{primary}']:.4f}" if row.get(f"val_{primary}") is not None else ""
        line = (f"[{len(rows)}/{total}] {cell.method:<28} {cell.budget:<12} seed {cell.seed}: "
                f"{primary} {row[primary]:.4f}{val}  ({row['wall_s']:.1f} s, ETA {eta})")
        bar.update(1)
        (tqdm.write if interactive else echo)(line)
        if after_cell is not None:
            after_cell(cell, row)

    todo = [cell for cell in plan.cells if cell.key not in rows]
    if executors.parallel(config):  # the workers write each cell's row; ``finished`` sees it come back
        executors.run_parallel(runner, todo, data, finished, echo)
    else:
        for cell in todo:
            row = runner.run_cell(cell)
            atomic_write_text(cell_path(out, cell), json.dumps(row))
            finished(cell, row)
    bar.close()
    runner.save_embeddings()
    final = [rows[c.key] for c in plan.cells]
    atomic_write_text(out / "results.csv", results_csv(final, plan.task))
    if config.explain:
        from warmstart.explain.study import explain_study

        with final_evaluation():  # the explanations are of test rows, after every choice is made
            explain_study(runner, final)
    from warmstart.study.report import write_report

    write_report(out)
    return final
