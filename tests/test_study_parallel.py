"""Parallel studies (study/executors.py): local worker processes, Dask and submitit give the one-process
``results.csv``, resume after a kill, refuse bad executor settings in one line, and lock their directory."""
from __future__ import annotations

import csv
import os
import json
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits

from warmstart.cli import main
from warmstart.study_config import resolve_study
from warmstart.errors import UserError
from warmstart.study import TIMING_COLUMNS, run_study
from warmstart.study import locks
from warmstart.study.locks import LOCK_FILE, locked

# 8 cells (logistic regression, scratch, autoencoder+linear, autoencoder+full at 2 budgets) and one pretraining.
SMALL = ["pretrain.epochs=5", "finetune.epochs=30", "finetune.lr=0.01", "encoder_args.width=32",
         "encoder_args.feature_dim=16", "explain=0"]
FLAGS = {"labels": "20,40", "seeds": 1, "objectives": "autoencoder", "strategies": "linear,full",
         "baselines": "logistic_regression"}
CELLS = 8

pytestmark = pytest.mark.usefixtures("one_blas_thread")  # conftest: one BLAS thread per module


def small(*overrides: str):
    return resolve_study(flags=FLAGS, overrides=SMALL + list(overrides))


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(f)]


def quiet(line: str) -> None:
    pass


@pytest.fixture(scope="module")
def reference(tmp_path_factory, digits):
    """The study run in this process, one cell after another."""
    out = tmp_path_factory.mktemp("serial") / "study"
    run_study(small(), out, echo=quiet)
    return out


def pretrain_epochs(out: Path) -> int:
    """Epoch records of the study's one pretraining run: a run trained twice (or concurrently) has more."""
    lines = (out / "pretrain" / "autoencoder" / "metrics.jsonl").read_text().splitlines()
    return sum(1 for line in lines if "epoch" in json.loads(line))


def kill_after(n: int, seen: list):
    def after_cell(cell, row):
        seen.append(cell.key)
        if len(seen) == n:
            raise KeyboardInterrupt  # as Ctrl-C in the driver: the workers are stopped with it

    return after_cell


def kill_then_resume(out: Path, first, second, reference: Path) -> None:
    """Kill ``first`` after 3 new cells, resume with ``second``: finished cells are kept, the rest run once,
    and ``results.csv`` is the one-process study's."""
    seen: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run_study(first, out, after_cell=kill_after(3, seen), echo=quiet)
    assert not (out / "report.html").exists()
    kept = {p.name.removesuffix(".json") for p in (out / "cells").glob("*.json")}
    assert set(seen) <= kept and len(kept) < CELLS
    rerun: list[str] = []
    run_study(second, out, after_cell=lambda cell, row: rerun.append(cell.key), echo=quiet)
    assert len(rerun) == CELLS - len(kept) and not set(rerun) & kept
    assert read_csv(out / "results.csv") == read_csv(reference / "results.csv")
    assert pretrain_epochs(out) == pretrain_epochs(reference) == 5
    assert (out / "report.html").exists()


def test_two_local_workers_give_the_one_process_results(reference, tmp_path):
    out = tmp_path / "two"
    run_study(small("workers=2"), out, echo=quiet)
    assert read_csv(out / "results.csv") == read_csv(reference / "results.csv")
    assert len(list((out / "cells").glob("*.json"))) == CELLS
    assert pretrain_epochs(out) == 5  # pretrained once, before the cells that start from it
    assert (out / "report.html").exists()


def test_local_workers_killed_resume_under_another_worker_count(reference, tmp_path):
    # The worker count is not part of the study: a study killed with 2 workers continues with 1.
    kill_then_resume(tmp_path / "killed", small("workers=2"), small(), reference)


def test_dask_killed_resumes_on_a_running_scheduler(reference, tmp_path):
    distributed = pytest.importorskip("distributed")
    out = tmp_path / "dask"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        kill_then_resume(out, small("executor=dask", "workers=2"),
                         small("executor=dask", f"scheduler={cluster.scheduler_address}"), reference)


def test_submitit_local_jobs_killed_resume(reference, tmp_path):
    pytest.importorskip("submitit")
    out = tmp_path / "slurm"
    # Killed as local job processes; resumed through submitit's in-process DebugExecutor (no process starts).
    kill_then_resume(out, small("executor=slurm", "workers=2", "slurm.cluster=local"),
                     small("executor=slurm", "slurm.cluster=debug"), reference)
    assert list((out / "slurm").glob("*_log.err"))  # the jobs' own logs, beside the study


def test_a_workers_user_error_ends_the_study_in_one_line(reference, tmp_path):
    # Pretrained cells load the shared pretraining run in their worker, which refuses other settings.
    pytest.importorskip("submitit")
    config = small("executor=slurm", "slurm.cluster=debug", "pretrain.epochs=6",
                   f"pretrain_dir={reference / 'pretrain'}")
    with pytest.raises(UserError, match="holds a pretraining run with other settings"):
        run_study(config, tmp_path / "other", echo=quiet)


