"""``regress``: real-valued targets (one or several columns) — RMSE (primary, lower is better), MAE, R².

Targets are standardised for training with the mean and std of the labeled rows (the model keeps them as
buffers, so checkpoints carry them) and every prediction and metric is in the data's own units. Budgets
(``count=n``, ``fraction=f``) are stratified on quantile bins of the first target, so a few labels still
cover its range.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from torch import nn

from warmstart.data.targets import is_number
from warmstart.errors import UserError, note
from warmstart.probes import LinearProbe
from warmstart.tasks.base import TASKS, Explained, Task

#: Quantile bins a budget is stratified over (fewer when the budget is smaller).
BINS = 10
#: Fewer distinct values than this look like classes: allowed as regression targets, but said.
FEW_VALUES = 20


def quantile_bins(values: np.ndarray, bins: int) -> np.ndarray:
    """Equal-count bins ``0..bins-1`` of ``values`` by rank (ties broken by position, so bins never empty)."""
    ranks = np.argsort(np.argsort(values, kind="stable"), kind="stable")
    return (ranks * bins // len(values)).astype(np.int64)


class Regress(Task):
    """``k`` real targets per example; mean squared error of the standardised targets on a linear head."""

    name = "regress"
    description = "real-valued targets: RMSE (primary, lower is better), MAE, R², in the data's units"
    primary = "rmse"
    higher_is_better = False
    metric_names = ("rmse", "mae", "r2")
    lower_is_better = ("rmse", "mae")
    budget_kinds = ("count", "fraction")
    default_budget = "count=50"
    # Self-training's default targets: a ridge probe's values. Measured (bench/regression.py, mean of 3 seeds,
    # students from the denoising / masked / SimCLR encoders): diamonds at 100 labels, RMSE 0.257 / 0.220 /
    # 0.215 against 0.450 / 0.309 / 0.358 with propagate's nearest-labeled-neighbour means; diabetes at 25
    # labels, 66.4 / 68.1 / 66.8 against 62.0 / 62.4 / 63.1 (353 rows: too few for the probe to beat the kNN).
    default_pseudo = "probe"
    probe_kind = "ridge"  # its penalty is picked by leave-one-out over the labeled rows

    def check(self, bundle) -> None:
        for split in ("train", "test"):
            y = np.asarray(getattr(bundle, f"y_{split}"))
            if y.dtype == object or not np.issubdtype(y.dtype, np.number):
                raise UserError(f"{bundle.name}: regression targets must be numbers, got dtype {y.dtype}; "
                                "use --task classify for class labels")
            if y.ndim not in (1, 2):
                raise UserError(f"{bundle.name}: y_{split} must be (N,) or (N, k) targets, got shape {y.shape}")
            y = y.reshape(len(y), -1).astype(np.float32)
            bad = ~np.isfinite(y).all(1)
            if bad.any():
                raise UserError(f"{bundle.name}: {int(bad.sum())} {split} target(s) are missing or infinite (row "
                                f"{int(np.flatnonzero(bad)[0])}); fill or drop those rows")
            setattr(bundle, f"y_{split}", y)
        k = bundle.y_train.shape[1]
        if bundle.y_test.shape[1] != k:
            raise UserError(f"{bundle.name}: train has {k} target column(s) but test {bundle.y_test.shape[1]}")
        if not bundle.target_names:
            bundle.target_names = ["target"] if k == 1 else [f"target{i}" for i in range(k)]
        if len(bundle.target_names) != k:
            raise UserError(f"{bundle.name}: {len(bundle.target_names)} target names for {k} target columns")

    def adopt(self, bundle):
        """Class labels whose names are numbers become those numbers (said when there are few of them)."""
        if bundle.task != "classify":
            return super().adopt(bundle)
        try:
            values = np.array([float(c) for c in bundle.class_names], np.float32)
        except ValueError:
            example = next(c for c in bundle.class_names if not is_number(c))
            raise UserError(f"{bundle.name}: --task regress needs numeric targets, but they are strings (e.g. "
                            f"{example!r}); drop --task to use classify") from None
        if len(values) < FEW_VALUES:
            note(f"--task regress on {bundle.name}: its targets take only {len(values)} distinct values, which looks "
                 f"like classes (inferred task: classify); regressing on them as numbers, as asked")
        return replace(bundle, y_train=values[bundle.y_train], y_test=values[bundle.y_test], task=self.name,
                       class_names=[], target_names=[])

    def strata(self, bundle, size):
        bins = BINS if size is None else max(1, min(BINS, size))
        strata = quantile_bins(bundle.y_train[:, 0], bins)
        return strata, [f"quantile bin {i + 1}/{bins} of {bundle.target_names[0]}" for i in range(bins)]

    def info(self, bundle) -> dict[str, Any]:
        return {"target_names": list(bundle.target_names)}

    def build_model(self, encoder: nn.Module, info: dict[str, Any]) -> nn.Module:
        from warmstart.models.heads import Regressor

        return Regressor(encoder, len(info["target_names"]))

    not_private = "its target scaling is the labeled targets' mean and std, computed without noise"

    def init_model(self, model, bundle, labeled) -> None:
        y = bundle.y_train[labeled].astype(np.float64)
        std = y.std(0) if len(y) > 1 else np.ones(y.shape[1])
        model.set_scaling(y.mean(0), np.where(std > 0, std, 1.0))

    def target_tensor(self, y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(y, dtype=np.float32))

    def loss(self, output, target, model):
        loss = F.mse_loss(output, model.standardise(target))
        return loss, {"train_rmse_std": loss.detach().sqrt()}

    def soft_loss(self, output, soft, temperature):
        return F.mse_loss(output, soft), {}

    def agreement(self, output, soft):
        return -F.mse_loss(output.detach(), soft)

    def predict(self, model, bundle, x):
        from warmstart.evaluate import predict_logits

        return model.destandardise(predict_logits(model, bundle, x)).numpy()

    def metrics(self, bundle, y_true, y_pred):
        y_pred = np.asarray(y_pred, np.float64).reshape(len(y_true), -1)
        return {
            "rmse": float(np.mean(np.sqrt(mean_squared_error(y_true, y_pred, multioutput="raw_values")))),
            "mae": float(mean_absolute_error(y_true, y_pred)),
            "r2": float(r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan"),
            "n": int(len(y_true)),
        }

    def probe_head(self, model, bundle, labeled) -> None:
        z, y = self.probe_data(model.encoder, bundle, labeled)
        target = model.standardise(torch.as_tensor(y)).numpy()
        LinearProbe(self.probe_kind).fit(z, target, model.head.out_features).to_head(model.head)

    def pseudo_targets(self, source, bundle, labeled, *, features, teacher, model, temperature, neighbors, alpha,
                       probe_c):
        """Standardised target values: the teacher's, a ridge probe's, or ``propagate``'s distance-weighted
        k-nearest-labeled-neighbour mean over L2-normalised features."""
        if source == "teacher":
            from warmstart.evaluate import predict_logits

            return predict_logits(teacher, bundle, bundle.x_train)
        target = model.standardise(torch.as_tensor(bundle.y_train[labeled])).numpy()
        if source == "propagate":
            from sklearn.neighbors import KNeighborsRegressor
            from sklearn.preprocessing import normalize

            z = normalize(features)
            knn = KNeighborsRegressor(n_neighbors=min(neighbors, len(labeled)), weights="distance")
            values = knn.fit(z[labeled], target).predict(z)
        else:
            values = LinearProbe(self.probe_kind).fit(features[labeled], target, target.shape[1], scale_from=features)
            values = values.scores(features)
        return torch.as_tensor(np.asarray(values).reshape(len(features), -1), dtype=torch.float32)

    def keep_labeled(self, soft, bundle, labeled, model):
        soft[labeled] = model.standardise(torch.as_tensor(bundle.y_train[labeled]))
        return soft

    def explain_outputs(self, model, bundle, x, y):
        """The predicted value of the first target, in the data's units (the head's output destandardised)."""
        name = bundle.target_names[0]
        predicted = self.predict(model, bundle, x).reshape(len(x), -1)[:, 0]

        def score(inputs: torch.Tensor) -> torch.Tensor:
            return model.destandardise(model(inputs))[:, 0]
        return [Explained(score, f"{name} {p:.4g}", f"{float(np.ravel(t)[0]):.4g}") for p, t in zip(predicted, y)]

    def baselines(self, modality: str) -> list[str]:
        return ["ridge", "knn_regression", "hist_gradient_boosting", *(["tfidf_ridge"] if modality == "text" else [])]



TASKS.register("regress")(Regress())
