"""Is warmstart's engine as fast as a hand-written loop? Images/s of both, side by side, in one process.

For each row the same encoder, objective, batch size, data rows and initial weights are trained for a
fixed number of steps (A) by ``warmstart.engine.fit`` and (B) by the minimal PyTorch loop below, in the
order A, B, A, B, ... (``--repeats`` pairs). Each run is timed step by step, and three figures are kept apart:

- steady state: images/s over steps 2..N of each run (both loops alike; step 1 carries first-touch costs),
  and the median of the per-pair ratios A/B; target >= 0.97;
- end of run: what ``fit`` does after its last step. Runs under ``engine.SHORT_RUN_STEPS`` (100) steps end
  by recomputing BatchNorm statistics over ~2k rows ("precise BN"), a fixed cost per run that the plain
  loop does not pay; shown in seconds and in steady-state steps;
- whole run: the ratio of complete runs (start to return), which is what a run of exactly --steps steps sees.

Also the input pipeline alone (uint8 rows -> float batch -> two SimCLR views) in views/s, which should be
>= 10x what SimCLR training consumes.

    python bench/throughput.py                  # full run, writes its section of BENCHMARKS.md
    python bench/throughput.py --steps 5 --repeats 2 --no-write   # a quick look
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import common  # noqa: F401  (puts src/ on the path)
import numpy as np
import torch
import torch.nn.functional as F

from warmstart.config import TrainSettings
from warmstart.data.sources import load_data
from warmstart.engine import SHORT_RUN_STEPS, fit
from warmstart.models import Classifier
from warmstart.objectives import OBJECTIVES
from warmstart.pipeline import build_encoder, seed_everything
from warmstart.tasks import TASKS
from warmstart.strategies import STRATEGIES

# The files whose code these figures time (``make bench-check`` flags the sections when one changes).
MEASURES = [
    "src/warmstart/engine.py",
    "src/warmstart/runtime.py",
    "src/warmstart/pipeline.py",
    "src/warmstart/models/encoders.py",
    "src/warmstart/data/bundle.py",
    "src/warmstart/models/heads.py",
    "src/warmstart/objectives/base.py",
    "src/warmstart/objectives/autoencoder.py",
    "src/warmstart/objectives/simclr.py",
    "src/warmstart/objectives/ntxent_loss.py",
    "src/warmstart/augment.py",
    "src/warmstart/strategies/base.py",
]


def plain_loop(model, loss_of, data, rows, steps, batch_size, lr, weight_decay, labels=None, after_step=None):
    """The hand-written reference: shuffle, slice, convert, forward, backward, step. Nothing else."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                                  weight_decay=weight_decay)
    order = rows[torch.randperm(len(rows)).numpy()]
    model.train()
    for step in range(steps):
        index = order[step * batch_size:(step + 1) * batch_size]
        x = data.batch(data.x_train, index)
        loss = loss_of(model, x, None if labels is None else torch.from_numpy(labels[index]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        after_step(step + 1)


def make_row(name: str, data, encoder_name: str, encoder_args: dict):
    """(template model, engine loss_fn factory, plain loss, with_labels) for one benchmark row."""
    encoder = build_encoder(encoder_name, data.input_shape, encoder_args)
    if name == "full":
        strategy = STRATEGIES.build("full")
        strategy.task, strategy.modality = TASKS.get("classify"), data.handler  # what Strategy.bind sets
        model = Classifier(encoder, data.num_classes)
        return (model, lambda m: (lambda batch: strategy.loss(m, batch)),
                lambda m, x, y: F.cross_entropy(m(x), y), True)
    model = OBJECTIVES.build(name, encoder)
    return model, lambda m: (lambda batch: m.loss(batch[0])), lambda m, x, y: m.loss(x)[0], False


def timed(run, clock) -> dict:
    """Run ``run(after_step)`` and split its time at the marks ``after_step`` leaves after every step."""
    marks = []
    started = clock()
    run(lambda step: marks.append(clock()))
    finished = clock()
    return {"step_s": (marks[-1] - marks[0]) / (len(marks) - 1), "end_s": finished - marks[-1],
            "run_s": finished - started}


def bench_row(name, data, args) -> dict:
    seed_everything(0)
    template, engine_loss, plain_loss, with_labels = make_row(name, data, args.encoder, {})
    n = args.steps * args.batch_size
    rows = np.sort(np.random.default_rng(0).choice(len(data.x_train), n, replace=False))
    settings = TrainSettings(epochs=1, batch_size=args.batch_size, threads=args.threads, device="cpu")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    def engine(after_step) -> None:
        model = copy.deepcopy(template)
        stream = (TASKS.get("classify").stream(data, rows, args.batch_size) if with_labels
                  else data.input_stream(rows, args.batch_size))
        fit(model, engine_loss(model), [stream], settings, after_step=after_step)

    def plain(after_step) -> None:
        model = copy.deepcopy(template)
        plain_loop(model, plain_loss, data, rows, args.steps, args.batch_size, settings.lr, settings.weight_decay,
                   data.y_train if with_labels else None, after_step)

    timed(engine, clock), timed(plain, clock)  # warm-up: allocator, kernels, page cache
    pairs = [(timed(engine, clock), timed(plain, clock)) for _ in range(args.repeats)]
    steady = [b["step_s"] / a["step_s"] for a, b in pairs]
    med = statistics.median
    return {"row": name, "engine": args.batch_size / med(a["step_s"] for a, _ in pairs),
            "plain": args.batch_size / med(b["step_s"] for _, b in pairs), "ratio": med(steady), "ratios": steady,
            "end_s": med(a["end_s"] for a, _ in pairs), "plain_end_s": med(b["end_s"] for _, b in pairs),
            "end_steps": med(a["end_s"] / a["step_s"] for a, _ in pairs),
            "whole": med(b["run_s"] / a["run_s"] for a, b in pairs)}


def bench_augment(data, args) -> float:
    """Views/s of the SimCLR input pipeline alone: gather uint8 rows, convert, two augmented views."""
    simclr = OBJECTIVES.build("simclr", build_encoder(args.encoder, data.input_shape, {}))
    rng = np.random.default_rng(1)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    times = []
    for _ in range(args.repeats + 1):
        index = np.sort(rng.choice(len(data.x_train), args.batch_size, replace=False))
        started = clock()
        for _ in range(10):
            simclr.views(data.batch(data.x_train, index))
        times.append(clock() - started)
    return 10 * 2 * args.batch_size / statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", nargs="+", default=["autoencoder", "simclr", "full"])
    parser.add_argument("--encoder", default="cnn")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=12, help="optimisation steps per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="A/B pairs per row")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall: elapsed time; cpu: this process's CPU time (with --threads 1 it is immune to "
                        "other jobs on a shared machine)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    parser.add_argument("--section", default="throughput", help="BENCHMARKS.md section to (re)write")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_data("fashion-mnist")
    header = common.machine()
    print(header)

    results = []
    for name in args.rows:
        r = bench_row(name, data, args)
        results.append(r)
        print(f"{name:<12} steady: engine {r['engine']:8.1f}  plain {r['plain']:8.1f} images/s  ratio {r['ratio']:.3f} "
              f"(pairs: {' '.join(f'{x:.3f}' for x in r['ratios'])});  end of run {r['end_s']:.3f} s "
              f"(= {r['end_steps']:.1f} steps; plain {r['plain_end_s']:.3f} s);  whole run {r['whole']:.3f}",
              flush=True)
    aug = bench_augment(data, args)
    simclr = next((r for r in results if r["row"] == "simclr"), None)
    consumed = 2 * simclr["engine"] if simclr else float("nan")
    print(f"augment      {aug:8.1f} views/s = {aug / consumed:.1f}x the {consumed:.1f} views/s SimCLR trains on")

    rows = [[r["row"], f"{r['engine']:.1f}", f"{r['plain']:.1f}", f"{r['ratio']:.3f}",
             " ".join(f"{x:.3f}" for x in r["ratios"]), f"{r['end_s']:.2f} ({r['end_steps']:.1f} steps)",
             f"{r['whole']:.3f}"] for r in results]
    text = common.table(["row", "warmstart images/s", "plain loop images/s", "steady ratio (median)",
                         "per-pair steady ratios", "end of run, s (in steps)", f"whole {args.steps}-step run ratio"],
                        rows)
    print(text)
    if not args.no_write:
        cmd = (f"python bench/throughput.py --encoder {args.encoder} --batch-size {args.batch_size} "
               f"--steps {args.steps} --repeats {args.repeats} --threads {args.threads} --clock {args.clock}"
               + (f" --rows {' '.join(args.rows)} --section {args.section}" if args.section != "throughput" else ""))
        recompute = (f"Runs of {args.steps} steps are under {SHORT_RUN_STEPS}, so `fit` ends each by recomputing "
                     "BatchNorm statistics (precise BN) where the encoder has BatchNorm: that is the end-of-run "
                     "column, a fixed cost per run which the whole-run ratio includes and the steady ratio does not."
                     if args.steps < SHORT_RUN_STEPS else
                     f"Runs of {args.steps} steps keep their running BatchNorm averages (no end-of-run recompute).")
        common.write_section(args.section, "\n".join([
            f"## Throughput: warmstart's engine vs a hand-written loop ({args.encoder} encoder)",
            "",
            f"`{cmd}` on Fashion-MNIST 28x28, encoder `{args.encoder}`, batch {args.batch_size}, "
            f"{args.steps} steps per timed run, A/B alternated {args.repeats} times in one process "
            f"({args.clock}-clock). Steady state: images/s over steps 2..{args.steps} of each run (medians), ratio = "
            "median of the per-pair ratios, target >= 0.97. " + recompute +
            " SimCLR counts input images (each makes two views).",
            "",
            f"Machine: {header}.",
            "",
            text,
            "",
            f"Input pipeline alone (gather uint8 rows, convert, two SimCLR views): {aug:.0f} views/s, "
            f"{aug / consumed:.1f}x the {consumed:.0f} views/s SimCLR training consumes.",
        ]), __file__)


if __name__ == "__main__":
    main()
