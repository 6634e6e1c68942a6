"""Every task × objective × encoder its data can use: pretrain to a run directory, fine-tune with ``joint`` from
that directory (which reloads the whole objective — the text ``joint`` bug lived here), evaluate the saved model
and get the same metrics; plus what every registered task must provide.

Parametrised over ``TASKS``, ``OBJECTIVES`` and ``ENCODERS``: a new entry is covered by its registration line
(and, for a task, a tiny setup in ``conftest.TASK_SETUPS``).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from conftest import TASK_SETUPS, TEXT_ARGS
from warmstart import pipeline
from warmstart.config import FinetuneConfig, PretrainConfig
from warmstart.models import ENCODERS
from warmstart.objectives import OBJECTIVES
from warmstart.tasks import TASKS

ENCODER_ARGS = {"linear": {"feature_dim": 8}, "mlp": {"width": 32, "feature_dim": 16}, "cnn": {"width": 4},
                "resnet": {"width": 4}, "transformer": TEXT_ARGS, "gpt": TEXT_ARGS, "embedding": {"dim": 8}}
# Pairs an objective refuses on purpose, with the reason in its docstring (see test_objectives_registry.py).
REFUSED = {("gan", "linear"), ("mlm", "gpt"), ("clm", "transformer"),
           ("masked-dense", "linear"), ("masked-dense", "mlp"),  # the dense objectives read feature maps
           ("dense-contrast", "linear"), ("dense-contrast", "mlp")}
MODALITY = {"classify": "image", "regress": "table", "tag": "text", "segment": "image", "detect": "image",
            "rank": "interactions", "rate": "interactions"}
# Dense heads read feature maps: only the convolutional encoders have them. On 64x64 scenes a round trip
# costs seconds, so each dense task runs every objective on its first encoder and the others with one
# objective: every objective and every encoder is still exercised for it.
TASK_ENCODERS = {"segment": ("cnn", "resnet"), "detect": ("cnn", "resnet")}
DENSE_OTHER_ENCODER_OBJECTIVE = "masked-dense"


def combos() -> list[tuple[str, str, str]]:
    out = []
    for task in TASKS.names():
        modality = MODALITY.get(task)
        for objective in OBJECTIVES.names():
            for encoder in ENCODER_ARGS:
                readable = (modality in ENCODERS.get(encoder).modalities
                            and encoder in TASK_ENCODERS.get(task, ENCODER_ARGS))
                if task in TASK_ENCODERS and encoder != TASK_ENCODERS[task][0]:
                    readable = readable and objective == DENSE_OTHER_ENCODER_OBJECTIVE
                applies = modality in OBJECTIVES.get(objective).modalities
                if readable and applies and (objective, encoder) not in REFUSED:
                    out.append((task, objective, encoder))
    return out


@pytest.fixture(scope="module")
def small():
    """Each task's tiny data set, cut to at most 300 training rows (a pretraining epoch in well under a second)."""
    out = {}
    for task, (load, *_rest) in TASK_SETUPS.items():
        data = load()
        out[task] = replace(data, x_train=data.x_train[:300], y_train=data.y_train[:300])
    return out


def test_every_task_states_its_metrics_and_budgets():
    for name in TASKS.names():
        task = TASKS.get(name)
        assert task.name == name and task.primary == task.metric_names[0] and task.description
        assert task.default_budget.split("=")[0] in task.budget_kinds
        assert set(task.pseudo_sources) <= {"teacher", "propagate", "probe"}
        assert task.default_pseudo in task.pseudo_sources or not (task.pseudo_sources or task.default_pseudo)


def test_every_task_modality_and_objective_is_exercised():
    seen = combos()
    assert {t for t, _, _ in seen} == set(TASKS.names())
    assert {o for _, o, _ in seen} == set(OBJECTIVES.names())


@pytest.mark.parametrize("task_name,objective,encoder", combos())
def test_pretrain_then_joint_from_the_run_directory_round_trips(task_name, objective, encoder, small, tmp_path):
    data = small[task_name]
    pre = tmp_path / "pre"
    pipeline.pretrain(PretrainConfig(objective=objective, encoder=encoder, encoder_args=ENCODER_ARGS[encoder],
                                     epochs=1, batch_size=64, health_samples=0), pre, data=data)
    config = FinetuneConfig(pretrained=str(pre), strategy="joint", labels=TASK_SETUPS[task_name][4], epochs=1,
                            batch_size=20, strategy_args={"epochs": 1, "unlabeled_batch": 64})
    result = pipeline.finetune(config, tmp_path / "joint", data=data)
    again = pipeline.evaluate(tmp_path / "joint", data)
    for metric in TASKS.get(task_name).metric_names:
        assert np.isfinite(result.metrics[metric]) and again[metric] == pytest.approx(result.metrics[metric]), metric
    assert {"loss_pre", "loss_fine"} <= set(result.history[0])
