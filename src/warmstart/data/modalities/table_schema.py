"""A table's column schema: which columns are numeric or categorical, and the training split's statistics.

A table bundle stores one ``float32`` value per cell: numeric columns their raw value, categorical columns
the index of their string in ``Column.values`` (the distinct strings of the file); ``NaN`` is a missing
cell. The schema turns stored rows into the model's input, ``(B, width)`` float32:

- a numeric column → its value standardised with the training split's mean and std, a missing value imputed
  as the mean (0), plus a 0/1 missing indicator when the training split had missing values in the column;
- a categorical column → a one-hot block of ``2 + len(levels)`` slots: slot 0 "missing", slot 1 "unseen" (a
  level the training split never showed), then the training split's levels. An encoder that multiplies a
  block by an embedding table looks the level up (``models/tabular.py``); an MLP reads the one-hot.

The schema also keeps each column's training marginal (129 quantiles of a numeric column, level counts of a
categorical one, the share of missing cells), which SCARF and VIME draw corrupted values from (``draw``).
``spec()`` is what a checkpoint saves (no file-specific ``values``): a fine-tuned model re-expresses new rows
in its own training statistics (``adopt``), so unseen levels land in the unseen slot instead of crashing.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from warmstart.errors import UserError

#: Quantiles kept per numeric column (the empirical marginal that corruption draws from, and PLE bin edges).
QUANTILES = 129
MISSING_SLOT, UNSEEN_SLOT = 0, 1


@dataclass(frozen=True)
class Column:
    """One column. Numeric: ``mean``, ``std``, ``quantiles`` (raw units), ``indicator``. Categorical:
    ``levels`` and their training ``counts``. ``missing``: the training split's share of missing cells.
    ``values`` (categorical, not saved with a model): the strings that this file's stored codes index."""

    name: str
    kind: str  # "numeric" or "categorical"
    missing: float = 0.0
    mean: float = 0.0
    std: float = 1.0
    quantiles: tuple[float, ...] = ()
    indicator: bool = False
    levels: tuple[str, ...] = ()
    counts: tuple[int, ...] = ()
    values: tuple[str, ...] = field(default=(), compare=False)

    @property
    def size(self) -> int:
        """Width of the column's block in the model input."""
        if self.kind == "numeric":
            return 1 + int(self.indicator)
        return 2 + len(self.levels)

    def spec(self) -> dict[str, Any]:
        keys = ("mean", "std", "quantiles", "indicator") if self.kind == "numeric" else ("levels", "counts")
        out = {"name": self.name, "kind": self.kind, "missing": self.missing}
        return {**out, **{k: list(v) if isinstance(v, tuple) else v for k in keys for v in [getattr(self, k)]}}

    def slots(self) -> np.ndarray:
        """Categorical: the model slot of each of ``values`` (levels the model does not know: unseen)."""
        index = {level: 2 + i for i, level in enumerate(self.levels)}
        return np.array([index.get(v, UNSEEN_SLOT) for v in self.values], np.int64)


def fit_numeric(name: str, train: np.ndarray, indicator: bool | None = None, standardise: bool = True) -> Column:
    """A numeric column fitted on its training values (``NaN`` = missing); ``indicator`` None: one exactly
    when the training values have a missing cell. ``standardise=False`` keeps values as they are."""
    train = np.asarray(train, np.float64)
    seen = train[np.isfinite(train)]
    if len(seen) == 0:
        raise UserError(f"column '{name}' is empty in every training row; drop it")
    missing = float(1 - len(seen) / len(train))
    mean, std = (float(seen.mean()), float(seen.std())) if standardise else (0.0, 1.0)
    quantiles = np.quantile(seen, np.linspace(0, 1, QUANTILES))
    return Column(name, "numeric", missing, mean, std if std > 0 else 1.0, tuple(float(q) for q in quantiles),
                  bool(missing > 0) if indicator is None else indicator)


def fit_categorical(name: str, codes_train: np.ndarray, values: tuple[str, ...]) -> Column:
    """A categorical column: its levels are the ``values`` that training rows use (``codes`` index
    ``values``; ``NaN`` = missing), in the order of ``values``."""
    codes = np.asarray(codes_train, np.float64)
    seen = codes[np.isfinite(codes)].astype(np.int64)
    if len(seen) == 0:
        raise UserError(f"column '{name}' is empty in every training row; drop it")
    counts = np.bincount(seen, minlength=len(values))
    used = np.flatnonzero(counts)
    return Column(name, "categorical", float(1 - len(seen) / len(codes)), levels=tuple(values[i] for i in used),
                  counts=tuple(int(counts[i]) for i in used), values=tuple(values))


