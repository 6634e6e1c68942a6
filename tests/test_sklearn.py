"""WarmStartClassifier and WarmStartRegressor: scikit-learn's own estimator checks, the unlabeled-row markers
(y = -1, y = NaN), every strategy through them with the unlabeled rows as the pool, and that they learn."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from warmstart.sklearn import (
    EXPECTED_FAILED_CHECKS, REGRESSOR_EXPECTED_FAILED_CHECKS, WarmStartClassifier, WarmStartRegressor,
)

# Small and quick, yet enough steps to pass check_classifiers_train's accuracy bar on its blobs.
TINY = dict(pretrain_epochs=1, finetune_epochs=30, lr=1e-2, batch_size=32,
            encoder_args={"width": 16, "feature_dim": 16}, random_state=0)


def _expected(estimator):
    return EXPECTED_FAILED_CHECKS if isinstance(estimator, WarmStartClassifier) else REGRESSOR_EXPECTED_FAILED_CHECKS


@parametrize_with_checks([WarmStartClassifier(**TINY), WarmStartRegressor(**TINY)], expected_failed_checks=_expected)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    x = (x / 16).astype(np.float32)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    return x[order[:1400]], y[order[:1400]], x[order[1400:]], y[order[1400:]]


def semi(y: np.ndarray, per_class: int) -> np.ndarray:
    """Keep ``per_class`` labels of each class, mark the rest -1 (unlabeled)."""
    out = np.full_like(y, -1)
    for c in np.unique(y):
        keep = np.flatnonzero(y == c)[:per_class]
        out[keep] = c
    return out


def test_learns_from_few_labels_and_pretrains_on_every_row(digits):
    x, y, x_test, y_test = digits
    model = WarmStartClassifier(pretrain_epochs=10, finetune_epochs=60, lr=3e-3, random_state=0)
    assert model.fit(x, semi(y, 5)) is model
    pre = model.pretrain_history_
    assert len(pre) == 10 and pre[-1]["loss"] < 0.7 * pre[0]["loss"]  # the autoencoder learned on all rows
    assert pre[0]["step"] == 1400 // 64  # an epoch is every row (labeled or not), not the 50 labeled
    assert model.score(x_test, y_test) > 0.7  # 10% is chance; 50 labels in all
    proba = model.predict_proba(x_test[:5])
    assert proba.shape == (5, 10) and np.allclose(proba.sum(1), 1)
    assert model.transform(x_test[:5]).shape == (5, 128)
    assert list(model.classes_) == list(range(10))


def test_images_through_input_shape_and_a_cnn(digits):
    x, y, x_test, y_test = digits
    model = WarmStartClassifier(encoder="cnn", input_shape=(1, 8, 8), encoder_args={"width": 8}, strategy="scratch",
                                finetune_epochs=20, lr=3e-3, random_state=0)
    model.fit(x[:300], y[:300])
    assert model.score(x_test, y_test) > 0.5
    assert not hasattr(model, "pretrain_history_") or model.pretrain_history_ == []
    with pytest.raises(ValueError, match="input_shape"):
        clone(model).set_params(input_shape=(1, 8, 7)).fit(x[:50], y[:50])


def test_clone_pipeline_and_grid_search(digits):
    x, y, _, _ = digits
    model = WarmStartClassifier(**TINY)
    copy = clone(model)
    assert copy.get_params() == model.get_params() and not hasattr(copy, "model_")
    pipe = make_pipeline(FunctionTransformer(lambda a: a * 2.0), clone(model))
    pipe.fit(x[:200], y[:200])
    assert pipe.predict(x[:3]).shape == (3,)
    search = GridSearchCV(clone(model), {"strategy": ["scratch", "full"]}, cv=2).fit(x[:200], y[:200])
    assert search.best_params_["strategy"] in ("scratch", "full")
    assert 0 <= search.best_score_ <= 1


def test_same_random_state_same_model_and_bad_input(digits):
    x, y, x_test, _ = digits
    a = WarmStartClassifier(**TINY).fit(x[:200], semi(y[:200], 3))
    b = WarmStartClassifier(**TINY).fit(x[:200], semi(y[:200], 3))
    assert np.array_equal(a.predict_proba(x_test), b.predict_proba(x_test))
    with pytest.raises(ValueError, match="at least 2 labeled rows"):
        WarmStartClassifier(**TINY).fit(x[:20], np.full(20, -1))
    with pytest.raises(ValueError, match="expecting 64 features"):
        a.predict(x[:3, :10])


@pytest.mark.parametrize("strategy", ["joint", "selftrain"])
def test_strategies_that_read_the_pool_use_the_unlabeled_rows(digits, strategy):
    """The bugs: ``joint`` asked for a CLI run directory, ``selftrain``'s pool was only the labeled rows."""
    x, y, x_test, y_test = digits
    model = WarmStartClassifier(strategy=strategy, pretrain_epochs=5, finetune_epochs=20, lr=3e-3, random_state=0,
                                strategy_args={"epochs": 2, **({"unlabeled_batch": 128} if strategy == "joint" else
                                                               {"batch": 128})})
    model.fit(x, semi(y, 5))
    steps = model.finetune_history_[0]["step"]
    assert steps == len(x) // 128  # an epoch is a pass over all 1400 rows, not over the 50 labeled ones
    assert model.score(x_test, y_test) > 0.7


def test_regressor_learns_from_few_targets_with_nan_marking_the_pool():
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    train, test = np.arange(350), np.arange(350, len(x))
    partial = y[train].astype(float)
    partial[150:] = np.nan  # 150 targets, 200 rows of pool
    model = WarmStartRegressor(strategy="selftrain", pretrain_epochs=5, finetune_epochs=50, lr=3e-3, random_state=0)
    model.fit(x[train], partial)
    assert model.predict(x[test]).shape == (len(test),)
    assert model.score(x[test], y[test]) > 0.3  # R²: the mean's is 0; measured 0.51
    two = WarmStartRegressor(strategy="scratch", finetune_epochs=30, random_state=0).fit(
        x[train][:150], np.stack([y[train][:150], -y[train][:150]], 1))
    assert two.predict(x[test][:4]).shape == (4, 2)
    with pytest.raises(ValueError, match="some targets NaN and others not"):
        WarmStartRegressor(**TINY).fit(x[:10], np.array([[1.0, np.nan]] * 10))
    with pytest.raises(ValueError, match="at least 2 labeled rows"):
        WarmStartRegressor(**TINY).fit(x[:10], np.full(10, np.nan))
