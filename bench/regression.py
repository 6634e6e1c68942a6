"""Regression with few labels on two real tables: ``warmstart study --task regress`` on diabetes and diamonds.

    python bench/regression.py                    # both tables, 3 seeds; writes the BENCHMARKS.md section
    python bench/regression.py --data diabetes    # one table (its study directory is reused when complete)
    python bench/regression.py --table            # rebuild the section from the finished studies only

Each table is one ``warmstart study`` (``bench/cache/regression/<data>``), run with the settings below and
nothing tuned: pretraining (denoising, masked, SimCLR with SCARF-style corruption) on every training row
without targets, then ``linear``, ``full`` and ``selftrain`` (the regress task's default targets: a ridge
probe's values), beside ``scratch`` and the regress task's baselines (ridge, k-NN regression, gradient
boosting), at the same budgets, seeds and labeled rows. The test split (a fixed
80/20 split) is read once per cell, at its end; no setting here was chosen by looking at it.
"""
from __future__ import annotations

import argparse
import subprocess
import time

import numpy as np
from threadpoolctl import threadpool_limits

import common

from warmstart.study_config import resolve_study  # noqa: E402
from warmstart.study import run_study  # noqa: E402
from warmstart.study.summary import Summary, read_results  # noqa: E402

MEASURES = ["src/warmstart/tasks/regress.py", "src/warmstart/data/tables.py", "src/warmstart/baselines.py",
            "src/warmstart/strategies", "src/warmstart/objectives", "src/warmstart/models/encoders.py",
            "src/warmstart/probes.py", "bench/regression.py"]
CACHE = common.ROOT / "bench" / "cache" / "regression"
STUDIES = {
    # 353 training rows: budgets up to all of them; the MLP is small, pretraining short.
    "diabetes": {"labels": "25,50,100", "pretrain.epochs": 200, "encoder_args.width": 128,
                 "encoder_args.feature_dim": 32},
    # 43,152 training rows.
    "diamonds": {"labels": "100,1000", "pretrain.epochs": 20, "encoder_args.width": 256,
                 "encoder_args.feature_dim": 64},
}
SHARED = {"objectives": "denoising,masked,simclr", "strategies": "linear,full,selftrain", "seeds": 3}
OVERRIDES = ["finetune.lr=3e-3", "pretrain.lr=1e-3", "threads=1"]


def study_config(name: str):
    settings = {**SHARED, **{k: v for k, v in STUDIES[name].items() if "." not in k}}
    overrides = OVERRIDES + [f"{k}={v}" for k, v in STUDIES[name].items() if "." in k]
    return resolve_study(flags={"data": name, "task": "regress", **settings}, overrides=overrides)


def run(name: str) -> float:
    """Run (or finish) the study; its CPU seconds."""
    started = time.process_time()
    with threadpool_limits(1):  # one BLAS/OpenMP thread, like torch's: spinning pools fight on a shared machine
        run_study(study_config(name), CACHE / name, echo=lambda line: print(line, flush=True))
    return time.process_time() - started


def section(names: list[str], cpu: dict[str, float]) -> str:
    revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=common.ROOT).stdout.strip()
    parts = [f"## Regression with few labels: diabetes and diamonds\n\nCommand: `python bench/regression.py` at "
             f"`{revision}` — {common.machine()}. Mean ± sample std (ddof=1) over seeds 0–2 of test RMSE (lower is "
             "better; diabetes: disease progression, 25–346; diamonds: natural log of the price) and R². Settings "
             f"fixed in advance ({', '.join(OVERRIDES)}; per table {STUDIES}); nothing was chosen on the test "
             "split, so the bold best per budget describes, it does not select."]
    for name in names:
        rows = read_results(CACHE / name)
        rmse, r2 = Summary(rows, "rmse", higher_is_better=False), Summary(rows, "r2")
        header = ["method"] + [f"{rmse.labels[b]} labels: RMSE" for b in rmse.budgets] + \
                 [f"{rmse.labels[b]}: R²" for b in rmse.budgets]
        body = []
        for method in rmse.methods:
            cells = [_mean_std(rmse, method, b, bold=rmse.best(b) == method) for b in rmse.budgets]
            body.append([method, *cells, *[_mean_std(r2, method, b) for b in rmse.budgets]])
        wall = f"; CPU {cpu[name] / 60:.1f} min for the cells computed in this run" if name in cpu else ""
        parts.append(f"### {name}\n\n{common.table(header, body)}\n\nStudy directory `bench/cache/regression/{name}` "
                     f"(report.html beside results.csv){wall}.")
    return "\n\n".join(parts)


def _mean_std(summary: Summary, method: str, budget: str, bold: bool = False) -> str:
    stat = summary.stat.get((method, budget))
    if stat is None:
        return "—"
    text = f"{stat.mean:.3f} ± {stat.std:.3f}" if not np.isnan(stat.std) else f"{stat.mean:.3f}"
    return f"**{text}**" if bold else text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="*", default=list(STUDIES), choices=list(STUDIES))
    parser.add_argument("--table", action="store_true", help="only rebuild the section from finished studies")
    args = parser.parse_args()
    cpu = {} if args.table else {name: run(name) for name in args.data}
    names = [n for n in STUDIES if (CACHE / n / "results.csv").is_file()]
    text = section(names, cpu)
    print(text)
    common.write_section("regression", text, __file__)


if __name__ == "__main__":
    main()
