"""Run settings: the one place where defaults live, validated before any work starts.

A run is configured from (lowest to highest priority) the defaults below, an optional YAML file, the
CLI's named flags, and ``key=value`` overrides (dotted keys reach into ``*_args`` dictionaries, values
are parsed as YAML so ``epochs=5`` is an int and ``norm=group`` a string).
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
        raise setting_error(err) from err


def setting_error(err: ValidationError, prefix: str = "") -> UserError:
    """pydantic's first complaint as one line: ``setting lr=-1: Input should be greater than 0``."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return UserError(f"setting {prefix}{where}={first.get('input')!r}: {first['msg'].removeprefix('Value error, ')}")


def to_yaml(config: BaseModel) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


# --- studies ------------------------------------------------------------------------------------

#: Study settings that choose which cells exist (or how they are ranked, and ``explain``, which only adds to the
#: report); the rest decide what a cell computes and must not change between runs sharing one directory.
GRID_KEYS = ("objectives", "strategies", "recipes", "baselines", "labels", "seeds", "seed_start", "scratch", "metric",
             "explain", "sweep")
#: Study settings that choose how and where the cells run; they never change a cell's numbers.
EXECUTION_KEYS = ("workers", "executor", "scheduler", "slurm")

#: Pretrain/finetune settings a study sets itself, per cell, from its own fields.
STUDY_CONTROLLED = {
    "data": "--data", "data_dir": "--data-dir", "task": "--task", "objective": "--objectives",
    "strategy": "--strategies",
    "labels": "--labels", "seed": "--seeds", "pretrained": "the study's own pretraining",
    "encoder": "--encoder", "encoder_args": "encoder_args.KEY=VALUE", "validation": "validation=SPEC (a study setting)",
}


class StudyConfig(BaseModel):
    """``warmstart study``: the grid objective × strategy × label budget × seed, plus baselines.

    ``pretrain`` and ``finetune`` hold overrides of ``PretrainConfig`` / ``FinetuneConfig`` (their
    defaults apply otherwise); ``resolve_study`` checks them and fills in every default.
    """

    model_config = ConfigDict(extra="forbid")

    data: str = Field("digits", description="data source: a name (see `warmstart datasets`) or kind:PATH")
    data_dir: str | None = Field(None, description="extra directory to look for data files in")
    task: str | None = Field(
        None, description="what the labels are: classify, regress or tag; None: inferred from the data")
    objectives: list[str | dict[str, Any]] | None = Field(
        None, description="pretraining runs: objective names, or mappings {name, as, encoder, encoder_args, "
        "<pretrain settings>}; default autoencoder (see resolve_study for when there are none)")
    strategies: list[str | dict[str, Any]] | None = Field(
        None, description="fine-tune strategies: names, or mappings {name, as, from, <strategy options>, "
        "<finetune settings>}; default linear, full; scratch always runs")
    recipes: list[str] | None = Field(
        None, description="recipes run as methods beside the grid (`warmstart recipes`), or none; a study that "
        "names no objectives, strategies or recipes runs the auto recipe")
    budget_minutes: float = Field(15.0, gt=0, description="CPU-minutes the auto recipe may spend per run")
    validation: str = Field(
        "none", description="labeled rows that score every choice and never train: none, budget=F or extra=N "
        "(see warmstart.data.validation)")
    scratch: bool = Field(True, description="run scratch (the same network from random weights) as a baseline")
    baselines: list[str] | None = Field(
        None, description="classical baselines; None: the task's own (see `warmstart.baselines`), [] for none")
    labels: list[str] = Field(
        ["count=20", "count=50", "count=100"], min_length=1,
        description="label budgets: a bare N means count=N (balanced); per_class=K, fraction=F also work")
    seeds: int = Field(3, ge=1, description="seeds 0..seeds-1: each draws its own labeled subset and init")
    seed_start: int = Field(0, ge=0, description="first seed: the study runs seed_start..seed_start+seeds-1")
    metric: str | None = Field(
        None, description="the metric the report ranks methods by (one of the task's, e.g. roc_auc for an "
        "imbalanced binary task); None: the task's primary")
    pretrain_per_seed: bool = Field(False, description="pretrain once per objective and seed (else once per objective)")
    pretrain_dir: str | None = Field(
        None, description="where pretraining runs are kept (default OUT/pretrain); studies that share one reuse "
        "each other's finished runs")
    encoder: str = Field("mlp", description="encoder architecture shared by every neural method")
    encoder_args: dict[str, Any] = Field(default_factory=dict, description="encoder options")
    pretrain: dict[str, Any] = Field(default_factory=dict, description="PretrainConfig settings, e.g. epochs")
    finetune: dict[str, Any] = Field(default_factory=dict, description="FinetuneConfig settings, e.g. epochs")
    sweep: dict[str, list[Any]] = Field(
        default_factory=dict, description="one fine-tune setting and its values, e.g. {privacy.epsilon: [1, 3, 8]}: "
        "every fine-tuned cell runs once per value (--sweep privacy.epsilon=1,3,8)")

    explain: int = Field(16, ge=0, description="test rows the report's Explanations section explains for the "
                         "best pretrained method and scratch at the smallest budget (seed 0); 0: none. Needs "
                         "the explain extra (pip install 'warmstart[explain]'); without it the section is skipped")

    # How the cells run, not what they compute (EXECUTION_KEYS): a study resumes under any of these.
    workers: int = Field(1, ge=1, description="cells run at once: local worker processes, Dask workers of a "
                         "LocalCluster, or Slurm jobs in flight; each runs torch and BLAS on one thread unless "
                         "threads=K or OMP_NUM_THREADS says otherwise (see warmstart.study.executors)")
    executor: Literal["local", "dask", "slurm"] = Field(
        "local", description="where cells run: local processes, dask.distributed, or Slurm jobs through submitit "
        "(dask and slurm need the parallel extra: pip install 'warmstart[parallel]')")
    scheduler: str | None = Field(
        None, description="with executor=dask, a running scheduler's address (tcp://HOST:PORT) whose workers share "
        "this filesystem; None: a LocalCluster of `workers` processes")
    slurm: dict[str, Any] = Field(
        default_factory=dict, description="with executor=slurm, submitit AutoExecutor parameters, e.g. "
        "slurm.slurm_partition=cpu slurm.timeout_min=120; slurm.cluster=local runs the jobs on this machine")

    _validation_spec = field_validator("validation")(FinetuneConfig._validation_spec.__func__)

    def settings(self) -> list[str]:
        """The sweep's ``key=value`` settings, one per value (``[""]`` without a sweep)."""
        return [f"{key}={value}" for key, values in self.sweep.items() for value in values] or [""]


