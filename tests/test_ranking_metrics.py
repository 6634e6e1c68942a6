"""Ranking metrics against cases computed by hand, and the full ranking's exclusion of training items."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from warmstart.tasks.ranking_metrics import exclude_seen, gini, ranking_metrics, relevant_items, top_k

# Three users' top-4 lists over a 6-item catalogue, and their held-out items.
LISTS = np.array([[0, 5, 3, 1],   # A: hits at ranks 1 and 3 of its 2 relevant items
                  [2, 4, 1, 0],   # B: its one relevant item at rank 3
                  [5, 4, 3, 2]])  # C: misses its one relevant item
RELEVANT = [np.array([0, 3]), np.array([1]), np.array([0])]


def test_recall_ndcg_hit_coverage_and_gini_match_hand_computed_values():
    m = ranking_metrics(LISTS, RELEVANT, num_items=6, ks=(2, 4))
    idcg_two = 1 + 1 / math.log2(3)
    # K = 2: only A hits (rank 1): recall 1/2, DCG 1 against an ideal of two hits.
    assert m["recall@2"] == pytest.approx((1 / 2) / 3)
    assert m["ndcg@2"] == pytest.approx((1 / idcg_two) / 3)
    assert m["hit@2"] == pytest.approx(1 / 3)
    # K = 4: A finds both (ranks 1, 3), B its one at rank 3 (ideal: rank 1), C none.
    assert m["recall@4"] == pytest.approx((1 + 1 + 0) / 3)
    assert m["ndcg@4"] == pytest.approx(((1 + 1 / math.log2(4)) / idcg_two + (1 / math.log2(4)) / 1 + 0) / 3)
    assert m["hit@4"] == pytest.approx(2 / 3)
    # Top-2 lists {0, 5}, {2, 4}, {5, 4}: 4 of 6 items shown; exposure counts [1, 0, 1, 0, 2, 2].
    assert m["coverage@2"] == pytest.approx(4 / 6)
    assert m["gini@2"] == pytest.approx(16 / 36)


def test_gini_is_zero_for_equal_exposure_and_near_one_for_one_item():
    assert gini(np.ones(10)) == pytest.approx(0.0)
    assert gini(np.array([0.0] * 99 + [5.0])) == pytest.approx(0.99)


def test_full_ranking_never_recommends_a_training_item():
    # Item 3 scores highest for every user, but user 0 interacted with it (and with 1) in training.
    scores = torch.tensor([[0.1, 0.9, 0.2, 5.0, 0.3], [0.1, 0.2, 0.3, 5.0, 0.4]])
    indptr, items = np.array([0, 2, 2]), np.array([1, 3])
    masked = exclude_seen(scores.clone(), np.array([0, 1]), indptr, items)
    assert torch.isinf(masked[0, [1, 3]]).all() and torch.isfinite(masked[1]).all()
    lists = top_k(lambda users: scores[users], np.array([0, 1]), indptr, items, k=3)
    assert lists[0].tolist() == [4, 2, 0] and lists[1].tolist() == [3, 4, 2]


def test_relevant_items_groups_the_held_out_pairs_by_user():
    pairs = np.array([[2, 7], [0, 1], [2, 3], [0, 4]])
    found = relevant_items(pairs, np.array([0, 2]))
    assert [sorted(r.tolist()) for r in found] == [[1, 4], [3, 7]]
