"""Is warmstart's engine as fast as a hand-written loop? Images/s of both, side by side, in one process.

For each row the same encoder, objective, batch size, data rows and initial weights are trained for a
fixed number of steps (A) by ``warmstart.engine.fit`` and (B) by the minimal PyTorch loop below, in the
order A, B, A, B, ... (``--repeats`` pairs). We report the median images/s of each and the median of the
per-pair ratios A/B; target >= 0.97. Also the input pipeline alone (uint8 rows -> float batch -> two
SimCLR views) in views/s, which should be >= 10x what SimCLR training consumes.

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
from warmstart.engine import fit
from warmstart.models import Classifier
from warmstart.objectives import OBJECTIVES
from warmstart.pipeline import build_encoder, seed_everything
from warmstart.tasks import TASKS
from warmstart.strategies import STRATEGIES


def plain_loop(model, loss_of, data, rows, steps, batch_size, lr, weight_decay, labels=None) -> None:
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


def make_row(name: str, data, encoder_name: str, encoder_args: dict):
    """(template model, engine loss_fn factory, plain loss, with_labels) for one benchmark row."""
    encoder = build_encoder(encoder_name, data.input_shape, encoder_args)
    if name == "full":
        strategy = STRATEGIES.build("full")
        model = Classifier(encoder, data.num_classes)
        return (model, lambda m: (lambda batch: strategy.loss(m, batch)),
                lambda m, x, y: F.cross_entropy(m(x), y), True)
    model = OBJECTIVES.build(name, encoder)
    return model, lambda m: (lambda batch: m.loss(batch[0])), lambda m, x, y: m.loss(x)[0], False


def bench_row(name, data, args) -> dict:
    seed_everything(0)
    template, engine_loss, plain_loss, with_labels = make_row(name, data, args.encoder, {})
    n = args.steps * args.batch_size
    rows = np.sort(np.random.default_rng(0).choice(len(data.x_train), n, replace=False))
    settings = TrainSettings(epochs=1, batch_size=args.batch_size, threads=args.threads, device="cpu")

    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    def engine() -> float:
        model = copy.deepcopy(template)
        stream = (TASKS.get("classify").stream(data, rows, args.batch_size) if with_labels
                  else data.input_stream(rows, args.batch_size))
        started = clock()
        fit(model, engine_loss(model), [stream], settings)
        return n / (clock() - started)

    def plain() -> float:
        model = copy.deepcopy(template)
        started = clock()
        plain_loop(model, plain_loss, data, rows, args.steps, args.batch_size, settings.lr, settings.weight_decay,
                   data.y_train if with_labels else None)
        return n / (clock() - started)

    engine(), plain()  # warm-up: allocator, kernels, page cache
    a, b = [], []
    for _ in range(args.repeats):
        a.append(engine())
        b.append(plain())
    ratios = [x / y for x, y in zip(a, b)]
    return {"row": name, "engine": statistics.median(a), "plain": statistics.median(b),
            "ratio": statistics.median(ratios), "ratios": ratios}


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
        print(f"{name:<12} engine {r['engine']:8.1f}  plain {r['plain']:8.1f} images/s  ratio {r['ratio']:.3f}  "
              f"(pairs: {' '.join(f'{x:.3f}' for x in r['ratios'])})", flush=True)
    aug = bench_augment(data, args)
    simclr = next((r for r in results if r["row"] == "simclr"), None)
    consumed = 2 * simclr["engine"] if simclr else float("nan")
    print(f"augment      {aug:8.1f} views/s = {aug / consumed:.1f}x the {consumed:.1f} views/s SimCLR trains on")

    rows = [[r["row"], f"{r['engine']:.1f}", f"{r['plain']:.1f}", f"{r['ratio']:.3f}",
             " ".join(f"{x:.3f}" for x in r["ratios"])] for r in results]
    text = common.table(["row", "warmstart images/s", "plain loop images/s", "median ratio", "per-pair ratios"], rows)
    print(text)
    if not args.no_write:
        cmd = (f"python bench/throughput.py --encoder {args.encoder} --batch-size {args.batch_size} "
               f"--steps {args.steps} --repeats {args.repeats} --threads {args.threads} --clock {args.clock}"
               + (f" --rows {' '.join(args.rows)} --section {args.section}" if args.section != "throughput" else ""))
        common.write_section(args.section, "\n".join([
            f"## Throughput: warmstart's engine vs a hand-written loop ({args.encoder} encoder)",
            "",
            f"`{cmd}` on Fashion-MNIST 28x28, encoder `{args.encoder}`, batch {args.batch_size}, "
            f"{args.steps} steps per timed run, A/B alternated {args.repeats} times in one process "
            f"(median images/s, {args.clock}-clock; ratio = median of the per-pair ratios; target >= 0.97). "
            "SimCLR counts input images (each makes two views).",
            "",
            f"Machine: {header}.",
            "",
            text,
            "",
            f"Input pipeline alone (gather uint8 rows, convert, two SimCLR views): {aug:.0f} views/s, "
            f"{aug / consumed:.1f}x the {consumed:.0f} views/s SimCLR training consumes.",
        ]))


if __name__ == "__main__":
    main()