def _flat_sweep(sweep: Any) -> Any:
    """``{privacy: {epsilon: [1, 3]}}`` (YAML or ``sweep.privacy.epsilon=[1,3]``) → ``{"privacy.epsilon": [1, 3]}``;
    checked: one setting, a list of values, a fine-tune setting the study does not set itself."""
    if not isinstance(sweep, dict):
        return sweep

    def flatten(node: dict, prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            if isinstance(value, dict):
                out.update(flatten(value, f"{prefix}{key}."))
            else:
                out[prefix + key] = (_split_list(value) if isinstance(value, str) else
                                     value if isinstance(value, list) else [value])
        return out

    flat = flatten(sweep, "")
    if len(flat) > 1:
        raise UserError(f"sweep one setting at a time, got {', '.join(flat)}; run one study per setting")
    for key, values in flat.items():
        top = key.split(".")[0]
        if top in STUDY_CONTROLLED or top not in FinetuneConfig.model_fields:
            raise UserError(f"sweep {key}: sweep a fine-tune setting the study does not set itself, e.g. "
                            "sweep.privacy.epsilon=[1,3,8] or sweep.lr=[1e-3,3e-3]")
        flat[key] = [_parse_value(str(v)) if isinstance(v, str) else v for v in values]
    return flat


def _split_list(value: Any) -> Any:
    """``"a,b"`` (a flag or a key=value override) → ``["a", "b"]``; lists pass through."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [str(value)]
    return value


#: A pretrain/finetune section's per-run choice that becomes a (one-entry) study grid axis.
_SECTION_AXES = {"pretrain": {"objective": "objectives"}, "finetune": {"strategy": "strategies", "labels": "labels"}}


def study_values_from_file(raw: dict[str, Any]) -> dict[str, Any]:
    """Read a YAML file shared with ``pretrain``/``finetune`` (see ``select_section``) as study settings.

    Top-level study keys stay; shared training settings (``epochs``, ``lr``, ...) go to both stages; a
    ``pretrain:``/``finetune:`` section becomes that stage's settings, its ``objective`` / ``strategy`` /
    ``labels`` the study's one-entry axes; a ``study:`` section wins over everything. ``seed`` and
    ``pretrained`` are dropped: a study draws its own seeds and pretrains itself.
    """
    values: dict[str, Any] = {}
    study_fields, shared_fields = StudyConfig.model_fields, TrainSettings.model_fields
    for key, value in raw.items():
        if key in SECTIONS or key == "seed":
            continue
        if key in study_fields:
            values[key] = value
        elif key in shared_fields:
            for stage in ("pretrain", "finetune"):
                values.setdefault(stage, {})[key] = value
        else:
            known = [*study_fields, *shared_fields]
            raise UserError(f"unknown setting '{key}'{closest(key, known)} in the config file; "
                            f"valid study settings: {', '.join(study_fields)}")
    for stage, axes in _SECTION_AXES.items():
        section = raw.get(stage) or {}
        if not isinstance(section, dict):
            raise UserError(f"config section '{stage}' must be a mapping of key: value settings")
        for key, value in section.items():
            if key in axes:
                values[axes[key]] = value if isinstance(value, list) else [value]
            elif key in ("data", "data_dir", "task", "encoder", "encoder_args"):
                values[key] = value
            elif key not in ("seed", "pretrained"):
                values.setdefault(stage, {})[key] = value
    study = raw.get("study") or {}
    if not isinstance(study, dict):
        raise UserError("config section 'study' must be a mapping of key: value settings")
    return _merge(values, study)


def _default_methods(config: StudyConfig) -> None:
    """No objectives, strategies or recipes named: the auto recipe. Only recipes: no grid. Otherwise the
    unnamed axis takes its default (autoencoder; linear and full)."""
    if config.objectives is None and config.strategies is None:
        config.objectives, config.strategies = [], []
        config.recipes = ["auto"] if config.recipes is None else config.recipes
        return
    config.recipes = config.recipes or []
    if config.objectives is None:
        config.objectives = ["autoencoder"]
    if config.strategies is None:
        config.strategies = ["linear", "full"]
    if config.objectives and not config.strategies or config.strategies and not config.objectives:
        raise UserError("a study grid needs both objectives and strategies (or neither, with --recipes)")
def _shared_to_stages(values: dict[str, Any]) -> dict[str, Any]:
    """``threads=1`` on a study's command line means both stages' ``threads`` (as in a shared YAML file)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key in TrainSettings.model_fields and key not in StudyConfig.model_fields:
            for stage in ("pretrain", "finetune"):
                out.setdefault(stage, {})[key] = value
        else:
            out[key] = _merge(out.get(key, {}), value) if isinstance(value, dict) and key in out else value
    return out


def resolve_study(
    *, file: str | Path | None = None, flags: dict[str, Any] | None = None, overrides: list[str] | None = None,
) -> StudyConfig:
    """Build a ``StudyConfig`` like ``build_config`` and check its nested pretrain/finetune settings.

    Unknown nested keys get the closest name; keys the study sets per cell are refused with the flag to
    use instead. The result carries every pretrain/finetune default, so ``study.yaml`` is complete.
    """
    values: dict[str, Any] = study_values_from_file(read_yaml(file)) if file else {}
    values = _merge(values, {k: v for k, v in (flags or {}).items() if v is not None})
    values = _merge(values, _shared_to_stages(parse_overrides(overrides or [])))
    for key in ("baselines", "recipes"):
        if isinstance(values.get(key), str) and values[key].strip().lower() == "none":
            values[key] = []  # --baselines none, --recipes none
    for key in ("objectives", "strategies", "recipes", "baselines", "labels"):
        if key in values and values[key] is not None:
            values[key] = _split_list(values[key])
            if isinstance(values[key], list):  # mappings are method entries (study/methods.py)
                values[key] = [v if isinstance(v, dict) else str(v) for v in values[key]]
    if "sweep" in values:
        values["sweep"] = _flat_sweep(values["sweep"])
    config = build_config(StudyConfig, flags=values)
    from warmstart.data.splits import LabelBudget  # canonical budget specs: "20" and "count=20" are one cell

    config.labels = list(dict.fromkeys(str(LabelBudget.parse(spec)) for spec in config.labels))
    _default_methods(config)
    for key in ("recipes", "baselines"):
        if getattr(config, key) is not None:
            setattr(config, key, list(dict.fromkeys(getattr(config, key))))
    for stage, cls in (("pretrain", PretrainConfig), ("finetune", FinetuneConfig)):
        section = getattr(config, stage)
        fields = [f for f in cls.model_fields if f not in STUDY_CONTROLLED]
        for key in section:
            if key in STUDY_CONTROLLED:
                raise UserError(f"setting {stage}.{key} is set by the study; use {STUDY_CONTROLLED[key]} instead")
            if key not in fields:
                raise UserError(f"unknown setting '{stage}.{key}'{closest(key, fields)}; "
                                f"valid {stage} settings: {', '.join(fields)}")
        try:
            resolved = cls(**section)
        except ValidationError as err:
            raise setting_error(err, f"{stage}.") from err
        unused = [k for k in section if k not in ("threads", "device", "amp", "checkpoint_every")]
        users = config.objectives if stage == "pretrain" else config.strategies or config.scratch
        if unused and not users:
            raise UserError(f"setting {stage}.{unused[0]} applies to a study's own objectives and strategies, but "
                            "this one runs only recipes, which bring their own settings; name --objectives and "
                            "--strategies, or drop it")
        setattr(config, stage, {k: v for k, v in resolved.model_dump(mode="json").items() if k in fields})
    for setting in config.settings():  # every swept value is a valid fine-tune setting
        try:
            swept = parse_overrides([setting]) if setting else {}
            FinetuneConfig(**{**_merge(config.finetune, swept), "data": config.data,
                              "strategy": "full", "labels": config.labels[0]})
        except ValidationError as err:
            first = err.errors()[0]
            raise UserError(f"sweep {setting}: {first['msg']}") from err
    return config
