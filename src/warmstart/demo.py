"""``warmstart demo``: the one-minute tour on scikit-learn's digits.

Pretrain once per seed, fine-tune on 5 labels per class with every strategy, and compare against the
same network trained from scratch and scikit-learn's LabelSpreading on the same labeled examples.
"""
from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np

from warmstart.checkpoint import atomic_write_text
from warmstart.config import FinetuneConfig, PretrainConfig
from warmstart.data.sources import load_data
from warmstart.errors import UserError
from warmstart.pipeline import finetune, pretrain, prepare_run_dir

# The recipe: defaults that fit the demo's ~1-minute budget on 2 cores.
DEMO_DATA = "digits"
DEMO_LABELS = "per_class=5"
PRETRAIN = {"objective": "denoising", "encoder": "mlp", "epochs": 60, "batch_size": 128, "lr": 2e-3}
FINETUNE = {"epochs": 100, "batch_size": 50, "lr": 1e-3}
STRATEGIES = ("scratch", "linear", "full")
FIELDS = ["objective", "strategy", "labels", "seed", "accuracy", "macro_f1", "seconds"]


def label_spreading_accuracy(data, labeled: np.ndarray) -> float:
    """scikit-learn's LabelSpreading (kNN kernel) on raw pixels with the same labeled examples."""
    import warnings

    from sklearn.semi_supervised import LabelSpreading

    x_train = data.batch(data.x_train).flatten(1).numpy()
    y = np.full(len(x_train), -1)
    y[labeled] = data.y_train[labeled]
    with warnings.catch_warnings():  # a kNN graph leaves some rows unreached; sklearn warns, result is fine
        warnings.simplefilter("ignore", RuntimeWarning)
        model = LabelSpreading(kernel="knn", n_neighbors=7, max_iter=100).fit(x_train, y)
    return float(model.score(data.batch(data.x_test).flatten(1).numpy(), data.y_test))


def run_demo(out: Path, seeds: int = 3, quick: bool = False) -> list[dict]:
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    data = load_data(DEMO_DATA)
    pre_settings = {**PRETRAIN, "epochs": 5 if quick else PRETRAIN["epochs"]}
    fine_settings = {**FINETUNE, "epochs": 10 if quick else FINETUNE["epochs"]}
    run_dir = prepare_run_dir(out, resume=True)
    rows: list[dict] = []
    started = time.perf_counter()
    for seed in range(seeds):
        t0 = time.perf_counter()
        pre = pretrain(PretrainConfig(data=DEMO_DATA, seed=seed, **pre_settings), run_dir / f"pretrain-seed{seed}",
                       data=data, resume=True)
        print(f"seed {seed}: pretrained {pre_settings['encoder']} with {pre_settings['objective']} "
              f"in {time.perf_counter() - t0:.1f}s (loss {pre.history[-1]['loss']:.4f})")
        for strategy in STRATEGIES:
            t0 = time.perf_counter()
            config = FinetuneConfig(data=DEMO_DATA, strategy=strategy, labels=DEMO_LABELS, seed=seed,
                                    encoder=pre_settings["encoder"], **fine_settings)
            result = finetune(config, data=data, encoder=None if strategy == "scratch" else pre.encoder)
            rows.append({"objective": "none" if strategy == "scratch" else pre_settings["objective"],
                         "strategy": strategy, "labels": result.metrics["labels"], "seed": seed,
                         "accuracy": result.metrics["accuracy"], "macro_f1": result.metrics["macro_f1"],
                         "seconds": round(time.perf_counter() - t0, 2)})
        t0 = time.perf_counter()
        rows.append({"objective": "none", "strategy": "sklearn-labelspreading", "labels": len(result.labeled),
                     "seed": seed, "accuracy": label_spreading_accuracy(data, result.labeled), "macro_f1": "",
                     "seconds": round(time.perf_counter() - t0, 2)})
    _write_outputs(run_dir, rows, time.perf_counter() - started)
    return rows


def summarize(rows: list[dict]) -> list[tuple[str, float, float, int]]:
    """(method, mean accuracy, std over seeds, n seeds) per method, in first-seen order."""
    groups: dict[str, list[float]] = {}
    for row in rows:
        method = row["strategy"] if row["objective"] == "none" else f"{row['objective']}+{row['strategy']}"
        groups.setdefault(method, []).append(float(row["accuracy"]))
    return [(m, float(np.mean(a)), float(np.std(a)), len(a)) for m, a in groups.items()]


def _write_outputs(run_dir: Path, rows: list[dict], seconds: float) -> None:
    with open(run_dir / ".results.csv.tmp", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    (run_dir / ".results.csv.tmp").replace(run_dir / "results.csv")
    summary = summarize(rows)
    table = ["| method | accuracy (mean ± std) | seeds |", "|---|---|---|"]
    table += [f"| {m} | {mean:.3f} ± {std:.3f} | {n} |" for m, mean, std, n in summary]
    print("\n" + "\n".join(table))
    scratch = dict((m, mean) for m, mean, _, _ in summary)["scratch"]
    best = max((s for s in summary if s[0] not in ("scratch", "sklearn-labelspreading")), key=lambda s: s[1])
    verdict = (f"Best pretrained row: {best[0]} at {best[1]:.3f}, "
               f"{'+' if best[1] >= scratch else ''}{100 * (best[1] - scratch):.1f} points vs scratch ({scratch:.3f}).")
    print(verdict + f"\nwall time {seconds:.0f}s; wrote {run_dir}/results.csv, report.md, accuracy.png")
    _plot(run_dir / "accuracy.png", summary)
    report = [
        "# warmstart demo: digits, 5 labels per class", "",
        f"Pretraining: `{PRETRAIN['objective']}` on an `{PRETRAIN['encoder']}` encoder over all "
        "training images (labels withheld); fine-tuning on 50 labels (5 per class), "
        "evaluated on the fixed test split. Seeds vary the labeled subset, initialisation and data order.", "",
        *table, "", verdict, "", "![accuracy by method](accuracy.png)", "",
    ]
    atomic_write_text(run_dir / "report.md", "\n".join(report))


def _plot(path: Path, summary) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=120)
    names = [s[0] for s in summary]
    ax.barh(names, [s[1] for s in summary], xerr=[s[2] for s in summary], color="#4c72b0", capsize=3)
    ax.set_xlabel("test accuracy (mean ± std over seeds)")
    ax.set_xlim(max(0.0, min(s[1] for s in summary) - 0.15), 1.0)
    ax.invert_yaxis()
    ax.set_title("digits, 50 labels")
    fig.tight_layout()
    fig.savefig(path.with_suffix(".tmp.png"))
    plt.close(fig)
    path.with_suffix(".tmp.png").replace(path)
