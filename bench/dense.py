"""Dense benchmark (not a test): segmentation mIoU and detection mAP on ``fashion-scenes``, scratch against
``full`` fine-tuning from each pretraining, at 50 and 500 labeled scenes, seeds 0-2.

Protocol. ``VALIDATION`` training scenes (a fixed draw) are held out of the labeled draws as the validation
split; labeled scenes are drawn from the rest with each seed (the task's budget: dominant-class
stratified), and every method at one (budget, seed) gets the same scenes. Pretraining reads all 10,000
training scenes without labels, once per objective, for as many epochs as fit ``--pretrain-cpu`` CPU
seconds (measured on a few steps first). Each method's learning rate is chosen from ``LRS`` on the
validation split at 50 labels, seed 0, and then used at every budget and seed; the test split (2,000
scenes from Fashion-MNIST's test images) is scored once per cell, for the chosen model only.

    python bench/dense.py --stage pretrain --objectives dense-contrast,simclr  # into bench/cache/dense/
    python bench/dense.py --stage finetune --tasks segment                    # cells into cells.jsonl
    python bench/dense.py --table                                             # BENCHMARKS.md section
    python bench/dense.py --cache bench/cache/dense-900 --stage pretrain      # a run kept apart (--cache)

Cells already in ``bench/cache/dense/cells.jsonl`` are never recomputed. Everything runs on one thread;
CPU seconds (``time.process_time``) are the budget, wall seconds are inflated by the shared machine.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import common

from warmstart import pipeline  # noqa: E402
from warmstart.config import FinetuneConfig, PretrainConfig  # noqa: E402
from warmstart.data import load_data  # noqa: E402
from warmstart.rundir import load_run  # noqa: E402
from warmstart.tasks import resolve_task  # noqa: E402

CACHE = common.ROOT / "bench" / "cache" / "dense"
MEASURES = ["src/warmstart/tasks/segment.py", "src/warmstart/tasks/detect.py", "src/warmstart/tasks/instances.py",
            "src/warmstart/models/dense.py", "src/warmstart/models/centernet.py", "src/warmstart/data/scenes.py",
            "src/warmstart/objectives/dense_masked.py", "src/warmstart/objectives/dense_contrast.py",
            "src/warmstart/objectives/simclr.py", "src/warmstart/objectives/masked.py", "src/warmstart/augment.py"]
ENCODER, ENCODER_ARGS = "cnn", {"width": 8}
OBJECTIVES = ("dense-contrast", "masked-dense", "masked", "simclr", "denoising")
BUDGETS, SEEDS = (50, 500), (0, 1, 2)
# The learning rates tried on validation: 1e-3 was never chosen, and a sweep at 50 scenes put both scratch's
# and SimCLR's best segmentation rate at 1e-2 (3e-2 was worse), so the grid brackets it on both sides.
LRS = (3e-3, 1e-2, 3e-2)
VALIDATION = 300
STEPS = 600  # fine-tuning steps at every budget (batch 16 at 50 labels, 32 at 500); at 150 nothing detected
PRETRAIN_BATCH = 64


@dataclass(frozen=True)
class Settings:
    """What the command line may change; each setting other than the defaults wants its own ``cache``,
    because cells do not record steps or width."""

    cache: Path = CACHE
    steps: int = STEPS
    budgets: tuple[int, ...] = BUDGETS
    encoder_args: dict = field(default_factory=lambda: dict(ENCODER_ARGS))


def split_validation(data):
    """``(part, part_val)``: ``VALIDATION`` fixed training scenes leave the training split (the labeled draws
    never see them); ``part`` keeps the test split, ``part_val`` has the validation scenes in its place."""
    from dataclasses import replace

    rows = np.random.default_rng(12345).permutation(len(data.x_train))
    val, rest = np.sort(rows[:VALIDATION]), np.sort(rows[VALIDATION:])
    part = replace(data, x_train=data.x_train[rest], y_train=data.y_train[rest])
    return part, replace(part, x_test=data.x_train[val], y_test=data.y_train[val])


def pretrain(settings: Settings, objective: str, data, cpu_seconds: float) -> None:
    out = settings.cache / "pretrain" / objective
    if (out / "encoder.safetensors").exists():
        return
    torch.manual_seed(0)
    config = PretrainConfig(objective=objective, encoder=ENCODER, encoder_args=settings.encoder_args, epochs=1,
                            batch_size=PRETRAIN_BATCH, lr=2e-3, threads=1, health_samples=0)
    probe = pipeline.build_objective(config, data)
    batch = data.batch(data.x_train, np.arange(PRETRAIN_BATCH))
    probe.loss(batch)[0].backward()  # untimed: the first step pays for allocation and warm-up
    started = time.process_time()
    for _ in range(6):  # a few steps to measure this objective's cost per image
        loss, _ = probe.loss(batch)
        loss.backward()
    per_image = (time.process_time() - started) / (6 * PRETRAIN_BATCH)
    epochs = max(1, int(cpu_seconds / (per_image * len(data.x_train))))
    started_cpu, started_wall = time.process_time(), time.perf_counter()
    result = pipeline.pretrain(config.model_copy(update={"epochs": epochs}), out, data=data)
    info = {"objective": objective, "epochs": epochs, "cpu_s": round(time.process_time() - started_cpu, 1),
            "wall_s": round(time.perf_counter() - started_wall, 1), "final_loss": result.history[-1]["loss"]}
    (out / "bench_info.json").write_text(json.dumps(info))
    print(json.dumps(info), flush=True)


def finetune_config(settings: Settings, task: str, method: str, budget: int, seed: int, lr: float) -> FinetuneConfig:
    batch = 16 if budget <= 100 else 32
    epochs = max(1, round(settings.steps / max(1, budget // batch)))
    return FinetuneConfig(task=task, strategy="scratch" if method == "scratch" else "full", labels=f"count={budget}",
                          epochs=epochs, batch_size=batch, lr=lr, seed=seed, encoder=ENCODER,
                          encoder_args=settings.encoder_args,
                          strategy_args={"augment": "weak"}, threads=1)


def run(settings: Settings, task: str, method: str, budget: int, seed: int, lr: float, part, encoder):
    started_cpu, started_wall = time.process_time(), time.perf_counter()
    config = finetune_config(settings, task, method, budget, seed, lr)
    result = pipeline.finetune(config, data=part, encoder=encoder)
    return result, time.process_time() - started_cpu, time.perf_counter() - started_wall


def choose_lr(settings: Settings, cell: tuple[str, str, int, int], part_val, encoder, primary: str):
    """Fine-tune ``cell`` (task, method, budget, seed: the method's first, 50 labels and seed 0) with each of
    ``LRS`` on ``part_val`` (whose "test" split holds the validation scenes) and keep the best:
    ``(lr, result, cpu_s, wall_s)``; every try is logged to validation.jsonl."""
    task, method, budget, seed = cell
    tried = []
    for candidate in LRS:
        result, cpu, wall = run(settings, task, method, budget, seed, candidate, part_val, encoder)
        val = result.metrics[primary]
        tried.append((val, candidate, result, cpu, wall))
        print(f"{task} {method} lr={candidate}: validation {primary} {val:.4f}", flush=True)
        with open(settings.cache / "validation.jsonl", "a") as f:
            f.write(json.dumps({"task": task, "method": method, "lr": candidate, "budget": budget, "seed": seed,
                                primary: val, "cpu_s": round(cpu, 1)}) + "\n")
    _, lr, result, cpu, wall = max(tried, key=lambda t: t[0])
    return lr, result, cpu, wall


def finetune(settings: Settings, task: str, methods: list[str], done: set) -> None:
    """Every (budget, seed) cell of ``methods`` on ``task`` not in ``done``, appended to cells.jsonl; the
    first cell of a method chooses its learning rate on validation (its test metrics are then computed
    once, for the chosen model)."""
    data, _ = resolve_task(load_data("fashion-scenes"), task)
    part, part_val = split_validation(data)
    task_obj = resolve_task(part, task)[1]
    for method in methods:
        pretrained = settings.cache / "pretrain" / method
        encoder = None if method == "scratch" else load_run(pretrained, "encoder")[0]
        lr = next((c["lr"] for c in cells(settings) if (c["task"], c["method"]) == (task, method)), None)
        for budget in settings.budgets:
            for seed in SEEDS:
                if (task, method, budget, seed) in done:
                    continue
                if lr is None:
                    cell = (task, method, budget, seed)
                    lr, result, cpu, wall = choose_lr(settings, cell, part_val, encoder, task_obj.primary)
                    started_cpu, started_wall = time.process_time(), time.perf_counter()
                    metrics = task_obj.evaluate(result.model, part)  # the test split, as in the other cells' runs
                    cpu += time.process_time() - started_cpu
                    wall += time.perf_counter() - started_wall
                else:
                    result, cpu, wall = run(settings, task, method, budget, seed, lr, part, encoder)
                    metrics = result.metrics
                row = {"task": task, "method": method, "budget": budget, "seed": seed, "lr": lr,
                       "cpu_s": round(cpu, 1), "wall_s": round(wall, 1),
                       **{k: metrics[k] for k in task_obj.metric_names}}
                with open(settings.cache / "cells.jsonl", "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)


def cells(settings: Settings) -> list[dict]:
    path = settings.cache / "cells.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def summary(settings: Settings) -> str:
    rows = cells(settings)
    header = ["task", "method", "lr"] + [f"{b} labels" for b in settings.budgets] + ["CPU s / cell", "wall s / cell"]
    body = []
    for task, metric in (("segment", "miou"), ("detect", "map")):
        for method in ["scratch", *OBJECTIVES]:
            mine = [r for r in rows if (r["task"], r["method"]) == (task, method)]
            if not mine:
                continue
            scores = []
            for budget in settings.budgets:
                values = [100 * r[metric] for r in mine if r["budget"] == budget]
                scores.append(f"{np.mean(values):.1f} ± {np.std(values, ddof=1):.1f} (n={len(values)})"
                              if len(values) > 1 else (f"{values[0]:.1f} (n=1)" if values else "—"))
            name = method if method == "scratch" else f"{method} + full"
            body.append([task, name, str(mine[0]["lr"]), *scores, f"{np.median([r['cpu_s'] for r in mine]):.0f}",
                         f"{np.median([r['wall_s'] for r in mine]):.0f}"])
    pre = [json.loads(p.read_text()) for p in sorted((settings.cache / "pretrain").glob("*/bench_info.json"))]
    pre_table = common.table(["pretraining", "epochs", "CPU s", "wall s", "final loss"],
                             [[p["objective"], p["epochs"], p["cpu_s"], p["wall_s"], f"{p['final_loss']:.4f}"]
                              for p in pre])
    return (f"`python bench/dense.py` (stages pretrain, finetune, table); {common.machine()}.\n\n"
            "Test mIoU (segment) and COCO mAP@[.5:.95] (detect) in points, mean ± std (ddof=1) over seeds; "
            "mIoU includes the background class.\n\n" + common.table(header, body) + "\n\nPretraining:\n\n" + pre_table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", choices=("pretrain", "finetune"))
    parser.add_argument("--objectives", default=",".join(OBJECTIVES))
    parser.add_argument("--tasks", default="segment,detect")
    parser.add_argument("--methods", default="scratch," + ",".join(OBJECTIVES))
    parser.add_argument("--pretrain-cpu", type=float, default=900.0, help="CPU seconds per pretraining")
    parser.add_argument("--table", action="store_true")
    parser.add_argument("--cache", default=str(CACHE), help="folder of pretrainings and cells (default %(default)s)")
    parser.add_argument("--budgets", default=",".join(map(str, BUDGETS)), help="labeled scenes (default %(default)s)")
    parser.add_argument("--steps", type=int, default=STEPS, help="fine-tuning steps per cell (default %(default)s); "
                        "cells do not record it, so give each setting its own --cache")
    parser.add_argument("--width", type=int, default=ENCODER_ARGS["width"], help="the cnn encoder's width (default "
                        "%(default)s); cells do not record it either: give each width its own --cache")
    parser.add_argument("--note", default="", help="a paragraph for the BENCHMARKS.md section (e.g. what did not run)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    budgets = tuple(int(b) for b in args.budgets.split(","))
    settings = Settings(cache=Path(args.cache), steps=args.steps, budgets=budgets,
                        encoder_args={**ENCODER_ARGS, "width": args.width})
    settings.cache.mkdir(parents=True, exist_ok=True)
    if args.stage == "pretrain":
        data = load_data("fashion-scenes")
        for objective in args.objectives.split(","):
            pretrain(settings, objective, data, args.pretrain_cpu)
    elif args.stage == "finetune":
        done = {(c["task"], c["method"], c["budget"], c["seed"]) for c in cells(settings)}
        for task in args.tasks.split(","):
            finetune(settings, task, args.methods.split(","), done)
    text = summary(settings) + (f"\n\n{args.note}" if args.note else "")
    print(text)
    if args.table:
        common.write_section("dense", text, __file__)


if __name__ == "__main__":
    main()
