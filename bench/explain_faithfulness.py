"""Faithfulness of explanations: deletion/insertion AUCs of each method against a random ranking, and wall times.

    python bench/explain_faithfulness.py              # every data set; writes its BENCHMARKS.md section
    python bench/explain_faithfulness.py --only digits,diamonds
    python bench/explain_faithfulness.py --report     # only rebuild the table from results.jsonl

For each data set a pretrained model and the same architecture from scratch are fine-tuned on the same
labels (seed 0), then ``warmstart.explain`` explains both on the same 64 test rows drawn at random
(``pick="random"``: an unbiased sample, not the report's half-wrong selection), with every method that
applies to the modality and 4 random rankings per row as the reference. AUCs are of the normalised curves
(1 = the input's output, 0 = the baseline's; see ``warmstart/explain/faithfulness.py``); the interval is a
95% bootstrap interval over the rows of the paired gain over random.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import torch

import common

ROOT = common.ROOT

from warmstart.config import FinetuneConfig, PretrainConfig  # noqa: E402
from warmstart.data import load_data  # noqa: E402
from warmstart.explain import explain  # noqa: E402
from warmstart.pipeline import finetune, pretrain  # noqa: E402

ROWS = 64
TEXT = {"hidden": 128, "layers": 2, "heads": 4, "vocab_size": 8000, "max_length": 32}
MLP = {"width": 256, "feature_dim": 128}
#: data set -> (source, encoder, options, objective, pretraining settings, labels, fine-tuning settings).
SETUPS = {
    "digits": ("digits", "mlp", MLP, "denoising", {"epochs": 60, "lr": 2e-3}, "per_class=5",
               {"epochs": 100, "batch_size": 50, "lr": 1e-3}),
    "fashion-mnist": ("fashion-mnist", "mlp", MLP, "denoising", {"epochs": 5, "lr": 2e-3}, "count=1000",
                      {"epochs": 30, "lr": 1e-3}),
    "wordnet": ("wordnet", "transformer", TEXT, "mlm", {"epochs": 1, "lr": 2e-3, "batch_size": 128,
                                                          "objective_args": {"probability": 0.4}},
                "count=1000", {"epochs": 15, "lr": 5e-4, "batch_size": 32}),
    # The tagger's head needs a brisker schedule than the classifier (at 15 epochs and lr 5e-4: entity F1 0.03).
    "wordnet-tags": ("wordnet-tags", "transformer", TEXT, "wordnet", None, "count=1000",
                     {"epochs": 30, "lr": 2e-3, "batch_size": 32}),
    "diamonds": ("diamonds", "mlp", {"width": 128, "feature_dim": 64}, "autoencoder", {"epochs": 5, "lr": 2e-3},
                 "count=500", {"epochs": 60, "lr": 3e-3}),
}


def pretrained_run(name: str, out: Path) -> Path:
    source, encoder, options, objective, settings, *_ = SETUPS[name]
    if settings is None:  # reuse another data set's pretraining (the tagger starts from the wordnet MLM)
        return pretrained_run(objective, out)
    run = out / name / "pretrain"
    if not (run / "encoder.safetensors").is_file():
        pretrain(PretrainConfig(data=source, objective=objective, encoder=encoder, encoder_args=options, threads=1,
                                **settings), run)
    return run


def finetuned_runs(name: str, out: Path) -> tuple[list[Path], dict]:
    source, encoder, options, _, _, labels, settings = SETUPS[name]
    runs, metrics = [], {}
    for strategy in ("full", "scratch"):
        run = out / name / strategy
        if not (run / "model.safetensors").is_file():
            pretrained = str(pretrained_run(name, out)) if strategy == "full" else None
            finetune(FinetuneConfig(data=source, strategy=strategy, encoder=encoder, encoder_args=options,
                                    labels=labels, pretrained=pretrained, threads=1, **settings), run)
        metrics[strategy] = json.loads((run / "test_metrics.json").read_text())
        runs.append(run)
    return runs, metrics


def measure(name: str, out: Path) -> dict:
    runs, metrics = finetuned_runs(name, out)
    data = load_data(SETUPS[name][0])
    target = out / name / "explained"
    if target.exists():
        subprocess.run(["rm", "-rf", str(target)], check=True)
    started, cpu = time.perf_counter(), time.process_time()
    result = explain(runs, data, target, n=ROWS, pick="random", seed=0)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    info = json.loads((target / "faithfulness.json").read_text())
    task = result.task
    primary = {"classify": "accuracy", "regress": "rmse", "tag": "entity_f1"}[task]
    return {"data": name, "task": task, "rows": ROWS, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "models": [{**m, "metric": f"{primary} {metrics[m['label']][primary]:.3f}"} for m in info["models"]]}


def tables(results: list[dict]) -> str:
    head = ["data set", "model (test score)", "ranking", "deletion AUC ↓", "vs random (95% CI)", "insertion AUC ↑",
            "vs random (95% CI)", "s per row"]
    body = []
    for r in results:
        for m in r["models"]:
            for row in m["table"]:
                versus = []
                for curve in ("deletion", "insertion"):
                    v = row.get(f"{curve}_vs_random")
                    versus.append("—" if v is None else
                                  f"{v['gain']:+.3f} [{v['low']:+.3f}, {v['high']:+.3f}] {v['verdict']}")
                per_row = "—" if row["ranking"] == "random" else f"{row['seconds'] / r['rows']:.3f}"
                body.append([r["data"], f"{m['label']} ({m['metric']})", row["ranking"], f"{row['deletion_auc']:.3f}",
                             versus[0], f"{row['insertion_auc']:.3f}", versus[1], per_row])
    times = [[r["data"], r["task"], str(r["rows"]), f"{r['wall_s']:.1f}", f"{r['cpu_s']:.1f}",
              ", ".join(f"{m['label']} {m['curve_seconds']:.1f}" for m in r["models"])] for r in results]
    return (common.table(head, body) + "\n\n" + common.table(
        ["data set", "task", "rows", "explain wall s (both models, with maps)", "CPU s", "curves s per model"], times))


def recipes() -> str:
    """One line per data set: how its two models were trained."""
    lines = []
    for name, (_, encoder, options, objective, pretraining, labels, settings) in SETUPS.items():
        start = (f"{objective} pretraining ({pretraining})" if pretraining is not None else
                 f"the {objective} pretraining")
        lines.append(f"- {name}: `{encoder}` {options}; `full` from {start} and `scratch`, both on {labels} "
                     f"({settings})")
    return "Models:\n\n" + "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SETUPS))
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_explain"))
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.jsonl"
    results = {r["data"]: r for r in map(json.loads, path.read_text().splitlines())} if path.exists() else {}
    if not args.report:
        for name in args.only.split(","):
            results[name] = measure(name, out)
            print(json.dumps({k: v for k, v in results[name].items() if k != "models"}), flush=True)
            path.write_text("".join(json.dumps(results[n]) + "\n" for n in SETUPS if n in results))
    body = tables([results[n] for n in SETUPS if n in results]) + "\n\n" + recipes()
    print(body)
    revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    common.write_section("explain", "## Explanations: faithfulness (deletion / insertion against random)\n\n"
                         f"`python bench/explain_faithfulness.py` at {revision.stdout.strip()}; {common.machine()}; "
                         "wall times on a 2-core machine shared with other jobs (CPU seconds are the "
                         "process's own).\n\n" + __doc__.split("\n\n", 2)[2].strip().replace("``", "`") + "\n\n" + body)


if __name__ == "__main__":
    main()
