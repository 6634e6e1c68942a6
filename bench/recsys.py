"""MovieLens-100k recommenders: ranking, rating prediction and a few-label downstream task on the embeddings.

    python bench/recsys.py             # everything (cells cached in bench/cache/recsys.jsonl); writes BENCHMARKS.md
    python bench/recsys.py --report    # only rebuild the tables from the cache
    python bench/recsys.py --quick     # a smoke run in a minute or two (not written to BENCHMARKS.md)

Protocol (RecBole's): ratings >= 3 as implicit feedback for ranking, all ratings for rating prediction;
random 80/10/10 of each user's interactions; full ranking over every item the user has no training
interaction with. Every choice (epochs, factors, regularisation) is made on the validation part
(``holdout=valid``) with seed 0; the chosen setting then runs with seeds 0-2 and each run is scored once on
the test part (the training part is the same in both). Seeds vary initialisation and sampling; the split is
fixed. Spread: sample std (ddof=1) over the 3 seeds. CPU seconds are ``time.process_time()`` of this
process (one torch thread); wall times are inflated by the shared machine.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import time

import numpy as np
import torch

import common

from warmstart import pipeline  # noqa: E402
from warmstart.baselines import BASELINES, BaselineData  # noqa: E402
from warmstart.config import FinetuneConfig, PretrainConfig  # noqa: E402
from warmstart.data import load_data  # noqa: E402
from warmstart.recsys_baselines import biased_mf, implicit_als, implicit_bpr  # noqa: E402
from warmstart.tasks import TASKS, resolve_task  # noqa: E402

#: The source files this script's figures depend on (bench/check_stale.py).
MEASURES = [
    "src/warmstart/tasks/rank.py",
    "src/warmstart/tasks/rate.py",
    "src/warmstart/tasks/ranking_metrics.py",
    "src/warmstart/models/embedding.py",
    "src/warmstart/objectives/bpr.py",
    "src/warmstart/objectives/lightgcn.py",
    "src/warmstart/objectives/simgcl.py",
    "src/warmstart/recsys_baselines.py",
    "src/warmstart/data/interaction_logs.py",
    "src/warmstart/data/log_options.py",
    "src/warmstart/data/interaction_sources.py",
]

CACHE = common.ROOT / "bench" / "cache" / "recsys.jsonl"
RANK_DATA = "movielens-100k?min_rating=3"
RATE_DATA = "movielens-100k"
DOWNSTREAM = "movielens-100k?min_rating=3&target=item:genre"  # the ranking catalogue: its encoders apply
SEEDS = (0, 1, 2)
PRETRAIN = {"batch_size": 2048, "lr": 1e-2, "weight_decay": 0.0, "health_samples": 0, "threads": 1}
# Candidates tried on the validation part (seed 0); the best by NDCG@10 (RMSE for ratings) is kept.
GRIDS = {
    "bpr": [{"epochs": e} for e in (40, 120)],
    "lightgcn": [{"epochs": 40}],
    "simgcl": [{"epochs": 10, "lam": 0.02}],
    "implicit_als": [{"factors": f, "regularization": r} for f in (32, 64, 128) for r in (0.01, 0.1, 1.0)],
    "implicit_bpr": [{"factors": f, "learning_rate": lr} for f in (64, 128) for lr in (0.01, 0.05)],
    "biased_mf": [{"factors": f, "reg": r} for f in (10, 30) for r in (0.05, 0.1)],
    "rate_full": [{"epochs": 10, "weight_decay": wd} for wd in (0.3, 1.0)],
}
LABELS = ("count=20", "count=50", "count=200")
RATE_PRETRAIN = {"epochs": 20}
DOWNSTREAM_BASELINES = ("logistic_regression", "history_logistic", "side_logistic")
DOWNSTREAM_OBJECTIVES = ("bpr",)  # LightGCN's and SimGCL's encoders did not fit the session's CPU budget
ENCODERS = CACHE.parent / "encoders"  # pretrained encoders of the ranking cells, reused by the downstream task
ANCHORS = ("RecBole-GNN on MovieLens-1M (Recall@10 / NDCG@10): BPR 0.1776 / 0.2401, LightGCN 0.1861 / 0.2538, "
           "SimGCL 0.2029 / 0.2667; Surprise's SVD: RMSE 0.934 on MovieLens-100k (5-fold); measured here before "
           "this work with the same protocol: most-popular 0.181 / 0.116, implicit ALS 0.357 / 0.231, implicit BPR "
           "0.216 / 0.123 (Recall@20 / NDCG@10)")


class Missing(Exception):
    """A cell that ``--report`` finds neither in the cache nor allowed to compute."""


class Cache:
    def __init__(self, path, enabled: bool = True, read_only: bool = False) -> None:
        self.path, self.enabled, self.read_only = path, enabled, read_only
        self.rows = {}
        if enabled and path.exists():
            for line in path.read_text().splitlines():
                row = json.loads(line)
                self.rows[row["key"]] = row

    def get(self, key: str, compute):
        if key not in self.rows and self.read_only:
            raise Missing(key)
        if key not in self.rows:
            started, wall = time.process_time(), time.perf_counter()
            row = {"key": key, **compute()}
            row.setdefault("cpu_s", round(time.process_time() - started, 1))
            row["wall_s"] = round(time.perf_counter() - wall, 1)
            self.rows[key] = row
            if self.enabled:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a") as f:
                    f.write(json.dumps(row) + "\n")
            print(f"{key}: {json.dumps({k: v for k, v in row.items() if k != 'key'})}", flush=True)
        return self.rows[key]


def scores(task, model, data) -> dict:
    return {k: v for k, v in task.evaluate(model, data).items() if isinstance(v, (int, float))}


class Bench:
    def __init__(self, cache: Cache, quick: bool) -> None:
        self.cache, self.quick = cache, quick
        self.data = {h: load_data(f"{RANK_DATA}&holdout={h}") for h in ("valid", "test")}
        self.rate = {h: resolve_task(load_data(f"{RATE_DATA}?holdout={h}"), "rate")[0] for h in ("valid", "test")}
        self.encoders: dict = {}
        self.rank = TASKS.get("rank")
        self.chosen_rank: dict[str, dict] = {}
        self.missing: list[str] = []

    def row(self, out: dict, label: str, compute) -> None:
        """``out[label] = compute()``, or a note that ``--report`` found the cells missing."""
        try:
            out[label] = compute()
        except Missing as cell:
            self.missing.append(f"{label} ({cell})")

    def pretrain(self, objective: str, setting: dict, seed: int, data, out=None) -> tuple[torch.nn.Module, float]:
        args = {k: v for k, v in setting.items() if k != "epochs"}
        epochs = 2 if self.quick else setting["epochs"]
        config = PretrainConfig(objective=objective, encoder="embedding", epochs=epochs, seed=seed,
                                objective_args=args, **PRETRAIN)
        started = time.process_time()
        encoder = pipeline.pretrain(config, out, data=data).encoder
        return encoder, round(time.process_time() - started, 1)

    def rank_encoder(self, objective: str, setting: dict, seed: int):
        """The ranking cell's pretrained encoder: in memory, saved in ``ENCODERS``, or pretrained again."""
        from warmstart.rundir import ENCODER_FILE, load_run

        name = f"{objective}-{'-'.join(f'{k}{v}' for k, v in sorted(setting.items()))}-seed{seed}"
        folder = (ENCODERS.with_name("encoders-quick") if self.quick else ENCODERS) / name
        if name not in self.encoders:
            if (folder / ENCODER_FILE).exists():
                self.encoders[name] = (load_run(folder, "encoder")[0], None)
            else:
                import shutil

                shutil.rmtree(folder, ignore_errors=True)
                self.encoders[name] = self.pretrain(objective, setting, seed, self.data["valid"], folder)
        return self.encoders[name]

    def ours(self, objective: str, setting: dict, seed: int) -> dict:
        name = f"rank/{objective}/{json.dumps(setting, sort_keys=True)}/seed{seed}"

        def compute():
            encoder, cpu = self.rank_encoder(objective, setting, seed)
            out = {"pretrain_cpu_s": cpu}
            for holdout, data in self.data.items():
                model = self.rank.build_model(encoder, {})
                out[holdout] = scores(self.rank, model, data.handler.prepare(data, encoder))
            return out
        return self.cache.get(name, compute)

    def baseline(self, name: str, setting: dict, seed: int, task, data_by_holdout, fn) -> dict:
        key = f"{task.name}/{name}/{json.dumps(setting, sort_keys=True)}/seed{seed}"

        def compute():
            out = {}
            for holdout, data in data_by_holdout.items():
                x_train, x_test = task.baseline_inputs(data)
                labeled, _ = task.split(data, None, seed)
                predicted = fn(BaselineData(x_train, data.y_train, labeled, x_test, seed), **setting)
                out[holdout] = {k: v for k, v in task.metrics(data, data.y_test, predicted).items()
                                if isinstance(v, (int, float))}
            return out
        return self.cache.get(key, compute)

    def choose(self, run, grid: list[dict], metric: str, lower: bool = False) -> dict:
        """The grid setting best on the validation part with seed 0 (the quick run takes the first)."""
        grid = grid[:1] if self.quick else grid
        valid = [run(setting, 0)["valid"][metric] for setting in grid]
        return grid[int(np.argmin(valid) if lower else np.argmax(valid))]

    def ranking(self) -> dict[str, tuple[dict, list[dict]]]:
        out = {}
        popular = BASELINES.get("most_popular").fit_predict
        self.row(out, "most-popular", lambda: ({}, [self.baseline("most_popular", {}, s, self.rank, self.data, popular)
                                                    for s in SEEDS]))
        for name, fn in (("implicit_als", implicit_als), ("implicit_bpr", implicit_bpr)):
            def run(setting, seed, _n=name, _f=fn):
                return self.baseline(_n, setting, seed, self.rank, self.data, _f)
            self.row(out, name.replace("_", " "), lambda _r=run, _n=name: self.seeds(_r, GRIDS[_n], "ndcg@10"))
        for objective in ("bpr", "lightgcn", "simgcl"):
            def run(setting, seed, _o=objective):
                return self.ours(_o, setting, seed)
            self.row(out, f"`{objective}` (ours)", lambda _r=run, _o=objective: self.seeds(_r, GRIDS[_o], "ndcg@10"))
            if f"`{objective}` (ours)" in out:
                self.chosen_rank[objective] = out[f"`{objective}` (ours)"][0]
        return out

    def choose_cached(self, objective: str) -> dict:
        """``choose`` over the grid settings whose seed-0 ranking cell is cached."""
        found = [(self.cache.rows[k]["valid"]["ndcg@10"], g) for g in GRIDS[objective]
                 if (k := f"rank/{objective}/{json.dumps(g, sort_keys=True)}/seed0") in self.cache.rows]
        return max(found, key=lambda t: t[0])[1] if found else GRIDS[objective][0]

    def seeds(self, run, grid: list[dict], metric: str, lower: bool = False) -> tuple[dict, list[dict]]:
        chosen = self.choose(run, grid, metric, lower)
        return chosen, [run(chosen, s) for s in SEEDS]

    def rating(self) -> dict[str, tuple[dict, list[dict]]]:
        rate = TASKS.get("rate")
        out: dict = {}
        bias = BASELINES.get("bias_baseline").fit_predict
        self.row(out, "user/item biases", lambda: ({}, [self.baseline("bias_baseline", {}, s, rate, self.rate, bias)
                                                        for s in SEEDS]))

        def mf(setting, seed):
            return self.baseline("biased_mf", setting, seed, rate, self.rate, biased_mf)
        self.row(out, "biased MF (ALS)", lambda: self.seeds(mf, GRIDS["biased_mf"], "rmse", lower=True))
        for strategy in ("full", "scratch"):
            def ft(setting, seed, _s=strategy):
                return self.finetune_rate(_s, setting, seed)
            label = "`rate`, `full` from `bpr` (ours)" if strategy == "full" else "`rate`, `scratch` (same model)"
            self.row(out, label, lambda _f=ft: self.seeds(_f, GRIDS["rate_full"], "rmse", lower=True))
        return out

    def finetune_rate(self, strategy: str, setting: dict, seed: int) -> dict:
        key = f"rate/{strategy}/{json.dumps(setting, sort_keys=True)}/seed{seed}"

        def compute():
            encoder = None
            if strategy != "scratch":  # one pretraining per seed, shared by the grid's settings
                if ("rate", seed) not in self.encoders:
                    self.encoders["rate", seed] = self.pretrain("bpr", RATE_PRETRAIN, seed, self.rate["valid"])[0]
                encoder = self.encoders["rate", seed]
            epochs = 1 if self.quick else setting["epochs"]
            config = FinetuneConfig(task="rate", strategy=strategy, encoder="embedding", epochs=epochs, seed=seed,
                                    batch_size=1024, lr=3e-3, weight_decay=setting["weight_decay"], threads=1)
            result = pipeline.finetune(config, data=self.rate["valid"], encoder=encoder)
            test = self.rate["test"].handler.prepare(self.rate["test"], result.model.encoder)
            return {"valid": result.metrics, "test": TASKS.get("rate").evaluate(result.model, test)}
        row = self.cache.get(key, compute)
        return {h: {k: v for k, v in row[h].items() if isinstance(v, (int, float))} for h in ("valid", "test")}

    def downstream(self) -> list[dict]:
        data = load_data(DOWNSTREAM)
        task, rows = TASKS.get("classify"), []
        x_train, x_test = data.handler.flat_features(data)
        groups = data.handler.feature_groups(data)
        # The pretrained rows first, then scratch and the baselines (a killed run keeps the cells it finished).
        for method in (*DOWNSTREAM_OBJECTIVES, "none", *reversed(DOWNSTREAM_BASELINES)):
            for labels in LABELS:
                for seed in SEEDS:
                    if method in DOWNSTREAM_BASELINES:
                        labeled, _ = task.split(data, labels, seed)
                        key = f"downstream/{method}/{labels}/seed{seed}"
                        self.row({}, key, lambda _n=method, _k=key, _l=labeled, _s=seed, _b=labels: rows.append(
                            self.cache.get(_k, lambda: {"accuracy": task.metrics(data, data.y_test, BASELINES.get(_n)
                                .fit_predict(BaselineData(x_train, data.y_train, _l, x_test, _s, groups)))["accuracy"]})
                            | {"method": _n, "labels": _b}))
                    elif method == "none" or method in self.chosen_rank:
                        strategy = "scratch" if method == "none" else "linear"
                        label = "scratch" if method == "none" else f"{method}+linear"
                        self.row({}, f"downstream/{label}/{labels}/seed{seed}", lambda _o=method, _st=strategy,
                                 _s=seed, _l=labels: rows.append(self.downstream_cell(data, _o, _st, _l, _s)))
        return rows

    def downstream_cell(self, data, objective: str, strategy: str, labels: str, seed: int) -> dict:
        method = "scratch" if objective == "none" else f"{objective}+{strategy}"
        key = f"downstream/{method}/{labels}/seed{seed}"

        def compute():
            encoder = None
            if objective != "none":
                encoder = self.rank_encoder(objective, self.chosen_rank[objective], seed)[0]
            args = {"head_init": "probe"} if strategy == "full" else {}
            config = FinetuneConfig(strategy=strategy, strategy_args=args, labels=labels, encoder="embedding",
                                    epochs=5 if self.quick else 100, lr=1e-2 if strategy != "full" else 1e-3,
                                    batch_size=64, seed=seed, threads=1)
            return {"accuracy": pipeline.finetune(config, data=data, encoder=encoder).metrics["accuracy"]}
        return self.cache.get(key, compute) | {"method": method, "labels": labels}


