"""Deletion and insertion curves (Petsiuk et al., 2018, RISE §4.1), measured against a random ranking.

An attribution ranks an example's units (pixels, tokens, columns). *Deletion* removes the most-attributed
units first (they take the baseline's value) and re-predicts; *insertion* starts from the baseline and
restores them first. Each curve is of the explained scalar (``Task.explain_outputs``), normalised per
example so 1 is the full input's value and 0 the baseline's: ``s·(f(x_k) − f(b)) / |f(x) − f(b)|`` with
``s`` the sign of ``f(x) − f(b)``, which makes probabilities and regression values comparable. The area
under the curve over the fraction of units (trapezoid rule) is averaged over examples weighted by
``|f(x) − f(b)|`` (an example whose baseline predicts the same has nothing to explain). A faithful ranking
has a low deletion AUC and a high insertion AUC. The reference is a random ranking of the same units
(``RANDOM_DRAWS`` per example); a 95% bootstrap interval over examples of the paired AUC difference
decides whether a method beats it, and a method whose interval contains 0 is "no better than random"
(Hooker et al., 2019, found most methods there).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: Points on each curve (fewer when an example has fewer units), random rankings per example, resamples.
STEPS = 32
RANDOM_DRAWS = 4
BOOTSTRAP = 2000
GRID = np.linspace(0.0, 1.0, 21)  # the common grid averaged curves are drawn on
_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 calls it trapz


@dataclass
class Curves:
    """One ranking's curves on one example: raw scores at ``fractions`` of the units removed/inserted."""

    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray


def counts(units: int) -> np.ndarray:
    return np.unique(np.round(np.linspace(0, units, min(units, STEPS) + 1)).astype(int))


@torch.no_grad()
def curves(example, score, ranking: np.ndarray) -> Curves:
    """Deletion and insertion curves of ``score`` on ``example`` for units ordered by ``ranking``."""
    ks = counts(len(example.units))
    chosen = np.zeros((len(ks), len(example.units)), bool)
    for row, k in enumerate(ks):
        chosen[row, ranking[:k]] = True
    deletion = score(example.with_units(chosen, keep=False)).double().numpy()
    insertion = score(example.with_units(chosen, keep=True)).double().numpy()
    return Curves(ks / max(len(example.units), 1), deletion, insertion)


@torch.no_grad()
def direction(example, score) -> float:
    """The sign of ``f(input) − f(baseline)``: a ranking removes first what moved the output that way (for
    a regression predicting below the baseline's value, the most negative attributions)."""
    full, empty = score(torch.cat([example.x, example.baseline])).tolist()
    return 1.0 if full >= empty else -1.0


def order(attribution: np.ndarray, sign: float = 1.0) -> np.ndarray:
    """Units from the most to the least attributed in the direction ``sign`` (ties in index order)."""
    return np.argsort(-sign * attribution, kind="stable")


def random_orders(units: int, rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.permutation(units) for _ in range(RANDOM_DRAWS)]


def normalised(c: Curves) -> tuple[np.ndarray, np.ndarray, float]:
    """``(deletion, insertion, weight)``: the curves on the 0 = baseline, 1 = input scale, and |f(x) − f(b)|."""
    full, empty = c.deletion[0], c.deletion[-1]
    delta = full - empty
    if abs(delta) < 1e-12:
        return np.zeros_like(c.deletion), np.zeros_like(c.insertion), 0.0
    sign = 1.0 if delta > 0 else -1.0
    return sign * (c.deletion - empty) / abs(delta), sign * (c.insertion - empty) / abs(delta), abs(delta)


def auc(fractions: np.ndarray, values: np.ndarray) -> float:
    return float(_trapezoid(values, fractions)) if len(values) > 1 else float(values[0])


def summarise(per_example: list[list[Curves]]) -> dict:
    """Per-example AUCs (averaged over the ranking's draws), the weights, and mean curves on ``GRID``."""
    deletion, insertion, weights, del_grid, ins_grid = [], [], [], [], []
    for draws in per_example:
        parts = [normalised(c) for c in draws]
        weights.append(parts[0][2])
        deletion.append(np.mean([auc(c.fractions, d) for c, (d, _, _) in zip(draws, parts)]))
        insertion.append(np.mean([auc(c.fractions, i) for c, (_, i, _) in zip(draws, parts)]))
        del_grid.append(np.mean([np.interp(GRID, c.fractions, d) for c, (d, _, _) in zip(draws, parts)], 0))
        ins_grid.append(np.mean([np.interp(GRID, c.fractions, i) for c, (_, i, _) in zip(draws, parts)], 0))
    w = np.asarray(weights)
    total = w.sum() or 1.0
    return {"deletion": np.asarray(deletion), "insertion": np.asarray(insertion), "weights": w,
            "deletion_auc": float(w @ np.asarray(deletion) / total),
            "insertion_auc": float(w @ np.asarray(insertion) / total),
            "deletion_curve": (w @ np.asarray(del_grid) / total).tolist(),
            "insertion_curve": (w @ np.asarray(ins_grid) / total).tolist()}


def versus_random(method: dict, random: dict, seed: int = 0) -> dict:
    """95% bootstrap intervals (over examples, paired) of random − method deletion AUC and method − random
    insertion AUC (positive: the method is more faithful), and the verdict for each."""
    rng = np.random.default_rng(seed)
    w = method["weights"]
    n = len(w)
    out = {}
    for curve, sign in (("deletion", 1.0), ("insertion", -1.0)):
        diff = sign * (random[curve] - method[curve])
        samples = []
        for _ in range(BOOTSTRAP):
            pick = rng.integers(0, n, n)
            total = w[pick].sum()
            samples.append(float(w[pick] @ diff[pick] / total) if total > 0 else 0.0)
        low, high = np.percentile(samples, [2.5, 97.5])
        total = w.sum()
        out[curve] = {"gain": float(w @ diff / total) if total > 0 else 0.0, "low": float(low), "high": float(high),
                      "verdict": "better than random" if low > 0 else "worse than random" if high < 0
                      else "no better than random"}
    return out
