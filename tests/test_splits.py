"""Label budgets: parsing, the split invariants (property-tested), and the error messages."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warmstart.data.splits import LabelBudget
from warmstart.errors import UserError

# Per-test settings, not a global profile: other test modules keep their own.
fast = settings(max_examples=60, deadline=None)

class_sizes = st.lists(st.integers(1, 40), min_size=1, max_size=8)


def labels(sizes: list[int], seed: int = 0) -> np.ndarray:
    """Shuffled labels with ``sizes[c]`` examples of class c."""
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(len(sizes)), sizes))


def budgets_for(sizes: list[int]) -> st.SearchStrategy[LabelBudget]:
    n, k = sum(sizes), len(sizes)
    return st.one_of(
        st.integers(1, min(sizes)).map(lambda v: LabelBudget("per_class", v)),
        st.integers(k, n).map(lambda v: LabelBudget("count", v)),
        st.floats(0.01, 1.0).map(lambda v: LabelBudget("fraction", v)),
    )


def check_partition(y, labeled, unlabeled):
    assert labeled.dtype == unlabeled.dtype == np.int64
    assert np.all(np.diff(labeled) > 0) and np.all(np.diff(unlabeled) > 0)
    assert len(np.intersect1d(labeled, unlabeled)) == 0
    assert np.array_equal(np.union1d(labeled, unlabeled), np.arange(len(y)))


@fast
@given(st.data(), class_sizes, st.integers(0, 2**32 - 1))
def test_split_is_a_deterministic_partition_of_the_promised_size(data, sizes, seed):
    y = labels(sizes)
    budget = data.draw(budgets_for(sizes))
    labeled, unlabeled = budget.split(y, seed)
    check_partition(y, labeled, unlabeled)
    assert len(labeled) == budget.size(y)
    again = budget.split(y, seed)
    assert np.array_equal(again[0], labeled) and np.array_equal(again[1], unlabeled)
    assert set(y[labeled]) == set(y), "every class keeps at least one label"


@fast
@given(class_sizes, st.integers(1, 40), st.integers(0, 1000))
def test_per_class_gives_exactly_k_of_every_class(sizes, k, seed):
    y = labels(sizes)
    budget = LabelBudget("per_class", k)
    if k > min(sizes):
        with pytest.raises(UserError, match=f"use per_class={min(sizes)} or less"):
            budget.split(y, seed)
        return
    labeled, _ = budget.split(y, seed)
    assert np.array_equal(np.bincount(y[labeled], minlength=len(sizes)), np.full(len(sizes), k))


@fast
@given(st.data(), class_sizes, st.integers(0, 1000))
def test_count_is_balanced_within_one_where_class_sizes_allow(data, sizes, seed):
    y = labels(sizes)
    n = data.draw(st.integers(len(sizes), len(y)))
    labeled, _ = LabelBudget("count", n).split(y, seed)
    got = np.bincount(y[labeled], minlength=len(sizes))
    assert got.sum() == n and np.all(got <= sizes)
    uncapped = got[got < np.array(sizes)]  # classes that could have taken more
    if len(uncapped):
        assert got.max() - uncapped.min() <= 1


@fast
@given(st.data(), st.integers(0, 1000))
def test_fraction_follows_class_proportions(data, seed):
    sizes = data.draw(st.lists(st.integers(10, 60), min_size=2, max_size=6))
    f = data.draw(st.floats(0.1, 1.0))
    y = labels(sizes)
    got = np.bincount(y[LabelBudget("fraction", f).split(y, seed)[0]], minlength=len(sizes))
    assert np.all(np.abs(got - f * np.array(sizes)) <= 1)


@pytest.mark.parametrize("spec", ["per_class=5", "count=100", "fraction=0.1"])
def test_different_seeds_pick_different_labels(spec):
    y = labels([200] * 10)
    budget = LabelBudget.parse(spec)
    assert not np.array_equal(budget.split(y, 0)[0], budget.split(y, 1)[0])


@pytest.mark.parametrize(
    "spec, kind, value, text",
    [
        ("per_class=5", "per_class", 5, "per_class=5"),
        ("count=100", "count", 100, "count=100"),
        ("100", "count", 100, "count=100"),
        (" fraction=0.1 ", "fraction", 0.1, "fraction=0.1"),
        ("fraction=1", "fraction", 1.0, "fraction=1.0"),
        ("per-class=2", "per_class", 2, "per_class=2"),
    ],
)
def test_parse_and_str_round_trip(spec, kind, value, text):
    budget = LabelBudget.parse(spec)
    assert (budget.kind, budget.value, str(budget)) == (kind, value, text)
    assert LabelBudget.parse(str(budget)) == budget


@pytest.mark.parametrize(
    "spec, message",
    [
        ("per_class=0", "at least 1"),
        ("count=-3", "at least 1"),
        ("fraction=0", r"outside \(0, 1\]"),
        ("fraction=1.5", r"outside \(0, 1\]"),
        ("count=2.5", "cannot read"),
        ("lots", "cannot read"),
        ("percent=10", "unknown label budget kind 'percent'"),
    ],
)
def test_bad_specs_are_user_errors(spec, message):
    with pytest.raises(UserError, match=message):
        LabelBudget.parse(spec)


def test_errors_name_the_problem_and_the_fix():
    y = labels([10] * 9 + [2])
    with pytest.raises(UserError, match="class 'ankle' has only 2 examples; use per_class=2 or less"):
        LabelBudget.parse("per_class=3").split(y, 0, class_names=[str(i) for i in range(9)] + ["ankle"])
    with pytest.raises(UserError, match="count=3 is below the 10 classes; give at least one label per class"):
        LabelBudget.parse("count=3").split(y, 0)
    with pytest.raises(UserError, match="exceeds the 92 training examples; use count=92 or less"):
        LabelBudget.parse("count=93").size(y)
    with pytest.raises(UserError, match="non-empty"):
        LabelBudget.parse("count=1").split(np.array([], np.int64), 0)
    with pytest.raises(UserError) as error:
        LabelBudget.parse("x=1")
    assert "\n" not in str(error.value)
