"""``threads=0`` (auto): a torch thread per core that no other process is using, decided in one place."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch

from warmstart import runtime
from warmstart.config import TrainSettings
from warmstart.engine import Stream, fit


def test_auto_takes_the_free_cores_shared_among_local_ranks(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr(runtime, "usable_cores", lambda: 4)
    for busy, threads in ((0, 4), (1, 3), (3, 1), (9, 1)):
        monkeypatch.setattr(runtime, "busy_elsewhere", lambda busy=busy: busy)
        assert runtime.default_threads() == threads
    monkeypatch.setattr(runtime, "busy_elsewhere", lambda: 0)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # torchrun with 2 processes on this node
    assert runtime.default_threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # an explicit choice wins (torchrun sets 1)
    assert runtime.default_threads() == 3


def test_a_busy_process_is_seen():
    loop = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        seen = 0
        for _ in range(50):  # the loop is runnable as soon as the interpreter has started
            seen = max(seen, runtime.busy_elsewhere())
            if seen:
                break
            time.sleep(0.05)
        assert seen >= 1
    finally:
        loop.kill()
        loop.wait()


def test_fit_applies_auto_threads_when_threads_is_0(monkeypatch):
    net = torch.nn.Linear(2, 1)
    stream = Stream(8, 4, lambda rows: (torch.ones(len(rows), 2),))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setattr(runtime, "default_threads", lambda: 1)
        fit(net, lambda batch: (net(batch[0]).mean(), {}), [stream], TrainSettings(epochs=1, threads=0))
        assert torch.get_num_threads() == 1
        fit(net, lambda batch: (net(batch[0]).mean(), {}), [stream], TrainSettings(epochs=1, threads=2))
        assert torch.get_num_threads() == 2  # an explicit count is used as given
    finally:
        torch.set_num_threads(before)


def test_resume_keeps_the_thread_count_the_run_started_with(tmp_path, monkeypatch):
    """Another count sums floats in another order, so a resumed run would not end bit-identical."""
    net = torch.nn.Linear(2, 1)
    stream = Stream(8, 4, lambda rows: (torch.ones(len(rows), 2),))
    settings = TrainSettings(epochs=2, threads=0)
    before = torch.get_num_threads()

    def stop(step: int) -> None:
        if step == 2:
            raise KeyboardInterrupt
    try:
        monkeypatch.setattr(runtime, "default_threads", lambda: 2)
        with pytest.raises(KeyboardInterrupt):
            fit(net, lambda batch: (net(batch[0]).mean(), {}), [stream], settings, run_dir=tmp_path, after_step=stop)
        monkeypatch.setattr(runtime, "default_threads", lambda: 1)  # the machine got busier meanwhile
        fit(net, lambda batch: (net(batch[0]).mean(), {}), [stream], settings, run_dir=tmp_path, resume=True)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
