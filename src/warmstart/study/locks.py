"""File locks that keep two processes off the same work: a study directory, a shared pretraining run.

Both are ``flock``'s, which the operating system drops when its process dies, so a killed study never leaves
a stale lock behind; each lock file holds its holder's pid, to name it in the message.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from warmstart.errors import UserError

LOCK_FILE = ".study.lock"


def _take(handle: IO[str], on_busy: Callable[[str], None] | None = None) -> str | None:
    """Lock ``handle`` and write this pid into it, returning None. When another process holds it: without
    ``on_busy``, return who holds it (``"pid N"``) and leave the lock alone; with it, tell it who and wait.
    A holder that has locked the file but not yet written its pid is "a process that has just started"."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        pid = handle.read().strip()
        holder = f"pid {pid}" if pid else "a process that has just started"
        if on_busy is None:
            return holder
        on_busy(holder)
        fcntl.flock(handle, fcntl.LOCK_EX)
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return None


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold ``OUT/.study.lock`` while a study runs in ``out``: a second ``warmstart study`` on the same directory
    is refused in one line instead of computing the same cells twice."""
    with open(out / LOCK_FILE, "a+") as handle:
        holder = _take(handle)
        if holder is not None:
            raise UserError(f"another warmstart study ({holder}) is running in {out}; wait for it to finish, "
                            "or give this one another --out")
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def pretraining(run_dir: Path, echo: Callable[[str], None]) -> Iterator[None]:
    """Hold ``.<run>.lock`` beside pretraining run ``run_dir`` while it is trained or loaded. Studies that
    share a ``pretrain_dir`` may run at once: the one that comes second waits (and says so) until the first
    has finished the run, then loads it instead of training it a second time into the same files."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(run_dir.parent / f".{run_dir.name}.lock", "a+") as handle:
        _take(handle, lambda holder: echo(f"waiting for {holder}, which is pretraining {run_dir.name}"))
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
