"""The Python API: ``pretrain``, ``finetune`` and ``evaluate``, each writing one run directory.

Everything that can be wrong with the input (config, data, budget, model options) is checked before the
run directory is created, so a failed start leaves nothing on disk.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from warmstart import runtime
from warmstart.checkpoint import atomic_write_text, load_tensors, save_tensors
from warmstart.config import FinetuneConfig, PretrainConfig, to_yaml
from warmstart.data import DataBundle
from warmstart.data.sources import load_data
from warmstart.data.splits import LabelBudget
from warmstart.engine import Stream, fit
from warmstart.errors import UserError
from warmstart.evaluate import evaluate_model
from warmstart.health import HealthMonitor
from warmstart.models import ENCODERS, Classifier, Encoder
from warmstart.objectives import OBJECTIVES, Objective
from warmstart.strategies import STRATEGIES, FinetuneContext, Strategy
from warmstart.text_pipeline import is_text_encoder, save_text, tagging_parts, text_encoder, text_ready

ENCODER_FILE = "encoder.safetensors"
OBJECTIVE_FILE = "objective.safetensors"
MODEL_FILE = "model.safetensors"


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


def _write_config(run_dir: Path | None, config: Any) -> None:
    if run_dir is not None and runtime.is_main():
        atomic_write_text(run_dir / "config.yaml", to_yaml(config))


def build_encoder(
    name: str, input_shape: tuple[int, ...], options: dict[str, Any], modality: str = "image", *,
    tokenizer: Any = None, corpus: np.ndarray | None = None, weights: bool = True,
) -> Encoder:
    """Build a registered encoder and remember how (``encoder.spec``), so checkpoints can rebuild it.

    Text encoders take a ``tokenizer`` (from a checkpoint spec) or train one on ``corpus``; ``weights=False``
    initialises an ``hf:PATH`` model at random (the scratch baseline of that architecture).
    """
    if modality == "text" or is_text_encoder(name):
        return text_encoder(name, options, modality, tokenizer, corpus, weights)
    encoder_cls = ENCODERS.get(name)
    if encoder_cls.image_only and modality != "image":
        raise UserError(f"encoder '{name}' needs images but the data is {modality}; use --encoder mlp")
    if encoder_cls.image_only and len(input_shape) != 3:
        raise UserError(f"encoder '{name}' needs (C, H, W) images but the inputs have shape {input_shape}")
    encoder = ENCODERS.build(name, tuple(input_shape), **options)
    encoder.spec = {"encoder": name, "encoder_args": dict(options), "input_shape": list(input_shape)}
    return encoder


def image_stream(data: DataBundle, index: np.ndarray, batch_size: int, with_labels: bool) -> Stream:
    """Batches of rows ``index`` of the training split (labels only when ``with_labels``)."""
    x, y = data.x_train, data.y_train
    if with_labels:
        def make(rows: np.ndarray) -> tuple[torch.Tensor, ...]:
            return data.batch(x, index[rows]), torch.from_numpy(y[index[rows]])
    else:
        def make(rows: np.ndarray) -> tuple[torch.Tensor, ...]:
            return (data.batch(x, index[rows]),)
    return Stream(len(index), min(batch_size, len(index)), make)


@dataclass
class PretrainResult:
    run_dir: Path | None
    objective: Objective
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def encoder(self) -> Encoder:
        return self.objective.encoder


def pretrain(
    config: PretrainConfig, out: str | Path | None = None, *, resume: bool = False, data: DataBundle | None = None,
    after_step=None,
) -> PretrainResult:
    """Pretrain ``config.encoder`` with ``config.objective`` on the training split (labels withheld)."""
    data = data if data is not None else load_data(config.data, config.data_dir)
    objective_cls = OBJECTIVES.get(config.objective)
    if data.modality not in objective_cls.modalities:
        raise UserError(
            f"objective '{config.objective}' does not apply to {data.modality} data; "
            f"it works on: {', '.join(objective_cls.modalities)}"
        )
    if objective_cls.requires_image_encoder and not ENCODERS.get(config.encoder).image_only:
        raise UserError(f"objective '{config.objective}' needs an image encoder; use --encoder cnn or resnet")
    seed_everything(config.seed)
    encoder = build_encoder(config.encoder, data.input_shape, config.encoder_args, data.modality, corpus=data.x_train)
    objective = OBJECTIVES.build(config.objective, encoder, **config.objective_args)
    objective.spec = {"objective": config.objective, "objective_args": dict(config.objective_args)}
    data = text_ready(data, encoder, labels_needed=False)
    monitor = HealthMonitor.from_bundle(encoder, data, config.health_samples, config.probe_labels, config.seed)
    runtime.resolve_device(config.device, config.amp)
    run_dir = prepare_run_dir(out, resume)
    _write_config(run_dir, config)
    stream = image_stream(data, np.arange(len(data.x_train)), config.batch_size, with_labels=False)
    history = fit(
        objective, lambda batch: objective.loss(batch[0]), [stream], config, run_dir=run_dir, resume=resume,
        desc=f"pretrain {config.objective}", config=config.model_dump(mode="json"), after_step=after_step,
        on_epoch_end=monitor,
    )
    if run_dir is not None and runtime.is_main():
        meta = {**encoder.spec, "data": config.data, "objective": config.objective}
        save_tensors(run_dir / ENCODER_FILE, encoder.state_dict(), meta)
        # The whole objective (encoder + heads) too: `joint` fine-tuning keeps training its loss.
        save_tensors(run_dir / OBJECTIVE_FILE, objective.state_dict(), {**meta, **objective.spec})
        save_text(run_dir, encoder)
    return PretrainResult(run_dir, objective, history)


def check_input_shape(shape: Any, data: DataBundle, made_for: str, fix: str) -> None:
    """One line, naming ``fix``, when what was ``made_for`` inputs of ``shape`` meets ``data`` of another."""
    if tuple(shape) != data.input_shape:
        raise UserError(f"{made_for} inputs of shape {tuple(shape)} but {data.name} has {data.input_shape}; {fix}")


def load_encoder(run_dir: str | Path) -> tuple[Encoder, dict[str, Any]]:
    """The pretrained encoder saved by ``pretrain`` in ``run_dir``, with its metadata."""
    path = Path(run_dir) / ENCODER_FILE
    if not path.exists():
        raise UserError(f"{run_dir}: no {ENCODER_FILE}; point --from to a finished `warmstart pretrain` run")
    tensors, meta = load_tensors(path)
    encoder = build_encoder(meta["encoder"], tuple(meta["input_shape"]), meta["encoder_args"],
                            meta.get("modality", "image"), tokenizer=meta.get("tokenizer"))
    encoder.load_state_dict(tensors)
    return encoder, meta


def load_objective(run_dir: str | Path) -> Objective:
    """The whole pretraining objective (encoder + heads) saved by ``pretrain`` in ``run_dir``."""
    path = Path(run_dir) / OBJECTIVE_FILE
    if not path.exists():
        raise UserError(f"{run_dir}: no {OBJECTIVE_FILE}; rerun `warmstart pretrain` with this version to save it")
    tensors, meta = load_tensors(path)
    encoder = build_encoder(meta["encoder"], tuple(meta["input_shape"]), meta["encoder_args"])
    objective = OBJECTIVES.build(meta["objective"], encoder, **meta["objective_args"])
    objective.load_state_dict(tensors)
    objective.spec = {"objective": meta["objective"], "objective_args": meta["objective_args"]}
    return objective


def objective_around(source: Objective, encoder: Encoder) -> Objective:
    """A copy of ``source``'s objective built around ``encoder``, with ``source``'s pretrained heads.

    Only the encoder's weights may be missing from the copy (they come from ``encoder``), as MAE's
    fine-tuning asserts for its new head.
    """
    objective = OBJECTIVES.build(source.spec["objective"], encoder, **source.spec["objective_args"])
    heads = {k: v for k, v in source.state_dict().items() if not k.startswith("encoder.")}
    missing, unexpected = objective.load_state_dict(heads, strict=False)
    assert not unexpected and all(k.startswith("encoder.") for k in missing), (missing, unexpected)
    return objective


@dataclass
class FinetuneResult:
    run_dir: Path | None
    model: Classifier
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    labeled: np.ndarray | None = None


def finetune(
    config: FinetuneConfig, out: str | Path | None = None, *, resume: bool = False, data: DataBundle | None = None,
    encoder: Encoder | None = None, objective: Objective | None = None, after_step=None,
) -> FinetuneResult:
    """Fine-tune a classifier on ``config.labels`` labeled examples and evaluate it on the test split.

    The encoder comes from ``encoder`` (in memory), ``config.pretrained`` (a run directory) or, for
    ``scratch``, is built fresh from ``config.encoder``. Strategies that keep training the pretraining
    loss (``joint``) take the objective from ``objective`` (in memory) or ``config.pretrained``.
    """
    data = data if data is not None else load_data(config.data, config.data_dir)
    budget = LabelBudget.parse(config.labels)
    labeled, unlabeled = budget.split(data.y_train, config.seed, class_names=data.class_names)
    strategy: Strategy = STRATEGIES.build(config.strategy, **config.strategy_args)
    if encoder is None and config.pretrained is not None:
        encoder, _meta = load_encoder(config.pretrained)
    if strategy.needs_objective and objective is None:
        if config.pretrained is None:
            raise UserError(f"strategy '{config.strategy}' keeps training the pretraining objective; "
                            "pass --from RUN_DIR (a `warmstart pretrain` run)")
        objective = load_objective(config.pretrained)
        encoder = encoder if encoder is not None else objective.encoder
    if encoder is not None:
        check_input_shape(encoder.input_shape, data, "the encoder was pretrained on",
                          "pretrain on the same kind of data")
    if encoder is None and strategy.load_pretrained and config.encoder.startswith("hf:"):
        # A Hugging Face model directory's own weights are the pretrained encoder.
        encoder = build_encoder(config.encoder, data.input_shape, config.encoder_args, data.modality)
    if encoder is None and strategy.load_pretrained:
        raise UserError(
            f"strategy '{config.strategy}' starts from a pretrained encoder; pass --from RUN_DIR "
            "(a `warmstart pretrain` run) or use --strategy scratch"
        )
    spec = encoder.spec if encoder is not None else {
        "encoder": config.encoder, "encoder_args": config.encoder_args, "input_shape": list(data.input_shape)}
    seed_everything(config.seed)
    # Scratch builds the same architecture afresh; the others start from a copy of the pretrained weights,
    # so one pretrained encoder can serve many fine-tunes.
    model_encoder = build_encoder(spec["encoder"], data.input_shape, spec["encoder_args"], data.modality,
                                  tokenizer=spec.get("tokenizer"), corpus=data.x_train,
                                  weights=strategy.load_pretrained)
    if strategy.load_pretrained:
        model_encoder.load_state_dict(encoder.state_dict())
    data = text_ready(data, model_encoder)
    make_model, make_stream, evaluate_fn = tagging_parts(data, image_stream, evaluate_model)
    model = make_model(model_encoder, data.num_classes)
    ctx = FinetuneContext(config, data, labeled, unlabeled, model,
                          objective_around(objective, model_encoder) if strategy.needs_objective else None,
                          make_stream(data, labeled, config.batch_size, with_labels=True))
    runtime.resolve_device(config.device, config.amp)
    run_dir = prepare_run_dir(out, resume)
    _write_config(run_dir, config)
    if run_dir is not None and runtime.is_main():
        atomic_write_text(run_dir / "labeled_indices.json", json.dumps(labeled.tolist()))
    history = strategy.train(ctx, run_dir=run_dir, resume=resume, after_step=after_step)
    metrics = evaluate_fn(model, data)
    metrics.update({"labels": int(len(labeled)), "strategy": config.strategy, "seed": config.seed})
    if run_dir is not None and runtime.is_main():
        meta = {**model_encoder.spec, "class_names": data.class_names, "data": config.data,
                "strategy": config.strategy, "task": data.task}
        save_tensors(run_dir / MODEL_FILE, model.state_dict(), meta)
        save_text(run_dir, model.encoder)
        atomic_write_text(run_dir / "test_metrics.json", json.dumps(metrics, indent=2))
    return FinetuneResult(run_dir, model, metrics, history, labeled)


def load_model(run_dir: str | Path) -> tuple[Classifier, dict[str, Any]]:
    """The fine-tuned classifier saved by ``finetune`` in ``run_dir``."""
    path = Path(run_dir) / MODEL_FILE
    if not path.exists():
        raise UserError(f"{run_dir}: no {MODEL_FILE}; point --model to a finished `warmstart finetune` run")
    tensors, meta = load_tensors(path)
    encoder = build_encoder(meta["encoder"], tuple(meta["input_shape"]), meta["encoder_args"],
                            meta.get("modality", "image"), tokenizer=meta.get("tokenizer"))
    model = tagging_parts(meta.get("task", "classify"), None, None)[0](encoder, len(meta["class_names"]))
    model.load_state_dict(tensors)
    return model, meta


def evaluate(model_dir: str | Path, data: str | DataBundle, data_dir: str | None = None) -> dict[str, Any]:
    """Test-split metrics of the fine-tuned model in ``model_dir`` on ``data``."""
    model, meta = load_model(model_dir)
    bundle = data if isinstance(data, DataBundle) else load_data(data, data_dir)
    check_input_shape(meta["input_shape"], bundle, f"the model in {model_dir} expects",
                      "evaluate on the data it was trained for")
    if len(meta["class_names"]) < bundle.num_classes:
        raise UserError(f"{bundle.name} has {bundle.num_classes} classes but the model knows "
                        f"{len(meta['class_names'])}; evaluate on data with the classes it was trained on")
    bundle = text_ready(bundle, model.encoder)
    return tagging_parts(bundle, None, evaluate_model)[2](model, bundle)
