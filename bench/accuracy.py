"""Accuracy benchmark (not a test): Fashion-MNIST with 100 and 1000 balanced labels, seeds 0-2.

Every row sees the same labeled indices (``LabelBudget("count=N").split(y_train, seed)``), all 60k
training images as the unlabeled pool (labels withheld) and the 10k test set. Rows:

- scikit-learn on pixels: LogisticRegression, LabelSpreading and SelfTrainingClassifier (the last two on
  a 50-d PCA of the pixels, fitted on the unlabeled pool, so a 60k-node kNN graph fits in minutes);
- ``scratch-mlp`` / ``scratch-cnn``: the two encoders from random init, with the weak augmentation that
  ``full`` gets;
- per pretraining (every objective, SimCLR on both encoders): ``linear`` (logistic regression on the
  frozen features) and ``full``; for the SimCLR pretrainings also ``selftrain`` (label spreading over the
  pretrained features, distilled into a student over the pool) and ``joint``, for ``simclr-mlp``
  ``labelspread`` (LabelSpreading over the L2-normalised features: the student's targets, scored alone), and
  for ``simclr-cnn`` ``selftrain-ens`` (the CNN as student of a probe and label spreading over both SimCLR
  encoders' features) and ``selftrain-ens-wide`` (the same targets, a CNN twice as wide from random init).

The recipes (pretraining settings, each row's strategy and settings) are in ``accuracy_recipes.py``.

Pretraining runs once per objective into ``bench/cache/`` and is reused across budgets, strategies and
seeds; each finished cell is appended to ``bench/cache/accuracy[-quick]/cells.jsonl``, so a rerun (or a
run that was stopped) only computes what is missing. The table (mean ± std over the seeds that finished,
wall seconds, training images/s) goes to stdout and to the ``accuracy`` section of BENCHMARKS.md.

    python bench/accuracy.py            # the benchmark
    python bench/accuracy.py --quick    # smoke check: 3k-image pool, 1 seed, 100 labels, seconds of training
    python bench/accuracy.py --only sklearn-logreg,scratch   # a subset of rows (cells are still cached)
    python bench/accuracy.py --table    # write the table of what the cache holds (after a stopped run)
    python bench/accuracy.py --groups simclr-cnn,sklearn &  python bench/accuracy.py --groups scratch,simclr-mlp,...
                                        # disjoint groups in parallel processes (one core each), then --table
    python bench/accuracy.py --only simclr-cnn+selftrain-ens --seeds 2 --budgets 1000   # chosen cells only
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import yaml
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize
from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier
from threadpoolctl import threadpool_limits

import common
from accuracy_recipes import (
    BUDGETS, FINETUNE, POOL_PRETRAININGS, PRETRAIN, SCRATCH, SEEDS, STRATEGY_ROWS, THREADS,
)

ROOT = common.ROOT  # common has put src/ on the path

from warmstart import pipeline  # noqa: E402
from warmstart.config import FinetuneConfig, PretrainConfig  # noqa: E402
from warmstart.data import DataBundle  # noqa: E402
from warmstart.data.sources import load_data  # noqa: E402
from warmstart.data.splits import LabelBudget  # noqa: E402
from warmstart.probes import LinearProbe  # noqa: E402
from warmstart.rundir import load_run  # noqa: E402
from warmstart.evaluate import embed  # noqa: E402

# The files these figures depend on (``make bench-check`` flags the section when one changes).
MEASURES = [
    "src/warmstart/engine.py",
    "src/warmstart/runtime.py",
    "src/warmstart/pipeline.py",
    "src/warmstart/models/encoders.py",
    "src/warmstart/data/bundle.py",
    "bench/accuracy_recipes.py",
    "src/warmstart/config.py",
    "src/warmstart/models/heads.py",
    "src/warmstart/augment.py",
    "src/warmstart/evaluate.py",
    "src/warmstart/health.py",
    "src/warmstart/data/idx.py",
    "src/warmstart/data/sources.py",
    "src/warmstart/data/splits.py",
    "src/warmstart/strategies/base.py",
    "src/warmstart/strategies/joint.py",
    "src/warmstart/strategies/selftrain.py",
    "src/warmstart/objectives/base.py",
    "src/warmstart/objectives/autoencoder.py",
    "src/warmstart/objectives/denoising.py",
    "src/warmstart/objectives/gan.py",
    "src/warmstart/objectives/masked.py",
    "src/warmstart/objectives/simclr.py",
    "src/warmstart/objectives/ntxent_loss.py",
    "src/warmstart/objectives/vae.py",
]


def sklearn_rows(data: DataBundle, labeled: np.ndarray, cache: dict) -> dict[str, float]:
    """The three scikit-learn baselines on the same labeled rows; the PCA is computed once."""
    x_train, x_test = data.batch(data.x_train).flatten(1).numpy(), data.batch(data.x_test).flatten(1).numpy()
    if "pca" not in cache:
        pca = PCA(50, random_state=0).fit(x_train)
        cache["pca"] = (pca.transform(x_train), pca.transform(x_test))
    p_train, p_test = cache["pca"]
    y = np.full(len(x_train), -1)
    y[labeled] = data.y_train[labeled]
    out = {}
    logreg = LogisticRegression(max_iter=2000).fit(x_train[labeled], y[labeled])
    out["sklearn-logreg"] = logreg.score(x_test, data.y_test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spread = LabelSpreading(kernel="knn", n_neighbors=10, max_iter=100).fit(p_train, y)
        out["sklearn-labelspreading"] = spread.score(p_test, data.y_test)
        selftrain = SelfTrainingClassifier(LogisticRegression(max_iter=1000)).fit(p_train, y)
        out["sklearn-selftraining"] = selftrain.score(p_test, data.y_test)
    return out


def pretrained_run(name: str, data: DataBundle, cache_dir: Path, quick: bool) -> tuple[Path, dict]:
    """Pretrain ``name`` once into the cache (a finished run is reused; a stopped one resumes)."""
    settings = {**PRETRAIN[name], "data": "fashion-mnist", "threads": THREADS}
    config = PretrainConfig(**settings)
    run_dir = cache_dir / f"pretrain-{name}"
    saved = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").exists() else None
    if saved is not None and any(saved.get(k) != v for k, v in config.model_dump(mode="json").items() if k in settings):
        sys.exit(f"{run_dir} was pretrained with other settings; delete it to pretrain again")
    if (run_dir / pipeline.ENCODER_FILE).exists():
        print(f"[{name}] reusing cached pretraining {run_dir}", flush=True)
    else:
        print(f"[{name}] pretraining -> {run_dir}", flush=True)
        started = time.perf_counter()
        pipeline.pretrain(config, run_dir, resume=run_dir.exists(), data=data)
        (run_dir / "wall_seconds.txt").write_text(f"{time.perf_counter() - started:.1f}\n")
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    wall = (run_dir / "wall_seconds.txt").read_text().strip() if (run_dir / "wall_seconds.txt").exists() else None
    stats = {"seconds": float(wall) if wall else sum(h["seconds"] for h in history),
             "images_per_s": float(np.median([h["examples_per_s"] for h in history])), "epochs": len(history),
             "loss": history[-1]["loss"]}
    return run_dir, stats


def run_cell(row: str, budget: int, seed: int, data: DataBundle, runs: dict, state: dict) -> dict:
    """One (row, budget, seed) cell → {"accuracy", "seconds", "images_per_s"}."""
    labeled, _ = LabelBudget.parse(f"count={budget}").split(data.y_train, seed)
    started = time.perf_counter()
    if row.startswith("sklearn-"):
        key = ("sklearn", budget, seed)
        if key not in state:
            state[key] = sklearn_rows(data, labeled, state)
        return {"accuracy": float(state[key][row]), "seconds": None, "images_per_s": None}
    objective, _, strategy = row.partition("+") if "+" in row else ("none", "", "scratch")
    if strategy in ("linear", "labelspread"):
        z_train, z_test = features(objective, data, runs, state)
        y = np.full(len(z_train), -1)
        y[labeled] = data.y_train[labeled]
        if strategy == "linear":  # the library's probe, standardised with the pool's statistics
            probe = LinearProbe("logistic").fit(z_train[labeled], y[labeled], data.num_classes, scale_from=z_train)
            accuracy = float((probe.predict(z_test) == data.y_test).mean())
            return {"accuracy": accuracy, "seconds": time.perf_counter() - started, "images_per_s": None}
        else:  # cosine neighbours: the geometry the contrastive loss shapes
            z_train, z_test = normalize(z_train), normalize(z_test)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = LabelSpreading(kernel="knn", n_neighbors=10, max_iter=100).fit(z_train, y)
        return {"accuracy": float(model.score(z_test, data.y_test)), "seconds": time.perf_counter() - started,
                "images_per_s": None}
    strategy, strategy_args, settings = STRATEGY_ROWS[strategy]
    # Per-budget arguments take this budget's value (100 labels' for a budget the row does not list, as FINETUNE).
    strategy_args = {key: value.get(budget, value[100]) if isinstance(value, dict) else value
                     for key, value in strategy_args.items()}
    if "features_from" in strategy_args:
        strategy_args["features_from"] = [str(runs[name][0]) for name in strategy_args["features_from"]]
    encoder = SCRATCH[row] if objective == "none" else {}
    config = FinetuneConfig(data="fashion-mnist", strategy=strategy, strategy_args=strategy_args,
                            labels=f"count={budget}", seed=seed, threads=THREADS, **encoder,
                            **{**(FINETUNE[budget] if budget in FINETUNE else FINETUNE[100]), **settings})
    pre = None if objective == "none" or strategy_args.get("student") == "scratch" else runs[objective][0]
    config = config.model_copy(update={"pretrained": str(pre) if pre else None})
    result = pipeline.finetune(config, data=data)
    speed = float(np.median([h["examples_per_s"] for h in result.history]))
    return {"accuracy": result.metrics["accuracy"], "seconds": time.perf_counter() - started, "images_per_s": speed}


def features(objective: str, data: DataBundle, runs: dict, state: dict) -> tuple[np.ndarray, np.ndarray]:
    if ("z", objective) not in state:
        encoder, _ = load_run(runs[objective][0], "encoder")
        z_train, z_test = embed(encoder, data, data.x_train), embed(encoder, data, data.x_test)
        state[("z", objective)] = z_train, z_test
    return state[("z", objective)]


def rows_of(group: str) -> list[str]:
    """The table rows of a group: ``sklearn``, ``scratch`` or a pretraining's name."""
    if group == "sklearn":
        return ["sklearn-logreg", "sklearn-labelspreading", "sklearn-selftraining"]
    if group == "scratch":
        return list(SCRATCH)
    strategies = ["linear", "full"]
    if group in POOL_PRETRAININGS:
        own = ["labelspread"] if group == "simclr-mlp" else ["selftrain-ens", "selftrain-ens-wide"]
        strategies += own + ["selftrain", "joint"]
    return [f"{group}+{s}" for s in strategies]


