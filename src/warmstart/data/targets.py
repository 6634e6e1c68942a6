"""Reading a target column and inferring the task from it (the manners of AutoGluon's ``infer_problem_type``).

Strings are class labels. Numbers are class labels when they are whole and few (at most ``MAX_CLASSES``
distinct values, or fewer than ``CLASS_SHARE`` of the rows), otherwise regression targets. The reason is
kept (``DataBundle.inferred``) so that an error can say what was inferred and how to override it
(``--task``).
"""
from __future__ import annotations

import numpy as np

#: Whole numbers with at most this many distinct values are read as classes...
MAX_CLASSES = 20
#: ...and so are those whose distinct values are fewer than this share of the rows.
CLASS_SHARE = 0.05


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def is_number(text: str) -> bool:
    """Whether ``float`` reads ``text`` (so "nan" and "1e3" are numbers, "" and "n/a" are not)."""
    return _number(text) is not None


def infer_targets(raw: list[str] | np.ndarray) -> tuple[str, np.ndarray, list[str], str]:
    """``(task, y, class_names, why)`` for one column of target values (strings or numbers).

    ``classify``: ``y`` holds int64 indices into ``class_names`` (sorted numerically when all are numbers);
    ``regress``: ``y`` holds float32 values and ``class_names`` is empty.

    >>> infer_targets(["1.5", "2.25", "3.0"])[0], infer_targets(["cat", "dog"])[0]
    ('regress', 'classify')
    """
    values = [str(v).strip() for v in raw]
    numbers = [_number(v) for v in values]
    distinct = sorted(set(values))
    if all(n is not None for n in numbers):
        array = np.asarray(numbers, np.float64)
        whole = bool(np.all(np.isfinite(array)) and np.all(np.mod(array, 1) == 0))
        count = len(set(numbers))
        if not whole or (count > MAX_CLASSES and count > CLASS_SHARE * len(values)):
            why = (f"{count} distinct {'real' if not whole else 'whole-number'} values; inferred regress, "
                   "override with --task classify")
            return "regress", array.astype(np.float32), [], why
        distinct = sorted(distinct, key=float)
    index = {c: i for i, c in enumerate(distinct)}
    why = f"{len(distinct)} distinct labels; inferred classify, override with --task regress"
    return "classify", np.array([index[v] for v in values], np.int64), distinct, why


def infer_array(y: np.ndarray) -> tuple[str, str]:
    """``(task, why)`` for a numeric target array: several columns or real values regress, classes otherwise."""
    if y.ndim == 2 and y.shape[1] > 1:
        return "regress", f"{y.shape[1]} target columns; inferred regress"
    flat = y.reshape(len(y))
    if not np.issubdtype(flat.dtype, np.integer) and not np.isfinite(flat).all():
        return "regress", "real-valued targets (some not finite); inferred regress"
    if np.issubdtype(flat.dtype, np.integer) or np.all(np.mod(flat, 1) == 0):
        count = len(np.unique(flat))
        if count <= MAX_CLASSES or count <= CLASS_SHARE * len(flat):
            return "classify", f"{count} distinct whole-number labels; inferred classify, override with --task regress"
        return "regress", f"{count} distinct whole-number values; inferred regress, override with --task classify"
    return "regress", "real-valued targets; inferred regress, override with --task classify"