def test_a_lock_names_its_holder_by_pid_or_as_just_started(tmp_path):
    """The refusal names the holder's pid; a holder that has the lock but has not yet written its pid is
    named as such (the message once read "pid another process")."""
    import fcntl

    path = tmp_path / LOCK_FILE
    with open(path, "a+") as holder, open(path, "a+") as other:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # locked, pid not written yet
        assert locks._take(other) == "a process that has just started"
        holder.write("4242")
        holder.flush()
        assert locks._take(other) == "pid 4242"
        with pytest.raises(UserError, match=r"another warmstart study \(pid 4242\) is running in"):
            with locked(tmp_path):
                pass


def test_a_second_study_on_a_running_ones_directory_is_refused(reference, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(reference, out)
    with locked(out):
        with pytest.raises(UserError, match="another warmstart study .* is running in"):
            run_study(small(), out, echo=quiet)
    assert (out / LOCK_FILE).exists()
    run_study(small(), out, echo=quiet)  # the lock went with its holder


def test_a_study_waits_for_another_one_training_its_shared_pretraining_run(reference, tmp_path):
    shared = tmp_path / "shared"
    run_dir = shared / "autoencoder"
    said: list[str] = []
    study = threading.Thread(target=run_study, args=(small(f"pretrain_dir={shared}"), tmp_path / "second"),
                             kwargs={"echo": said.append})
    with locks.pretraining(run_dir, quiet):  # another study (here: this thread) is training the run
        study.start()
        deadline = time.monotonic() + 60
        while not any(line.startswith("waiting for pid") for line in said) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(f"which is pretraining {run_dir.name}" in line for line in said), said
        assert not (run_dir / "encoder.safetensors").exists()  # the waiting study trained nothing
        shutil.copytree(reference / "pretrain" / "autoencoder", run_dir)  # the other study finishes the run
    study.join(timeout=300)
    assert f"loading {run_dir.name} encoder in {run_dir}" in said
    assert not any(line.startswith(f"pretraining {run_dir.name}") for line in said)
    trained = (reference / "pretrain" / "autoencoder" / "metrics.jsonl").read_text()
    assert (run_dir / "metrics.jsonl").read_text() == trained  # loaded as the other study left it
    assert read_csv(tmp_path / "second" / "results.csv") == read_csv(reference / "results.csv")


@pytest.mark.parametrize("args, message", [
    (["--workers", "0"], "setting workers=0: Input should be greater than or equal to 1"),
    (["--executor", "spark"], "setting executor='spark': Input should be 'local', 'dask' or 'slurm'"),
    (["--scheduler", "tcp://127.0.0.1:1"], "add --executor dask"),
    (["slurm.timeout_min=5"], "add --executor slurm"),
    (["--executor", "dask", "--scheduler", "tcp://127.0.0.1:9"], "cannot reach the Dask scheduler at tcp://127.0.0.1:9"),
    (["--executor", "dask", "--scheduler", "tcp://127.0.0.1"], "is not a Dask scheduler address"),
    (["--executor", "slurm", "slurm.cluster=local", "slurm.bogus=1"], "slurm settings: Parameter 'bogus'"),
    (["--executor", "slurm"] if shutil.which("sbatch") is None else ["--executor", "slurm", "slurm.cluster=nope"],
     "sbatch" if shutil.which("sbatch") is None else "slurm settings"),
])
def test_bad_executor_settings_are_one_line_and_write_nothing(args, message, tmp_path, capsys):
    out = tmp_path / "bad"
    assert main(["study", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("executor, module", [("dask", "distributed"), ("slurm", "submitit")])
def test_a_missing_extra_names_the_pip_command(executor, module, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if the package were not installed
    out = tmp_path / "bad"
    assert main(["study", "--out", str(out), "--executor", executor, "slurm.cluster=local"
                 if executor == "slurm" else "workers=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("pip install 'warmstart[parallel]'") and len(err.splitlines()) == 1
    assert not out.exists()


def test_executor_flags_reach_the_config_and_the_help(capsys):
    assert main(["study", "--print-config", "--workers", "3", "--executor", "dask",
                 "--scheduler", "tcp://10.0.0.1:8786"]) == 0
    printed = capsys.readouterr().out
    assert "workers: 3\n" in printed and "executor: dask\n" in printed and "scheduler: tcp://10.0.0.1:8786\n" in printed
    with pytest.raises(SystemExit):
        main(["study", "--help"])
    assert "1 thread" in " ".join(capsys.readouterr().out.split())


def test_a_worker_runs_on_one_thread_unless_told(monkeypatch):
    import torch

    from warmstart.study.worker import _one_thread

    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setenv("TQDM_DISABLE", "")
    try:
        torch.set_num_threads(2)
        _one_thread()
        assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
        monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user's thread count per worker wins
        _one_thread()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
        threadpool_limits(1)
