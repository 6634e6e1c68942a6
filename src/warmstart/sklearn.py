"""A scikit-learn estimator: pretrain on every row, fine-tune on the labeled ones (``y == -1``: unlabeled).

It is a thin shell over ``warmstart.pipeline.pretrain`` / ``finetune``: the same objectives, encoders,
strategies and training loop as the CLI, so a ``GridSearchCV`` over it searches what ``warmstart
study`` measures.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
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


class WarmStartClassifier(ClassifierMixin, TransformerMixin, BaseEstimator):
    """Self-supervised pretraining on all rows of ``X``, then fine-tuning on the rows with a label.

    Follows ``sklearn.semi_supervised``: ``y == -1`` marks an unlabeled row (only for numeric ``y``;
    string labels are all taken as labeled). Pretraining reads every row's features and no label;
    fine-tuning reads the labeled rows. With ``strategy="scratch"`` nothing is pretrained.

    Parameters:
        objective: self-supervised objective (``warmstart.objectives.OBJECTIVES``), e.g. "autoencoder".
        encoder: encoder architecture ("mlp", "linear"; "cnn"/"resnet" need ``input_shape``).
        strategy: fine-tune strategy: "full", "linear" (frozen encoder) or "scratch" (no pretraining).
        pretrain_epochs, finetune_epochs: passes over all rows / over the labeled rows.
        batch_size: rows per optimisation step (both stages). lr: peak AdamW learning rate (both stages).
        encoder_args, objective_args, strategy_args: options of those registry entries (dicts).
        input_shape: reshape each row of ``X`` to this shape, e.g. ``(1, 28, 28)`` for flattened images;
            None keeps rows flat (tabular data).
        random_state: int for reproducible fits (weights, batch order, augmentations), or None.

    Attributes (after ``fit``): ``classes_``, ``n_features_in_``, ``model_`` (the torch classifier:
    encoder + linear head), ``pretrain_history_`` and ``finetune_history_`` (per-epoch logs).

    scikit-learn's estimator checks (``parametrize_with_checks``, scikit-learn 1.9) pass, except two
    that cannot apply (``EXPECTED_FAILED_CHECKS`` gives the same reasons to the test):
        * ``check_classifiers_classes`` trains with the labels ``[-1, 1]``, but ``-1`` marks an
          unlabeled row here (the ``sklearn.semi_supervised`` convention), so it cannot be a class.
        * ``check_methods_subset_invariance`` wants ``predict_proba`` on a subset to equal the full
          batch to 1e-7; float32 matrix products round differently per batch size (~1e-7 apart).
          Predicted labels are unaffected.
    Checks of ``sample_weight`` are not run (``fit`` takes none), nor pandas / array-API ones where
    those are not installed; ``transform`` returns float32 whatever the input dtype (declared in the
    tags), as the network computes in float32.
    """

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

    # --- helpers ---------------------------------------------------------------------------------

    def _shape(self, n_features: int) -> tuple[int, ...]:
        if self.input_shape is None:
            return (n_features,)
        shape = tuple(int(d) for d in self.input_shape)
        if math.prod(shape) != n_features:
            raise ValueError(f"input_shape={shape} holds {math.prod(shape)} values but X has {n_features} "
                             "features per row; give the shape of one example")
        return shape

    def _bundle(self, x: np.ndarray, y: np.ndarray, n_classes: int) -> DataBundle:
        shape = self._shape(x.shape[1])
        x = x.reshape(len(x), *shape)
        modality = "image" if len(shape) == 3 else "tabular"
        # The test split is unused while fitting; one row keeps DataBundle's checks happy.
        return DataBundle("X", x, y, x[:1], y[:1], modality, [str(i) for i in range(n_classes)])

    # --- the estimator API -----------------------------------------------------------------------

    def fit(self, X: Any, y: Any) -> WarmStartClassifier:
        """Pretrain on all rows of ``X`` ``(n_samples, n_features)``, fine-tune on rows with ``y != -1``."""
        from warmstart.pipeline import finetune, pretrain
        from warmstart.strategies import STRATEGIES

        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        labeled = ~((y == -1) if np.issubdtype(np.asarray(y).dtype, np.number) else np.zeros(len(y), bool))
        if labeled.sum() < 2:
            raise ValueError(f"fit needs at least 2 labeled rows (y != -1); got {int(labeled.sum())} sample(s)")
        self.classes_, y_index = np.unique(y[labeled], return_inverse=True)
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        X = np.array(X, dtype=np.float32, order="C", copy=True)  # owned: batches may be made in place
        common = {"data": "X", "seed": seed, "batch_size": self.batch_size, "lr": self.lr, "encoder": self.encoder,
                  "encoder_args": dict(self.encoder_args or {})}
        encoder = None
        self.pretrain_history_: list[dict] = []
        if STRATEGIES.get(self.strategy).load_pretrained:
            unlabeled = self._bundle(X, np.zeros(len(X), np.int64), 1)
            config = PretrainConfig(**common, objective=self.objective, epochs=self.pretrain_epochs,
                                    objective_args=dict(self.objective_args or {}))
            result = pretrain(config, data=unlabeled)
            encoder, self.pretrain_history_ = result.encoder, result.history
        labeled_data = self._bundle(X[labeled], y_index.astype(np.int64), len(self.classes_))
        config = FinetuneConfig(**common, strategy=self.strategy, epochs=self.finetune_epochs, labels="fraction=1",
                                strategy_args=dict(self.strategy_args or {}))
        result = finetune(config, data=labeled_data, encoder=encoder)
        self.model_ = result.model.eval()
        self.finetune_history_ = result.history
        return self

    @torch.no_grad()
    def _forward(self, X: Any, features: bool) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        x = torch.from_numpy(np.array(X, dtype=np.float32, copy=True).reshape(len(X), *self._shape(X.shape[1])))
        module = self.model_.encoder if features else self.model_
        module.eval()
        return torch.cat([module(x[i:i + 1024]) for i in range(0, len(x), 1024)]).numpy() if len(x) else \
            np.zeros((0, self.model_.head.in_features if features else len(self.classes_)), np.float32)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n_samples, n_classes)``, columns in the order of ``classes_``."""
        return torch.softmax(torch.from_numpy(self._forward(X, False)).double(), dim=1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        logits = self._forward(X, False)  # checks fitted-ness before classes_ is touched
        return self.classes_[logits.argmax(1)]

    def transform(self, X: Any) -> np.ndarray:
        """The encoder's features ``(n_samples, feature_dim)``: the learned embedding."""
        return self._forward(X, True)
