"""The recommender practitioner's baselines, on the same split and labeled rows as every other method.

``rank``: most-popular, and ``implicit``'s ALS (Hu, Koren & Volinsky, 2008) and BPR with the library's
defaults (one thread, seeded: reproducible); each returns the top-20 unseen items of every test user, in
the rank task's order. ``rate``: the regularised user/item bias baseline (Koren, 2010; Surprise's
``BaselineOnly`` settings) and biased matrix factorisation fitted by alternating least squares. Downstream
``classify`` on users or items: logistic regression on the side features alone and on the interaction
history alone (the ``side`` and ``history`` column groups of the interactions modality's flat features).
Registered from ``baselines.py``.
"""
from __future__ import annotations

import numpy as np

from warmstart.baselines import BaselineData, logistic_regression, register
from warmstart.errors import UserError
from warmstart.tasks.ranking_metrics import KS, top_k


def _catalog_sizes(d: BaselineData) -> tuple[int, int]:
    both = np.concatenate([d.x_train, d.x_test])
    return int(both[:, 0].max()) + 1, int(both[:, 1].max()) + 1


def _rank_with(scores_of, d: BaselineData) -> np.ndarray:
    """Top-``max(KS)`` unseen items of each test user with a training interaction, ``scores_of(users)`` → ``(n, I)``."""
    num_users, num_items = _catalog_sizes(d)
    seen = np.zeros(num_users, bool)
    seen[d.x_train[:, 0]] = True
    users = np.unique(d.x_test[:, 0])
    users = users[seen[users]]
    order = np.lexsort((d.x_train[:, 1], d.x_train[:, 0]))
    indptr = np.zeros(num_users + 1, np.int64)
    np.cumsum(np.bincount(d.x_train[:, 0], minlength=num_users), out=indptr[1:])
    return top_k(scores_of, users, indptr, d.x_train[order, 1].astype(np.int64), max(KS))


def _user_item_matrix(d: BaselineData):
    import scipy.sparse as sp

    num_users, num_items = _catalog_sizes(d)
    pairs = d.x_train[d.labeled]
    return sp.csr_matrix((np.ones(len(pairs), np.float32), (pairs[:, 0], pairs[:, 1])), shape=(num_users, num_items))


@register("most_popular", "rank")
def most_popular(d: BaselineData) -> np.ndarray:
    """Every user gets the items with the most labeled training interactions that it has not seen."""
    import torch

    counts = torch.from_numpy(np.bincount(d.x_train[d.labeled, 1], minlength=_catalog_sizes(d)[1]).astype(np.float32))
    return _rank_with(lambda users: counts.expand(len(users), -1), d)


def _implicit(make_model, d: BaselineData) -> np.ndarray:
    """Fit ``make_model()`` (an implicit model) on the labeled user × item matrix; rank with its factors."""
    import torch
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):  # implicit's advice: its own threads, not BLAS's
        model = make_model()
        model.fit(_user_item_matrix(d), show_progress=False)
    users, items = (torch.from_numpy(np.asarray(f, np.float32)) for f in (model.user_factors, model.item_factors))
    return _rank_with(lambda ids: users[ids] @ items.T, d)


def _implicit_module(name: str):
    try:
        import importlib

        return importlib.import_module(f"implicit.{name}")
    except ImportError as err:
        raise UserError(f"the implicit baselines need the `implicit` package ({err}); "
                        "pip install 'warmstart[recsys]'") from None


@register("implicit_als", "rank")
def implicit_als(d: BaselineData, factors: int = 100, regularization: float = 0.01, iterations: int = 15) -> np.ndarray:
    """implicit's AlternatingLeastSquares (Hu et al., 2008) on the labeled interactions as a binary user × item
    matrix, with the library's defaults (100 factors, regularisation 0.01, 15 iterations), one thread."""
    return _implicit(lambda: _implicit_module("als").AlternatingLeastSquares(
        factors=factors, regularization=regularization, iterations=iterations, random_state=d.seed, num_threads=1), d)


@register("implicit_bpr", "rank")
def implicit_bpr(d: BaselineData, factors: int = 100, learning_rate: float = 0.01, regularization: float = 0.01,
                 iterations: int = 100) -> np.ndarray:
    """implicit's BayesianPersonalizedRanking (Rendle et al., 2009) on the labeled interactions, with the
    library's defaults (100 factors, learning rate 0.01, regularisation 0.01, 100 iterations), one thread."""
    return _implicit(lambda: _implicit_module("bpr").BayesianPersonalizedRanking(
        factors=factors, learning_rate=learning_rate, regularization=regularization, iterations=iterations,
        random_state=d.seed, num_threads=1), d)


