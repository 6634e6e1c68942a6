"""Named table sources: ``diabetes`` (bundled with scikit-learn) and ``diamonds`` (from the plotnine wheel).

Both are regression tables with a fixed 80/20 train/test split (``random_state=0``); features are
standardised with training-split statistics. Categorical columns are one-hot encoded here (levels taken
from the training split); the ``table`` modality reads numeric rows.
"""
from __future__ import annotations

import csv

import numpy as np

from warmstart.data import packages
from warmstart.data.bundle import DataBundle
from warmstart.data.splits import fixed_split


def _standardised(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    mean, std = x[train].mean(0), x[train].std(0)
    std[std == 0] = 1.0
    return ((x - mean) / std).astype(np.float32)


def _bundle(name: str, x: np.ndarray, y: np.ndarray, target: str, why: str, columns: list[str]) -> DataBundle:
    train, test = fixed_split(np.zeros(len(y), np.int64))
    x = _standardised(x, train)
    return DataBundle(name, x[train], y[train], x[test], y[test], "table", task="regress", target_names=[target],
                      inferred=why, feature_columns=columns)


def load_diabetes(path: str | None = None, data_dir: str | None = None) -> DataBundle:
    """442 patients, 10 baseline measurements (age, sex, BMI, blood pressure, six serum values) → disease
    progression after one year (Efron et al., 2004)."""
    from sklearn.datasets import load_diabetes as sklearn_diabetes

    d = sklearn_diabetes(scaled=False)
    return _bundle("diabetes", d.data, d.target.astype(np.float32), "progression",
                   "a real-valued measurement; inferred regress", list(d.feature_names))


DIAMONDS_CATEGORICAL = ("cut", "color", "clarity")
DIAMONDS_NUMERIC = ("carat", "depth", "table", "x", "y", "z")


def load_diamonds(path: str | None = None, data_dir: str | None = None) -> DataBundle:
    """53,940 diamonds: carat, depth, table, x, y, z and one-hot cut, color, clarity → log of the price in US
    dollars (prices span 326-18,823, so errors are relative: an RMSE of 0.1 is about 10 %)."""
    folder = packages.require("diamonds", data_dir)
    with open(folder / "diamonds.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    columns = [np.array([float(r[c]) for r in rows], np.float64) for c in DIAMONDS_NUMERIC]
    names = list(DIAMONDS_NUMERIC)
    for c in DIAMONDS_CATEGORICAL:
        values = np.array([r[c] for r in rows])
        levels = sorted(set(values))
        columns += [(values == level).astype(np.float64) for level in levels]
        names += [c] * len(levels)
    y = np.log(np.array([float(r["price"]) for r in rows], np.float32))
    return _bundle("diamonds", np.stack(columns, 1), y, "log_price", "a real-valued price; inferred regress", names)
