"""``classify``: one class per example — accuracy (primary), macro-F1 and the confusion matrix."""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score
from torch import nn

from warmstart.errors import UserError
from warmstart.probes import LinearProbe
from warmstart.tasks.base import TASKS, Explained, Task


def roc_auc(y_true: np.ndarray, proba: np.ndarray | None, num_classes: int) -> float:
    """ROC-AUC of class probabilities ``(N, K)``: of class 1's for two classes; for more, the macro average of
    one-vs-rest AUCs (scikit-learn's ``multi_class="ovr"``). NaN without probabilities, or when ``y_true``
    lacks a class (the AUC is then undefined)."""
    if proba is None or len(np.unique(y_true)) < num_classes or num_classes < 2:
        return float("nan")
    total = proba.sum(1, keepdims=True)
    proba = np.where(total > 0, proba / np.where(total > 0, total, 1), 1 / num_classes)  # no mass: uniform
    if num_classes == 2:
        return float(roc_auc_score(y_true, proba[:, 1]))
    return float(roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=list(range(num_classes))))


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict[str, Any]:
    """scikit-learn's accuracy, macro-F1 (over all ``num_classes``), confusion matrix and ROC-AUC.

    ``y_pred``: class indices ``(N,)``, or class probabilities ``(N, K)`` (then the predicted class is the most
    probable and ``roc_auc`` is defined; with indices alone it is NaN)."""
    labels = list(range(num_classes))
    proba = None
    if np.ndim(y_pred) == 2:
        proba = np.zeros((len(y_pred), num_classes))
        proba[:, :np.shape(y_pred)[1]] = y_pred
        y_pred = proba.argmax(1)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "roc_auc": roc_auc(np.asarray(y_true), proba, num_classes),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", labels=labels, zero_division=0)),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "n": int(len(y_true)),
    }


def spread_labels(features: np.ndarray, y: np.ndarray, labeled: np.ndarray, num_classes: int,
                  neighbors: int, alpha: float = 0.2) -> torch.Tensor:
    """Label spreading (Zhou et al., 2004; scikit-learn's kNN kernel) over L2-normalised ``(N, F)`` features,
    seeded with ``y[labeled]`` → ``(N, num_classes)`` label distributions (rows the graph never reaches are
    uniform). ``alpha`` is the share of a row's distribution its neighbours give it at each iteration
    (scikit-learn's default 0.2 keeps each row near its nearest seeds; near 1 the labels travel further)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.preprocessing import normalize
    from sklearn.semi_supervised import LabelSpreading

    seeds = np.full(len(features), -1)
    seeds[labeled] = y[labeled]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # Near alpha 1 the 100 iterations stop short of convergence; on Fashion-MNIST SimCLR features, 300 and
        # 1000 iterations of the same update (measured with a sparse iteration of our own, not with this
        # class) gave the same targets within 0.1 point, so the cap stays and its warning is noise.
        warnings.simplefilter("ignore", ConvergenceWarning)
        spread = LabelSpreading(kernel="knn", n_neighbors=neighbors, alpha=alpha, max_iter=100)
        spread.fit(normalize(features), seeds)
    dist = torch.zeros(len(features), num_classes)
    dist[:, torch.as_tensor(spread.classes_)] = torch.as_tensor(
        np.nan_to_num(spread.label_distributions_, nan=0.0), dtype=torch.float32)
    dist[dist.sum(1) == 0] = 1.0 / num_classes
    return dist / dist.sum(1, keepdim=True)


def class_score(model: nn.Module, c: int):
    """``inputs (B, ...) -> (B,)``: the model's softmax probability of class ``c``."""
    return lambda inputs: torch.softmax(model(inputs), 1)[:, c]