def plan(groups: list[str]) -> list[tuple[str, int, int]]:
    """Cells seed by seed (cheap rows first within each), so a run stopped early (``--table`` writes what
    finished) already has every row at every budget."""
    rows = [r for g in groups for r in rows_of(g)]
    cheap = [r for r in rows if r.startswith("sklearn-") or r.endswith(("+linear", "+labelspread"))]
    costly = [r for r in rows if r not in cheap]
    return [(r, b, s) for s in SEEDS for part in (cheap, costly) for b in BUDGETS for r in part]


def table(cells: list[dict], rows: list[str], pre_stats: dict) -> str:
    lines = ["| row | " + " | ".join(f"{b} labels" for b in BUDGETS) + " | s / cell (median) | train images/s |",
             "|---" * (len(BUDGETS) + 3) + "|"]
    for row in rows:
        out = [row]
        for budget in BUDGETS:
            acc = [c["accuracy"] for c in cells if c["row"] == row and c["labels"] == budget]
            out.append(f"{np.mean(acc):.3f} ± {np.std(acc):.3f} (n={len(acc)})" if acc else "not run")
        secs = [c["seconds"] for c in cells if c["row"] == row and c["seconds"] is not None]
        speed = [c["images_per_s"] for c in cells if c["row"] == row and c["images_per_s"]]
        out += [f"{np.median(secs):.0f}" if secs else "–", f"{np.median(speed):.0f}" if speed else "–"]
        lines.append("| " + " | ".join(out) + " |")
    lines += ["", "| pretraining | epochs | wall s | images/s (median epoch) | final loss |", "|---|---|---|---|---|"]
    for name, stats in pre_stats.items():
        lines.append(f"| {name} | {stats['epochs']} | {stats['seconds']:.0f} | {stats['images_per_s']:.0f} | "
                     f"{stats['loss']:.4f} |")
    return "\n".join(lines)


