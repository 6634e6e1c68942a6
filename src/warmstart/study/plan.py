"""A study's plan: every cell it will run, each one checked before anything is written.

The grid is objective × strategy × label budget × seed, plus ``scratch`` (and any other strategy that starts
from random weights) and the task's classical baselines at every budget and seed: the bars pretraining has
to clear. ``plan_study`` builds and checks what every cell needs — the task, each budget's size, each
objective around an encoder of the data's modality, each strategy (the implicit ``scratch`` included) with
its arguments and against the task, each baseline against the task — so a bad setting stops the study
with one line before its directory exists.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warmstart.baselines import check_baselines
from warmstart.config import GRID_KEYS, StudyConfig, read_yaml
from warmstart.data import DataBundle, load_data
from warmstart.errors import UserError
from warmstart.models.build import build_encoder
from warmstart.objectives import OBJECTIVES
from warmstart.privacy import refuse
from warmstart.strategies import STRATEGIES
from warmstart.tasks import resolve_task


@dataclass(frozen=True)
class Cell:
    """One row of ``results.csv``. ``kind``: "pretrained", "scratch" (random init) or "baseline"."""

    kind: str
    objective: str  # "none" unless pretrained
    strategy: str  # the fine-tune strategy, or the baseline's name
    budget: str  # canonical LabelBudget spec, e.g. "count=20"
    seed: int
    setting: str = ""  # the swept fine-tune setting of this cell, e.g. "privacy.epsilon=3" ("" without a sweep)

    @property
    def method(self) -> str:
        base = f"{self.objective}+{self.strategy}" if self.kind == "pretrained" else self.strategy
        return f"{base}[{self.setting}]" if self.setting else base

    @property
    def key(self) -> str:
        return f"{self.method}__{self.budget}__seed{self.seed}".replace("=", "-")


@dataclass
class StudyPlan:
    config: StudyConfig
    data: DataBundle
    task: Any  # warmstart.tasks.Task
    cells: list[Cell]
    sizes: dict[str, int]  # budget spec -> number of labels it keeps
    baselines: list[str]


def _check_objectives(config: StudyConfig, data: DataBundle, task) -> None:
    encoder = build_encoder(config.encoder, data.input_shape, config.encoder_args, data.modality,
                            corpus=data.handler.corpus(data), schema=data.schema)
    task.build_model(encoder, task.info(data))  # the head fits this encoder (dense heads need feature maps)
    private = config.pretrain.get("privacy") or {}
    if private and not private.get("private_pool"):
        raise UserError("pretrain.privacy settings make the pool private: add pretrain.privacy.private_pool=true, or "
                        "drop them (the pool is then public and fine-tuning alone is private: finetune.privacy...)")
    for objective in config.objectives:
        if data.modality not in OBJECTIVES.get(objective).modalities:
            raise UserError(f"objective '{objective}' does not apply to {data.modality} data; "
                            f"it works on: {', '.join(OBJECTIVES.get(objective).modalities)}")
        if private:
            refuse("objective", objective, OBJECTIVES.get(objective).not_private,
                   "pretrain the private pool with autoencoder, denoising, masked or vae")
        OBJECTIVES.build(objective, encoder, **config.pretrain_config(objective, 0).objective_args)


def _check_strategy(config: StudyConfig, name: str, task, data: DataBundle, implicit: bool):
    args = config.finetune_config(name, config.labels[0], 0).strategy_args
    try:
        strategy = STRATEGIES.build(name, **args)
        strategy.check(task, data, name)
        for setting in config.settings():
            if config.finetune_config(name, config.labels[0], 0, setting).privacy is not None:
                refuse("strategy", name, strategy.privacy_problem(), "use full, linear or scratch with privacy")
                refuse("task", task.name, task.not_private, "privacy serves the classify task")
    except UserError as err:
        if implicit:  # the user never named scratch: say why it runs and where its arguments came from
            raise UserError(f"the study always runs scratch as the baseline, with finetune.strategy_args: "
                            f"{err}") from err
        raise
    return strategy


def plan_study(config: StudyConfig, data: DataBundle | None = None) -> StudyPlan:
    """Check everything a study will need — data, task, budgets, names, options — and list its cells."""
    data = data if data is not None else load_data(config.data, config.data_dir)
    data, task = resolve_task(data, config.task)
    sizes = {spec: task.size(data, spec) for spec in config.labels}
    if config.metric is not None and config.metric not in task.metric_names:
        raise UserError(f"metric '{config.metric}' is not one of the {task.name} task's: "
                        f"{', '.join(task.metric_names)}")
    baselines = task.baselines(data.modality) if config.baselines is None else list(config.baselines)
    check_baselines(baselines, task.name, data.modality)
    _check_objectives(config, data, task)
    random_init, pretrained = ["scratch"], []
    _check_strategy(config, "scratch", task, data, implicit="scratch" not in config.strategies)
    for name in config.strategies:
        if _check_strategy(config, name, task, data, implicit=False).load_pretrained:
            pretrained.append(name)
        elif name not in random_init:
            random_init.append(name)
    grid = [(budget, seed) for budget in config.labels for seed in range(config.seeds)]
    cells = [Cell("baseline", "none", name, b, s) for name in baselines for b, s in grid]
    # Every fine-tuned cell runs once per swept setting; the baselines do not read fine-tune settings.
    settings = config.settings()
    cells += [Cell("scratch", "none", strategy, b, s, v) for strategy in random_init for v in settings for b, s in grid]
    # Grouped by pretrained encoder, so each is built (or loaded) once and then reused.
    for objective in config.objectives:
        for seed_group in (range(config.seeds) if config.pretrain_per_seed else [None]):
            cells += [Cell("pretrained", objective, strategy, b, s, v) for strategy in pretrained for v in settings
                      for b, s in grid if seed_group is None or s == seed_group]
    return StudyPlan(config, data, task, cells, sizes, baselines)


def open_study_dir(out: Path, config: StudyConfig) -> None:
    """Refuse a directory that holds something else, or a study whose cells were computed differently."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a directory path")
    if not (out.is_dir() and any(out.iterdir())):
        return
    if not (out / "study.yaml").is_file():
        raise UserError(f"--out {out} already holds something that is not a study; choose another --out")
    old = {k: v for k, v in read_yaml(out / "study.yaml").items() if k not in GRID_KEYS}
    new = {k: v for k, v in config.model_dump(mode="json").items() if k not in GRID_KEYS}
    changed = [k for k in new if old.get(k) != new[k]]
    if changed:
        raise UserError(f"--out {out} holds a study with different settings ({', '.join(changed)}); rerun with "
                        "its settings (see its study.yaml) or choose another --out")
