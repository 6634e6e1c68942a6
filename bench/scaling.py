"""Does pretraining scale with the pool? Time per epoch and peak memory for 6k, 60k and 600k images.

Fashion-MNIST's 60k training images are tiled (repeated) into uncompressed ``.npz`` pools of 6k, 60k
and 600k rows (600k x 784 uint8 = 470 MB) under the warmstart cache; the ``npz:`` source memory-maps
their members in place. Each size is pretrained for ONE FULL EPOCH (no extrapolation) in a fresh
subprocess, which reports its epoch time and memory: peak RSS (the kernel's VmHWM) and, sampled every
20 ms, its peak private memory (RssAnon) and peak mapped file pages (RssFile). Mapped pages of the pool
are the OS page cache shown through the mapping: shared, clean, and dropped by the kernel under memory
pressure, so RssFile grows with what an epoch touches while private memory must stay flat.

    python bench/scaling.py              # all three sizes, writes its section of BENCHMARKS.md
    python bench/scaling.py --sizes 6000 60000 --no-write
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import common
import numpy as np

# The files whose code these figures time (``make bench-check`` flags the section when one changes).
MEASURES = [
    "src/warmstart/engine.py",
    "src/warmstart/runtime.py",
    "src/warmstart/pipeline.py",
    "src/warmstart/models/encoders.py",
    "src/warmstart/data/bundle.py",
    "src/warmstart/config.py",
    "src/warmstart/health.py",
    "src/warmstart/data/sources.py",
    "src/warmstart/data/array_files.py",
    "src/warmstart/objectives/base.py",
    "src/warmstart/objectives/autoencoder.py",
]


def write_pool(path: Path, size: int) -> None:
    """Stream an uncompressed npz of ``size`` tiled Fashion-MNIST rows, never holding the pool in RAM."""
    from warmstart.data.sources import load_data

    data = load_data("fashion-mnist")
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key, source in (("x_train", data.x_train), ("y_train", data.y_train)):
            shape = (size, *source.shape[1:])
            with archive.open(f"{key}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array_header_2_0(f, {"descr": np.lib.format.dtype_to_descr(source.dtype),
                                                         "fortran_order": False, "shape": shape})
                for start in range(0, size, len(source)):
                    f.write(np.ascontiguousarray(source[:min(len(source), size - start)]).tobytes())
        for key in ("x_test", "y_test"):  # a shipped test split: no train/test split copy of the pool
            with archive.open(f"{key}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asarray(getattr(data, key)))
    tmp.replace(path)


def child(path: str, args) -> None:
    """One measurement, in its own process: pretrain one epoch and print a JSON line."""
    peaks = {"RssAnon": 0, "RssFile": 0}

    def status() -> dict[str, int]:
        fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
        return {k: int(fields[k].split()[0]) for k in ("VmHWM", "RssAnon", "RssFile")}

    def sample() -> None:
        while True:
            now = status()
            for key in peaks:
                peaks[key] = max(peaks[key], now[key])
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    from dataclasses import replace

    from warmstart.config import PretrainConfig
    from warmstart.data.sources import load_data
    from warmstart.pipeline import pretrain

    config = PretrainConfig(data=f"npz:{path}", epochs=1, batch_size=args.batch_size, threads=args.threads,
                            encoder=args.encoder, device="cpu")
    started = time.perf_counter()
    data = load_data(config.data)
    load_seconds = time.perf_counter() - started
    # Warm-up on a 2-batch view of the pool: the first optimiser step imports torch._dynamo & co (~1 s of
    # CPU), a fixed cost that would otherwise weigh on the small pools' time per image.
    pretrain(config, data=replace(data, x_train=data.x_train[:2 * args.batch_size],
                                  y_train=data.y_train[:2 * args.batch_size]))
    cpu_started = time.process_time()
    result = pretrain(config, data=data)
    cpu_seconds = time.process_time() - cpu_started
    time.sleep(0.05)
    record = result.history[0]
    print(json.dumps({"seconds": record["seconds"], "cpu_seconds": cpu_seconds, "load_seconds": load_seconds,
                      "loss": record["loss"], "images": record["step"] * args.batch_size,
                      "vmhwm_mb": status()["VmHWM"] / 1024, "anon_mb": peaks["RssAnon"] / 1024,
                      "file_mb": peaks["RssFile"] / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[6_000, 60_000, 600_000])
    parser.add_argument("--encoder", default="mlp")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1, help="epochs timed per size (fresh process each)")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args)

    from warmstart.data.idx import cache_root

    cache = cache_root() / "bench-scaling"
    cache.mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_num_threads(args.threads)  # as in the children, so the machine line says what they ran with
    header = common.machine()
    print(header)
    results = {}
    for size in args.sizes:
        path = cache / f"fashion-tiled-{size}.npz"
        if not path.exists():
            write_pool(path, size)
        runs = []
        for _ in range(args.repeats):
            cmd = [sys.executable, __file__, "--child", str(path), "--encoder", args.encoder, "--batch-size",
                   str(args.batch_size), "--threads", str(args.threads)]
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
        r["file_size_mb"] = path.stat().st_size / 2**20
        results[size] = r
        cpu_us = 1e6 * r["cpu_seconds"] / r["images"]
        print(f"{size:>8} images: epoch {r['seconds']:7.1f} s, {cpu_us:6.1f} CPU us/image,"
              f" peak RSS {r['vmhwm_mb']:6.0f} MB, private {r['anon_mb']:5.0f} MB, mapped file {r['file_mb']:5.0f} MB",
              flush=True)

    base = results.get(60_000) or results[args.sizes[0]]
    def per_image(r: dict) -> float:  # CPU time: immune to other jobs on a shared machine (1 thread)
        return r["cpu_seconds"] / r["images"]

    rows = [[f"{size:,}", f"{r['file_size_mb']:.0f}", f"{r['seconds']:.1f}", f"{r['cpu_seconds']:.1f}",
             f"{1e6 * per_image(r):.1f}", f"{per_image(r) / per_image(base):.2f}", f"{r['vmhwm_mb']:.0f}",
             f"{r['anon_mb']:.0f}", f"{r['file_mb']:.0f}"] for size, r in results.items()]
    text = common.table(["pool (images)", "file MiB", "epoch wall s", "CPU s", "CPU us/image", "vs 60k",
                         "peak RSS MiB", "peak private MiB", "peak mapped file MiB"], rows)
    print(text)
    if 600_000 in results and 60_000 in results:
        big, mid = results[600_000], results[60_000]
        summary = (f"600k vs 60k: CPU time per image x{per_image(big) / per_image(mid):.2f}, "
                   f"peak RSS x{big['vmhwm_mb'] / mid['vmhwm_mb']:.2f}, "
                   f"peak private memory x{big['anon_mb'] / mid['anon_mb']:.2f}.")
        print(summary)
    else:
        summary = ""
    if not args.no_write:
        cmd = (f"python bench/scaling.py --sizes {' '.join(map(str, args.sizes))} --encoder {args.encoder} "
               f"--batch-size {args.batch_size} --threads {args.threads} --repeats {args.repeats}")
        common.write_section("scaling", "\n".join([
            "## Scaling: pretraining time and memory vs pool size (memory-mapped data)",
            "",
            f"`{cmd}`: `{args.encoder}` autoencoder, batch {args.batch_size}, one full epoch per size in a fresh "
            "process (median of --repeats), Fashion-MNIST tiled into uncompressed `.npz` pools read through "
            "the memory-mapping `npz:` source. Epoch wall s is the engine's epoch time; CPU s is the process's "
            "CPU time for the `pretrain` call after a 2-batch warm-up (the figure the time-per-image column uses). "
            "Peak RSS is the kernel's VmHWM; private (RssAnon) and mapped file (RssFile) peaks are sampled "
            "every 20 ms.",
            "",
            f"Machine: {header}.",
            "",
            text,
            "",
            summary,
        ]), __file__)


if __name__ == "__main__":
    main()