class Classify(Task):
    """One class index per example; cross-entropy on a linear head over the pooled features."""

    name = "classify"
    description = "one class per example: accuracy (primary), macro-F1, ROC-AUC, confusion matrix"
    primary = "accuracy"
    metric_names = ("accuracy", "macro_f1", "roc_auc")

    def check(self, bundle) -> None:
        for split in ("train", "test"):
            y = np.asarray(getattr(bundle, f"y_{split}"))
            if y.ndim != 1:
                raise UserError(f"{bundle.name}: y_{split} must be 1-D class labels, got shape {y.shape}")
            if y.dtype == object or (not np.issubdtype(y.dtype, np.integer) and not np.all(np.mod(y, 1) == 0)):
                raise UserError(f"{bundle.name}: y_{split} holds non-integer labels; labels must be class indices "
                                "0..K-1 (use --task regress for real-valued targets)")
            setattr(bundle, f"y_{split}", y.astype(np.int64))
        k = int(max(bundle.y_train.max(initial=0), bundle.y_test.max(initial=0))) + 1
        if min(bundle.y_train.min(initial=0), bundle.y_test.min(initial=0)) < 0:
            raise UserError(f"{bundle.name}: negative labels found; labels must be class indices 0..K-1")
        if not bundle.class_names:
            rows = len(bundle.y_train) + len(bundle.y_test)
            if k > rows:  # e.g. a damaged label file: naming 2**40 classes would exhaust memory
                raise UserError(f"{bundle.name}: labels go up to {k - 1} but there are only {rows} examples; labels "
                                "must be class indices 0..K-1 (give class names to declare unused classes)")
            bundle.class_names = [str(i) for i in range(k)]
        if k > len(bundle.class_names):
            raise UserError(f"{bundle.name}: label {k - 1} is out of range for {len(bundle.class_names)} classes; "
                            f"labels must lie in 0..{len(bundle.class_names) - 1}")

    def strata(self, bundle, size):
        if bundle.num_classes < 2:
            raise UserError(f"{bundle.name} has no labels (one class); fine-tune on labeled data and use this "
                            "source for pretraining")
        return super().strata(bundle, size)

    def adopt(self, bundle):
        """Real-valued targets that are all whole numbers become classes (their sorted distinct values)."""
        if bundle.task != "regress":
            return super().adopt(bundle)
        from dataclasses import replace

        y_train, y_test = bundle.y_train, bundle.y_test
        if y_train.shape[1] != 1 or not (np.all(np.mod(y_train, 1) == 0) and np.all(np.mod(y_test, 1) == 0)):
            raise UserError(f"{bundle.name}: --task classify needs one column of whole-number class labels, but the "
                            f"targets are real values ({bundle.inferred or 'e.g. ' + str(float(y_train[0, 0]))}); "
                            "drop --task to use regress")
        values = np.unique(np.concatenate([y_train[:, 0], y_test[:, 0]]))
        to_class = {v: i for i, v in enumerate(values)}
        y_train = np.array([to_class[v] for v in y_train[:, 0]], np.int64)
        y_test = np.array([to_class[v] for v in y_test[:, 0]], np.int64)
        names = [str(int(v)) for v in values]
        return replace(bundle, y_train=y_train, y_test=y_test, task=self.name, class_names=names, target_names=[])

    def build_model(self, encoder: nn.Module, info: dict[str, Any]) -> nn.Module:
        from warmstart.models.heads import Classifier

        return Classifier(encoder, len(info["class_names"]))

    def target_tensor(self, y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(y, dtype=np.int64))

    def loss(self, output, target, model):
        loss = F.cross_entropy(output, target)
        return loss, {"train_accuracy": (output.detach().argmax(1) == target).float().mean()}

    def soft_loss(self, output, soft, temperature):
        loss = -(soft * F.log_softmax(output / temperature, dim=1)).sum(1).mean()
        return loss, {}

    def agreement(self, output, soft):
        return (output.detach().argmax(1) == soft.argmax(1)).float().mean()

    def predict(self, model, bundle, x):
        from warmstart.evaluate import predict_logits

        return predict_logits(model, bundle, x).argmax(1).numpy()

    def evaluate(self, model, bundle):
        """Test metrics from the model's class probabilities (so ``roc_auc`` is defined)."""
        from warmstart.evaluate import predict_logits

        proba = torch.softmax(predict_logits(model, bundle, bundle.x_test).double(), 1).numpy()
        return self.metrics(bundle, bundle.y_test, proba)

    def metrics(self, bundle, y_true, y_pred):
        return classification_metrics(y_true, y_pred, bundle.num_classes)

    def probe_head(self, model, bundle, labeled) -> None:
        z, y = self.probe_data(model.encoder, bundle, labeled)
        LinearProbe("logistic").fit(z, y, model.head.out_features).to_head(model.head)

    def pseudo_targets(self, source, bundle, labeled, *, features, teacher, model, temperature, neighbors, alpha,
                       probe_c):
        k = model.head.out_features
        if source == "teacher":
            from warmstart.evaluate import predict_logits

            return F.softmax(predict_logits(teacher, bundle, bundle.x_train) / temperature, 1)
        if source == "propagate":
            return spread_labels(features, bundle.y_train, labeled, k, neighbors, alpha)
        probe = LinearProbe("logistic", c=probe_c)
        probe.fit(features[labeled], bundle.y_train[labeled], k, scale_from=features)
        return torch.as_tensor(probe.predict_proba(features), dtype=torch.float32)

    def keep_labeled(self, soft, bundle, labeled, model):
        soft[labeled] = F.one_hot(torch.from_numpy(bundle.y_train[labeled]), soft.shape[1]).float()
        return soft

    def explain_outputs(self, model, bundle, x, y):
        """The predicted class's softmax probability (and the true class's, when the prediction is wrong)."""
        from warmstart.evaluate import predict_logits

        names = bundle.class_names
        out = []
        for p, truth in zip(torch.softmax(predict_logits(model, bundle, x), 1), np.asarray(y)):
            guess, truth = int(p.argmax()), int(truth)
            out.append(Explained(class_score(model, guess), f"{names[guess]} (p {float(p[guess]):.2f})", names[truth],
                                 guess == truth, None if guess == truth else class_score(model, truth)))
        return out

    def baselines(self, modality: str) -> list[str]:
        # Gradient boosting is what practitioners reach for first on tables; k-NN is the other classical bar.
        # On text, sparse TF-IDF + logistic regression is the classical peer; users and items: logistic
        # regression on their side features alone and on their history alone.
        extra = {"table": ["hist_gradient_boosting", "self_training_gradient_boosting", "knn_classification"],
                 "text": ["tfidf_logistic"],
                 "interactions": ["side_logistic", "history_logistic"]}.get(modality, [])
        return ["logistic_regression", "label_spreading", "self_training", *extra]


TASKS.register("classify")(Classify())
