"""What a study's worker runs: one task (a pretraining run, or some cells, each row written as it finishes),
from a ``Context`` it rebuilds the study's runner from, on one torch and BLAS thread unless told otherwise.

Every executor in ``backends.py`` sends ``work`` and a ``Context`` to its workers, which unpickle them by
module path: both stay top-level here.
"""
from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warmstart.checkpoint import atomic_write_text
from warmstart.errors import UserError


@dataclass
class Context:
    """What a worker needs to rebuild the study's runner; ``data`` is None when each worker loads it."""

    config: Any  # StudyConfig
    out: str
    data: Any = None
    driver: str = field(default_factory=lambda: _process())  # a task run in the driver changes no settings


@dataclass
class Failure:
    """A task's ``UserError``, returned rather than raised so that every executor carries it back alike."""

    message: str


_RUNNER: dict[str, Any] = {}  # this process's runner, by study: loaded encoders stay in memory between cells


def work(context: Context, task: tuple) -> list[dict[str, Any]] | Failure:
    """Run ``("pretrain", label, seed)`` or ``("cells", [cell, ...])`` in a worker; each cell's row is written
    here as soon as it is finished (so a job killed halfway keeps the cells it finished)."""
    from warmstart.study.plan import plan_study
    from warmstart.study.files import cell_path
    from warmstart.study.run import StudyRunner

    if _process() != context.driver:  # submitit's DebugExecutor runs tasks in the driver: leave it as it is
        _one_thread()
    try:
        key = f"{context.out}\0{context.config.model_dump_json()}"
        if key not in _RUNNER:
            _RUNNER.clear()
            _RUNNER[key] = StudyRunner(plan_study(context.config, context.data), Path(context.out), lambda _: None)
        runner = _RUNNER[key]
        if task[0] == "pretrain":
            runner.objective_of(task[1], task[2])
            return []
        rows = []
        for cell in task[1]:
            rows.append(runner.run_cell(cell))
            atomic_write_text(cell_path(runner.out, cell), json.dumps(rows[-1]))
        return rows
    except UserError as err:
        return Failure(str(err))


def _process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _one_thread() -> None:
    """Torch and BLAS threads of this worker: ``OMP_NUM_THREADS`` if set (``threads=K`` still wins in each
    run), else 1. No progress bars: N processes' bars would overwrite each other; the driver shows one."""
    import torch
    from threadpoolctl import threadpool_limits

    value = os.environ.get("OMP_NUM_THREADS", "")
    threads = int(value) if value.isdigit() and int(value) > 0 else 1
    os.environ["OMP_NUM_THREADS"], os.environ["TQDM_DISABLE"] = str(threads), "1"
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    threadpool_limits(threads)