def mean_std(values: list[float]) -> str:
    a = np.asarray(values, float)
    if not len(a):
        return "—"  # not measured
    return f"{a.mean():.3f} ± {a.std(ddof=1):.3f}" if len(a) > 1 else f"{a.mean():.3f} (n=1)"


def ranking_table(results: dict) -> str:
    header = ["method", "chosen on validation", "Recall@20", "NDCG@10", "Recall@10", "coverage@10", "Gini@10",
              "pretraining CPU s"]
    rows = []
    for method, (chosen, runs) in results.items():
        test = [r["test"] for r in runs]
        cpu = [r["pretrain_cpu_s"] for r in runs if "pretrain_cpu_s" in r]
        rows.append([method, ", ".join(f"{k}={v}" for k, v in chosen.items()) or "—",
                     *(mean_std([t[m] for t in test]) for m in ("recall@20", "ndcg@10", "recall@10", "coverage@10",
                                                              "gini@10")),
                     f"{np.median(cpu):.0f}" if cpu else "—"])
    return common.table(header, rows)


def rating_table(results: dict) -> str:
    rows = [[method, ", ".join(f"{k}={v}" for k, v in chosen.items()) or "—",
             mean_std([r["test"]["rmse"] for r in runs]), mean_std([r["test"]["mae"] for r in runs])]
            for method, (chosen, runs) in results.items()]
    return common.table(["method", "chosen on validation", "RMSE", "MAE"], rows)


