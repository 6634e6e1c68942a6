"""Classical baselines a study puts beside every pretrained method, on the same labeled rows.

Each baseline is one function plus one registration line naming the tasks it serves. It gets a
``BaselineData`` — the task's baseline inputs for the training and test split (flat features for most
tasks: pixels, standardised table rows, TF-IDF of text), the training targets, which rows are labeled, and
a seed — and returns test predictions in the task's units (for ``classify``, class probabilities ``(N, K)``,
so the task can score ROC-AUC as well as accuracy). Supervised baselines read only the labeled rows;
semi-supervised ones also use the unlabeled pool's inputs. None of them sees a test label.
"""
from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier

from warmstart.errors import UserError
from warmstart.registry import Registry


@dataclass
class BaselineData:
    x_train: np.ndarray  # the task's baseline inputs of the training split
    y_train: np.ndarray  # its targets; only rows in ``labeled`` may be read
    labeled: np.ndarray
    x_test: np.ndarray
    seed: int
    groups: dict[str, np.ndarray] = field(default_factory=dict)  # named column groups (``Modality.feature_groups``)

    def semi_supervised_labels(self) -> np.ndarray:
        """``y`` with -1 on unlabeled rows (the ``sklearn.semi_supervised`` convention)."""
        y = np.full(len(self.x_train), -1, dtype=np.int64)
        y[self.labeled] = self.y_train[self.labeled]
        return y


@dataclass(frozen=True)
class Baseline:
    fit_predict: Callable[[BaselineData], np.ndarray]  # its docstring is what the report quotes
    tasks: tuple[str, ...]
    #: "features": the task's baseline inputs (flat features for most tasks); "rows": the training and test
    #: rows as stored (documents, for a baseline that builds its own text features).
    inputs: str = "features"
    modalities: tuple[str, ...] | None = None  # None: any


BASELINES: Registry[Baseline] = Registry("baseline")

#: kNN graphs are built in at most this many PCA dimensions: on 60k Fashion-MNIST images the
#: neighbour search in 784 dimensions costs ~15x more and finds nearly the same neighbours.
KNN_DIMS = 50


def register(name: str, *tasks: str, inputs: str = "features", modalities: tuple[str, ...] | None = None):
    def add(fn: Callable[[BaselineData], np.ndarray]) -> Callable[[BaselineData], np.ndarray]:
        BASELINES.register(name)(Baseline(fn, tasks, inputs, modalities))
        return fn
    return add


def check_baselines(names: list[str], task: str, modality: str | None = None) -> None:
    """Refuse, in one line, a baseline that does not serve ``task`` (or ``modality``, when given)."""
    def serves(baseline: Baseline) -> bool:
        return task in baseline.tasks and (modality is None or baseline.modalities is None
                                           or modality in baseline.modalities)

    for name in names:
        baseline = BASELINES.get(name)
        if not serves(baseline):
            serving = [n for n in BASELINES if serves(BASELINES.get(n))]
            what = f"the {task} task" + (f" on {modality} data" if modality else "")
            raise UserError(f"baseline '{name}' does not apply to {what}; there use: "
                            f"{', '.join(serving) or 'none'} (or --baselines none)")


def baseline_inputs(name: str, task, bundle) -> tuple[np.ndarray, np.ndarray]:
    """What baseline ``name`` reads from ``bundle``: the task's baseline inputs, or the stored rows."""
    if BASELINES.get(name).inputs == "rows":
        return bundle.x_train, bundle.x_test
    return task.baseline_inputs(bundle)


def _proba(model, x: np.ndarray) -> np.ndarray:
    """A fitted classifier's probabilities ``(N, K)`` with column ``c`` for class index ``c`` (classes the
    labeled rows never showed get 0)."""
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        found = np.nan_to_num(model.predict_proba(x), nan=0.0)
    classes = np.asarray(model.classes_, np.int64)
    out = np.zeros((len(x), int(classes.max()) + 1))
    out[:, classes] = found
    return out


