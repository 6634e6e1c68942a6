"""The ``?key=value`` options of the interaction sources: their names, allowed values and parsing.

``build_bundle`` (``data/interaction_logs.py``) reads them: ``split``, ``ratio`` and ``holdout`` choose the
split, ``min_rating`` and ``min_user`` filter the log, ``duplicates`` and ``range`` say how it is checked, and
``target`` asks for a users or items bundle. A bad name or value is refused in one line naming the source.
"""
from __future__ import annotations

import numpy as np

from warmstart.errors import UserError

SPLITS = ("user", "global", "loo")
HOLDOUTS = ("test", "valid")
DUPLICATES = ("error", "last", "mean")
OPTIONS = ("split", "ratio", "holdout", "min_rating", "min_user", "duplicates", "range", "target")


def parse_options(name: str, query: str) -> dict[str, str]:
    """``query``'s options (a repeated key: its last value), refusing a key no interaction source knows."""
    from urllib.parse import parse_qs

    options = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise UserError(f"{name}: unknown option '{unknown[0]}'; interaction sources understand "
                        + ", ".join(f"?{o}=..." for o in OPTIONS))
    return options


def option_choice(name: str, options: dict, key: str, allowed: tuple[str, ...]) -> str:
    """``options[key]``, one of ``allowed`` (default: the first)."""
    value = options.get(key, allowed[0])
    if value not in allowed:
        raise UserError(f"{name}: {key}={value!r} is not one of {', '.join(allowed)}")
    return value


def option_number(name: str, options: dict, key: str, kind=float):
    """``options[key]`` as a ``kind`` number (None when not given)."""
    try:
        return kind(options[key]) if key in options else None
    except ValueError:
        raise UserError(f"{name}: {key}={options[key]!r} is not a number") from None


def ratios(name: str, options: dict) -> np.ndarray:
    """The ``ratio=TRAIN,VALID,TEST`` shares (default 0.8,0.1,0.1): three, none negative, summing to 1."""
    text = options.get("ratio", "0.8,0.1,0.1")
    try:
        parts = np.array([float(p) for p in text.split(",")])
    except ValueError:
        parts = np.array([])
    if len(parts) != 3 or (parts < 0).any() or parts[0] <= 0 or not np.isclose(parts.sum(), 1.0):
        raise UserError(f"{name}: ratio={text!r} must be three shares train,valid,test summing to 1, e.g. 0.8,0.1,0.1")
    return parts
