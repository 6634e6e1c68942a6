"""The executors a parallel study runs its tasks on, each with the same four calls (submit a task, wait for
some to finish, take a result, close): ``LocalWorkers`` (spawned processes), ``DaskWorkers``
(``dask.distributed``) and ``SlurmJobs`` (``submitit``). ``executors.py`` chooses one and feeds it tasks.
"""
from __future__ import annotations

import logging
import shutil
import signal
import time
from concurrent import futures
from multiprocessing import get_context
from pathlib import Path

from warmstart.errors import UserError
from warmstart.study.worker import Context, work

EXTRA = "pip install 'warmstart[parallel]'"
#: submitit parameters unless ``slurm.KEY=VALUE`` says otherwise: one core per job (its one thread), and a
#: time limit well above one cell's (submitit's own default is 5 minutes).
SLURM_DEFAULTS = {"timeout_min": 240, "cpus_per_task": 1, "name": "warmstart-study"}
POLL_S = 0.5  # how often the driver asks submitit whether a job has finished


def import_extra(module: str, executor: str):
    """The optional ``module`` that ``--executor executor`` needs, or a UserError naming the extra to install."""
    try:
        return __import__(module)
    except ImportError as err:
        raise UserError(f"--executor {executor} needs the parallel extra ({module} is not installed): {EXTRA}") from err


_CONTEXT: list[Context] = []  # a local worker's context, set once by its initializer


def _init_local(context: Context) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the driver decides
    _CONTEXT[:] = [context]


def _work_local(task: tuple):
    return work(_CONTEXT[0], task)


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
        distributed = import_extra("distributed", "dask")
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
        self.executor = slurm_executor(config, folder)
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


def slurm_executor(config, folder: Path):
    """A submitit executor for the study's ``slurm`` settings (a UserError when Slurm or they are unusable)."""
    submitit = import_extra("submitit", "slurm")
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
