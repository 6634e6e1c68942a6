"""The Python API: ``pretrain``, ``finetune`` and ``evaluate``, each writing one run directory.

Everything that can be wrong with the input (config, data, task, budget, model options) is checked before
the run directory is created, so a failed start leaves nothing on disk. What depends on the inputs is the
modality's (``data/modalities/``), what depends on the labels the task's (``tasks/``); this file only wires
them: source → task → budget → encoder → strategy → engine → task's metrics.
What a fine-tune starts from (its rows, encoder, DP-SGD run) is settled in ``finetune_start.py``.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from warmstart import runtime
from warmstart.checkpoint import atomic_write_text
from warmstart.config import FinetuneConfig, PretrainConfig, to_yaml
from warmstart.data import DataBundle
from warmstart.data.bundle import final_evaluation
from warmstart.data.sources import load_data
from warmstart.data.validation import Rows
from warmstart.engine import fit
from warmstart.errors import UserError
from warmstart.finetune_start import (build_model_encoder, check_federated, finetune_rows, model_encoder_spec,
                                      objective_around, private_finetune, starting_encoder)
from warmstart.health import HealthMonitor
from warmstart.models import Encoder
from warmstart.models.build import build_encoder, check_input_shape
from warmstart.objectives import OBJECTIVES, Objective
from warmstart import privacy as dp
from warmstart.rundir import ENCODER_FILE, MODEL_FILE, OBJECTIVE_FILE, load_run, save_model, save_pretrained
from warmstart.selection import EpochSelector
from warmstart.strategies import STRATEGIES, FinetuneContext, Strategy
from warmstart.tasks import TASKS, resolve_task

__all__ = ["ENCODER_FILE", "MODEL_FILE", "OBJECTIVE_FILE", "build_encoder", "check_input_shape", "evaluate",
           "finetune", "pretrain", "seed_everything"]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare_run_dir(out: str | Path | None, resume: bool) -> Path | None:
    """Create ``out`` (or reuse it with ``resume``); refuse to mix two runs in one directory.

    Under ``torchrun`` every rank checks (so all stop with the same one-line error), then rank 0 creates
    the directory while the others wait at the barrier, and all share the path.
    """
    runtime.init_from_env()
    if out is None:
        return None
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path} is a file; give a directory path")
    if path.is_dir() and any(path.iterdir()) and not resume:
        raise UserError(f"--out {path} already holds a run; pass --resume to continue it or choose another --out")
    if runtime.is_main():
        path.mkdir(parents=True, exist_ok=True)  # empty until every rank has passed the check above
    runtime.barrier()
    return path


def _write_config(run_dir: Path | None, config: Any, data: DataBundle) -> None:
    """The resolved config, with the source spec as resolved (defaults such as an image size filled in)."""
    if run_dir is not None and runtime.is_main():
        resolved = config.model_copy(update={"data": data.spec}) if data.spec.startswith(config.data) else config
        atomic_write_text(run_dir / "config.yaml", to_yaml(resolved))


def build_objective(config: PretrainConfig, data: DataBundle) -> Objective:
    """The objective ``config`` names around a fresh encoder for ``data``, checked against its modality."""
    objective_cls = OBJECTIVES.get(config.objective)
    if data.modality not in objective_cls.modalities:
        raise UserError(f"objective '{config.objective}' does not apply to {data.modality} data; "
                        f"it works on: {', '.join(objective_cls.modalities)}")
    encoder = build_encoder(config.encoder, data.input_shape, config.encoder_args, data.modality,
                            corpus=data.handler.corpus(data), schema=data.schema)
    objective = OBJECTIVES.build(config.objective, encoder, **config.objective_args)
    objective.spec = {"objective": config.objective, "objective_args": dict(config.objective_args)}
    return objective


@dataclass
class PretrainResult:
    run_dir: Path | None
    objective: Objective
    history: list[dict[str, Any]] = field(default_factory=list)
    privacy: dict[str, Any] | None = None  # epsilon, delta and how, for a private pool

    @property
    def encoder(self) -> Encoder:
        return self.objective.encoder


def pretrain(
    config: PretrainConfig, out: str | Path | None = None, *, resume: bool = False, data: DataBundle | None = None,
    after_step=None,
) -> PretrainResult:
    """Pretrain ``config.encoder`` with ``config.objective`` on the training split (labels withheld)."""
    data = data if data is not None else load_data(config.data, config.data_dir)
    strata = np.asarray(data.y_train) if data.task == "classify" else np.zeros(len(data.x_train), np.int64)
    if config.federated is not None:
        from warmstart import federated

        federated.check(config, resume)
        federated.partition(strata, config.federated, config.seed, "training rows")  # refused before any write
    private, changes, config = _private_pretrain(config, data)
    seed_everything(config.seed)
    objective = build_objective(config, data)
    if private is not None:
        private.settings.changes = changes + dp.make_per_example(objective)
        config = config.model_copy(update={"privacy": private.settings})
    data = data.handler.prepare(data, objective.encoder)
    monitor = HealthMonitor.from_bundle(objective.encoder, data, config.health_samples, config.probe_labels,
                                        config.seed)
    runtime.resolve_device(config.device, config.amp)
    run_dir = prepare_run_dir(out, resume)
    _write_config(run_dir, config, data)
    stream = data.handler.pretrain_stream(data, config.batch_size)
    if config.federated is not None:
        history, report = federated.train("pretrain", objective, config, data, np.arange(len(data.x_train)), strata,
                                          run_dir, "training rows")
    else:
        history = fit(
            objective, lambda batch: objective.loss(batch[0]), [stream], config, run_dir=run_dir, resume=resume,
            desc=f"pretrain {config.objective}", config=config.model_dump(mode="json"), after_step=after_step,
            on_epoch_end=monitor, privacy=private,
        )
        report = private.report() if private is not None else None
    if run_dir is not None and runtime.is_main():
        save_pretrained(run_dir, objective, {"data": data.spec, "objective": config.objective})
        if report is not None:
            name = "federated.json" if config.federated is not None else "privacy.json"
            atomic_write_text(run_dir / name, json.dumps(report, indent=2))
    return PretrainResult(run_dir, objective, history, report if config.federated is None else None)


def _private_pretrain(config: PretrainConfig, data: DataBundle):
    """The DP-SGD run over the pool rows that ``config.privacy`` asks for (None: a public pool), the changes
    it makes to the encoder so it can train per-example, and the config that records them; refusing a public
    pool with privacy settings, or an objective that cannot be private, in one line."""
    if config.privacy is None:
        return None, [], config
    if not config.privacy.private_pool:
        raise UserError("privacy settings on pretrain make the pool private: add privacy.private_pool=true "
                        "(without it the pool is public, costs no privacy and needs no privacy settings)")
    dp.refuse("objective", config.objective, OBJECTIVES.get(config.objective).not_private,
              "pretrain the private pool with autoencoder, denoising, masked or vae")
    private = dp.PrivateTraining(dp.resolve(config.privacy, len(data.x_train), "pool rows"), len(data.x_train),
                                 "pool rows")
    encoder_args, changes = dp.private_encoder_args(config.encoder, config.encoder_args)
    return private, changes, config.model_copy(update={"encoder_args": encoder_args})


@dataclass
class FinetuneResult:
    run_dir: Path | None
    model: nn.Module
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    labeled: np.ndarray | None = None
    validation: dict[str, Any] | None = None  # what was chosen on the validation rows (None: no such rows)
    rows: Rows | None = None
    data: DataBundle | None = None  # the bundle as the model reads it (prepared for its encoder)


def finetune(
    config: FinetuneConfig, out: str | Path | None = None, *, resume: bool = False, data: DataBundle | None = None,
    encoder: Encoder | None = None, objective: Objective | None = None, labeled: np.ndarray | None = None,
    validation: np.ndarray | None = None, after_step=None,
) -> FinetuneResult:
    """Fine-tune a model for the data's task on ``config.labels`` labeled examples, evaluate it on the test split.

    The task is the one the source inferred, or ``config.task``. The encoder comes from ``encoder`` (in
    memory), ``config.pretrained`` (a run directory) or, for ``scratch``, is built fresh from
    ``config.encoder``; strategies that keep training the pretraining loss (``joint``) take the objective
    from ``objective`` or ``config.pretrained``. ``labeled`` (training-row indices) replaces the budget's
    draw (and ``validation`` its validation rows): every other training row is then the unlabeled pool.

    With validation rows (``config.validation``), the weights that score best on them are kept
    (``warmstart.selection``); the test split is read once, by the final evaluation.
    """
    data = data if data is not None else load_data(config.data, config.data_dir)
    data, task = resolve_task(data, config.task)
    # The resolved config says what ran: the task and budget chosen by default are written out.
    config = config.model_copy(update={"task": task.name, "labels": str(task.budget(config.labels))})
    strategy: Strategy = STRATEGIES.build(config.strategy, **config.strategy_args)
    strategy.check(task, data, config.strategy)
    rows = finetune_rows(task, data, config, labeled, validation)
    private = private_finetune(config, strategy, task, rows.labeled)
    if config.federated is not None:
        check_federated(config, strategy, task, data, rows, resume)
    encoder, objective = starting_encoder(config, strategy, data, encoder, objective)
    spec, changes, config = model_encoder_spec(config, strategy, data, encoder, private)
    seed_everything(config.seed)
    model_encoder = build_model_encoder(spec, strategy, data, encoder, changes)
    data = data.handler.prepare(data, model_encoder)
    model = task.build_model(model_encoder, task.info(data))
    task.init_model(model, data, rows.labeled)
    if private is not None:
        model.freeze_encoder(not strategy.train_encoder)  # what trains is what must be per-example
        private.settings.changes = changes + dp.make_per_example(model)
        config = config.model_copy(update={"privacy": private.settings})
    ctx = FinetuneContext(config, data, task, rows.labeled, rows.unlabeled, model,
                          objective_around(objective, model_encoder) if strategy.needs_objective else None, private)
    runtime.resolve_device(config.device, config.amp)
    run_dir = prepare_run_dir(out, resume)
    _write_config(run_dir, config, data)
    if run_dir is not None and runtime.is_main():
        atomic_write_text(run_dir / "labeled_indices.json", json.dumps(rows.labeled.tolist()))
    history, chosen, federated_summary = _train(ctx, strategy, rows, run_dir, resume, after_step)
    metrics = _test_metrics(ctx, rows, federated_summary)
    if run_dir is not None and runtime.is_main():
        _save_finetune(run_dir, ctx, chosen, metrics)
    return FinetuneResult(run_dir, model, metrics, history, rows.labeled, chosen, rows, data)


def _train(ctx: FinetuneContext, strategy: Strategy, rows: Rows, run_dir: Path | None, resume: bool, after_step):
    """Train ``ctx.model`` by ``strategy`` (or federated, by the clients), scoring the validation rows after
    epochs when there are any. Returns the history, what was chosen on the validation rows (None: no such
    rows) and the federated summary (None: not federated)."""
    config, data, task, labeled = ctx.config, ctx.data, ctx.task, ctx.labeled
    selector = (EpochSelector(task, data, rows.validation, ctx.model, config.validations, run_dir, resume)
                if len(rows.validation) else None)
    summary = None
    if config.federated is not None:
        from warmstart import federated

        history, summary = federated.train("finetune", ctx.model, config, data, labeled,
                                           task.strata(data, len(labeled))[0][labeled], run_dir, "labeled rows",
                                           info=task.info(data))
    else:
        history = strategy.train(ctx, run_dir=run_dir, resume=resume, after_step=after_step, selector=selector)
    chosen = selector.finish(history[-1]["epoch"] if history else 0, config.keep_best) if selector else None
    return history, chosen, summary


def _test_metrics(ctx: FinetuneContext, rows: Rows, federated_summary: dict[str, Any] | None) -> dict[str, Any]:
    """The task's metrics on the test split (read here, once) with what the run was: its task, rows, strategy,
    seed, and the privacy spent or the federated summary."""
    config = ctx.config
    with final_evaluation():
        metrics = ctx.task.evaluate(ctx.model, ctx.data)
    metrics.update({"task": ctx.task.name, "labels": int(len(ctx.labeled)), "budget": int(len(rows.budget)),
                    "validation_rows": int(len(rows.validation)), "strategy": config.strategy, "seed": config.seed})
    if ctx.privacy is not None:
        metrics.update(ctx.privacy.report())
    if config.federated is not None:
        metrics["federated"] = federated_summary
    return metrics


def _save_finetune(run_dir: Path, ctx: FinetuneContext, chosen: dict[str, Any] | None,
                   metrics: dict[str, Any]) -> None:
    """The fine-tuned model, the validation choice (when there was one) and the test metrics, into ``run_dir``."""
    task, data = ctx.task, ctx.data
    save_model(run_dir, ctx.model, {**task.info(data), "task": task.name, "data": data.spec,
                                    "strategy": ctx.config.strategy})
    if chosen is not None:
        atomic_write_text(run_dir / "validation.json", json.dumps(chosen, indent=2))
    atomic_write_text(run_dir / "test_metrics.json", json.dumps(metrics, indent=2))


def evaluate(model_dir: str | Path, data: str | DataBundle, data_dir: str | None = None) -> dict[str, Any]:
    """Test-split metrics of the fine-tuned model in ``model_dir`` on ``data`` (read as the model's task)."""
    model, meta = load_run(model_dir, "model")
    task = TASKS.get(meta.get("task", "classify"))
    bundle = data if isinstance(data, DataBundle) else load_data(data, data_dir)
    bundle = model_data(model_dir, meta, bundle, "evaluate", model)
    with final_evaluation():
        return task.evaluate(model, bundle.handler.prepare(bundle, model.encoder))


def model_data(model_dir: str | Path, meta: dict[str, Any], bundle: DataBundle, command: str,
               model: nn.Module) -> DataBundle:
    """``bundle`` read as the task of the fine-tuned ``model`` whose metadata is ``meta`` (a table re-read in
    the model's column schema), or one line saying why the model cannot be used on it (another input shape,
    more classes than the model knows)."""
    task = TASKS.get(meta.get("task", "classify"))
    bundle, _ = resolve_task(bundle, task.name)
    bundle = bundle.handler.prepare(bundle, model.encoder)  # a table is re-read in the model's column schema
    check_input_shape(meta["input_shape"], bundle, f"the model in {model_dir} expects",
                      f"{command} on the data it was trained for")
    known, given = task.info(bundle), {k: meta.get(k) for k in task.info(bundle)}
    for key, values in known.items():
        if len(values) > len(given[key] or []):
            raise UserError(f"{bundle.name} has {len(values)} {key.replace('_', ' ')} but the model knows "
                            f"{len(given[key] or [])}; {command} on data like the data it was trained on")
    return bundle
