"""Study results as statistics: ``results.csv`` rows → mean and 95% interval per (method, budget).

Statistics: mean over seeds with a 95% Student-t interval, ``t(0.975, n-1) · s / √n``, of the task's
primary metric (or any other metric column) with its direction (accuracy: higher is better; RMSE: lower).
Labels saved: for a pretrained method reaching score ``a`` with ``b`` labels, the labels ``scratch`` needs
for ``a`` are interpolated linearly in log-label space on scratch's mean curve (its first crossing of ``a``).
The report (``report.py``), its figures (``plots.py``) and ``warmstart study``'s table all read these.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from warmstart.errors import UserError

KIND_ORDER = {"scratch": 0, "pretrained": 1, "recipe": 2, "baseline": 3}
#: Kinds whose methods use pretraining (the rows a verdict about pretraining compares).
PRETRAINED_KINDS = ("pretrained", "recipe")
#: results.csv columns that hold text (every other column is a number).
TEXT_COLUMNS = ("method", "kind", "objective", "strategy", "budget", "labeled_hash", "setting")


@dataclass
class Stat:
    mean: float
    std: float
    ci: float  # half-width of the 95% t-interval; nan with one seed
    n: int
    labels: int


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """(mean, sample std, 95% t half-width) of ``values``."""
    a = np.asarray(values, dtype=float)
    if len(a) < 2:
        return float(a.mean()), float("nan"), float("nan")
    std = float(a.std(ddof=1))
    return float(a.mean()), std, float(stats.t.ppf(0.975, len(a) - 1) * std / math.sqrt(len(a)))


def study_metrics(run_dir: Path) -> tuple[str, bool, list[str]]:
    """``(primary metric, higher is better, every metric column)`` of the study in ``run_dir``, from its
    ``study_info.json`` (studies written before tasks existed were classification studies)."""
    import json

    path = Path(run_dir) / "study_info.json"
    info = json.loads(path.read_text()) if path.is_file() else {}
    return (info.get("primary", "accuracy"), bool(info.get("higher_is_better", True)),
            list(info.get("metrics", ["accuracy", "macro_f1"])))


def read_results(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "results.csv"
    if not path.is_file():
        raise UserError(f"{run_dir}: no results.csv; point to a directory written by `warmstart study`")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise UserError(f"{path} has no finished cells yet; run the study first")
    for row in rows:
        for key in ("labels", "seed"):
            row[key] = int(row[key])
        for key in [k for k in row if k not in (*TEXT_COLUMNS, "labels", "seed")] + ["wall_s", "images_per_s"]:
            row[key] = float(row[key]) if row.get(key) not in (None, "") else float("nan")
        row.setdefault("kind", "scratch" if row.get("strategy") == "scratch" else "pretrained")
        row.setdefault("method", row["strategy"] if row["kind"] != "pretrained" else
                       f"{row['objective']}+{row['strategy']}")
        row.setdefault("budget", f"count={row['labels']}")
    return rows


class Summary:
    """Mean/CI per (method, budget), the method and budget orders, and the derived comparisons."""

    def __init__(self, rows: list[dict[str, Any]], metric: str = "accuracy", higher_is_better: bool = True) -> None:
        self.rows, self.metric, self.higher_is_better = rows, metric, higher_is_better
        self.sign = 1.0 if higher_is_better else -1.0  # comparisons use sign * value: bigger is always better
        self.kind = {r["method"]: r["kind"] for r in rows}
        first = {m: i for i, m in reversed(list(enumerate(r["method"] for r in rows)))}
        self.methods = sorted(self.kind, key=lambda m: (KIND_ORDER.get(self.kind[m], 3), first[m]))
        labels = {r["budget"]: r["labels"] for r in rows}
        self.budgets = sorted(labels, key=lambda b: (labels[b], b))
        self.labels = labels
        self.stat: dict[tuple[str, str], Stat] = {}
        #: Mean validation score per (method, budget), where the rows have one (``val_<metric>``).
        self.val: dict[tuple[str, str], float] = {}
        for method in self.methods:
            for budget in self.budgets:
                cell = [r for r in rows if r["method"] == method and r["budget"] == budget]
                if cell:
                    self.stat[method, budget] = Stat(*t_interval([r[metric] for r in cell]), len(cell), labels[budget])
                scores = [r.get(f"val_{metric}") for r in cell]
                if cell and not any(v is None or math.isnan(v) for v in scores):
                    self.val[method, budget] = float(np.mean(scores))

    def selected_on(self, budget: str, kinds: tuple[str, ...] = tuple(KIND_ORDER)) -> str:
        """"validation" when every candidate at ``budget`` has a validation score, else "test"."""
        candidates = [m for (m, b) in self.stat if b == budget and self.kind[m] in kinds]
        return "validation" if candidates and all((m, budget) in self.val for m in candidates) else "test"

    def best(self, budget: str, kinds: tuple[str, ...] = tuple(KIND_ORDER)) -> str | None:
        """The best method at ``budget`` by mean validation score (test mean only when the study had no
        validation rows: then "best" describes the results and chooses nothing)."""
        on_val = self.selected_on(budget, kinds) == "validation"
        found = [(self.sign * (self.val[m, b] if on_val else s.mean), m) for (m, b), s in self.stat.items()
                 if b == budget and self.kind[m] in kinds]
        return max(found, key=lambda t: t[0])[1] if found else None

    def best_overall(self, kinds: tuple[str, ...]) -> str | None:
        """The best method over all budgets: by its mean validation score when every candidate has one at
        every budget it ran (else by mean test score, which then describes and chooses nothing)."""
        candidates = [m for m in self.methods if self.kind[m] in kinds]
        ran = {m: [b for b in self.budgets if (m, b) in self.stat] for m in candidates}
        on_val = bool(candidates) and all((m, b) in self.val for m in candidates for b in ran[m])
        score = (lambda m, b: self.val[m, b]) if on_val else (lambda m, b: self.stat[m, b].mean)
        means = {m: self.sign * np.mean([score(m, b) for b in ran[m]]) for m in candidates}
        return max(means, key=means.get) if means else None

    def scratch_labels_for(self, value: float, reference: str = "scratch") -> tuple[str, float]:
        """("<=", L0), ("=", n) or (">", Lmax): labels ``reference`` needs to reach metric ``value``."""
        score = self.sign * value
        curve = [(self.labels[b], self.sign * self.stat[reference, b].mean) for b in self.budgets
                 if (reference, b) in self.stat]
        if not curve:
            return "?", float("nan")
        if score <= curve[0][1]:
            return "<=", float(curve[0][0])
        for (l0, a0), (l1, a1) in zip(curve, curve[1:]):
            if a0 < score <= a1:
                frac = (score - a0) / (a1 - a0)
                return "=", float(math.exp(math.log(l0) + frac * (math.log(l1) - math.log(l0))))
        return ">", float(curve[-1][0])

    def labels_saved(self, method: str, budget: str) -> str:
        """Text such as ``3.2× (158 labels)``, ``≤ 1.0×`` or ``> 5.0× (> max budget 100)``."""
        relation, needed = self.scratch_labels_for(self.stat[method, budget].mean)
        own = self.labels[budget]
        if relation == "=":
            return f"{needed / own:.1f}× ({needed:.0f} labels)"
        if relation == "<=":
            return f"≤ {needed / own:.1f}×"
        if relation == ">":
            return f"> {needed / own:.1f}× (> max budget {needed:.0f})"
        return "n/a (no scratch rows)"

    def cell_text(self, method: str, budget: str, spread: str = "ci") -> str:
        s = self.stat.get((method, budget))
        if s is None:
            return "—"
        width = s.ci if spread == "ci" else s.std
        return f"{s.mean:.3f}" if math.isnan(width) else f"{s.mean:.3f} ± {width:.3f}"


def format_table(rows: list[dict[str, Any]], spread: str = "ci", metric: str = "accuracy",
                 higher_is_better: bool = True) -> str:
    """A plain-text table of mean ± (95% CI | std) of ``metric``; ``*`` marks the best per budget."""
    summary = Summary(rows, metric, higher_is_better)
    header = ["method"] + [f"{summary.labels[b]} labels" for b in summary.budgets]
    body = [[m] + [summary.cell_text(m, b, spread) + ("*" if summary.best(b) == m else "") for b in summary.budgets]
            for m in summary.methods]
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [header] + body]
    what = "95% CI over seeds" if spread == "ci" else "std (ddof=1) over seeds"
    direction = "" if higher_is_better else ", lower is better"
    on = summary.selected_on(summary.budgets[0]) if summary.budgets else "test"
    return "\n".join(lines) + f"\n(test {metric}{direction}, mean ± {what}; * best per budget by {on} score)"