def _logistic(seed: int) -> LogisticRegression:
    return LogisticRegression(max_iter=1000, random_state=seed)


@register("logistic_regression", "classify")
def logistic_regression(d: BaselineData) -> np.ndarray:
    """Standardised inputs + L2-regularised logistic regression, fit on the labeled rows only."""
    model = make_pipeline(StandardScaler(), _logistic(d.seed))
    return _proba(model.fit(d.x_train[d.labeled], d.y_train[d.labeled]), d.x_test)


@register("label_spreading", "classify")
def label_spreading(d: BaselineData) -> np.ndarray:
    """Label spreading (Zhou et al., 2004) over a sparse 7-nearest-neighbour graph of all training rows.

    The kNN kernel keeps the graph sparse (N x 7), so 60k examples stay tractable where the RBF kernel
    would build a dense N x N matrix. Inputs go through PCA (fit on all training rows, labels unused)
    to at most ``KNN_DIMS`` dimensions first.
    """
    dims = min(KNN_DIMS, d.x_train.shape[1], len(d.x_train))
    project = PCA(dims, random_state=d.seed, svd_solver="randomized" if dims < d.x_train.shape[1] else "full")
    z_train = project.fit_transform(d.x_train)
    model = LabelSpreading(kernel="knn", n_neighbors=7, alpha=0.2, max_iter=100).fit(z_train,
                                                                                      d.semi_supervised_labels())
    # A test point whose neighbours all lie in graph components without any label has no label mass;
    # scikit-learn then divides 0/0: its probabilities are all 0 and it is predicted class 0, as before.
    return _proba(model, project.transform(d.x_test))


@register("self_training", "classify")
def self_training(d: BaselineData) -> np.ndarray:
    """Self-training (Yarowsky, 1995) of the logistic regression above: confident (p >= 0.9)
    predictions on unlabeled rows become labels, up to 10 rounds."""
    scaled = StandardScaler().fit(d.x_train)  # unsupervised: all rows may inform the scaling
    model = SelfTrainingClassifier(_logistic(d.seed), threshold=0.9, max_iter=10)
    return _proba(model.fit(scaled.transform(d.x_train), d.semi_supervised_labels()), scaled.transform(d.x_test))


@register("hist_gradient_boosting", "classify", "regress")
def hist_gradient_boosting(d: BaselineData) -> np.ndarray:
    """scikit-learn's HistGradientBoosting (classifier or regressor, one per target column) with its
    defaults, fit on the labeled rows: what practitioners reach for first on tables."""
    y = d.y_train[d.labeled]
    if y.ndim == 1:
        return _proba(HistGradientBoostingClassifier(random_state=d.seed).fit(d.x_train[d.labeled], y), d.x_test)
    columns = [HistGradientBoostingRegressor(random_state=d.seed).fit(d.x_train[d.labeled], y[:, j]).predict(d.x_test)
               for j in range(y.shape[1])]
    return np.stack(columns, 1)


@register("self_training_gradient_boosting", "classify")
def self_training_gradient_boosting(d: BaselineData) -> np.ndarray:
    """Self-training of the HistGradientBoosting classifier above (scikit-learn's ``SelfTrainingClassifier``
    with its defaults: unlabeled rows predicted with p >= 0.75 become labels, up to 10 rounds)."""
    model = SelfTrainingClassifier(HistGradientBoostingClassifier(random_state=d.seed))
    return _proba(model.fit(d.x_train, d.semi_supervised_labels()), d.x_test)


@register("knn_classification", "classify")
def knn_classification(d: BaselineData) -> np.ndarray:
    """Distance-weighted vote of the 5 nearest labeled rows (inputs standardised over all training rows)."""
    scaled = StandardScaler().fit(d.x_train)
    model = KNeighborsClassifier(n_neighbors=min(5, len(d.labeled)), weights="distance")
    return _proba(model.fit(scaled.transform(d.x_train[d.labeled]), d.y_train[d.labeled]), scaled.transform(d.x_test))


