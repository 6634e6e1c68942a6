"""Interaction sources: ``movielens-100k`` (from the recbole wheel's files) and ``csv:PATH?user=&item=&rating=``.

Both accept the options of ``log_options`` (``?split=``, ``holdout=``, ``min_rating=``, ``target=``, ...);
the resolved options, defaults included, are the bundle's spec, which every run writes into its config.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from warmstart.data import packages
from warmstart.data.bundle import DataBundle
from warmstart.data.interaction_logs import Log, SideTable, build_bundle
from warmstart.data.log_options import OPTIONS, parse_options
from warmstart.data.targets import is_number
from warmstart.errors import UserError

DEFAULTS = {"split": "user", "ratio": "0.8,0.1,0.1", "holdout": "test"}
#: MovieLens-1M's age bands, applied to MovieLens-100k's ages (as RecBole's examples and most papers do).
AGE_BANDS = ((18, "under 18"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (50, "45-49"), (56, "50-55"))
CSV_OPTIONS = ("user", "item", "rating", "time", "users", "items")


def full_spec(base: str, options: dict[str, str], given: str) -> str:
    """``base?given`` with the split defaults appended: what the run's config records."""
    missing = "&".join(f"{k}={v}" for k, v in DEFAULTS.items() if k not in options)
    joined = "&".join(p for p in (given, missing) if p)
    return f"{base}?{joined}" if joined else base


def age_band(text: str) -> str:
    age = int(float(text))
    return next((band for limit, band in AGE_BANDS if age < limit), "56+")


def _read_tsv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [h.split(":")[0] for h in rows[0]], rows[1:]


def load_movielens(path: str | None, data_dir: str | None) -> DataBundle:
    """MovieLens-100k (Harper & Konstan, 2015): 100,000 ratings 1-5 by 943 users of 1,682 movies, with the
    users' age (banded), gender and occupation and the movies' genres and release decade as side tables."""
    query = (path or "").lstrip("?")
    options = parse_options("movielens-100k", query)
    folder = packages.require("movielens-100k", data_dir)
    _, rows = _read_tsv(folder / "ml-100k.inter")
    data = np.array(rows, dtype=object)
    log = Log(data[:, 0].astype(str), data[:, 1].astype(str), data[:, 2].astype(np.float64),
              data[:, 3].astype(np.float64), np.arange(2, len(rows) + 2))
    _, user_rows = _read_tsv(folder / "ml-100k.user")
    users = SideTable([r[0] for r in user_rows], {"age": [age_band(r[1]) for r in user_rows],
                                                  "gender": [r[2] for r in user_rows],
                                                  "occupation": [r[3] for r in user_rows]})
    _, item_rows = _read_tsv(folder / "ml-100k.item")
    decade = [f"{r[2][:3]}0s" if r[2].strip().isdigit() else "" for r in item_rows]
    items = SideTable([r[0] for r in item_rows], {"genre": [r[3] for r in item_rows], "decade": decade},
                      multi=("genre",))
    options.setdefault("range", "1,5")  # MovieLens's stated scale: a rating outside it is corrupt data
    spec = full_spec("movielens-100k", options, query)
    return build_bundle("movielens-100k", spec, log, users, items, options)


def wants_interactions_csv(path: str) -> bool:
    """A ``csv:`` spec naming ``?user=`` and ``?item=`` columns is an interaction log."""
    from urllib.parse import parse_qs

    options = parse_qs(path.partition("?")[2])
    return "user" in options and "item" in options


def load_interactions_csv(path: str, data_dir: str | None) -> DataBundle:
    """A CSV interaction log with ``?user=COL&item=COL`` (and optionally ``rating=COL``, ``time=COL``), plus
    optional side tables ``users=PATH`` / ``items=PATH`` (CSV files whose first column is the id)."""
    name = f"csv:{path.partition('?')[0]}"
    from urllib.parse import parse_qs

    query = path.partition("?")[2]
    raw = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    unknown = sorted(set(raw) - set(CSV_OPTIONS) - set(OPTIONS))
    if unknown:
        raise UserError(f"{name}: unknown option '{unknown[0]}'; interaction CSVs understand "
                        + ", ".join(f"?{o}=..." for o in (*CSV_OPTIONS, *OPTIONS)))
    options = {k: v for k, v in raw.items() if k in OPTIONS}
    header, rows = _read_csv(name, Path(path.partition("?")[0]))
    roles = [role for role in ("user", "item", "rating", "time") if role in raw]
    column = {role: _column(name, header, raw[role], role) for role in roles}
    lines = np.arange(2, len(rows) + 2)
    users = np.array([r[column["user"]].strip() for r in rows])
    items = np.array([r[column["item"]].strip() for r in rows])
    for what, values in (("user", users), ("item", items)):
        if (values == "").any():
            raise UserError(f"{name}: empty {what} id on line {lines[values == ''][0]}; fill or drop that row")
    numbers = {role: _numbers(name, header, rows, column[role], lines) for role in ("rating", "time") if role in column}
    log = Log(users, items, numbers.get("rating"), numbers.get("time"), lines)
    sides = [_side_table(f"{name}: {role}=", raw[role]) if role in raw else None for role in ("users", "items")]
    return build_bundle(name, full_spec(name, options, query), log, sides[0], sides[1], options)


def _read_csv(name: str, file: Path) -> tuple[list[str], list[list[str]]]:
    if not file.is_file():
        raise UserError(f"{name}: file not found; check the path")
    with open(file, newline="", encoding="utf-8", errors="replace") as f:
        rows = [r for r in csv.reader(f) if r]
    if len(rows) < 2:
        raise UserError(f"{name}: needs a header line and at least one interaction")
    header = [h.strip() for h in rows[0]]
    short = next((k for k, r in enumerate(rows[1:]) if len(r) != len(header)), None)
    if short is not None:
        raise UserError(f"{name}: line {short + 2} has {len(rows[short + 1])} fields but the header has {len(header)}")
    return header, rows[1:]


def _column(name: str, header: list[str], wanted: str, role: str) -> int:
    if wanted not in header:
        raise UserError(f"{name}: no {role} column '{wanted}' (columns: {', '.join(header)}); "
                        f"name it with ?{role}=COLUMN")
    return header.index(wanted)


def _numbers(name: str, header: list[str], rows: list[list[str]], c: int, lines: np.ndarray) -> np.ndarray:
    try:
        values = np.array([float(r[c]) for r in rows])
    except ValueError:
        k = next(k for k, r in enumerate(rows) if not is_number(r[c]))
        raise UserError(f"{name}: column '{header[c]}' is not numeric (line {lines[k]}: {rows[k][c]!r})") from None
    if not np.isfinite(values).all():
        raise UserError(f"{name}: column '{header[c]}' has missing or infinite values (line "
                        f"{lines[~np.isfinite(values)][0]}); fill or drop them")
    return values



def _side_table(name: str, file: str) -> SideTable:
    header, rows = _read_csv(name + file, Path(file))
    return SideTable([r[0].strip() for r in rows], {h: [r[k].strip() for r in rows] for k, h in enumerate(header) if k})
