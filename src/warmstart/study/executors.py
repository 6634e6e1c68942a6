"""Running a study's cells on several processes: local worker processes, a Dask cluster, or Slurm jobs.

``run_parallel`` keeps at most ``capacity`` tasks in flight. First come the pretraining runs the remaining
cells need and no finished run holds, each exactly once (so no two processes ever train one run), then each
cell as soon as every run it starts from is finished, in grid order. A worker rebuilds the study's plan from
its config (loading the data itself unless the caller gave ``run_study`` a bundle, which is then shipped),
runs one task with ``StudyRunner`` and writes the cell's row atomically to ``cells/<cell>.json`` itself. The
driver rebuilds ``results.csv`` in grid order from those rows, so it holds the same metrics as a one-process
run whatever order the cells finished in. A killed study resumes under any executor and worker count:
finished cells and pretraining runs are files, and half-done ones resume from their checkpoints.

Each worker runs torch and BLAS on one thread (``OMP_NUM_THREADS=1``) unless the settings say ``threads=K``
or the environment sets ``OMP_NUM_THREADS``: N one-thread workers keep N cores busy without oversubscribing
them (two threads sharing a core run several times slower, see BENCHMARKS.md "Threads").

Executors, each the field's own engine: ``local`` (``concurrent.futures.ProcessPoolExecutor`` with spawned
processes: a fork of a process whose torch thread pools have started can hang), ``dask``
(``dask.distributed``: a ``LocalCluster`` of ``workers`` one-thread processes, or the running scheduler at
``scheduler``) and ``slurm`` (``submitit.AutoExecutor``: one job per task, its files in ``OUT/slurm/``;
``slurm.cluster=local`` runs the jobs as processes here). Workers on other machines need the study directory
(and ``pretrain_dir``) on a filesystem they share with the driver.

This file plans the tasks and dispatches them; the executors themselves are in ``backends.py``, and what a
worker runs (``work``, its ``Context``, the one-thread setting) in ``worker.py``.
"""
from __future__ import annotations

import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from warmstart.errors import UserError
from warmstart.study.backends import DaskWorkers, LocalWorkers, SlurmJobs, import_extra, slurm_executor
from warmstart.study.worker import Context, Failure


def parallel(config) -> bool:
    """Whether the cells run on workers (else in this process, one after another)."""
    return config.workers > 1 or config.executor != "local"


def check(config) -> None:
    """Refuse, in one line and before anything is written, an executor setting this machine cannot run."""
    if config.scheduler and config.executor != "dask":
        raise UserError("--scheduler is the address of a Dask scheduler: add --executor dask, or drop it")
    if config.slurm and config.executor != "slurm":
        raise UserError("slurm.* settings are submitit parameters: add --executor slurm, or drop them")
    if config.executor == "dask":
        import_extra("distributed", "dask")
        if config.scheduler:
            _reachable(config.scheduler)
    elif config.executor == "slurm":
        with tempfile.TemporaryDirectory() as scratch:  # submitit makes its folder: validate in a throwaway one
            slurm_executor(config, Path(scratch))


def _reachable(address: str) -> None:
    """Refuse a Dask scheduler address nothing listens on (a TCP connect; other protocols are left to Dask)."""
    scheme, _, where = address.rpartition("://")
    host, _, port = where.rpartition(":")
    if scheme not in ("", "tcp"):
        return
    if not host or not port.isdigit():
        raise UserError(f"--scheduler {address!r} is not a Dask scheduler address; write it like tcp://HOST:8786")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as err:
        raise UserError(f"cannot reach the Dask scheduler at {address} ({err.strerror or err}); start one (`dask "
                        "scheduler`, then `dask worker ADDRESS --nthreads 1`) or fix --scheduler") from err


def _executor(config, context: Context, out: Path):
    if config.executor == "dask":
        return DaskWorkers(config, context)
    if config.executor == "slurm":
        return SlurmJobs(config, context, out / "slurm")
    return LocalWorkers(config, context)


# --- the driver --------------------------------------------------------------------------------------

def run_parallel(runner, cells: list, data, finished: Callable[[Any, dict], None],
                 echo: Callable[[str], None]) -> None:
    """Run ``cells`` (in grid order) and the pretraining they need on the study's executor; ``finished(cell,
    row)`` is called in this process as each cell's row comes back (already written by its worker)."""
    from warmstart.study.run import PRETRAIN_INFO

    needs: dict[str, set[str]] = {}
    pretrain: dict[str, tuple] = {}  # run directory name -> its task, for runs no finished run holds
    for cell in cells:
        needs[cell.key] = set()
        for label in runner.pretrainings(cell):
            run_dir, _ = runner.run_dir(label, cell.seed)
            if not (run_dir / PRETRAIN_INFO).exists():
                needs[cell.key].add(run_dir.name)
                pretrain.setdefault(run_dir.name, ("pretrain", label, cell.seed))
    executor = _executor(runner.config, Context(runner.config, str(runner.out), data), runner.out)
    # Pretraining first, so that the cells waiting on it start sooner; then the cells whose inputs are ready.
    queue = list(pretrain.values()) + _batches([c for c in cells if not needs[c.key]], executor)
    waiting = [c for c in cells if needs[c.key]]
    inflight: list[tuple[Any, tuple]] = []
    try:
        while queue or inflight:
            while queue and len(inflight) < executor.capacity:
                task = queue.pop(0)
                if task[0] == "pretrain":
                    echo(f"pretraining {runner.run_dir(task[1], task[2])[0].name} on a worker")
                inflight.append((executor.submit(task), task))
            done = executor.wait([handle for handle, _ in inflight])
            came_back = [pair for pair in inflight if any(pair[0] is d for d in done)]
            inflight = [pair for pair in inflight if not any(pair[0] is d for d in done)]
            for handle, task in came_back:
                result = executor.result(handle)
                if isinstance(result, Failure):
                    raise UserError(result.message)
                if task[0] == "cells":
                    for cell, row in zip(task[1], result):
                        finished(cell, row)
                    continue
                name = runner.run_dir(task[1], task[2])[0].name
                for cell in waiting:
                    needs[cell.key].discard(name)
                queue += _batches([c for c in waiting if not needs[c.key]], executor)
                waiting = [c for c in waiting if needs[c.key]]
    except BaseException:
        executor.close(interrupted=True)
        raise
    executor.close(interrupted=False)


def _batches(cells: list, executor) -> list[tuple]:
    """``("cells", [...])`` tasks: one cell each, or (``executor.batched``) ``capacity`` batches in grid order."""
    if not cells:
        return []
    size = -(-len(cells) // executor.capacity) if executor.batched else 1
    return [("cells", cells[i:i + size]) for i in range(0, len(cells), size)]
