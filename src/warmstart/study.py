"""``warmstart study``: the grid objective × strategy × label budget × seed, baselines beside it.

Every cell is an independent, seeded computation, so a study is a list of cells run in order:

* ``scratch`` (and any other strategy that starts from random weights) and the classical baselines
  at every budget and seed: the bars pretraining has to clear;
* ``objective+strategy`` for every pretrained strategy: pretraining runs once per objective (or once
  per objective and seed) in ``pretrain/<name>/`` — an ordinary ``warmstart pretrain`` run directory,
  resumed from its checkpoint if a study was killed mid-pretraining — and its encoder is reused by
  every budget, strategy and seed.

A finished cell is written atomically to ``cells/<cell>.json`` and ``results.csv`` is rebuilt from
those files, in grid order, after every cell. Running the same command again skips finished cells and
ends with the same ``results.csv`` (wall-time columns aside) as an uninterrupted run. The labeled
indices of budget ``b`` and seed ``s`` are ``LabelBudget.split(y_train, s)`` for every method, so all
rows at one (budget, seed) saw the same labels; ``labeled_hash`` in ``results.csv`` lets one check.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.decomposition import PCA
from tqdm.auto import tqdm

from warmstart.baselines import BASELINES
from warmstart.checkpoint import atomic_write_text, save_tensors
from warmstart.config import StudyConfig, read_yaml, to_yaml
from warmstart.data import DataBundle, LabelBudget, load_data
from warmstart.errors import UserError
from warmstart.evaluate import classification_metrics, embed
from warmstart.objectives import OBJECTIVES
from warmstart.pipeline import build_encoder, finetune, pretrain
from warmstart.text_pipeline import text_ready
from warmstart.strategies import STRATEGIES

COLUMNS = ["method", "kind", "objective", "strategy", "budget", "labels", "seed", "accuracy", "macro_f1",
           "wall_s", "images_per_s", "labeled_hash"]
#: Columns that measure the machine, not the method: they differ between two runs of one study.
TIMING_COLUMNS = ("wall_s", "images_per_s")
#: Settings that choose which cells exist; the rest decide what a cell computes and must not change
#: between runs sharing one directory.
GRID_KEYS = ("objectives", "strategies", "baselines", "labels", "seeds")
EMBEDDING_FILE = "embedding.safetensors"
PRETRAIN_INFO = "pretrain_info.json"


@dataclass(frozen=True)
class Cell:
    """One row of ``results.csv``. ``kind``: "pretrained", "scratch" (random init) or "baseline"."""

    kind: str
    objective: str  # "none" unless pretrained
    strategy: str  # the fine-tune strategy, or the baseline's name
    budget: str  # canonical LabelBudget spec, e.g. "count=20"
    seed: int

    @property
    def method(self) -> str:
        return f"{self.objective}+{self.strategy}" if self.kind == "pretrained" else self.strategy

    @property
    def key(self) -> str:
        return f"{self.method}__{self.budget}__seed{self.seed}".replace("=", "-")


@dataclass
class StudyPlan:
    config: StudyConfig
    data: DataBundle
    cells: list[Cell]
    sizes: dict[str, int]  # budget spec -> number of labels it keeps


def plan_study(config: StudyConfig, data: DataBundle | None = None) -> StudyPlan:
    """Check everything a study will need — data, budgets, names, options — and list its cells."""
    data = data if data is not None else load_data(config.data, config.data_dir)
    sizes = {spec: LabelBudget.parse(spec).size(data.y_train) for spec in config.labels}
    for name in config.baselines:
        BASELINES.get(name)
    encoder = build_encoder(config.encoder, data.input_shape, config.encoder_args, data.modality, corpus=data.x_train)
    for objective in config.objectives:
        cls = OBJECTIVES.get(objective)
        if data.modality not in cls.modalities:
            raise UserError(f"objective '{objective}' does not apply to {data.modality} data; "
                            f"it works on: {', '.join(cls.modalities)}")
        if cls.requires_image_encoder and not type(encoder).image_only:
            raise UserError(f"objective '{objective}' needs an image encoder; use --encoder cnn or resnet")
        OBJECTIVES.build(objective, encoder, **config.pretrain_config(objective, 0).objective_args)
    random_init, pretrained = ["scratch"], []
    for strategy in config.strategies:
        args = config.finetune_config(strategy, config.labels[0], 0).strategy_args
        STRATEGIES.build(strategy, **args)
        if STRATEGIES.get(strategy).load_pretrained:
            pretrained.append(strategy)
        elif strategy not in random_init:
            random_init.append(strategy)
    grid = [(budget, seed) for budget in config.labels for seed in range(config.seeds)]
    cells = [Cell("baseline", "none", name, b, s) for name in config.baselines for b, s in grid]
    cells += [Cell("scratch", "none", strategy, b, s) for strategy in random_init for b, s in grid]
    # Grouped by pretrained encoder, so each is built (or loaded) once and then reused.
    for objective in config.objectives:
        for seed_group in (range(config.seeds) if config.pretrain_per_seed else [None]):
            cells += [Cell("pretrained", objective, strategy, b, s) for strategy in pretrained for b, s in grid
                      if seed_group is None or s == seed_group]
    return StudyPlan(config, data, cells, sizes)


def open_study_dir(out: Path, config: StudyConfig) -> None:
    """Refuse a directory that holds something else, or a study whose cells were computed differently."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a directory path")
    if not (out.is_dir() and any(out.iterdir())):
        return
    if not (out / "study.yaml").is_file():
        raise UserError(f"--out {out} already holds something that is not a study; choose another --out")
    old = {k: v for k, v in read_yaml(out / "study.yaml").items() if k not in GRID_KEYS}
    new = {k: v for k, v in config.model_dump(mode="json").items() if k not in GRID_KEYS}
    changed = [k for k in new if old.get(k) != new[k]]
    if changed:
        raise UserError(f"--out {out} holds a study with different settings ({', '.join(changed)}); rerun with "
                        "its settings (see its study.yaml) or choose another --out")


