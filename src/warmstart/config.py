"""Run settings: the one place where defaults live, validated before any work starts.

A run is configured from (lowest to highest priority) the defaults below, an optional YAML file, the
CLI's named flags, and ``key=value`` overrides (dotted keys reach into ``*_args`` dictionaries, values
are parsed as YAML so ``epochs=5`` is an int and ``norm=group`` a string). A study's settings, built on
these, are in ``warmstart.study_config``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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
    threads: int = Field(
        0, ge=0, description="torch CPU threads for the run (and after it, in this process); 0 = auto: "
        "$OMP_NUM_THREADS if set, else one per core not busy with other processes at the start")
    device: str = Field("auto", description="auto (CUDA if present, else CPU), cpu, cuda or cuda:N")
    amp: Literal["none", "bf16", "fp16"] = Field(
        "none", description="mixed-precision autocast: none, bf16 (GPU; CPU works but is slow) or fp16 (GPU only)")


class PrivacySettings(BaseModel):
    """``privacy:``: differentially private training (DP-SGD through Opacus) of the rows a stage reads.

    Off unless ``epsilon`` or ``noise_multiplier`` is given. Fine-tuning treats the labeled rows as private;
    pretraining is private only with ``private_pool=true`` (otherwise the pool is public and costs no ε).
    """

    model_config = ConfigDict(extra="forbid")

    epsilon: float | None = Field(
        None, gt=0, description="target ε spent by the end of the run (the noise is chosen to reach it)")
    noise_multiplier: float | None = Field(
        None, gt=0, description="noise std / max_grad_norm, instead of a target epsilon")
    delta: float | None = Field(
        None, gt=0, lt=1, description="δ; None: 1/N rounded down to a power of ten below it (N: private rows)")
    max_grad_norm: float = Field(1.0, gt=0, description="per-example gradient clipping norm C")
    accountant: Literal["prv", "rdp"] = Field("prv", description="Opacus accountant: prv (tighter) or rdp")
    private_pool: bool = Field(
        False, description="the pretraining pool is private too: pretraining runs DP-SGD on its objective")
    changes: list[str] = Field(
        default_factory=list, description="filled in by the run: what was changed to make the model private")

    @property
    def enabled(self) -> bool:
        return self.epsilon is not None or self.noise_multiplier is not None


class FederatedSettings(BaseModel):
    """``federated:``: train over ``clients`` simulated clients with Flower, each running the engine on its shard.

    The training rows (pretraining) or the labeled rows (fine-tuning) are split over the clients, IID or
    by a Dirichlet(α) draw of each class's share per client (non-IID); every round, the sampled clients
    train ``local_epochs`` passes over their own rows from the global weights, and FedAvg (or FedProx)
    averages what they send back. ``noise_multiplier`` adds client-level DP: each client's update is
    clipped to ``clipping_norm`` and the average gets Gaussian noise (Flower's server-side fixed clipping).
    """

    model_config = ConfigDict(extra="forbid")

    clients: int = Field(10, ge=1, description="simulated clients the rows are split over")
    rounds: int = Field(10, ge=1, description="federated rounds")
    local_epochs: int = Field(1, ge=1, description="passes over its own rows each client makes per round")
    partition: Literal["iid", "dirichlet"] = Field("iid", description="iid, or dirichlet: class shares ~ Dir(alpha)")
    alpha: float = Field(0.5, gt=0, description="Dirichlet concentration: small = each client sees few classes")
    algorithm: Literal["fedavg", "fedprox"] = Field("fedavg", description="fedavg, or fedprox (proximal term)")
    proximal_mu: float = Field(0.01, ge=0, description="FedProx's mu: weight of ||w - w_global||^2 / 2")
    fraction: float = Field(1.0, gt=0, le=1, description="share of the clients sampled each round")
    noise_multiplier: float | None = Field(
        None, gt=0, description="client-level DP: noise std / clipping_norm added to the average (None: off)")
    clipping_norm: float = Field(1.0, gt=0, description="client-level DP: bound on each client's update norm")
    delta: float | None = Field(None, gt=0, lt=1, description="client-level DP δ; None: below 1/clients")


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
    privacy: PrivacySettings | None = Field(
        None, description="DP-SGD settings (privacy.epsilon=3); pretraining is private with privacy.private_pool=true")
    federated: FederatedSettings | None = Field(
        None, description="federated pretraining over simulated clients (federated.clients=10); see FederatedSettings")


class FinetuneConfig(TrainSettings):
    """``warmstart finetune``: train a model for the data's task on a label budget, from a pretrained encoder or not."""

    pretrained: str | None = Field(None, description="run directory of a pretraining run")
    task: str | None = Field(
        None, description="what the labels are: classify, regress or tag; None: inferred from the data")
    strategy: str = Field("full", description="fine-tune strategy")
    strategy_args: dict[str, Any] = Field(default_factory=dict, description="strategy options")
    labels: str | None = Field(
        None, description="label budget: per_class=k, count=n or fraction=f; None: the task's default "
        "(per_class=5 for classify and tag, count=50 for regress)")
    encoder: str = Field("mlp", description="encoder for `scratch` runs without --from")
    encoder_args: dict[str, Any] = Field(default_factory=dict, description="encoder options")
    epochs: int = Field(100, ge=1, description="passes over the labeled examples")
    batch_size: int = Field(64, ge=1, description="labeled examples per step")
    validation: str = Field(
        "none", description="labeled rows that score choices and never train: none, budget=F (a share F of the "
        "label budget) or extra=N (N rows beyond it); see warmstart.data.validation")
    keep_best: bool = Field(
        True, description="with validation rows, keep the weights that scored best on them (False: the last)")
    validations: int = Field(10, ge=1, description="times per run the validation rows are scored")

    @field_validator("validation")
    @classmethod
    def _validation_spec(cls, value: str) -> str:
        from warmstart.data.validation import Validation

        return str(Validation.parse(value))  # canonical: "extra=200", "budget=0.2", "none"
    privacy: PrivacySettings | None = Field(
        None, description="DP-SGD on the labeled rows (privacy.epsilon=3); see PrivacySettings")
    federated: FederatedSettings | None = Field(
        None, description="federated fine-tuning on the clients' labeled rows (federated.clients=10)")


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["epochs=5", "encoder_args.width=64"]`` → ``{"epochs": 5, "encoder_args": {"width": 64}}``."""
    tree: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UserError(f"override '{pair}' is not key=value; write it like epochs=5")
        value = parse_value(raw)
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"override '{pair}': '{part}' is not a group of settings")
        node[leaf] = value
    return tree


def parse_value(raw: str) -> Any:
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


def merge_nested(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``extra``, nested dicts merged key by key (neither input is changed)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_nested(out[key], value)
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
    return merge_nested(shared, own or {})


def build_config(
    cls: type[C], *, file: str | Path | None = None, flags: dict[str, Any] | None = None,
    overrides: list[str] | None = None, section: str | None = None,
) -> C:
    """Merge defaults < YAML file < flags < overrides and validate; any problem is one ``UserError`` line."""
    values: dict[str, Any] = select_section(read_yaml(file), section) if file else {}
    values = merge_nested(values, {k: v for k, v in (flags or {}).items() if v is not None})
    values = merge_nested(values, parse_overrides(overrides or []))
    fields = list(cls.model_fields)
    for key in values:
        if key not in fields:
            raise UserError(f"unknown setting '{key}'{closest(key, fields)}; valid settings: {', '.join(fields)}")
    try:
        return cls(**values)
    except ValidationError as err:
        raise setting_error(err) from err


def setting_error(err: ValidationError, prefix: str = "") -> UserError:
    """pydantic's first complaint as one line: ``setting lr=-1: Input should be greater than 0``."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return UserError(f"setting {prefix}{where}={first.get('input')!r}: {first['msg'].removeprefix('Value error, ')}")


def to_yaml(config: BaseModel) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
