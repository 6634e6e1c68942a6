"""Top-K lists over the full catalogue and the metrics of them (RecBole's definitions).

For each evaluated user: the items it has no training interaction with are ranked by score and the first
``K`` kept. ``Recall@K`` = relevant items in the list / relevant items; ``NDCG@K`` = DCG of the list (gain 1
per relevant item at rank ``r``, discount ``1/log2(r + 1)``) / DCG of an ideal list (``min(|R|, K)`` hits
first); ``Hit@K`` = 1 if any is relevant; averaged over users. ``Coverage@K`` is the share of the catalogue
in at least one list; ``Gini@K`` the Gini index of how often each catalogue item is recommended (0: every
item equally often, → 1: the same few items for everyone) — the "more diverse" half of the promise.
"""
from __future__ import annotations

import numpy as np
import torch

KS = (10, 20)


def exclude_seen(scores: torch.Tensor, users: np.ndarray, indptr: np.ndarray, items: np.ndarray) -> torch.Tensor:
    """``scores`` ``(n, I)`` with each user's training items (CSR ``indptr``/``items``) set to ``-inf``."""
    starts, ends = indptr[users], indptr[users + 1]
    rows = np.repeat(np.arange(len(users)), ends - starts)
    cols = np.concatenate([items[s:e] for s, e in zip(starts, ends)]) if len(users) else np.zeros(0, np.int64)
    scores[torch.from_numpy(rows), torch.from_numpy(cols.astype(np.int64))] = -torch.inf
    return scores


def top_k(score_fn, users: np.ndarray, indptr: np.ndarray, items: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    """``(len(users), k)`` best unseen items per user; ``score_fn(user_ids)`` gives ``(n, I)`` scores."""
    out = []
    for start in range(0, len(users), chunk):
        block = users[start:start + chunk]
        scores = exclude_seen(score_fn(torch.from_numpy(block)).float().clone(), block, indptr, items)
        out.append(torch.topk(scores, min(k, scores.shape[1]), dim=1).indices.numpy())
    return np.concatenate(out) if out else np.zeros((0, k), np.int64)


def relevant_items(pairs: np.ndarray, users: np.ndarray) -> list[np.ndarray]:
    """The held-out items of each of ``users`` (rows ``[user, item]`` of ``pairs``)."""
    order = np.argsort(pairs[:, 0], kind="stable")
    sorted_users = pairs[order, 0]
    starts, ends = np.searchsorted(sorted_users, users, "left"), np.searchsorted(sorted_users, users, "right")
    return [pairs[order[s:e], 1] for s, e in zip(starts, ends)]


def ranking_metrics(lists: np.ndarray, relevant: list[np.ndarray], num_items: int, ks=KS) -> dict[str, float]:
    """Recall, NDCG and hit rate at each of ``ks``, coverage and Gini index at ``ks[0]``, for ``(n, >= max(ks))``
    top-K ``lists`` against each user's ``relevant`` items."""
    hits = np.array([np.isin(row, rel) for row, rel in zip(lists, relevant)], bool).reshape(len(lists), -1)
    sizes = np.array([len(r) for r in relevant], np.float64)
    discount = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    out: dict[str, float] = {}
    for k in ks:
        found = hits[:, :k]
        ideal = np.array([discount[:int(min(s, k))].sum() for s in sizes])
        out[f"recall@{k}"] = float(np.mean(found.sum(1) / np.maximum(sizes, 1)))
        out[f"ndcg@{k}"] = float(np.mean((found * discount[:k]).sum(1) / np.maximum(ideal, 1e-12)))
        out[f"hit@{k}"] = float(np.mean(found.any(1)))
    k = ks[0]
    counts = np.bincount(lists[:, :k].ravel(), minlength=num_items).astype(np.float64)
    out[f"coverage@{k}"] = float((counts > 0).mean())
    out[f"gini@{k}"] = gini(counts)
    return out


def gini(counts: np.ndarray) -> float:
    """Gini index of non-negative ``counts`` (0: all equal)."""
    x, n = np.sort(counts), len(counts)
    total = x.sum()
    return float(((2 * np.arange(1, n + 1) - n - 1) * x).sum() / (n * total)) if total > 0 else 0.0