def _flat(data: DataBundle, x: np.ndarray) -> np.ndarray:
    """``(N, D)`` float32 model-unit inputs for the scikit-learn baselines (a new array, never a view)."""
    return np.asarray(x, dtype=np.float32).reshape(len(x), -1) * np.float32(data.scale)


def baseline_features(data: DataBundle) -> tuple[np.ndarray, np.ndarray]:
    """Train and test inputs for the scikit-learn baselines. Text becomes TF-IDF reduced to 256 dimensions
    (fewer for a small vocabulary) by truncated SVD, both fit on the training documents (labels unused), so
    every baseline gets dense rows."""
    if data.modality != "text":
        return _flat(data, data.x_train), _flat(data, data.x_test)
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    tfidf = TfidfVectorizer(sublinear_tf=True, min_df=2).fit(list(data.x_train))
    # A small corpus has fewer than 256 terms; SVD needs fewer components than features.
    dims = min(256, len(tfidf.vocabulary_) - 1)
    svd = TruncatedSVD(dims, random_state=0).fit(tfidf.transform(list(data.x_train)))
    return tuple(svd.transform(tfidf.transform(list(x))).astype(np.float32) for x in (data.x_train, data.x_test))


def _labeled_hash(labeled: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(labeled, dtype=np.int64).tobytes()).hexdigest()[:12]


def _throughput(history: list[dict[str, Any]]) -> float:
    seconds = sum(r.get("seconds", 0.0) for r in history)
    examples = sum(r.get("seconds", 0.0) * r.get("examples_per_s", 0.0) for r in history)
    return round(examples / seconds, 1) if seconds else 0.0


