"""scikit-learn estimators: pretrain on every row, fine-tune on the labeled ones, the unlabeled rows as the pool.

``WarmStartClassifier`` follows ``sklearn.semi_supervised``: ``y = -1`` marks an unlabeled row.
``WarmStartRegressor`` marks one with ``y = NaN``. Both are thin shells over ``warmstart.pipeline.pretrain``
/ ``finetune``: the same objectives, encoders, strategies (``joint`` keeps training the pretraining objective
it just fitted; ``selftrain`` spreads over the unlabeled rows) and training loop as the CLI, so a
``GridSearchCV`` over them searches what ``warmstart study`` measures.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
from sklearn.utils import check_array, check_consistent_length
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data

from warmstart.config import FinetuneConfig, PretrainConfig
from warmstart.data import DataBundle

#: scikit-learn estimator checks that cannot pass, and why (used by ``parametrize_with_checks``).
EXPECTED_FAILED_CHECKS = {
    "check_classifiers_classes": "it trains with the labels [-1, 1], but -1 marks an unlabeled row here "
                                 "(the sklearn.semi_supervised convention), so -1 cannot be a class",
    "check_methods_subset_invariance": "predict_proba on a subset differs from the full batch by ~1e-7 "
                                       "(float32 matrix products round differently per batch size); the check "
                                       "demands 1e-7; predicted labels are unaffected",
}
REGRESSOR_EXPECTED_FAILED_CHECKS = {
    "check_methods_subset_invariance": "predict on a subset differs from the full batch by ~1e-6 (float32 "
                                       "matrix products round differently per batch size); the check demands 1e-7",
}


_PARAMETERS = """
    Parameters:
        objective: self-supervised objective (``warmstart.objectives.OBJECTIVES``), e.g. "autoencoder".
        encoder: encoder architecture ("mlp", "linear"; "cnn"/"resnet" need ``input_shape``).
        strategy: fine-tune strategy ("full", "linear", "scratch", "joint", "selftrain").
        pretrain_epochs, finetune_epochs: passes over all rows / over the labeled rows.
        batch_size: rows per optimisation step (both stages). lr: peak AdamW learning rate (both stages).
        encoder_args, objective_args, strategy_args: options of those registry entries (dicts).
        input_shape: reshape each row of ``X`` to this shape, e.g. ``(1, 28, 28)`` for flattened images;
            None keeps rows flat (tabular data).
        random_state: int for reproducible fits (weights, batch order, augmentations), or None.

    Attributes (after ``fit``): ``n_features_in_``, ``model_`` (the torch model: encoder + head),
    ``pretrain_history_`` and ``finetune_history_`` (per-epoch logs).
"""


class _WarmStart(TransformerMixin, BaseEstimator):
    """Shared by the classifier and the regressor: the parameters, the bundle and the two-stage fit."""

    _task = ""

    def __init__(
        self, objective: str = "autoencoder", encoder: str = "mlp", strategy: str = "full", *,
        pretrain_epochs: int = 20, finetune_epochs: int = 100, batch_size: int = 64, lr: float = 1e-3,
        encoder_args: dict | None = None, objective_args: dict | None = None, strategy_args: dict | None = None,
        input_shape: tuple[int, ...] | None = None, random_state: int | None = None,
    ) -> None:
        self.objective = objective
        self.encoder = encoder
        self.strategy = strategy
        self.pretrain_epochs = pretrain_epochs
        self.finetune_epochs = finetune_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.encoder_args = encoder_args
        self.objective_args = objective_args
        self.strategy_args = strategy_args
        self.input_shape = input_shape
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.transformer_tags.preserves_dtype = ["float32"]  # the network computes in float32
        return tags

    def _shape(self, n_features: int) -> tuple[int, ...]:
        if self.input_shape is None:
            return (n_features,)
        shape = tuple(int(d) for d in self.input_shape)
        if math.prod(shape) != n_features:
            raise ValueError(f"input_shape={shape} holds {math.prod(shape)} values but X has {n_features} "
                             "features per row; give the shape of one example")
        return shape

    def _bundle(self, x: np.ndarray, y: np.ndarray, **labels: Any) -> DataBundle:
        shape = self._shape(x.shape[1])
        x = x.reshape(len(x), *shape)
        modality = "image" if len(shape) == 3 else "table"
        # The test split is unused while fitting; one row keeps DataBundle's checks happy.
        return DataBundle("X", x, y, x[:1], y[:1], modality, task=self._task, **labels)

    def _fit(self, X: np.ndarray, y: np.ndarray, labeled: np.ndarray, **labels: Any) -> None:
        """Pretrain on every row of ``X``, then fine-tune on rows ``labeled`` (the rest are the pool).
        ``y`` holds the targets of the labeled rows and placeholders elsewhere (never read)."""
        from warmstart.pipeline import finetune, pretrain
        from warmstart.strategies import STRATEGIES

        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        X = np.array(X, dtype=np.float32, order="C", copy=True)  # owned: batches may be made in place
        data = self._bundle(X, y, **labels)
        common = {"data": "X", "seed": seed, "batch_size": self.batch_size, "lr": self.lr, "encoder": self.encoder,
                  "encoder_args": dict(self.encoder_args or {})}
        objective, self.pretrain_history_ = None, []
        if STRATEGIES.get(self.strategy).load_pretrained:
            config = PretrainConfig(**common, objective=self.objective, epochs=self.pretrain_epochs,
                                    objective_args=dict(self.objective_args or {}))
            result = pretrain(config, data=data)
            objective, self.pretrain_history_ = result.objective, result.history
        config = FinetuneConfig(**common, strategy=self.strategy, epochs=self.finetune_epochs,
                                strategy_args=dict(self.strategy_args or {}))
        result = finetune(config, data=data, labeled=labeled, objective=objective,
                          encoder=objective.encoder if objective is not None else None)
        self.model_ = result.model.eval()
        self.finetune_history_ = result.history

    @torch.no_grad()
    def _forward(self, X: Any, features: bool) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        x = torch.from_numpy(np.array(X, dtype=np.float32, copy=True).reshape(len(X), *self._shape(X.shape[1])))
        module = self.model_.encoder if features else self.model_
        module.eval()
        if not len(x):
            return np.zeros((0, self.model_.head.in_features if features else self.model_.head.out_features),
                            np.float32)
        return torch.cat([module(x[i:i + 1024]) for i in range(0, len(x), 1024)]).numpy()

    def transform(self, X: Any) -> np.ndarray:
        """The encoder's features ``(n_samples, feature_dim)``: the learned embedding."""
        return self._forward(X, True)