@register("ridge", "regress")
def ridge(d: BaselineData) -> np.ndarray:
    """Standardised inputs + ridge regression, the penalty chosen by leave-one-out on the labeled rows."""
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 4, 15)))
    return model.fit(d.x_train[d.labeled], d.y_train[d.labeled]).predict(d.x_test)


@register("knn_regression", "regress")
def knn_regression(d: BaselineData) -> np.ndarray:
    """Distance-weighted mean target of the 5 nearest labeled rows (standardised inputs)."""
    scaled = StandardScaler().fit(d.x_train)
    k = min(5, len(d.labeled))
    model = KNeighborsRegressor(n_neighbors=k, weights="distance")
    return model.fit(scaled.transform(d.x_train[d.labeled]), d.y_train[d.labeled]).predict(scaled.transform(d.x_test))


@register("majority_tag", "tag")
def majority_tag(d: BaselineData) -> np.ndarray:
    """A lexicon: each word (lower-cased) gets the tag it carried most often in the labeled sentences, unseen
    words get O; an I- tag that does not continue an entity of its type becomes B-."""
    votes: dict[str, Counter] = {}
    for i in d.labeled:
        for word, tag in zip(d.x_train[i], d.y_train[i]):
            votes.setdefault(word.lower(), Counter())[int(tag)] += 1
    out = np.empty(len(d.x_test), dtype=object)
    for r, sentence in enumerate(d.x_test):
        tags = np.array([votes[w.lower()].most_common(1)[0][0] if w.lower() in votes else 0 for w in sentence],
                        np.int64)
        for j in range(len(tags)):
            inside = tags[j] > 0 and tags[j] % 2 == 0  # I-c is 2 + 2c
            if inside and (j == 0 or tags[j - 1] not in (tags[j] - 1, tags[j])):
                tags[j] -= 1
        out[r] = tags
    return out


#: The TF-IDF + logistic regression recipe: word 1-2-grams, sublinear term frequency, words seen at least
#: twice, and a fixed inverse regularisation C (a priori, not tuned on any test split).
TFIDF_C = 10.0


def _tfidf(d: BaselineData):
    """Sparse TF-IDF ``(train, test)`` matrices; vocabulary and IDF are fit on every training document."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from warmstart.data.text import as_text

    vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2)
    train = vectorizer.fit_transform([as_text(doc) for doc in d.x_train])
    return train, vectorizer.transform([as_text(doc) for doc in d.x_test])


@register("tfidf_logistic", "classify", inputs="rows", modalities=("text",))
def tfidf_logistic(d: BaselineData) -> np.ndarray:
    """Sparse TF-IDF of word 1-2-grams (sublinear tf, min_df 2; vocabulary and IDF fit on every training
    document, labels unused) + L2 logistic regression (C = 10) on the labeled rows: the classical text peer."""
    train, test = _tfidf(d)
    model = LogisticRegression(C=TFIDF_C, max_iter=3000)
    return model.fit(train[d.labeled], d.y_train[d.labeled]).predict(test)


@register("tfidf_ridge", "regress", inputs="rows", modalities=("text",))
def tfidf_ridge(d: BaselineData) -> np.ndarray:
    """The same sparse TF-IDF + ridge regression, the penalty chosen by leave-one-out on the labeled rows."""
    train, test = _tfidf(d)
    model = RidgeCV(alphas=np.logspace(-3, 4, 15))
    return model.fit(train[d.labeled], d.y_train[d.labeled]).predict(test).reshape(test.shape[0], -1)
# Recommender baselines (most-popular, implicit's ALS/BPR, biases, biased MF, side/history logistic regression).
from warmstart import recsys_baselines as _recsys  # noqa: E402,F401 (registers)
