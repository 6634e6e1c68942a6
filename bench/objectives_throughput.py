"""Pretraining throughput of every registered objective, and of the augmentation pipeline alone.

Each objective pretrains the default ``cnn`` encoder on Fashion-MNIST (28×28, batch 256) through the real
training loop (``engine.fit``); each "epoch" of the run is one timed segment of ``--steps`` steps, and the
table reports the median images/s over ``--repeats`` segments (the first includes warm-up; the median
ignores it). Images/s counts unlabeled inputs consumed: SimCLR encodes two views of each, the GAN three
discriminator passes and a generator pass per input. The augmentation rows time ``Augment`` alone on
the same batches. Writes its table into ``BENCHMARKS.md`` between the ``bench:objectives`` markers.

    python bench/objectives_throughput.py                 # full: 3 × 60 steps per objective
    python bench/objectives_throughput.py --quick         # smoke check: 2 × 3 small steps, nothing written
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

import common
from warmstart.augment import Augment  # noqa: E402
from warmstart.config import PretrainConfig  # noqa: E402
from warmstart.data.sources import load_data  # noqa: E402
from warmstart.engine import fit  # noqa: E402
from warmstart.objectives import OBJECTIVES  # noqa: E402
from warmstart.pipeline import build_encoder, seed_everything  # noqa: E402

# The files whose code these figures time (``make bench-check`` flags the section when one changes).
MEASURES = [
    "src/warmstart/engine.py",
    "src/warmstart/runtime.py",
    "src/warmstart/pipeline.py",
    "src/warmstart/models/encoders.py",
    "src/warmstart/data/bundle.py",
    "src/warmstart/models/heads.py",
    "src/warmstart/augment.py",
    "src/warmstart/objectives/base.py",
    "src/warmstart/objectives/autoencoder.py",
    "src/warmstart/objectives/denoising.py",
    "src/warmstart/objectives/gan.py",
    "src/warmstart/objectives/masked.py",
    "src/warmstart/objectives/dense_masked.py",
    "src/warmstart/objectives/simclr.py",
    "src/warmstart/objectives/ntxent_loss.py",
    "src/warmstart/objectives/vae.py",
]

SECTION = "objectives"
# Options that differ from an objective's defaults: 28x28 images take no 8-pixel patches (28 = 7 x 4).
OPTIONS = {"masked-dense": {"patch_size": 4}}


def objective_rate(name: str, data, steps: int, repeats: int, batch: int, threads: int) -> tuple[list, list]:
    """Images/s per segment by the wall clock (the engine's ``examples_per_s``) and per CPU-second of
    this process (``time.process_time``): on a shared machine the second approximates an idle machine
    running ``threads`` threads, since time spent waiting for a core is not counted."""
    config = PretrainConfig(objective=name, encoder="cnn", batch_size=batch, epochs=repeats, threads=threads,
                            data="fashion-mnist")
    seed_everything(0)
    encoder = build_encoder("cnn", data.input_shape, {}, data.modality)
    objective = OBJECTIVES.build(name, encoder, **OPTIONS.get(name, {}))
    # A stream of exactly `steps` batches makes every "epoch" one timed segment.
    rows = np.random.default_rng(0).permutation(len(data.x_train))[:steps * batch]
    stream = data.input_stream(rows, batch)
    marks = [time.process_time()]
    history = fit(objective, lambda b: objective.loss(b[0]), [stream], config, desc=f"bench {name}",
                  on_epoch_end=lambda epoch: marks.append(time.process_time()) or {})
    cpu = [steps * batch / (b - a) * threads for a, b in zip(marks, marks[1:])]
    return [h["examples_per_s"] for h in history], cpu


def augment_rate(augment: Augment, x: torch.Tensor, repeats: int, calls: int, threads: int) -> tuple[list, list]:
    augment(x)  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            augment(x)
        wall.append(calls * len(x) / (time.perf_counter() - start))
        cpu.append(calls * len(x) / (time.process_time() - start_cpu) * threads)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="steps per timed segment")
    parser.add_argument("--repeats", type=int, default=3, help="timed segments per objective")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--objectives", nargs="*", default=None, help="subset to run (default: every image objective)")
    parser.add_argument("--quick", action="store_true", help="2 × 3 steps of batch 64, print only, write nothing")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats, args.batch = 3, 2, 64
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    data = load_data("fashion-mnist")
    names = args.objectives or [n for n in OBJECTIVES.names() if "image" in OBJECTIVES.get(n).modalities]

    rows = []
    for name in names:
        rates, cpu = objective_rate(name, data, args.steps, args.repeats, args.batch, args.threads)
        rows.append((name, statistics.median(cpu), min(cpu), max(cpu), statistics.median(rates)))
        segments = ", ".join(f"{r:.0f}" for r in cpu)
        print(f"{name:12s} {statistics.median(cpu):8.0f} images/CPU-s (segments: {segments}); wall "
              f"{statistics.median(rates):.0f} images/s", flush=True)
    x = data.batch(data.x_train[:args.batch])
    aug = {}
    for label, augment in (("SimCLR preset `Augment()`", Augment()), ("weak preset `Augment.weak()`", Augment.weak())):
        rates, cpu = augment_rate(augment, x, max(3, args.repeats), 10 if args.quick else 40, args.threads)
        aug[label] = (statistics.median(cpu), statistics.median(rates))
        print(f"{label:30s} {aug[label][0]:8.0f} images/CPU-s; wall {aug[label][1]:.0f} images/s", flush=True)

    command = "python bench/objectives_throughput.py" + "".join(
        f" --{k} {v}" for k, v, default in (("steps", args.steps, 60), ("repeats", args.repeats, 3),
                                             ("threads", args.threads, 2)) if v != default)
    fastest = max(r[1] for r in rows)
    lines = [
        "## Pretraining throughput per objective (`cnn`, Fashion-MNIST 28×28, batch 256)",
        "",
        f"Command: `{command}` — {os.cpu_count()} cores ({common.cpu_name()}), torch {torch.__version__}, "
        f"{args.threads} thread(s), load average {load:.1f} at start. Median over {args.repeats} segments of "
        f"{args.steps} steps through `engine.fit`; images = unlabeled inputs consumed; options "
        f"besides the defaults: {OPTIONS}. The machine is shared, so the main figure counts images per "
        "CPU-second of the benchmark process × threads (time spent waiting for a core is not counted): about "
        "what an idle machine gives with that many threads. Wall-clock images/s under the load at the time is "
        "shown beside it.",
        "",
        "| objective | images/s (CPU clock, median) | min – max | ms / step | wall-clock images/s |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| `{n}` | {m:,.0f} | {lo:,.0f} – {hi:,.0f} | {1000 * args.batch / m:.0f} | {w:,.0f} |"
              for n, m, lo, hi, w in rows]
    lines += ["", "Augmentation pipeline alone, same batches (one view per image):", "",
              "| augmentation | images/s (CPU clock, median) | × fastest objective | wall-clock images/s |",
              "|---|---:|---:|---:|"]
    lines += [f"| {label} | {c:,.0f} | {c / fastest:.0f}× | {w:,.0f} |" for label, (c, w) in aug.items()]
    text = "\n".join(lines)
    print("\n" + text)
    if not args.quick:
        common.write_section(SECTION, text, __file__)


if __name__ == "__main__":
    main()
