"""Shared fixtures: run the CLI as a user would (a subprocess) against this checkout's sources."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Two cores here: keep each test process to one thread so parallel helpers and CI stay predictable (threads=0,
# auto, then means 1 too: runtime.default_threads honours OMP_NUM_THREADS). Set before torch is imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src"
torch.set_num_threads(1)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None):
    """Run ``python -m warmstart ARGS`` with this checkout's ``src`` first on the path."""
    full_env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "warmstart", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout,
        env=full_env,
    )


@pytest.fixture
def cli():
    return run_cli