def section(body: str, command: str) -> str:
    machine = (f"Machine: {torch.get_num_threads()} torch threads on a 2-core AMD EPYC shared with other jobs, "
               f"torch {torch.__version__}. Command: `{command}`.")
    return f"## Accuracy: Fashion-MNIST with 100 and 1000 labels\n\n{machine}\n\n{body}"


def main() -> None:
    global SEEDS, BUDGETS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke check on a 3k-image pool, 1 seed, 100 labels")
    parser.add_argument("--only", help="comma-separated rows to run (default: all)")
    parser.add_argument("--note", default="", help="a line to print under the table (e.g. what was cut and why)")
    parser.add_argument("--redo", action="store_true",
                        help="recompute the --only rows even where cached (the newest cell of each counts)")
    parser.add_argument("--table", action="store_true", help="run nothing: write the table of the cached cells")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)),
                        help="comma-separated seeds to run (split a row's cells across parallel processes)")
    parser.add_argument("--budgets", default=",".join(map(str, BUDGETS)),
                        help="comma-separated label budgets to run (the same, by budget)")
    groups = ["sklearn", "scratch", *PRETRAIN]
    parser.add_argument("--groups", default=",".join(groups),
                        help="row groups to run: sklearn, scratch and pretraining names (run disjoint groups in "
                             "parallel processes; they share the cell cache)")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    threadpool_limits(THREADS)
    data = load_data("fashion-mnist")
    cache_dir = ROOT / "bench" / "cache"
    if args.quick:
        # A 3k-image pool and a handful of steps: checks every row end to end in a few minutes.
        data = DataBundle("fashion-mnist[:3000]", data.x_train[:3000], data.y_train[:3000], data.x_test[:2000],
                          data.y_test[:2000], data.modality, data.class_names, data.scale)
        cache_dir = cache_dir / "quick"
        SEEDS, BUDGETS = (0,), (100,)
        FINETUNE[100] = {"epochs": 10, "batch_size": 50}
    cache_dir.mkdir(parents=True, exist_ok=True)
    chosen = [g for g in args.groups.split(",") if g]
    unknown = sorted(set(chosen) - set(groups))
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(groups)}")
    cells_file = cache_dir / ("accuracy-quick" if args.quick else "accuracy") / "cells.jsonl"
    cells_file.parent.mkdir(parents=True, exist_ok=True)
    done = [json.loads(line) for line in cells_file.read_text().splitlines()] if cells_file.exists() else []
    seen = {(c["row"], c["labels"], c["seed"]) for c in done}
    only = set(args.only.split(",")) if args.only else None
    if args.redo and only is None:
        parser.error("--redo needs --only ROWS")
    seeds, budgets = ({int(v) for v in flag.split(",") if v} for flag in (args.seeds, args.budgets))
    todo = [c for c in plan(chosen) if (args.redo or c not in seen) and (only is None or c[0] in only)
            and c[1] in budgets and c[2] in seeds]
    started = time.perf_counter()
    runs: dict = {}
    if args.table:
        todo = []
    needed = set()  # the cells' own pretrainings, and those their students draw features from
    for row, _, _ in todo:
        objective, _, strategy = row.partition("+")
        needed |= {objective, *STRATEGY_ROWS.get(strategy, ("", {}, {}))[1].get("features_from", [])}
    for name in PRETRAIN:  # pretrain what the cells need; report every pretraining already cached
        if (cache_dir / f"pretrain-{name}" / pipeline.ENCODER_FILE).exists() or name in needed:
            runs[name] = pretrained_run(name, data, cache_dir, args.quick)
    state: dict = {}
    for row, budget, seed in todo:
        t0 = time.perf_counter()
        cell = {"row": row, "labels": budget, "seed": seed, **run_cell(row, budget, seed, data, runs, state)}
        done.append(cell)
        with open(cells_file, "a") as f:
            f.write(json.dumps(cell) + "\n")
        print(f"{row:<24} {budget:>5} labels seed {seed}: {cell['accuracy']:.4f} "
              f"({time.perf_counter() - t0:.0f}s)", flush=True)
    rows = [r for g in groups for r in rows_of(g)]
    done = list({(c["row"], c["labels"], c["seed"]): c for c in done}.values())  # a redone cell replaces the old
    pre_stats = {name: stats for name, (_, stats) in runs.items()}
    text = table(done, rows, pre_stats) + (f"\n\n{args.note}" if args.note else "")
    print("\n" + text + f"\n\nthis invocation: {time.perf_counter() - started:.0f}s")
    if not args.quick:
        flags = [a for a in ("--only " + args.only if args.only else "", "--table" if args.table else "") if a]
        common.write_section("accuracy", section(text, " ".join(["python bench/accuracy.py", *flags])), __file__)


if __name__ == "__main__":
    main()
