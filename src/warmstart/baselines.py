"""Classical baselines a study puts beside every pretrained method, on the same labeled rows.

Each baseline is one function plus one registration line: it gets the flattened training inputs
``x_train`` ``(N, D)`` float32, the labels ``y_train`` ``(N,)`` with ``-1`` on unlabeled rows (the
``sklearn.semi_supervised`` convention), the test inputs ``(M, D)`` and a seed, and returns the predicted
test labels ``(M,)``. Supervised baselines only read the labeled rows; semi-supervised ones also use the
unlabeled pool. None of them sees the test labels.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier

from warmstart.registry import Registry

Baseline = Callable[[np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]
BASELINES: Registry[Baseline] = Registry("baseline")

#: kNN graphs are built in at most this many PCA dimensions: on 60k Fashion-MNIST images the
#: neighbour search in 784 dimensions costs ~15x more and finds nearly the same neighbours.
KNN_DIMS = 50


def _logistic(seed: int) -> LogisticRegression:
    return LogisticRegression(max_iter=1000, random_state=seed)


@BASELINES.register("logistic_regression")
def logistic_regression(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, seed: int) -> np.ndarray:
    """Standardised pixels + L2-regularised logistic regression, fit on the labeled rows only."""
    labeled = y_train != -1
    model = make_pipeline(StandardScaler(), _logistic(seed))
    return model.fit(x_train[labeled], y_train[labeled]).predict(x_test)


@BASELINES.register("label_spreading")
def label_spreading(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, seed: int) -> np.ndarray:
    """Label spreading (Zhou et al., 2004) over a sparse 7-nearest-neighbour graph of all training rows.

    The kNN kernel keeps the graph sparse (N x 7), so 60k examples stay tractable where the RBF kernel
    would build a dense N x N matrix. Inputs go through PCA (fit on all training rows, labels unused)
    to at most ``KNN_DIMS`` dimensions first.
    """
    dims = min(KNN_DIMS, x_train.shape[1], len(x_train))
    project = PCA(dims, random_state=seed, svd_solver="randomized" if dims < x_train.shape[1] else "full")
    z_train = project.fit_transform(x_train)
    model = LabelSpreading(kernel="knn", n_neighbors=7, alpha=0.2, max_iter=100).fit(z_train, y_train)
    # A test point whose neighbours all lie in graph components without any label has no label mass;
    # scikit-learn then divides 0/0 and predicts class 0 for it, which is what we report.
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return model.predict(project.transform(x_test))


@BASELINES.register("self_training")
def self_training(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, seed: int) -> np.ndarray:
    """Self-training (Yarowsky, 1995) of the logistic regression above: confident (p >= 0.9)
    predictions on unlabeled rows become labels, up to 10 rounds."""
    scaled = StandardScaler().fit(x_train)  # unsupervised: all rows may inform the scaling
    model = SelfTrainingClassifier(_logistic(seed), threshold=0.9, max_iter=10)
    return model.fit(scaled.transform(x_train), y_train).predict(scaled.transform(x_test))
