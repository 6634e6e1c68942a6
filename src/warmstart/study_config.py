"""Study settings: ``StudyConfig``, the grid a ``warmstart study`` runs, and ``resolve_study``, which builds it.

A study is configured like a run (see ``warmstart.config``): defaults < YAML file < flags < ``key=value``
overrides. Its ``pretrain`` and ``finetune`` fields hold overrides of ``PretrainConfig`` / ``FinetuneConfig``,
checked here and completed with every default so the study directory's ``study.yaml`` says what ran.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from warmstart.config import (
    SECTIONS, FinetuneConfig, PretrainConfig, TrainSettings, merge_nested, parse_value, build_config, parse_overrides,
    read_yaml, setting_error,
)
from warmstart.errors import UserError, closest


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
        flat[key] = [parse_value(str(v)) if isinstance(v, str) else v for v in values]
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
    return merge_nested(values, study)


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
            out[key] = merge_nested(out.get(key, {}), value) if isinstance(value, dict) and key in out else value
    return out


def resolve_study(
    *, file: str | Path | None = None, flags: dict[str, Any] | None = None, overrides: list[str] | None = None,
) -> StudyConfig:
    """Build a ``StudyConfig`` like ``build_config`` and check its nested pretrain/finetune settings.

    Unknown nested keys get the closest name; keys the study sets per cell are refused with the flag to
    use instead. The result carries every pretrain/finetune default, so ``study.yaml`` is complete.
    """
    config = build_config(StudyConfig, flags=_study_values(file, flags, overrides))
    from warmstart.data.splits import LabelBudget  # canonical budget specs: "20" and "count=20" are one cell

    config.labels = list(dict.fromkeys(str(LabelBudget.parse(spec)) for spec in config.labels))
    _default_methods(config)
    for key in ("recipes", "baselines"):
        if getattr(config, key) is not None:
            setattr(config, key, list(dict.fromkeys(getattr(config, key))))
    for stage, cls in (("pretrain", PretrainConfig), ("finetune", FinetuneConfig)):
        setattr(config, stage, _resolved_stage(config, stage, cls))
    _check_sweep(config)
    return config


def _study_values(
    file: str | Path | None, flags: dict[str, Any] | None, overrides: list[str] | None,
) -> dict[str, Any]:
    """The file's study settings < flags < overrides, merged; list settings given as ``"a,b"`` split into
    lists, ``none`` meaning no baselines or recipes, and the sweep flattened and checked."""
    values: dict[str, Any] = study_values_from_file(read_yaml(file)) if file else {}
    values = merge_nested(values, {k: v for k, v in (flags or {}).items() if v is not None})
    values = merge_nested(values, _shared_to_stages(parse_overrides(overrides or [])))
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
    return values


def _resolved_stage(config: StudyConfig, stage: str, cls: type[TrainSettings]) -> dict[str, Any]:
    """The study's ``pretrain`` or ``finetune`` section checked against ``cls`` and completed with its defaults,
    less the settings the study sets per cell. Refuses study-controlled or unknown keys, invalid values, and
    settings for a stage none of the study's own methods run (a recipes-only study)."""
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
    return {k: v for k, v in resolved.model_dump(mode="json").items() if k in fields}


def _check_sweep(config: StudyConfig) -> None:
    """Every swept value must make a valid fine-tune setting; the first that does not is one ``UserError``."""
    for setting in config.settings():
        try:
            swept = parse_overrides([setting]) if setting else {}
            FinetuneConfig(**{**merge_nested(config.finetune, swept), "data": config.data,
                              "strategy": "full", "labels": config.labels[0]})
        except ValidationError as err:
            first = err.errors()[0]
            raise UserError(f"sweep {setting}: {first['msg']}") from err
