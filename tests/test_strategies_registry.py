"""Every (task, strategy) pair: what trains is what the strategy claims, the loss falls, and a saved model
loads back to the same test metrics — or the pair is refused in one line before any work.

Parametrised over ``TASKS`` × ``STRATEGIES``, so a new task or strategy is covered by its registration line
(give it a tiny setup in ``conftest.TASK_SETUPS``).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import TASK_SETUPS
from warmstart import pipeline
from warmstart.config import FinetuneConfig
from warmstart.errors import UserError
from warmstart.finetune_start import objective_around
from warmstart.models.build import build_encoder
from warmstart.strategies import STRATEGIES, FinetuneContext
from warmstart.tasks import TASKS

# Options that make each strategy's tiny run cheap; everything else is the strategy's default.
TINY_ARGS = {"joint": {"unlabeled_batch": 64, "epochs": 2}, "selftrain": {"batch": 64, "epochs": 2}}
PAIRS = [(t, s) for t in TASKS.names() for s in STRATEGIES.names()]
SERVED = [(t, s) for t, s in PAIRS if t in STRATEGIES.get(s).tasks and t in TASK_SETUPS]


def test_every_task_has_a_setup_and_every_strategy_serves_one():
    assert set(TASKS.names()) <= set(TASK_SETUPS), "give every task a tiny setup in conftest.TASK_SETUPS"
    assert {s for _, s in SERVED} == set(STRATEGIES.names())


def context(task_name: str, name: str, task_runs, epochs: int = 6):
    data, objective = task_runs[task_name]
    task, budget = TASKS.get(task_name), TASK_SETUPS[task_name][4]
    config = FinetuneConfig(strategy=name, labels=budget, epochs=epochs, batch_size=20, lr=3e-3)
    labeled, unlabeled = task.split(data, budget, 0)
    strategy = STRATEGIES.build(name, **TINY_ARGS.get(name, {}))
    strategy.check(task, data, name)
    torch.manual_seed(0)
    spec = objective.encoder.spec
    encoder = build_encoder(spec["encoder"], data.input_shape, spec["encoder_args"], data.modality,
                            tokenizer=spec.get("tokenizer"), schema=spec.get("schema"))
    if strategy.load_pretrained:
        encoder.load_state_dict(objective.encoder.state_dict())
    data = data.handler.prepare(data, encoder)
    model = task.build_model(encoder, task.info(data))
    task.init_model(model, data, labeled)
    aux = objective_around(objective, encoder) if strategy.needs_objective else None
    return strategy, FinetuneContext(config, data, task, labeled, unlabeled, model, aux)


@pytest.mark.parametrize("task_name,name", SERVED)
def test_strategy_trains_what_it_claims_and_loss_falls(task_name, name, task_runs):
    strategy, ctx = context(task_name, name, task_runs)
    pretrained = task_runs[task_name][1].encoder.state_dict()
    before = {k: v.clone() for k, v in ctx.model.state_dict().items()}
    starts_pretrained = all(torch.equal(before[f"encoder.{k}"], v) for k, v in pretrained.items())
    assert starts_pretrained == strategy.load_pretrained
    history = strategy.train(ctx)
    after = ctx.model.state_dict()
    weights = [k for k, p in ctx.model.named_parameters() if p.requires_grad or not strategy.train_encoder]
    changed = {k for k in weights if not torch.equal(before[k], after[k])}
    head = {k for k in weights if k.startswith("head.")}
    encoder = {k for k in weights if k.startswith("encoder.") and "pooler" not in k}  # BERT's pooler is unused
    assert head <= changed, "the head must train"
    if strategy.train_encoder:
        assert encoder <= changed, f"frozen by mistake: {sorted(encoder - changed)[:5]}"
    else:
        assert not encoder & changed, f"should be frozen: {sorted(encoder & changed)[:5]}"
        assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("encoder."))  # BN stats too
    assert history[-1]["loss"] < history[0]["loss"], [h["loss"] for h in history]


@pytest.mark.parametrize("task_name,name", SERVED)
def test_save_load_evaluate_round_trip_gives_the_same_metrics(task_name, name, task_runs, tmp_path):
    data, objective = task_runs[task_name]
    config = FinetuneConfig(strategy=name, labels=TASK_SETUPS[task_name][4], epochs=2, batch_size=20,
                            strategy_args=TINY_ARGS.get(name, {}), encoder=TASK_SETUPS[task_name][1],
                            encoder_args=TASK_SETUPS[task_name][2])
    result = pipeline.finetune(config, tmp_path / "run", data=data, encoder=objective.encoder, objective=objective)
    again = pipeline.evaluate(tmp_path / "run", data)
    task = TASKS.get(task_name)
    assert result.metrics["task"] == task_name and task.primary in result.metrics
    for metric in task.metric_names:
        assert again[metric] == pytest.approx(result.metrics[metric], abs=1e-6), metric
        assert np.isfinite(again[metric])


def test_a_strategy_refuses_a_task_it_does_not_serve(task_runs, tmp_path, monkeypatch):
    """A strategy that declares fewer tasks is refused before any work (``selftrain`` declines the dense ones)."""
    class ClassesOnly(STRATEGIES.get("scratch")):
        tasks = ("classify",)

    monkeypatch.setitem(STRATEGIES._entries, "classes-only", ClassesOnly)
    data, _ = task_runs["regress"]
    message = "strategy 'classes-only' does not apply to the regress task; it serves classify"
    with pytest.raises(UserError, match=message):
        pipeline.finetune(FinetuneConfig(strategy="classes-only", epochs=1), tmp_path / "run", data=data)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("task_name", ["segment", "detect"])
def test_selftrain_declines_dense_tasks_and_full_refuses_a_probe_head(task_name, task_runs, tmp_path):
    data, objective = task_runs[task_name]
    for strategy, args, message in (
            ("selftrain", {}, f"strategy 'selftrain' does not apply to the {task_name} task; it serves classify"),
            ("full", {"head_init": "probe"}, f"head_init=probe does not apply to the {task_name} task")):
        with pytest.raises(UserError, match=message):
            pipeline.finetune(FinetuneConfig(strategy=strategy, strategy_args=args, epochs=1), tmp_path / "run",
                              data=data, encoder=objective.encoder)
    assert not (tmp_path / "run").exists()


def test_selftrain_refuses_targets_and_options_the_task_cannot_serve(task_runs, tmp_path):
    data, objective = task_runs["tag"]
    for args, message in (({"targets": "propagate"}, "targets=propagate does not apply to the tag task"),
                          ({"features_from": [str(tmp_path)]}, "no encoder.safetensors")):
        with pytest.raises(UserError, match=message):
            pipeline.finetune(FinetuneConfig(strategy="selftrain", strategy_args=args, epochs=1), tmp_path / "run",
                              data=data, encoder=objective.encoder)
    assert not (tmp_path / "run").exists()
    with pytest.raises(UserError, match="augment='weak' does not apply to text data"):
        pipeline.finetune(FinetuneConfig(strategy="full", strategy_args={"augment": "weak"}, epochs=1), data=data,
                          encoder=objective.encoder)