def _at_least_two(labeled: np.ndarray) -> None:
    if labeled.sum() < 2:
        raise ValueError(f"fit needs at least 2 labeled rows; got {int(labeled.sum())} sample(s)")


class WarmStartClassifier(ClassifierMixin, _WarmStart):
    __doc__ = """Self-supervised pretraining on all rows of ``X``, then fine-tuning on the rows with a label.

    Follows ``sklearn.semi_supervised``: ``y == -1`` marks an unlabeled row (only for numeric ``y``; string
    labels are all taken as labeled). Pretraining reads every row's features and no label; fine-tuning reads
    the labeled rows, and ``selftrain``/``joint`` also the unlabeled ones. With ``strategy="scratch"`` nothing
    is pretrained. After ``fit`` it also has ``classes_``.

    scikit-learn's estimator checks pass except the two in ``EXPECTED_FAILED_CHECKS``, with reasons: ``-1``
    cannot be a class here, and float32 predictions differ by ~1e-7 between batch sizes. Checks of
    ``sample_weight`` are not run (``fit`` takes none); ``transform`` returns float32 (declared in the tags).
""" + _PARAMETERS
    _task = "classify"

    def fit(self, X: Any, y: Any) -> WarmStartClassifier:
        """Pretrain on all rows of ``X`` ``(n_samples, n_features)``, fine-tune on rows with ``y != -1``."""
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        labeled = ~((y == -1) if np.issubdtype(np.asarray(y).dtype, np.number) else np.zeros(len(y), bool))
        _at_least_two(labeled)
        self.classes_, index = np.unique(y[labeled], return_inverse=True)
        targets = np.zeros(len(X), np.int64)
        targets[labeled] = index
        self._fit(X, targets, np.flatnonzero(labeled), class_names=[str(c) for c in self.classes_])
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n_samples, n_classes)``, columns in the order of ``classes_``."""
        return torch.softmax(torch.from_numpy(self._forward(X, False)).double(), dim=1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        logits = self._forward(X, False)  # checks fitted-ness before classes_ is touched
        return self.classes_[logits.argmax(1)]


class WarmStartRegressor(RegressorMixin, _WarmStart):
    __doc__ = """Self-supervised pretraining on all rows of ``X``, then regression on the rows with a target.

    ``y`` is ``(n_samples,)`` or ``(n_samples, n_targets)``; ``NaN`` marks an unlabeled row (every target of
    the row NaN). Targets are standardised with the labeled rows' mean and std for training; ``predict``
    answers in their units. ``selftrain`` regresses the pool on a ridge probe's or the nearest labeled
    neighbours' values. scikit-learn's estimator checks pass except ``REGRESSOR_EXPECTED_FAILED_CHECKS``.
""" + _PARAMETERS
    _task = "regress"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X: Any, y: Any) -> WarmStartRegressor:
        """Pretrain on all rows of ``X``, fine-tune on the rows whose ``y`` is not NaN."""
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        X = validate_data(self, X, dtype=np.float32)
        y = check_array(y, ensure_2d=False, dtype=np.float64, ensure_all_finite="allow-nan", input_name="y")
        check_consistent_length(X, y)
        self._y_2d = y.ndim == 2
        y = y.reshape(len(y), -1)
        missing = np.isnan(y)
        if (missing.any(1) & ~missing.all(1)).any():
            raise ValueError("a row of y has some targets NaN and others not; NaN marks a whole row as unlabeled")
        labeled = ~missing.all(1)
        _at_least_two(labeled)
        targets = np.where(missing, 0.0, y).astype(np.float32)
        self._fit(X, targets, np.flatnonzero(labeled), target_names=[f"y{j}" for j in range(y.shape[1])])
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets ``(n_samples,)`` (or ``(n_samples, n_targets)`` when fitted on 2-D ``y``)."""
        standardised = torch.from_numpy(self._forward(X, False))  # checks fitted-ness first
        out = self.model_.destandardise(standardised).double().numpy()  # float64, as scikit-learn expects
        return out if self._y_2d else out[:, 0]