def downstream_table(rows: list[dict]) -> str:
    methods = list(dict.fromkeys(r["method"] for r in rows))
    body = [[m, *(mean_std([r["accuracy"] for r in rows if r["method"] == m and r["labels"] == b]) for b in LABELS)]
            for m in methods]
    return common.table(["method", *(f"{b.split('=')[1]} labels" for b in LABELS)], body)


def missing_text(missing: list[str]) -> str:
    """``method: n cells`` per method of the missing cells (a ranking row names its first missing cell)."""
    counts: dict[str, int] = {}
    for entry in missing:
        name = "/".join(entry.split(" (")[0].split("/")[:2]) if entry.startswith("downstream/") else entry
        counts[name] = counts.get(name, 0) + 1
    return "; ".join(f"{name}: {n} cells" if n > 1 else name for name, n in counts.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 epochs, first grid settings, not written")
    parser.add_argument("--parts", default="rank,rate,downstream", help="which parts to run")
    parser.add_argument("--report", action="store_true", help="only the cached cells: compute nothing")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cache = Cache(CACHE.with_suffix(".quick.jsonl") if args.quick else CACHE, read_only=args.report)
    machine = common.machine()
    started, wall = time.process_time(), time.perf_counter()
    bench = Bench(cache, args.quick)
    parts = args.parts.split(",")
    sections = []
    if "rank" in parts:
        ranking = bench.ranking()
        sections.append("### Ranking (ratings ≥ 3 as implicit feedback; full ranking; test part)\n\n"
                        + ranking_table(ranking))
    if "rate" in parts:
        sections.append("### Rating prediction (all ratings; test part)\n\n" + rating_table(bench.rating()))
    if "downstream" in parts:
        if "rank" not in parts:  # the settings validation chose for the ranking cells (seed 0, cached)
            bench.chosen_rank = {o: bench.choose_cached(o) for o in DOWNSTREAM_OBJECTIVES}
        sections.append("### Downstream: an item's first listed genre from its embedding (19 classes, test accuracy; "
                        "labels balanced over genres)\n\n" + downstream_table(bench.downstream()))
    cpu, seconds = time.process_time() - started, time.perf_counter() - wall
    revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=common.ROOT).stdout.strip()
    body = "\n\n".join([
        "## Recommenders: MovieLens-100k (ranking, ratings, a downstream task on the embeddings)",
        f"Command: `python bench/recsys.py` at revision {revision} — {machine}. This run: {cpu / 60:.1f} CPU-minutes "
        f"and {seconds / 60:.1f} wall-minutes for the cells it computed (cached cells are reused).",
        __doc__.split("\n\n", 2)[2].replace("\n", " "),
        *sections, f"Anchors (other data or code, same protocol): {ANCHORS}.",
        *([f"Not measured (not finished within the session's time on this shared machine): "
           f"{missing_text(bench.missing)}."] if bench.missing else [])])
    print(body)
    if not args.quick and set(parts) == {"rank", "rate", "downstream"}:
        common.write_section("recsys", body, __file__)


if __name__ == "__main__":
    main()
