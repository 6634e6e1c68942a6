"""How many torch threads? Wall-clock time of one training run with 1 thread, a thread per core, and auto.

``threads=0`` (auto, ``runtime.default_threads``) takes a thread per core that no other process is using at
the start of the run. This times the same run (pretraining, ``--steps`` steps of ``--batch-size``) three ways
on an idle machine and again beside ``--busy`` busy-loop processes (``python -c 'while True: pass'``) that
this script starts and stops itself: ``threads=1``, ``threads=N`` (N = the cores: torch's own default) and
``threads=0``. Each run is a fresh process (``OMP_NUM_THREADS`` unset, so auto decides), the three settings
alternate ``--repeats`` times, and the table gives medians.

    python bench/threads.py                       # writes the "threads" section of BENCHMARKS.md
    python bench/threads.py --repeats 1 --no-write
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import common

# The files whose code these figures time (``make bench-check`` flags the section when one changes).
MEASURES = [
    "src/warmstart/runtime.py",
    "src/warmstart/engine.py",
    "src/warmstart/pipeline.py",
    "src/warmstart/models/encoders.py",
    "src/warmstart/objectives/base.py",
    "src/warmstart/objectives/autoencoder.py",
    "src/warmstart/data/bundle.py",
    "src/warmstart/data/idx.py",
]


def child(args) -> None:
    """One timed run in this process; prints ``{"seconds", "threads", "others"}`` as JSON (``others``: other
    processes' runnable threads as the run started, what auto saw)."""
    import numpy as np
    import torch

    from warmstart import runtime
    from warmstart.config import PretrainConfig
    from warmstart.data.sources import load_data
    from warmstart.engine import fit
    from warmstart.objectives import OBJECTIVES
    from warmstart.pipeline import build_encoder, seed_everything

    data = load_data(args.data)
    config = PretrainConfig(data=args.data, encoder=args.encoder, batch_size=args.batch_size, epochs=1,
                            threads=args.child, device="cpu")
    seed_everything(0)
    objective = OBJECTIVES.build("autoencoder", build_encoder(args.encoder, data.input_shape, {}))
    rows = np.random.default_rng(0).choice(len(data.x_train), args.steps * args.batch_size, replace=True)
    stream = data.input_stream(np.sort(rows), args.batch_size)
    others, started = runtime.busy_elsewhere(), time.perf_counter()
    fit(objective, lambda batch: objective.loss(batch[0]), [stream], config)
    print(json.dumps({"seconds": time.perf_counter() - started, "threads": torch.get_num_threads(),
                      "others": others}))


def run_child(threads: int, args) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    cmd = [sys.executable, __file__, "--child", str(threads), "--data", args.data, "--encoder", args.encoder,
           "--steps", str(args.steps), "--batch-size", str(args.batch_size)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
    if done.returncode != 0:
        raise SystemExit(f"child failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(busy: int, settings: list[int], args) -> dict[int, list[dict]]:
    """Runs of every setting, alternating, beside ``busy`` busy loops started here."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        time.sleep(1.0 if busy else 0.0)
        results: dict[int, list[dict]] = {t: [] for t in settings}
        for _ in range(args.repeats):
            for t in settings:
                results[t].append(run_child(t, args))
                print(f"busy {busy} threads={t}: {results[t][-1]}", flush=True)
        return results
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--encoder", default="cnn")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--busy", type=int, default=2, help="busy-loop processes beside the loaded runs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600, help="seconds before a run counts as stalled")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child(args)

    from warmstart import runtime

    cores = runtime.usable_cores()
    settings = sorted({1, cores}) + [0]
    header = common.machine()
    loads = {0: measure(0, settings, args), args.busy: measure(args.busy, settings, args)}
    rows = []
    for busy, results in loads.items():
        base = statistics.median(r["seconds"] for r in results[1])
        cells = []
        for t in settings:
            secs = statistics.median(r["seconds"] for r in results[t])
            chose = sorted({r["threads"] for r in results[t]})
            label = f" (chose {'/'.join(map(str, chose))})" if t == 0 else ""
            cells.append(f"{secs:.1f} s, x{base / secs:.2f}{label}")
        others = statistics.median(r["others"] for runs in results.values() for r in runs)
        state = f"beside {busy} busy loop(s)" if busy else "no loops started"
        rows.append([f"{state}; other runnable threads at run start: {others:g} (median)", *cells])
    names = [f"threads={t}" + (" (torch's default)" if t == cores and t != 1 else "") if t else "threads=0 (auto)"
             for t in settings]
    text = common.table(["machine", *names], rows)
    print(text)
    if not args.no_write:
        cmd = "python bench/threads.py" + "".join(
            f" --{k} {v}" for k, v, d in (("data", args.data, "fashion-mnist"), ("encoder", args.encoder, "cnn"),
                                          ("steps", args.steps, 20), ("batch-size", args.batch_size, 128),
                                          ("busy", args.busy, 2), ("repeats", args.repeats, 3)) if v != d)
        common.write_section("threads", "\n".join([
            "## Threads: one per core, one, or auto (`threads=0`)",
            "",
            f"`{cmd}`: pretraining (`{args.encoder}` autoencoder on `{args.data}`, {args.steps} steps of "
            f"{args.batch_size}) in a fresh process per run, wall clock, median of {args.repeats} alternated runs; "
            f"xF = speed relative to threads=1 on the same machine state. Loaded: beside {args.busy} "
            "`python -c 'while True: pass'` processes that the script starts and stops.",
            "",
            f"Machine: {header}.",
            "",
            text,
        ]), __file__)


if __name__ == "__main__":
    main()
