"""Run settings: the one place where defaults live, validated before any work starts.

A run is configured from (lowest to highest priority) the defaults below, an optional YAML file, the
CLI's named flags, and ``key=value`` overrides (dotted keys reach into ``*_args`` dictionaries, values
are parsed as YAML so ``epochs=5`` is an int and ``norm=group`` a string).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from warmstart.errors import UserError, closest

C = TypeVar("C", bound="TrainSettings")


class TrainSettings(BaseModel):
    """Settings shared by every stage that trains: optimiser, schedule, seed, threads."""

    model_config = ConfigDict(extra="forbid")

    data: str = Field("digits", description="data source: a name (see `warmstart datasets`) or kind:PATH")
    data_dir: str | None = Field(None, description="extra directory to look for data files in")
    epochs: int = Field(20, ge=1, description="passes over the (primary) training data")
    batch_size: int = Field(128, ge=1, description="examples per optimisation step")
    lr: float = Field(1e-3, gt=0, description="peak AdamW learning rate")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW decoupled weight decay")
    warmup: float = Field(0.05, ge=0, lt=1, description="fraction of steps with linear LR warm-up")
    checkpoint_every: int = Field(0, ge=0, description="steps between checkpoints; 0 = each epoch")
    seed: int = Field(0, ge=0, description="seed for initialisation, data order and augmentation")
    threads: int = Field(0, ge=0, description="torch CPU threads; 0 = torch's default")
    device: str = Field("auto", description="auto (CUDA if present, else CPU), cpu, cuda or cuda:N")
    amp: Literal["none", "bf16", "fp16"] = Field(
        "none", description="mixed-precision autocast: none, bf16 (GPU; CPU works but is slow) or fp16 (GPU only)")


class PretrainConfig(TrainSettings):
    """``warmstart pretrain``: a self-supervised objective on the unlabeled training split."""

    objective: str = Field("autoencoder", description="self-supervised objective")
    objective_args: dict[str, Any] = Field(default_factory=dict, description="objective options")
    encoder: str = Field("mlp", description="encoder architecture")
    encoder_args: dict[str, Any] = Field(default_factory=dict, description="encoder options")
    health_samples: int = Field(
        1024, ge=0, description="training inputs embedded each epoch for the RankMe/feature-std health checks; 0 = off")
    probe_labels: int = Field(
        0, ge=0, description="labeled training examples used ONLY for the kNN-accuracy health check; 0 = off")


class FinetuneConfig(TrainSettings):
    """``warmstart finetune``: train a classifier on a label budget, from a pretrained encoder or not."""

    pretrained: str | None = Field(None, description="run directory of a pretraining run")
    strategy: str = Field("full", description="fine-tune strategy")
    strategy_args: dict[str, Any] = Field(default_factory=dict, description="strategy options")
    labels: str = Field("per_class=5", description="label budget: per_class=k, count=n or fraction=f")
    encoder: str = Field("mlp", description="encoder for `scratch` runs without --from")
    encoder_args: dict[str, Any] = Field(default_factory=dict, description="encoder options")
    epochs: int = Field(100, ge=1, description="passes over the labeled examples")
    batch_size: int = Field(64, ge=1, description="labeled examples per step")


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["epochs=5", "encoder_args.width=64"]`` → ``{"epochs": 5, "encoder_args": {"width": 64}}``."""
    tree: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UserError(f"override '{pair}' is not key=value; write it like epochs=5")
        value = _parse_value(raw)
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"override '{pair}': '{part}' is not a group of settings")
        node[leaf] = value
    return tree


def _parse_value(raw: str) -> Any:
    """YAML scalars, plus the floats YAML 1.1 leaves as strings (``3e-4``)."""
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        return raw
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} not found; check the path given to --config")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise UserError(f"config file {path} is not valid YAML ({str(err).splitlines()[0]}); fix its syntax") from err
    if not isinstance(loaded, dict):
        raise UserError(f"config file {path} must hold a mapping of key: value settings")
    return loaded


SECTIONS = ("pretrain", "finetune", "study")


def select_section(values: dict[str, Any], section: str | None) -> dict[str, Any]:
    """One YAML file can serve several commands: top-level keys are shared, ``pretrain:`` / ``finetune:``
    sections belong to one command each."""
    shared = {k: v for k, v in values.items() if k not in SECTIONS}
    own = values.get(section) if section else None
    if own is not None and not isinstance(own, dict):
        raise UserError(f"config section '{section}' must be a mapping of key: value settings")
    return _merge(shared, own or {})


def build_config(
    cls: type[C], *, file: str | Path | None = None, flags: dict[str, Any] | None = None,
    overrides: list[str] | None = None, section: str | None = None,
) -> C:
    """Merge defaults < YAML file < flags < overrides and validate; any problem is one ``UserError`` line."""
    values: dict[str, Any] = select_section(read_yaml(file), section) if file else {}
    values = _merge(values, {k: v for k, v in (flags or {}).items() if v is not None})
    values = _merge(values, parse_overrides(overrides or []))
    fields = list(cls.model_fields)
    for key in values:
        if key not in fields:
            raise UserError(f"unknown setting '{key}'{closest(key, fields)}; valid settings: {', '.join(fields)}")
    try:
        return cls(**values)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserError(f"setting {where}={first.get('input')!r}: {first['msg']}") from err


def to_yaml(config: BaseModel) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