@dataclass(frozen=True)
class TableSchema:
    """The columns of a table, in stored order, and how a stored row becomes a model input row."""

    columns: tuple[Column, ...]

    # --- layout ------------------------------------------------------------------------------------

    @property
    def width(self) -> int:
        return sum(c.size for c in self.columns)

    @property
    def blocks(self) -> list[tuple[int, int]]:
        """``(start, stop)`` of every column's block in the model input."""
        out, start = [], 0
        for c in self.columns:
            out.append((start, start + c.size))
            start += c.size
        return out

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def spec(self) -> dict[str, Any]:
        """The JSON-able schema a checkpoint carries."""
        return {"columns": [c.spec() for c in self.columns]}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> TableSchema:
        columns = []
        for c in spec["columns"]:
            c = dict(c)
            for key in ("quantiles", "levels", "counts"):
                if key in c:
                    c[key] = tuple(c[key])
            columns.append(Column(**c))
        return cls(tuple(columns))

    @classmethod
    def numeric(cls, x_train: np.ndarray, names: list[str] | None = None) -> TableSchema:
        """Every column numeric and passed through unchanged (mean 0, std 1, no indicators): the schema of
        a plain numeric array, whose marginals are still fitted (on at most 10,000 evenly spaced rows)."""
        x = np.asarray(x_train)
        x = x[np.linspace(0, len(x) - 1, min(len(x), 10_000)).astype(np.int64)].astype(np.float64)
        names = names or [f"x{j}" for j in range(x.shape[1])]
        return cls(tuple(fit_numeric(n, x[:, j], indicator=False, standardise=False) for j, n in enumerate(names)))

    @classmethod
    def passthrough(cls, width: int) -> TableSchema:
        """``width`` numeric columns passed through, with no marginals (an encoder built without data)."""
        return cls(tuple(Column(f"x{j}", "numeric") for j in range(width)))

    @property
    def has_marginals(self) -> bool:
        return all(c.quantiles or c.kind == "categorical" for c in self.columns)

    # --- stored rows → model inputs ----------------------------------------------------------------

    def encode(self, rows: np.ndarray) -> np.ndarray:
        """Stored rows ``(B, columns)`` → model inputs ``(B, width)`` float32."""
        rows = np.asarray(rows, np.float32)
        out = np.zeros((len(rows), self.width), np.float32)
        for j, (c, (start, _)) in enumerate(zip(self.columns, self.blocks)):
            value = rows[:, j]
            missing = np.isnan(value)
            if c.kind == "numeric":
                out[:, start] = np.where(missing, 0.0, (value - c.mean) / c.std)
                if c.indicator:
                    out[:, start + 1] = missing
            else:
                slot = np.full(len(rows), MISSING_SLOT, np.int64)
                slot[~missing] = self._slots(j)[value[~missing].astype(np.int64)]
                out[np.arange(len(rows)), start + slot] = 1.0
        return out

    def _slots(self, j: int) -> np.ndarray:
        cache = self.__dict__.setdefault("_slot_cache", {})  # frozen dataclass: a private per-object cache
        if j not in cache:
            cache[j] = self.columns[j].slots()
        return cache[j]

    def adopt(self, data_schema: TableSchema, data_name: str) -> TableSchema:
        """This (a model's) schema reading the stored codes of data whose schema is ``data_schema``: the
        columns must match by name and kind; levels the model never saw go to the unseen slot."""
        if self == data_schema:
            return data_schema
        if data_schema.names != self.names:
            missing = [n for n in self.names if n not in data_schema.names]
            extra = [n for n in data_schema.names if n not in self.names]
            what = (f"lacks column '{missing[0]}'" if missing else f"has column '{extra[0]}' the model never saw"
                    if extra else "has the columns in another order")
            raise UserError(f"{data_name} {what}; the model reads columns {', '.join(self.names)}: give data "
                            "with those columns")
        columns = []
        for mine, theirs in zip(self.columns, data_schema.columns):
            if mine.kind != theirs.kind:
                raise UserError(f"{data_name}: column '{mine.name}' is {theirs.kind} but the model read it as "
                                f"{mine.kind}; name it with ?{mine.kind}={mine.name}")
            columns.append(replace(mine, values=theirs.values))
        return TableSchema(tuple(columns))

    # --- training marginals ------------------------------------------------------------------------

    def draw(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n, width)`` model inputs whose every cell is an independent draw from its column's training
        marginal (missing with the training split's missing share; numeric values by inverting the
        empirical quantile function; levels in proportion to their training counts)."""
        out = torch.zeros(n, self.width)
        for c, (start, _) in zip(self.columns, self.blocks):
            missing = torch.rand(n, generator=generator) < c.missing
            if c.kind == "numeric":
                q = torch.tensor(c.quantiles, dtype=torch.float32)
                position = torch.rand(n, generator=generator) * (len(q) - 1)
                low = position.floor().long().clamp(max=len(q) - 2)
                value = torch.lerp(q[low], q[low + 1], position - low)
                out[:, start] = torch.where(missing, 0.0, (value - c.mean) / c.std)
                if c.indicator:
                    out[:, start + 1] = missing.float()
            else:
                counts = torch.tensor(c.counts, dtype=torch.float32)
                slot = 2 + torch.multinomial(counts, n, replacement=True, generator=generator)
                slot = torch.where(missing, MISSING_SLOT, slot)
                out[torch.arange(n), start + slot] = 1.0
        return out

    def expand(self, column_mask: torch.Tensor) -> torch.Tensor:
        """A per-column mask ``(B, columns)`` → the per-input mask ``(B, width)`` (each block whole)."""
        sizes = torch.tensor([c.size for c in self.columns], device=column_mask.device)
        return column_mask.repeat_interleave(sizes, dim=1)
