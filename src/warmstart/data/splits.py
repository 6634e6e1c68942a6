"""Label budgets: which training examples keep their labels in a few-label experiment.

A budget is a spec string (``per_class=5``, ``count=100``, ``fraction=0.1`` or a bare count) so it
can live in configs and run names; ``str(budget)`` gives the canonical spec back. Splits are always
stratified — a budget that starves a class silently would make results depend on luck — and are a
pure function of ``(y, seed)``, so a run can be reproduced from its seed alone.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from warmstart.errors import UserError

KINDS = ("per_class", "count", "fraction")
_USAGE = "write per_class=K, count=N, fraction=F (0 < F <= 1) or a bare count N, e.g. per_class=10"


@dataclass(frozen=True)
class LabelBudget:
    """How many labels to keep: ``kind`` is one of ``KINDS``; ``value`` an int, or a float for fractions.

    ``per_class=K``: exactly K of every class. ``count=N``: N in all, as even across classes as
    their sizes allow. ``fraction=F``: F of every class (rounded, at least one each).
    """

    kind: str
    value: int | float

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UserError(f"unknown label budget kind '{self.kind}'; {_USAGE}")
        if self.kind == "fraction":
            if not 0 < self.value <= 1:
                raise UserError(f"label budget fraction={self.value} is outside (0, 1]; {_USAGE}")
            object.__setattr__(self, "value", float(self.value))
        elif int(self.value) != self.value or self.value < 1:
            raise UserError(f"label budget {self.kind}={self.value} must be a whole number of at least 1; {_USAGE}")
        else:
            object.__setattr__(self, "value", int(self.value))

    @classmethod
    def parse(cls, spec: str | int) -> LabelBudget:
        """``"per_class=5"``, ``"count=100"``, ``"fraction=0.1"`` or ``"100"`` (a count)."""
        text = str(spec).strip()
        kind, sep, value = text.partition("=")
        kind = kind.strip().replace("-", "_") if sep else "count"
        value = value if sep else text
        try:
            number = float(value) if kind == "fraction" else int(value)
        except ValueError:
            raise UserError(f"cannot read label budget '{text}'; {_USAGE}") from None
        return cls(kind, number)

    def __str__(self) -> str:
        return f"{self.kind}={self.value!r}"

    def size(self, y: np.ndarray) -> int:
        """How many labels this budget keeps for labels ``y`` (raises like ``split`` would)."""
        return int(self._allocate(np.asarray(y), None, None).sum())

    def split(
        self, y: np.ndarray, seed: int, class_names: Sequence[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sorted, disjoint int64 ``(labeled_idx, unlabeled_idx)`` that together cover ``y``."""
        y = np.asarray(y)
        rng = np.random.default_rng(seed)
        counts = self._allocate(y, rng, class_names)
        classes = np.unique(y)
        picked = [
            rng.choice(np.flatnonzero(y == c), size=int(k), replace=False) for c, k in zip(classes, counts)
        ]
        labeled = np.sort(np.concatenate(picked + [np.empty(0, np.int64)]).astype(np.int64))
        mask = np.ones(len(y), bool)
        mask[labeled] = False
        return labeled, np.flatnonzero(mask).astype(np.int64)

    def _allocate(
        self, y: np.ndarray, rng: np.random.Generator | None, class_names: Sequence[str] | None
    ) -> np.ndarray:
        """Labels per class (in ``np.unique(y)`` order). ``rng`` None: the size only matters."""
        if y.ndim != 1 or len(y) == 0:
            raise UserError(f"label budget {self}: need a non-empty 1-D label array, got shape {y.shape}")
        classes, sizes = np.unique(y, return_counts=True)
        n_classes = len(classes)
        if self.kind == "per_class":
            k = self.value
            if sizes.min() < k:
                worst = classes[sizes.argmin()]
                label = class_names[int(worst)] if class_names is not None and 0 <= worst < len(class_names) else worst
                raise UserError(
                    f"label budget {self}: class '{label}' has only {sizes.min()} examples; "
                    f"use per_class={sizes.min()} or less"
                )
            return np.full(n_classes, k)
        if self.kind == "count":
            n = self.value
            if n > len(y):
                raise UserError(
                    f"label budget {self} exceeds the {len(y)} training examples; use count={len(y)} or less"
                )
            if n < n_classes:
                raise UserError(
                    f"label budget {self} is below the {n_classes} classes; give at least one label per class"
                )
            return _balanced(n, sizes, rng)
        return _proportional(self.value, sizes, rng)


def _balanced(n: int, sizes: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    """Spread ``n`` as evenly as class sizes allow; the odd remainder goes to random classes."""
    alloc = np.zeros(len(sizes), np.int64)
    remaining = n
    while remaining > 0:
        open_ = np.flatnonzero(alloc < sizes)
        share = remaining // len(open_)
        if share == 0:
            chosen = rng.choice(open_, remaining, replace=False) if rng is not None else open_[:remaining]
            alloc[chosen] += 1
            break
        add = np.minimum(share, sizes[open_] - alloc[open_])
        alloc[open_] += add
        remaining -= int(add.sum())
    return alloc


def _proportional(f: float, sizes: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    """``f * size`` per class, at least 1, largest-remainder rounded to about ``round(f * N)``.

    The floor of one label per class keeps a small class from silently getting none.
    """
    quotas = f * sizes
    alloc = np.maximum(np.floor(quotas).astype(np.int64), 1)
    extra = int(round(f * sizes.sum())) - int(alloc.sum())
    if extra > 0:
        frac = quotas - alloc
        order = rng.permutation(len(sizes)) if rng is not None else np.arange(len(sizes))
        ranked = order[np.argsort(-frac[order], kind="stable")]  # ties broken at random
        ranked = ranked[alloc[ranked] < sizes[ranked]]  # float rounding must never overfill a class
        alloc[ranked[:extra]] += 1
    return alloc


def stratified_sample(strata: np.ndarray, n: int, rng: np.random.Generator, reserve: int = 0) -> np.ndarray:
    """Positions of ``n`` entries of ``strata`` spread over its groups as evenly as their sizes (less ``reserve``
    each, which stay unpicked) allow; with fewer rows than groups, ``n`` random groups give one each."""
    groups, inverse, sizes = np.unique(strata, return_inverse=True, return_counts=True)
    counts = _balanced(n, np.maximum(sizes - reserve, 0), rng) if n > 0 else np.zeros(len(groups), np.int64)
    picked = [rng.choice(np.flatnonzero(inverse == g), size=int(k), replace=False)
              for g, k in enumerate(counts) if k]
    return np.sort(np.concatenate(picked + [np.empty(0, np.int64)]).astype(np.int64))


def fixed_split(y: np.ndarray, test_size: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train_idx, test_idx): stratified when every class allows it, always ``random_state=0``."""
    order = np.arange(len(y))
    if len(y) < 2:
        raise UserError(f"need at least 2 examples to make a train/test split, got {len(y)}; add data")
    try:
        tr, te = train_test_split(order, test_size=test_size, random_state=0, stratify=y)
    except ValueError:  # a class with 1 example, or fewer test slots than classes
        tr, te = train_test_split(order, test_size=test_size, random_state=0)
    return np.sort(tr), np.sort(te)
