"""Shared by the bench scripts: the machine line, a Markdown table, and section-wise BENCHMARKS.md updates.

Each script owns one section between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` and replaces only
that, so several scripts can share the file. Each section ends with the git revision it was measured at
(``revision.stamp``), which ``bench/check_stale.py`` (``make bench-check``) compares with the code.
"""
from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import torch

import revision

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "BENCHMARKS.md"
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing
#: The revision the bench script started at: what its figures measure, whatever is committed while it runs.
STARTED_AT = revision.head()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    cpu = cpu_name()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{os.cpu_count()} cores ({cpu}), torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
            f"Python {platform.python_version()}, load average {load:.1f} at start")


def git_revision() -> str:
    """The checkout's short commit hash, with "+changes" when the work tree differs from it."""
    head = revision.head()
    if head == "unknown":
        return "unknown revision"
    return head + ("+changes" if revision.git("status", "--porcelain", "--untracked-files=no") else "")


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(name: str, body: str, script: str) -> None:
    """Replace (or append) the ``name`` section of BENCHMARKS.md, ending it with the revision that ``script``
    (pass ``__file__``) measured: the one it started at. Commit the measured code first: a ``-dirty`` stamp
    counts as stale."""
    line = revision.stamp(script, STARTED_AT)
    if "-dirty" in line:
        print(f"warning: files {Path(script).name} measures have uncommitted changes; commit them and rerun, "
              "or `make bench-check` will call this section stale", file=sys.stderr)
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    block = f"{begin}\n{body.strip()}\n\n{line}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    tmp = BENCHMARKS.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(BENCHMARKS)
