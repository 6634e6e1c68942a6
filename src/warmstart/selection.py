"""Choices made on the validation split: which epoch's weights a fine-tune keeps, and which candidate wins.

``EpochSelector`` is the engine's ``on_epoch_end`` hook for a fine-tune with validation rows
(``data/validation.py``): it scores them with the task's primary metric ``validations`` times over the run
and keeps the best weights — checkpoint selection, i.e. early stopping without cutting the schedule short
(the cosine decay needs its end point). The final weights are scored too, after the engine's end-of-run
BatchNorm recompute, and win ties, so with a flat curve the last epoch is kept. The best weights are saved
in the run directory as they are found, so a killed run resumes to the same choice.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from warmstart.checkpoint import load_tensors, save_tensors

BEST_FILE = "best.safetensors"


def validation_score(task, model: nn.Module, bundle, rows: np.ndarray) -> float:
    """The task's primary metric of ``model`` on training rows ``rows`` (the validation split)."""
    predicted = task.predict(model, bundle, bundle.rows(bundle.x_train, rows))
    return float(task.metrics(bundle, bundle.y_train[rows], predicted)[task.primary])


def better(task, score: float, than: float | None) -> bool:
    """``score`` at least as good as ``than`` in the task's direction (ties go to the later candidate)."""
    if than is None:
        return True
    return score >= than if task.higher_is_better else score <= than


def scoring_epochs(epochs: int, validations: int) -> set[int]:
    """The epochs (1-based, before the last) after which the validation rows are scored."""
    count = min(validations, epochs) - 1  # the final weights are always scored, after fit returns
    return {max(1, round(epochs * i / (count + 1))) for i in range(1, count + 1)} - {epochs}


class EpochSelector:
    """Scores ``model`` on the validation rows at ``scoring_epochs`` and remembers the best weights."""

    def __init__(self, task, bundle, rows: np.ndarray, model: nn.Module, validations: int,
                 run_dir: Path | None, resume: bool) -> None:
        self.task, self.bundle, self.rows, self.model = task, bundle, rows, model
        self.validations, self.epochs = validations, set()
        self.path = None if run_dir is None else Path(run_dir) / BEST_FILE
        self.best: tuple[float, int, dict[str, torch.Tensor]] | None = None
        self.scores: dict[int, float] = {}
        if resume and self.path is not None and self.path.exists():
            tensors, meta = load_tensors(self.path)
            self.best = (float(meta["score"]), int(meta["epoch"]), tensors)
            self.scores = {int(k): float(v) for k, v in meta["scores"].items()}

    def start(self, epochs: int) -> None:
        """Called by the strategy once it knows how many epochs its run has."""
        self.epochs = scoring_epochs(epochs, self.validations)

    def __call__(self, epoch: int) -> dict[str, Any]:
        if epoch not in self.epochs:
            return {}
        score = validation_score(self.task, self.model, self.bundle, self.rows)
        self.scores[epoch] = score
        if better(self.task, score, self.best[0] if self.best else None):
            state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
            self.best = (score, epoch, state)
            if self.path is not None:
                save_tensors(self.path, state, {"score": score, "epoch": epoch,
                                                "scores": {str(k): v for k, v in self.scores.items()}})
        return {f"val_{self.task.primary}": score}

    def finish(self, final_epoch: int, keep_best: bool) -> dict[str, Any]:
        """Score the final weights; restore the best ones when ``keep_best`` and they beat the final."""
        final = validation_score(self.task, self.model, self.bundle, self.rows)
        self.scores[final_epoch] = final
        chosen, score = final_epoch, final
        if keep_best and self.best is not None and not better(self.task, final, self.best[0]):
            score, chosen, state = self.best
            self.model.load_state_dict(copy.deepcopy(state))
        return {"rows": int(len(self.rows)), "metric": self.task.primary, "score": score, "epoch": chosen,
                "of_epochs": final_epoch, "kept": "best" if keep_best else "last",
                "scores": {str(k): round(v, 6) for k, v in sorted(self.scores.items())}}
