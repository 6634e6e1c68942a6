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
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from warmstart.checkpoint import atomic_write_text
from warmstart.errors import UserError

EXTRA = "pip install 'warmstart[parallel]'"
#: submitit parameters unless ``slurm.KEY=VALUE`` says otherwise: one core per job (its one thread), and a
#: time limit well above one cell's (submitit's own default is 5 minutes).
SLURM_DEFAULTS = {"timeout_min": 240, "cpus_per_task": 1, "name": "warmstart-study"}
POLL_S = 0.5  # how often the driver asks submitit whether a job has finished


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
        _import("distributed", "dask")
        if config.scheduler:
            _reachable(config.scheduler)
    elif config.executor == "slurm":
        with tempfile.TemporaryDirectory() as scratch:  # submitit makes its folder: validate in a throwaway one
            _slurm_executor(config, Path(scratch))


def _import(module: str, executor: str):
    try:
        return __import__(module)
    except ImportError as err:
        raise UserError(f"--executor {executor} needs the parallel extra ({module} is not installed): {EXTRA}") from err


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


# --- the worker side ---------------------------------------------------------------------------------

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
_CONTEXT: list[Context] = []  # a local worker's context, set once by its initializer


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


def _init_local(context: Context) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the driver decides
    _CONTEXT[:] = [context]


def _work_local(task: tuple):
    return work(_CONTEXT[0], task)


# --- executors: submit a task, wait for some to finish, take a result, close --------------------------

class LocalWorkers:
    """``workers`` spawned processes on this machine."""

    batched = False  # a worker process stays up: one cell per task costs nothing

    def __init__(self, config, context: Context) -> None:
        self.capacity = config.workers
        self.pool = futures.ProcessPoolExecutor(config.workers, mp_context=get_context("spawn"),
                                                initializer=_init_local, initargs=(context,))

    def submit(self, task: tuple):
        return self.pool.submit(_work_local, task)

    def wait(self, handles: list) -> list:
        return list(futures.wait(handles, return_when=futures.FIRST_COMPLETED).done)

    def result(self, handle):
        try:
            return handle.result()
        except futures.process.BrokenProcessPool as err:
            raise UserError(f"a worker process died ({err}; killed, or out of memory?); finished cells are kept: "
                            "rerun the same command to continue") from err

    def close(self, interrupted: bool) -> None:
        if not interrupted:  # idle workers exit on their own (seconds, under load) while the report is written
            self.pool.shutdown(wait=False)
            return
        processes = list((getattr(self.pool, "_processes", None) or {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:  # a cell in flight resumes from its checkpoint next time
            process.terminate()
        for process in processes:
            process.join(10)


class DaskWorkers:
    """A ``dask.distributed`` client: of a ``LocalCluster`` of ``workers`` processes, or of ``scheduler``."""

    batched = False

    def __init__(self, config, context: Context) -> None:
        distributed = _import("distributed", "dask")
        self.distributed, self.cluster, self.submitted = distributed, None, []
        if config.scheduler:
            try:
                self.client = distributed.Client(config.scheduler, timeout="20s")
            except (OSError, TimeoutError, ValueError) as err:
                raise UserError(f"cannot reach the Dask scheduler at {config.scheduler} ({err}); start one (`dask "
                                "scheduler`, then `dask worker ADDRESS --nthreads 1`) or fix --scheduler") from err
            self.capacity = max(1, sum(self.client.nthreads().values()))
        else:
            # ":0": any free port for the scheduler's HTTP server (dask's fixed 8787 may be another user's)
            self.cluster = distributed.LocalCluster(n_workers=config.workers, threads_per_worker=1, processes=True,
                                                    dashboard_address=":0", silence_logs=logging.ERROR)
            self.client = distributed.Client(self.cluster)
            self.capacity = config.workers
        self.context = self.client.scatter(context, broadcast=True)  # shipped once per worker, not per task

    def submit(self, task: tuple):
        future = self.client.submit(work, self.context, task, pure=False)
        self.submitted.append(future)
        return future

    def wait(self, handles: list) -> list:
        return list(self.distributed.wait(handles, return_when="FIRST_COMPLETED").done)

    def result(self, handle):
        try:
            return handle.result()
        except self.distributed.KilledWorker as err:
            raise UserError(f"Dask workers died running a task ({err}); finished cells are kept: rerun the same "
                            "command to continue") from err

    def close(self, interrupted: bool) -> None:
        if interrupted:
            self.client.cancel([f for f in self.submitted if not f.done()])
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


class SlurmJobs:
    """One ``submitit`` job per task, at most ``workers`` queued or running at once. A job is a new process
    that loads the data and the study's plan (seconds), so ready cells go out in ``workers`` batches."""

    batched = True

    def __init__(self, config, context: Context, folder: Path) -> None:
        self.executor = _slurm_executor(config, folder)
        self.capacity, self.context, self.submitted = config.workers, context, []

    def submit(self, task: tuple):
        job = self.executor.submit(work, self.context, task)
        self.submitted.append(job)
        return job

    def wait(self, handles: list) -> list:
        while not (done := [job for job in handles if job.done()]):
            time.sleep(POLL_S)
        return done

    def result(self, handle):
        import submitit

        try:
            return handle.result()
        except (submitit.core.utils.FailedJobError, submitit.core.utils.UncompletedJobError) as err:
            last = next((line for line in reversed(str(err).strip().splitlines()) if line.strip()), "")
            raise UserError(f"job {handle.job_id} failed: {last.strip()} (its log: {handle.paths.stderr}); "
                            "finished cells are kept: rerun the same command to continue") from err

    def close(self, interrupted: bool) -> None:
        for job in self.submitted if interrupted else ():
            if not job.done():
                job.cancel(check=False)


def _slurm_executor(config, folder: Path):
    submitit = _import("submitit", "slurm")
    params = {**SLURM_DEFAULTS, **config.slurm}
    cluster = params.pop("cluster", "slurm")
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise UserError("--executor slurm: there is no sbatch on this machine; run the study on a Slurm login node, "
                        "or add slurm.cluster=local to run its jobs as processes here")
    try:
        executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
        executor.update_parameters(**params)
    except (ValueError, NameError, AssertionError, TypeError) as err:
        raise UserError(f"slurm settings: {str(err).strip().splitlines()[0]}") from err
    return executor


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
