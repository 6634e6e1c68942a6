"""``rank``: top-K recommendation — NDCG@10 (primary), Recall@10/20, NDCG@20, hit rate, coverage, Gini.

A row is a training interaction ``[user, item]`` (its rating, if any, is not used). Training is BPR on each
interaction against an item drawn uniformly among those the user has not interacted with; evaluation ranks,
for every test user, all items without a training interaction with that user (full ranking) and scores the
top 20 against the user's test items (``ranking_metrics``). Budgets are interactions, stratified by user
(``fraction=f`` keeps a share of each user's, at least one; ``count=n`` spreads ``n`` over the users); the
default keeps all of them. Note that for this task the interactions are at once the pretraining data and
the labels: the few-label question is better asked of ``rate`` and of downstream tasks on the embeddings.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from warmstart.errors import UserError, note
from warmstart.tasks.base import TASKS, Task
from warmstart.tasks.ranking_metrics import KS, ranking_metrics, relevant_items, top_k


def check_interactions(task: str, bundle) -> None:
    """Refuse bundles whose rows are not interactions of a catalogue."""
    if bundle.modality != "interactions" or bundle.catalog is None:
        raise UserError(f"{bundle.name}: the {task} task needs an interaction log (e.g. movielens-100k or "
                        f"csv:PATH?user=COL&item=COL), not {bundle.modality} data")
    for split in ("train", "test"):
        x = np.asarray(getattr(bundle, f"x_{split}"))
        if x.ndim != 2 or x.shape[1] != 2 or (len(x) and x.min() < 0):
            raise UserError(f"{bundle.name}: the {task} task needs [user, item] interaction rows; this source's rows "
                            "are users or items (a target= task): drop target= or use --task classify")


class Rank(Task):
    """Interactions as implicit feedback; a ``Ranker`` head over the embeddings, trained with BPR."""

    name = "rank"
    description = ("top-K recommendation over every item the user has not interacted with in training: NDCG@10 "
                   "(primary), Recall@10/20, NDCG@20, hit rate, catalogue coverage and Gini index of the top-10")
    primary = "ndcg@10"
    metric_names = ("ndcg@10", "recall@10", "recall@20", "ndcg@20", "hit@10", "coverage@10", "gini@10")
    modalities = ("interactions",)
    budget_kinds = ("fraction", "count")
    default_budget = "fraction=1.0"
    pseudo_sources = ()  # no soft targets: self-training does not apply
    default_pseudo = ""
    no_validation = ("its labels are every training interaction; choose on held-out interactions instead: read "
                     "the data with ?holdout=valid (the same training part, the validation interactions as test)")
    not_private = ("DP-SGD clips one interaction at a time, but a user's many interactions all reach the same user "
                   "vector, so the guarantee would not cover a user (user-level privacy is not built)")

    def check(self, bundle) -> None:
        check_interactions(self.name, bundle)
        for split in ("train", "test"):
            rows = len(getattr(bundle, f"x_{split}"))
            y = np.asarray(getattr(bundle, f"y_{split}"), dtype=np.float32).reshape(rows, -1)
            setattr(bundle, f"y_{split}", y)

    def adopt(self, bundle):
        if bundle.task != "rate":
            return super().adopt(bundle)
        return replace(bundle, task=self.name)

    def strata(self, bundle, size):
        users = bundle.x_train[:, 0]
        distinct = len(np.unique(users))
        if size is not None and size < distinct:
            raise UserError(f"label budget count={size} is below the {distinct} users with training interactions; "
                            f"rank keeps at least one interaction per user: use count={distinct} or more, or "
                            "fraction=F")
        return users, None

    def info(self, bundle) -> dict[str, Any]:
        return {}

    def build_model(self, encoder: nn.Module, info: dict[str, Any]) -> nn.Module:
        from warmstart.models.embedding import Ranker

        return Ranker(encoder)

    def make_batch(self, bundle, index):
        """``([user, positive, negative] (B, 3), ones (B,))``: a fresh negative per interaction and step."""
        pairs = torch.from_numpy(np.asarray(bundle.x_train[index], np.int64))
        negatives = bundle.catalog.graph.negatives(pairs[:, 0])
        return torch.cat([pairs, negatives[:, None]], 1), torch.ones(len(pairs))

    def loss(self, output, target, model):
        margin = output[:, 0] - output[:, 1]
        return -F.logsigmoid(margin).mean(), {"train_auc": (margin.detach() > 0).float().mean()}

    def soft_loss(self, output, soft, temperature):
        raise UserError("the rank task has no soft targets (self-training does not apply)")

    def evaluated_users(self, bundle, x: np.ndarray) -> np.ndarray:
        """The distinct users of ``x`` that have training interactions (the others cannot be ranked for)."""
        users = np.unique(x[:, 0])
        return users[bundle.catalog.graph.seen_users[users]]

    def predict(self, model, bundle, x):
        """The top-20 unseen items ``(n, 20)`` of each user of ``x`` (``evaluated_users`` order)."""
        model.eval()
        indptr, items = bundle.catalog.graph.user_items()
        return top_k(model.score_all, self.evaluated_users(bundle, x), indptr, items, max(KS))

    def metrics(self, bundle, y_true, y_pred):
        """Scores top-K lists of the test users (``y_pred``, from ``predict`` or a baseline) against their test
        interactions (read from ``bundle.x_test``; ``y_true``, the ratings, are not needed)."""
        users = self.evaluated_users(bundle, bundle.x_test)
        cold = len(np.unique(bundle.x_test[:, 0])) - len(users)
        if cold:
            note(f"{bundle.name}: {cold} test users have no training interaction and are left out of the ranking")
        out = ranking_metrics(np.asarray(y_pred), relevant_items(bundle.x_test, users), bundle.catalog.num_items)
        return {**out, "n": int(len(users)), "cold_users": int(cold)}

    def probe_head(self, model, bundle, labeled) -> None:
        """A ranker's probe is the plain inner product the embeddings were pretrained for."""
        model.reset_head()

    def baselines(self, modality: str) -> list[str]:
        return ["most_popular", "implicit_als", "implicit_bpr"]

    def baseline_inputs(self, bundle):
        return bundle.x_train, bundle.x_test


TASKS.register("rank")(Rank())