def _biases(users, items, r, num_users, num_items, reg_u: float, reg_i: float, epochs: int):
    b_u, b_i = np.zeros(num_users), np.zeros(num_items)
    n_u, n_i = np.bincount(users, minlength=num_users), np.bincount(items, minlength=num_items)
    for _ in range(epochs):
        b_i = np.bincount(items, r - b_u[users], num_items) / (reg_i + n_i)
        b_u = np.bincount(users, r - b_i[items], num_users) / (reg_u + n_u)
    return b_u, b_i


@register("bias_baseline", "rate")
def bias_baseline(d: BaselineData, reg_u: float = 15.0, reg_i: float = 10.0, epochs: int = 10) -> np.ndarray:
    """``μ + b_u + b_i``, the biases fitted on the labeled ratings by alternating regularised means (Koren,
    2010; Surprise's BaselineOnly defaults: reg_u 15, reg_i 10, 10 epochs)."""
    pairs, ratings = d.x_train[d.labeled], d.y_train[d.labeled, 0].astype(np.float64)
    num_users, num_items = _catalog_sizes(d)
    mean = ratings.mean()
    b_u, b_i = _biases(pairs[:, 0], pairs[:, 1], ratings - mean, num_users, num_items, reg_u, reg_i, epochs)
    return (mean + b_u[d.x_test[:, 0]] + b_i[d.x_test[:, 1]])[:, None]


@register("biased_mf", "rate")
def biased_mf(d: BaselineData, factors: int = 20, reg: float = 0.1, iterations: int = 15) -> np.ndarray:
    """Biased matrix factorisation ``μ + b_u + b_i + p_u·q_i`` (Koren et al., 2009) by alternating least squares
    with weighted-λ regularisation (ALS-WR, Zhou et al., 2008: λ·n per row), on the labeled ratings."""
    pairs, ratings = d.x_train[d.labeled], d.y_train[d.labeled, 0].astype(np.float64)
    num_users, num_items = _catalog_sizes(d)
    mean = ratings.mean()
    rng = np.random.default_rng(d.seed)
    p, q = rng.normal(0, 0.1, (num_users, factors + 1)), rng.normal(0, 0.1, (num_items, factors + 1))
    p[:, -1], q[:, -1] = 0.0, 0.0
    for _ in range(iterations):
        p = _als_half(pairs[:, 0], pairs[:, 1], ratings - mean, q, num_users, reg, bias_column=True)
        q = _als_half(pairs[:, 1], pairs[:, 0], ratings - mean, p, num_items, reg, bias_column=True)
    u, i = d.x_test[:, 0], d.x_test[:, 1]
    return (mean + (p[u, :-1] * q[i, :-1]).sum(1) + p[u, -1] + q[i, -1])[:, None]


def _als_half(rows, cols, target, other, n_rows, reg, bias_column: bool) -> np.ndarray:
    """Rows' ``[factors, own bias]`` given the other side's ``[factors, bias]``: one ridge solve per row of
    ``target - other_bias ≈ [other_factors, 1] · mine``."""
    factors = other.shape[1] - 1
    design = np.hstack([other[:, :-1], np.ones((len(other), 1))])  # the other side's factors and a 1 for my bias
    out = np.zeros((n_rows, factors + 1))
    order = np.argsort(rows, kind="stable")
    bounds = np.searchsorted(rows[order], np.arange(n_rows + 1))
    for row in range(n_rows):
        picked = order[bounds[row]:bounds[row + 1]]
        if len(picked) == 0:
            continue
        x = design[cols[picked]]
        y = target[picked] - other[cols[picked], -1]
        out[row] = np.linalg.solve(x.T @ x + reg * len(picked) * np.eye(factors + 1), x.T @ y)
    return out


def _group(d: BaselineData, name: str) -> BaselineData:
    if name not in d.groups or len(d.groups[name]) == 0:
        raise UserError(f"this data has no '{name}' features for the {name}_logistic baseline; drop it (--baselines)")
    columns = d.groups[name]
    return BaselineData(d.x_train[:, columns], d.y_train, d.labeled, d.x_test[:, columns], d.seed)


@register("side_logistic", "classify")
def side_logistic(d: BaselineData) -> np.ndarray:
    """Logistic regression on the raw side features alone (the target's own column withheld), labeled rows only."""
    return logistic_regression(_group(d, "side"))


@register("history_logistic", "classify")
def history_logistic(d: BaselineData) -> np.ndarray:
    """Logistic regression on the interaction history alone (which items a user interacted with in training,
    or which users an item had), labeled rows only."""
    return logistic_regression(_group(d, "history"))
