"""``rate``: rating prediction on (user, item) pairs — RMSE (primary, lower is better), MAE, R².

``regress`` on interaction rows: the targets are the log's ratings, the model is a ``Rater`` (a linear head
over ``u ⊙ i`` plus user and item biases: biased matrix factorisation), standardised like every regression.
Budgets are ratings (``count=n``, ``fraction=f``, stratified on rating quantiles); the default keeps every
training rating. The few-label reading: implicit interactions are plentiful, explicit ratings are not.
A pair whose user or item has no training interaction is predicted from what is known (the global mean
and the other side's bias): its id vector is zero.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from torch import nn

from warmstart.errors import UserError
from warmstart.tasks.base import TASKS
from warmstart.tasks.rank import check_interactions
from warmstart.tasks.regress import Regress


class Rate(Regress):
    """Ratings of interactions; biased matrix factorisation on the embeddings."""

    name = "rate"
    description = "rating prediction on (user, item) pairs: RMSE (primary, lower is better), MAE, R², in stars"
    modalities = ("interactions",)
    default_budget = "fraction=1.0"
    pseudo_sources = ("teacher", "probe")
    default_pseudo = "teacher"

    def check(self, bundle) -> None:
        check_interactions(self.name, bundle)
        super().check(bundle)

    def adopt(self, bundle):
        if bundle.task != "rank":
            return super().adopt(bundle)
        if not bundle.catalog.has_ratings:
            raise UserError(f"{bundle.name} has no ratings to predict; name the rating column with ?rating=COL, or "
                            "drop --task to rank")
        return replace(bundle, task=self.name)

    def build_model(self, encoder: nn.Module, info: dict[str, Any]) -> nn.Module:
        from warmstart.models.embedding import Rater

        return Rater(encoder, len(info["target_names"]))

    def metrics(self, bundle, y_true, y_pred):
        out = super().metrics(bundle, y_true, y_pred)
        graph = bundle.catalog.graph
        x = bundle.x_test if len(y_true) == len(bundle.x_test) else np.zeros((0, 2), np.int64)
        out["unseen_pairs"] = int((~(graph.seen_users[x[:, 0]] & graph.seen_items[x[:, 1]])).sum())
        return out

    def baselines(self, modality: str) -> list[str]:
        return ["bias_baseline", "biased_mf"]

    def baseline_inputs(self, bundle):
        return bundle.x_train, bundle.x_test


TASKS.register("rate")(Rate())
