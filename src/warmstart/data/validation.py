"""The validation split: labeled training rows that only score choices, never train and never meet the test split.

Every automatic choice — the epoch a fine-tune keeps, a recipe's pick among candidates, which method a study
calls best — is made on these rows; the test split is evaluated once, at the end (Oliver et al., 2018,
"Realistic Evaluation of Deep Semi-Supervised Learning Algorithms", whose point is that a validation set
bigger than the label budget makes few-label results optimistic, so its size must be stated).

A spec string says where the rows come from:

- ``none``: no validation rows; nothing is chosen on data (fixed recipes, the last epoch is kept).
- ``budget=F`` (0 < F < 1): a share F of the label budget is held out — the realistic setting, where the
  budget is every label there is. The held-out rows keep at least one training label in every stratum.
- ``extra=N``: N labeled rows outside the budget, drawn from the unlabeled pool — the common setting of
  semi-supervised benchmarks; reports state N beside the budget.

Rows are drawn with the task's strata (classes, target quantiles, first entity type, ...), so the split
works for every task, and with its own seeded stream, so the budget's draw is the same with or without a
validation split. Validation rows leave the fine-tuning pool; their inputs stay in the training split that
pretraining reads, as every unlabeled row's do (pretraining never knows the budget).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from warmstart.data.splits import stratified_sample
from warmstart.errors import UserError

MODES = ("none", "budget", "extra")
_USAGE = "write validation=none, validation=budget=F (0 < F < 1, a share of the label budget) or validation=extra=N"


@dataclass(frozen=True)
class Validation:
    """A parsed validation spec: ``mode`` is one of ``MODES``; ``value`` the share (budget) or count (extra)."""

    mode: str
    value: float = 0.0

    @classmethod
    def parse(cls, spec: str | None) -> Validation:
        text = "none" if spec is None else str(spec).strip()
        mode, sep, raw = text.partition("=")
        if mode == "none" and not sep:
            return cls("none")
        if mode not in MODES[1:] or not sep:
            raise UserError(f"cannot read validation '{text}'; {_USAGE}")
        try:
            value = float(raw) if mode == "budget" else int(raw)
        except ValueError:
            raise UserError(f"cannot read validation '{text}'; {_USAGE}") from None
        if mode == "budget" and not 0 < value < 1:
            raise UserError(f"validation=budget={raw}: the share must lie strictly between 0 and 1; {_USAGE}")
        if mode == "extra" and value < 1:
            raise UserError(f"validation=extra={raw}: give at least one row; {_USAGE}")
        return cls(mode, value)

    def __str__(self) -> str:
        if self.mode == "none":
            return "none"
        return f"{self.mode}={self.value:g}" if self.mode == "budget" else f"extra={int(self.value)}"

    def describe(self, rows: int) -> str:
        """One phrase for reports: how many rows and where they came from."""
        if self.mode == "none":
            return "no validation rows (nothing was chosen on data)"
        where = (f"{self.value:.0%} of the label budget, held out from training" if self.mode == "budget"
                 else "labeled rows beyond the label budget, drawn from the unlabeled pool")
        return f"{rows} validation rows ({where})"


@dataclass(frozen=True)
class Rows:
    """One draw of the training split's rows (sorted, pairwise disjoint int64 indices).

    ``budget``: the label budget's rows; ``labeled``: the rows a method trains on with their labels (the
    budget minus validation rows, or the whole budget); ``validation``: the rows that score choices;
    ``unlabeled``: the fine-tuning pool, labels withheld.
    """

    budget: np.ndarray
    labeled: np.ndarray
    validation: np.ndarray
    unlabeled: np.ndarray


def draw_rows(task, bundle, labels: str | None, validation: str | Validation | None, seed: int) -> Rows:
    """The task's budget draw with ``seed``, then the validation rows carved from it or from the pool."""
    spec = validation if isinstance(validation, Validation) else Validation.parse(validation)
    budget, pool = task.split(bundle, labels, seed)
    empty = np.empty(0, np.int64)
    if spec.mode == "none":
        return Rows(budget, budget, empty, pool)
    if task.no_validation:
        raise UserError(f"validation={spec} does not apply to the {task.name} task: {task.no_validation}")
    budget_spec = task.budget(labels)
    strata, _ = task.strata(bundle, None if budget_spec.kind == "fraction" else int(budget_spec.value))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7A11D]))  # its own stream: the budget is unchanged
    if spec.mode == "budget":
        n = int(round(spec.value * len(budget)))
        held = _carve(strata[budget], budget, max(1, n), rng, keep_one=True, where="the label budget")
        return Rows(budget, np.setdiff1d(budget, held), held, pool)
    n = int(spec.value)
    held = _carve(strata[pool], pool, n, rng, keep_one=False, where="the unlabeled pool")
    return Rows(budget, budget, held, np.setdiff1d(pool, held))


def _carve(strata: np.ndarray, rows: np.ndarray, n: int, rng: np.random.Generator, keep_one: bool,
           where: str) -> np.ndarray:
    """``n`` of ``rows`` spread over their ``strata`` as evenly as sizes allow (``keep_one``: every stratum
    keeps at least one row back)."""
    _, sizes = np.unique(strata, return_counts=True)
    room = int((sizes - 1).sum()) if keep_one else len(rows)
    if n > room:
        fix = ("use a smaller validation share or a larger budget" if keep_one
               else "use a smaller validation=extra=N")
        raise UserError(f"validation needs {n} rows but {where} can spare {room}; {fix}")
    picked = stratified_sample(strata, n, rng, reserve=1 if keep_one else 0)
    return np.sort(rows[picked])
