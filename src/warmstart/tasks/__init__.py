"""Tasks (registry ``TASKS``): what the labels are — ``classify``, ``regress``, ``tag``, ``segment``, ``detect``,
``rank``, ``rate``.

A task owns target checks, label budgets, the head, the loss, predictions, metrics (with a primary metric
and its direction), the linear probe and the classical baselines (``tasks/base.py``). One file and one
registration line each. ``resolve_task`` applies a user's ``--task`` to a bundle whose source inferred one.
"""
from __future__ import annotations

from warmstart.tasks.base import TASKS, Task
from warmstart.tasks import classify as _classify, regress as _regress, tag as _tag  # noqa: F401,E402 (registers)
from warmstart.tasks import segment as _segment, detect as _detect  # noqa: F401,E402 (registers)
from warmstart.tasks import rank as _rank, rate as _rate  # noqa: F401,E402 (registers)


def resolve_task(bundle, requested: str | None):
    """``(bundle, task)``: the source's inferred task, or ``requested`` with the bundle re-read for it
    (a ``UserError`` names what was inferred and how to override it when that cannot be done)."""
    if requested is None or requested == bundle.task:
        return bundle, TASKS.get(bundle.task)
    task = TASKS.get(requested)
    return task.adopt(bundle), task


__all__ = ["TASKS", "Task", "resolve_task"]