class StudyRunner:
    """Runs the cells of one plan into ``out``; pretrained encoders are built once and kept in memory."""

    def __init__(self, plan: StudyPlan, out: Path, echo: Callable[[str], None] = print) -> None:
        self.plan, self.out, self.config, self.data, self.echo = plan, out, plan.config, plan.data, echo
        self.encoders: dict[str, torch.nn.Module] = {}
        self._flat: tuple[np.ndarray, np.ndarray] | None = None

    def pretrain_name(self, cell: Cell) -> tuple[str, int]:
        if self.config.pretrain_per_seed:
            return f"{cell.objective}-seed{cell.seed}", cell.seed
        return cell.objective, 0

    def encoder_for(self, cell: Cell) -> torch.nn.Module:
        name, seed = self.pretrain_name(cell)
        if name not in self.encoders:
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
                    "images_per_s": _throughput(result.history), "final_loss": last.get("loss")}))
            if not (run_dir / EMBEDDING_FILE).exists():
                self.save_embedding(result.encoder, run_dir / EMBEDDING_FILE, cell.objective)
            self.encoders[name] = result.encoder
        return self.encoders[name]

    def save_embedding(self, encoder: torch.nn.Module, path: Path, objective: str) -> None:
        """A 2-D PCA map of the test split's features, so ``warmstart report`` never recomputes it."""
        features = embed(encoder, text_ready(self.data, encoder, labels_needed=False), self.data.x_test)
        pca = PCA(2, svd_solver="full")
        xy = pca.fit_transform(features).astype(np.float32)
        save_tensors(path, {"xy": torch.from_numpy(xy), "y": torch.from_numpy(self.data.y_test)}, {
            "objective": objective, "explained_variance": pca.explained_variance_ratio_.round(4).tolist(),
            "class_names": self.data.class_names})

    def run_cell(self, cell: Cell) -> dict[str, Any]:
        started = time.perf_counter()
        if cell.kind == "baseline":
            if self._flat is None:
                self._flat = baseline_features(self.data)
            x_train, x_test = self._flat
            labeled, _ = LabelBudget.parse(cell.budget).split(self.data.y_train, cell.seed)
            y = np.full(len(x_train), -1, dtype=np.int64)
            y[labeled] = self.data.y_train[labeled]
            fit_started = time.perf_counter()
            predicted = BASELINES.get(cell.strategy)(x_train, y, x_test, cell.seed)
            metrics = classification_metrics(self.data.y_test, predicted, self.data.num_classes)
            speed = round(len(x_train) / max(time.perf_counter() - fit_started, 1e-9), 1)
        else:
            encoder = self.encoder_for(cell) if cell.kind == "pretrained" else None
            started = time.perf_counter()  # pretraining is shared: it is timed on its own
            config = self.config.finetune_config(cell.strategy, cell.budget, cell.seed)
            result = finetune(config, data=self.data, encoder=encoder)
            metrics, labeled, speed = result.metrics, result.labeled, _throughput(result.history)
        return {
            "method": cell.method, "kind": cell.kind, "objective": cell.objective, "strategy": cell.strategy,
            "budget": cell.budget, "labels": int(len(labeled)), "seed": cell.seed,
            "accuracy": round(float(metrics["accuracy"]), 6), "macro_f1": round(float(metrics["macro_f1"]), 6),
            "wall_s": round(time.perf_counter() - started, 3), "images_per_s": speed,
            "labeled_hash": _labeled_hash(labeled), "confusion_matrix": metrics["confusion_matrix"],
        }


def results_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _eta(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def run_study(
    config: StudyConfig, out: str | Path, *, data: DataBundle | None = None,
    after_cell: Callable[[Cell, dict], None] | None = None, echo: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run (or continue) the study ``config`` in ``out``; return the rows of ``results.csv``.

    ``after_cell(cell, row)`` runs after each newly finished cell is saved (tests use it to simulate a kill).
    """
    out = Path(out)
    plan = plan_study(config, data)
    open_study_dir(out, config)  # everything is checked: only now is anything written
    (out / "cells").mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "study.yaml", to_yaml(config))
    d = plan.data
    atomic_write_text(out / "study_info.json", json.dumps({
        "data": d.name, "modality": d.modality, "input_shape": list(d.input_shape), "class_names": d.class_names,
        "n_train": int(len(d.y_train)), "n_test": int(len(d.y_test)), "budgets": plan.sizes}))
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
    for cell in plan.cells:
        if cell.key in rows:
            continue
        row = runner.run_cell(cell)
        atomic_write_text(out / "cells" / f"{cell.key}.json", json.dumps(row))
        rows[cell.key] = row
        done = [rows[c.key] for c in plan.cells if c.key in rows]
        atomic_write_text(out / "results.csv", results_csv(done))
        fresh += 1
        remaining = total - len(rows)
        eta = _eta((time.perf_counter() - started) / fresh * remaining)
        line = (f"[{len(rows)}/{total}] {cell.method:<28} {cell.budget:<12} seed {cell.seed}: "
                f"accuracy {row['accuracy']:.4f}  ({row['wall_s']:.1f} s, ETA {eta})")
        bar.update(1)
        (tqdm.write if interactive else echo)(line)
        if after_cell is not None:
            after_cell(cell, row)
    bar.close()
    final = [rows[c.key] for c in plan.cells]
    atomic_write_text(out / "results.csv", results_csv(final))
    from warmstart.report import write_report

    write_report(out)
    return final
