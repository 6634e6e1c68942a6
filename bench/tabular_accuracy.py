"""Tables with few labels: SCARF and VIME pretraining of the `tabular` encoder against the classical baselines.

    python bench/tabular_accuracy.py                 # everything; writes its BENCHMARKS.md section
    python bench/tabular_accuracy.py --data adult    # one data set (cells already in results.jsonl are kept)
    python bench/tabular_accuracy.py --report        # only rebuild the table from results.jsonl

Protocol: `adult` (ROC-AUC, the primary metric: the test split is 24 % positive and the budgets are balanced, so
accuracy falls below the majority rate; plus accuracy) and `diamonds` (RMSE of log-price, plus R²), 100 and
1000 labels, seeds 0-2. From each training split ``VALIDATION`` rows are carved once (seed 0) and never trained
on; every other training row is the unlabeled pool (pretraining reads all of them, self-training distils over
them). Labeled rows are the task's draw per seed (balanced for adult, target-quantile-stratified for diamonds),
the same rows for every method. Every method is scored on the validation rows and on the test split; "best
pretrained" is the objective × strategy with the best mean *validation* score at each budget, reported with its
test score. Baselines are ``warmstart.baselines`` with their defaults on the modality's encoded rows (one-hot
levels, standardised numbers, missing indicators). Pretraining runs once per objective and data set.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

import common

from warmstart.baselines import BASELINES, BaselineData  # noqa: E402
from warmstart.config import FinetuneConfig, PretrainConfig  # noqa: E402
from warmstart.data import DataBundle, load_data  # noqa: E402
from warmstart.pipeline import finetune, pretrain  # noqa: E402
from warmstart.tasks import TASKS  # noqa: E402

OUT = common.ROOT / "runs" / "bench-tabular"
VALIDATION = 2000
BUDGETS, SEEDS = (100, 1000), (0, 1, 2)
OBJECTIVES, STRATEGIES = ("scarf", "vime"), ("linear", "full", "selftrain")
ENCODER = {"d_token": 16, "width": 256, "depth": 2, "feature_dim": 128, "numeric": "ple", "bins": 16}
PRETRAIN = {"epochs": 30, "batch_size": 256, "lr": 1e-3, "health_samples": 0}
FINETUNE = {"epochs": 100, "batch_size": 64, "lr": 1e-3}
METRICS = {"adult": ("roc_auc", "accuracy"), "diamonds": ("rmse", "r2")}
# The baselines for tables. Adult leaves out the classify task's label_spreading: a kNN graph of 30k
# rows cost ~20 CPU-s a cell on this shared machine and scored 0.75 ROC-AUC at 100 labels (seed 0).
TABLE_BASELINES = {"adult": ("logistic_regression", "self_training", "hist_gradient_boosting",
                       "self_training_gradient_boosting", "knn_classification"),
             "diamonds": ("ridge", "knn_regression", "hist_gradient_boosting")}


def splits(name: str) -> tuple[DataBundle, DataBundle]:
    """(train minus validation with the real test split, the same training rows with the validation rows as test)."""
    data = load_data(name)
    rng = np.random.default_rng(0)
    val = np.sort(rng.choice(len(data.x_train), VALIDATION, replace=False))
    keep = np.setdiff1d(np.arange(len(data.x_train)), val)
    fields = dict(modality="table", class_names=data.class_names, task=data.task, target_names=data.target_names,
                  schema=data.schema)
    y_val = data.y_train[val] if data.task == "classify" else data.y_train[val, 0]
    fit = DataBundle(name, data.x_train[keep], data.y_train[keep], data.x_test, data.y_test, **fields)
    select = DataBundle(name, data.x_train[keep], data.y_train[keep], data.x_train[val], y_val, **fields)
    return fit, select


def scores(task, fit: DataBundle, select: DataBundle, name: str, predict) -> dict:
    out = {}
    for split, bundle in (("val", select), ("test", fit)):
        metrics = task.metrics(bundle, bundle.y_test, predict(bundle))
        out.update({f"{split}_{m}": float(metrics[m]) for m in METRICS[name]})
    return out


def run_baseline(task, fit, select, name, baseline, budget, seed) -> dict:
    labeled, _ = task.split(fit, f"count={budget}", seed)
    x_train, x_test = fit.handler.flat_features(fit)
    x_val = select.handler.flat_features(select)[1]
    started = time.process_time()
    predicted = BASELINES.get(baseline).fit_predict(
        BaselineData(x_train, fit.y_train, labeled, np.concatenate([x_val, x_test]), seed))
    cpu = time.process_time() - started
    by_split = {"val": predicted[:len(x_val)], "test": predicted[len(x_val):]}
    row = scores(task, fit, select, name, lambda b: by_split["val" if b is select else "test"])
    return {**row, "cpu_s": round(cpu, 1)}


def run_neural(task, fit, select, name, strategy, budget, seed, encoder=None, encoder_args=ENCODER) -> dict:
    config = FinetuneConfig(data=name, strategy=strategy, labels=f"count={budget}", seed=seed, encoder="tabular",
                            encoder_args=encoder_args, threads=1, **FINETUNE)
    started = time.process_time()
    result = finetune(config, data=fit, encoder=encoder)
    cpu = time.process_time() - started
    model = result.model
    row = scores(task, fit, select, name,
                 lambda b: (torch.softmax(_logits(model, b), 1).numpy() if task.name == "classify"
                            else task.predict(model, b, b.x_test)))
    return {**row, "cpu_s": round(cpu, 1)}


def _logits(model, bundle):
    from warmstart.evaluate import predict_logits

    return predict_logits(model, bundle, bundle.x_test).double()


def pretrained(fit: DataBundle, name: str, objective: str, log: list):
    config = PretrainConfig(data=name, objective=objective, encoder="tabular", encoder_args=ENCODER, seed=0,
                            threads=1, **PRETRAIN)
    started = time.process_time()
    result = pretrain(config, data=fit)
    log.append({"data": name, "objective": objective, "pretrain_cpu_s": round(time.process_time() - started, 1),
                "final_loss": result.history[-1]["loss"]})
    return result.encoder


def bench(name: str, results: Path) -> None:
    done = {(r["data"], r["method"], r["labels"], r["seed"]) for r in read(results)}
    fit, select = splits(name)
    task = TASKS.get(fit.task)

    def record(method: str, kind: str, budget: int, seed: int, make) -> None:
        if (name, method, budget, seed) in done:
            return
        row = {"data": name, "method": method, "kind": kind, "labels": budget, "seed": seed, **make()}
        with open(results, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    for budget in BUDGETS:
        for seed in SEEDS:
            for baseline in TABLE_BASELINES[name]:
                record(baseline, "baseline", budget, seed,
                       lambda: run_baseline(task, fit, select, name, baseline, budget, seed))
            record("tabular scratch", "scratch", budget, seed,
                   lambda: run_neural(task, fit, select, name, "scratch", budget, seed))
    log: list = []
    for objective in OBJECTIVES:
        encoder = None
        for budget in BUDGETS:
            for seed in SEEDS:
                for strategy in STRATEGIES:
                    if (name, f"{objective}+{strategy}", budget, seed) in done:
                        continue
                    if encoder is None:
                        encoder = pretrained(fit, name, objective, log)
                        with open(results.with_name("pretrain.jsonl"), "a") as f:
                            f.write(json.dumps(log[-1]) + "\n")
                    record(f"{objective}+{strategy}", "pretrained", budget, seed,
                           lambda: run_neural(task, fit, select, name, strategy, budget, seed, encoder=encoder))


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def mean_std(values: list[float]) -> str:
    a = np.asarray(values)
    return f"{a.mean():.3f} ± {a.std(ddof=1):.3f}" if len(a) > 1 else f"{a.mean():.3f}"


def report(results: Path) -> str:
    rows = read(results)
    pretrain_log = read(results.with_name("pretrain.jsonl"))
    lines = []
    for name, (primary, other) in METRICS.items():
        mine = [r for r in rows if r["data"] == name]
        if not mine:
            continue
        higher = TASKS.get("classify" if name == "adult" else "regress").higher_is_better_for(primary)
        sign = 1 if higher else -1
        methods = [m for m in dict.fromkeys(r["method"] for r in mine)
                   if m in TABLE_BASELINES[name] or m == "tabular scratch" or "+" in m]
        cell = {(m, b): [r for r in mine if r["method"] == m and r["labels"] == b] for m in methods for b in BUDGETS}
        header = ["method"] + [f"{b} labels: {primary}" for b in BUDGETS] + [f"{b} labels: {other}" for b in BUDGETS]
        body = [[m] + [mean_std([r[f"test_{k}"] for r in cell[m, b]]) if cell[m, b] else "—"
                       for k in (primary, other) for b in BUDGETS] for m in methods]
        lines += [f"### {name} (test {primary}{'' if higher else ', lower is better'}; mean ± std over seeds, "
                  "ddof=1)", "", common.table(header, body), ""]
        for b in BUDGETS:
            pre = [m for m in methods if cell[m, b] and cell[m, b][0]["kind"] == "pretrained"]
            base = [m for m in methods if cell[m, b] and cell[m, b][0]["kind"] == "baseline"]
            if not pre or not base:
                continue
            mean = {m: np.mean([r[f"test_{primary}"] for r in cell[m, b]]) for m in pre + base}
            val = {m: np.mean([r[f"val_{primary}"] for r in cell[m, b]]) for m in pre}
            chosen = max(pre, key=lambda m: sign * val[m])
            best_base = max(base, key=lambda m: sign * mean[m])
            beaten = [m for m in base if sign * mean[chosen] > sign * mean[m]]
            missed = sorted(set(base) - set(beaten))
            lines.append(f"- {b} labels: best pretrained on validation **{chosen}** (test {mean[chosen]:.3f}); "
                         f"best baseline on test {best_base} {mean[best_base]:.3f}; beats {len(beaten)}/{len(base)} "
                         f"baselines{' (not ' + ', '.join(missed) + ')' if missed else ''}.")
        cpu = [f"{p['objective']} {p['pretrain_cpu_s'] / 60:.1f}" for p in pretrain_log if p["data"] == name]
        lines += [f"- pretraining CPU-minutes: {', '.join(cpu) or '—'}; fine-tuning/baseline CPU-seconds per cell in "
                  "results.jsonl.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=tuple(METRICS), action="append")
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 seed, 1 epoch (not written)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = OUT
    if args.quick:
        global SEEDS, PRETRAIN, FINETUNE
        SEEDS, PRETRAIN, FINETUNE = (0, 1), {**PRETRAIN, "epochs": 1}, {**FINETUNE, "epochs": 2}
        out = OUT.with_name("bench-tabular-quick")
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    started, cpu = time.time(), time.process_time()
    if not args.report:
        for name in args.data or METRICS:
            bench(name, results)
    body = report(results)
    print(body)
    if not args.report:
        print(f"wall {time.time() - started:.0f} s, CPU {time.process_time() - cpu:.0f} s")
    if args.quick:
        return
    revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=common.ROOT).stdout.strip()
    intro = (f"`python bench/tabular_accuracy.py` at {revision}; {common.machine()}. Encoder `tabular` {ENCODER}; "
             f"pretraining {PRETRAIN} once per objective; fine-tuning {FINETUNE}; {VALIDATION} validation rows "
             "carved from each training split select the best pretrained row. Adult is ranked by ROC-AUC (24 % "
             "positive test split, balanced budgets).")
    common.write_section("tabular_accuracy", "## Tables: SCARF / VIME against gradient boosting\n\n" + intro + "\n\n"
                         + body)


if __name__ == "__main__":
    main()
