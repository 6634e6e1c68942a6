"""Accuracy benchmark (not a test): Fashion-MNIST with 100 and 1000 balanced labels, seeds 0-2, chosen on validation.

It is `warmstart study` itself, in parts (``accuracy_recipes.PARTS``): the library's baselines and scratch, the
``fast`` recipe, the ``best`` recipe. Every row sees the same labeled rows per (budget, seed), the rest of the
60k training images as the unlabeled pool, 500 extra labeled rows as the validation split (every choice is
made on them: each fine-tune's kept epoch, and which row is best) and the 10k test images once, at the end.
Each part and seed is its own study directory under ``bench/cache/accuracy/``, sharing one pretraining
directory, so a stopped run continues where it stopped and parts or seeds can run in parallel processes
(``--jobs``; a process that needs a pretraining run another one is training waits for it, see
``warmstart.study.locks``, so ``--jobs`` trains each part's runs in that part's first cell before the rest).

    python bench/accuracy.py                          # every part, seed and budget, then the table
    python bench/accuracy.py --jobs 2                 # the same, two cells at a time (one per core)
    python bench/accuracy.py --parts fast --seeds 0   # a subset (cells already done are kept)
    python bench/accuracy.py --table                  # run nothing: write the table of what the cache holds
    python bench/accuracy.py --quick                  # smoke check: a 3k-image pool, seed 0, 100 labels, tiny recipes

The table (mean ± sample std over seeds, ddof=1; the validation score; CPU-minutes; the figures this table
replaces, which were selected on test data) goes to stdout and to the ``accuracy`` section of BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

import common
from accuracy_recipes import BUDGETS, DATA, MACHINE, OLD, PARTS, SEEDS, TARGET, THREADS, VALIDATION

ROOT = common.ROOT  # common has put src/ on the path
CACHE = ROOT / "bench" / "cache" / "accuracy"

from warmstart.study_config import resolve_study  # noqa: E402
from warmstart.data import DataBundle, load_data  # noqa: E402
from warmstart.study import run_study  # noqa: E402

# The files these figures depend on (``make bench-check`` flags the section when one changes).
MEASURES = [
    "src/warmstart/engine.py",
    "src/warmstart/runtime.py",
    "src/warmstart/pipeline.py",
    "src/warmstart/finetune_start.py",
    "src/warmstart/models/encoders.py",
    "src/warmstart/data/bundle.py",
    "bench/accuracy_recipes.py",
    "src/warmstart/config.py",
    "src/warmstart/study_config.py",
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


def study_dir(cache: Path, part: str, seed: int, budget: int) -> Path:
    return cache / f"{part}-seed{seed}-{budget}"


def run_part(part: str, seed: int, budget: int, data: DataBundle, cache: Path, quick: bool) -> None:
    spec = PARTS[part]
    flags = {"data": DATA, "labels": str(budget), "seeds": 1, "seed_start": seed, **spec["flags"]}
    overrides = [*spec["overrides"], *MACHINE, f"validation={'extra=100' if quick else VALIDATION}",
                 f"pretrain_dir={cache / 'pretrain'}", "explain=0"]  # the table shows none; ~8 CPU-min per study
    if quick and spec["flags"].get("recipes") == "none":  # a recipe brings its own epochs (it refuses others)
        overrides = [o for o in overrides if not o.startswith("finetune.epochs")] + ["finetune.epochs=5"]
    config = resolve_study(flags=flags, overrides=overrides)
    started = time.process_time()
    run_study(config, study_dir(cache, part, seed, budget), data=data, echo=lambda line: print(line, flush=True))
    print(f"[{part} seed {seed}, {budget} labels] {time.process_time() - started:.0f} CPU-s in this process",
          flush=True)


def bench_data(quick: bool) -> DataBundle:
    """Fashion-MNIST, or for ``--quick`` a 3k-image pool and 2k test images of it."""
    data = load_data(DATA)
    if not quick:
        return data
    return DataBundle("fashion-mnist[:3000]", data.x_train[:3000], data.y_train[:3000], data.x_test[:2000],
                      data.y_test[:2000], data.modality, data.class_names, data.scale)


_WORKER: dict = {}  # a worker process's data bundle, loaded once rather than sent with every cell


def _start_worker(quick: bool) -> None:
    threadpool_limits(THREADS)
    _WORKER["data"] = bench_data(quick)


def _run_in_worker(part: str, seed: int, budget: int, cache: Path, quick: bool) -> None:
    run_part(part, seed, budget, _WORKER["data"], cache, quick)


def run_cells(cells: list[tuple[str, int, int]], cache: Path, quick: bool, jobs: int) -> None:
    """Run ``(part, seed, budget)`` cells, ``jobs`` at a time, each job a process of its own. A part's first
    cell runs alone among that part's cells, because it trains the part's pretraining runs, which its other
    cells then load; different parts pretrain different runs (each recipe's names carry its name and version),
    so they may run side by side."""
    if jobs == 1:
        data = bench_data(quick)
        for part, seed, budget in cells:
            run_part(part, seed, budget, data, cache, quick)
        return
    later = {part: [cell for cell in cells if cell[0] == part] for part in dict.fromkeys(c[0] for c in cells)}
    with ProcessPoolExecutor(jobs, initializer=_start_worker, initargs=(quick,)) as pool:
        first = {pool.submit(_run_in_worker, *later[part].pop(0), cache, quick): part for part in later}
        running: set[Future] = set(first)
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                future.result()  # a failed cell stops the run here, with its traceback
                rest = sorted(later.pop(first.get(future, ""), []), key=lambda cell: -cell[2])  # long ones first
                for cell in rest:  # this part's pretraining runs now exist
                    running.add(pool.submit(_run_in_worker, *cell, cache, quick))


def read_all(cache: Path) -> tuple[list[dict], dict[str, dict]]:
    """Every finished cell (its results.csv row and cell file) and every pretraining run's info."""
    rows = []
    for results in sorted(cache.glob("*-seed*-*/results.csv")):
        for row in csv.DictReader(open(results)):
            key = results.parent / "cells"
            cell = next((json.loads(p.read_text()) for p in key.glob("*.json")
                         if json.loads(p.read_text())["method"] == row["method"]), {})
            rows.append({**row, "cell": cell, "dir": results.parent})
    pretrainings = {p.parent.name: json.loads(p.read_text()) for p in (cache / "pretrain").glob("*/pretrain_info.json")}
    return rows, pretrainings


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "not run"
    sd = f" ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else ""
    return f"{np.mean(values):.3f}{sd} (n={len(values)})"


def recipe_minutes(row: dict, pretrainings: dict) -> tuple[float, float | None]:
    """End-to-end CPU-minutes of a recipe cell (its pretraining runs + its fine-tune), and the CPU-minutes until
    its validation score first reached ``TARGET`` (None: never), read from the epochs it scored."""
    runs = [r for r in pretrainings if r.startswith(row["cell"].get("recipe", {}).get("ran", "?") + ".")]
    pre = sum(pretrainings[r]["cpu_s"] for r in runs) / 60
    cell = float(row["cpu_s"]) / 60
    scores = row["cell"].get("validation", {}).get("scores", {})
    history = [json.loads(line) for line in open(row["dir"] / "runs" / _key(row) / "metrics.jsonl")]
    wall = float(row["wall_s"])
    setup = max(0.0, wall - sum(h["seconds"] for h in history))
    for epoch in sorted(scores, key=int):
        if scores[epoch] >= TARGET:
            done = setup + sum(h["seconds"] for h in history if h["epoch"] <= int(epoch))
            return pre + cell, pre + cell * done / max(wall, 1e-9)
    return pre + cell, None


def _key(row: dict) -> str:
    return f"{row['method']}__{row['budget']}__seed{row['seed']}".replace("=", "-").replace(":", "-")


def table(rows: list[dict], pretrainings: dict) -> str:
    methods = list(dict.fromkeys(r["method"] for r in rows))
    head = (["row"] + [f"{b} labels (test)" for b in BUDGETS] + [f"{b}: val" for b in BUDGETS]
            + ["CPU-min per run (100 / 1000)", f"CPU-min to val {TARGET}", "before the validation rule (100 / 1000)"])
    body = []
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        at = {b: [r for r in mine if int(r["labels"]) == b] for b in BUDGETS}
        line = [method] + [_mean_sd([float(r["accuracy"]) for r in at[b]]) for b in BUDGETS]
        line += [f"{np.mean([float(r['val_accuracy']) for r in at[b]]):.3f}" if at[b] else "–" for b in BUDGETS]
        if mine[0]["kind"] == "recipe":
            costs = {b: [recipe_minutes(r, pretrainings) for r in at[b]] for b in BUDGETS}
            line.append(" / ".join(f"{np.median([c[0] for c in costs[b]]):.1f}" if costs[b] else "–"
                                   for b in BUDGETS))
            reach = [c[1] for c in costs[100] if c[1] is not None]
            line.append(f"{np.median(reach):.1f} ({len(reach)}/{len(costs[100])} runs)" if reach else
                        ("not reached" if costs[100] else "–"))
        else:
            line.append(" / ".join(f"{np.median([float(r['cpu_s']) for r in at[b]]) / 60:.2f}" if at[b] else "–"
                                   for b in BUDGETS))
            line.append("–")
        old = OLD.get(method)
        line.append(f"{old[1]:.3f} / {old[2]:.3f} ({old[0]})" if old else "new")
        body.append(line)
    best = {b: max(((np.mean([float(r["val_accuracy"]) for r in rows if r["method"] == m and int(r["labels"]) == b]),
                     m) for m in methods if any(r["method"] == m and int(r["labels"]) == b for r in rows)),
                   default=(None, None))[1] for b in BUDGETS}
    pre = [[name, str(info["epochs"]), f"{info['cpu_s'] / 60:.1f}", f"{info['wall_s'] / 60:.1f}",
            f"{info['images_per_s']:.0f}"] for name, info in sorted(pretrainings.items())]
    return "\n\n".join([
        common.table(head, body),
        "Best row by validation score: " + "; ".join(f"{b} labels {best[b]}" for b in BUDGETS) + ".",
        common.table(["pretraining run", "epochs", "CPU-min", "wall min", "images/s"], pre)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default=",".join(PARTS), help=f"parts to run: {', '.join(PARTS)}")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="comma-separated seeds")
    parser.add_argument("--budgets", default=",".join(map(str, BUDGETS)), help="comma-separated label budgets")
    parser.add_argument("--table", action="store_true", help="run nothing: write the table of the cached cells")
    parser.add_argument("--quick", action="store_true", help="smoke check on a 3k-image pool (nothing written "
                        "to BENCHMARKS.md)")
    parser.add_argument("--jobs", type=int, default=1, help="cells run at a time, each in its own process with "
                        f"{THREADS} thread (at most one per core)")
    parser.add_argument("--note", default="", help="a paragraph to put under the table")
    args = parser.parse_args()
    threadpool_limits(THREADS)
    parts = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    cache = CACHE / "quick" if args.quick else CACHE
    seeds, budgets = ([int(v) for v in flag.split(",") if v] for flag in (args.seeds, args.budgets))
    if args.quick:  # every part end to end in minutes; the recipes still run their own settings on 3k images
        seeds, budgets = [0], [100]
    started = time.time()
    if not args.table:
        cells = [(part, seed, budget) for seed in seeds for budget in budgets for part in parts]
        run_cells(cells, cache, args.quick, max(1, args.jobs))
    rows, pretrainings = read_all(cache)
    text = table(rows, pretrainings) + (f"\n\n{args.note}" if args.note else "")
    print("\n" + text + f"\n\nthis invocation: {time.time() - started:.0f} s wall")
    if not args.quick:
        jobs = f" --jobs {args.jobs}" if args.jobs > 1 else ""
        command = "python bench/accuracy.py" + (" --table" if args.table else jobs)
        body = (f"## Accuracy: Fashion-MNIST with 100 and 1000 labels, chosen on validation\n\n"
                f"`{command}` at {common.git_revision()}; validation={VALIDATION} (500 labeled training rows "
                f"beyond the budget); test evaluated once per run. Machine: {common.machine()}.\n\n{text}")
        common.write_section("accuracy", body, __file__)


if __name__ == "__main__":
    main()
