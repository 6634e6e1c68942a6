"""A study's plan: every cell it will run, each one checked before anything is written.

The grid is pretraining run × strategy × label budget × seed (``study/methods.py`` reads the entries), plus
``scratch`` (and any other strategy that starts from random weights), the recipes named by ``recipes`` and
the task's classical baselines at every budget and seed: the bars pretraining has to clear. ``plan_study``
builds and checks what every cell needs — the task, each budget's size and its validation rows, each
objective around an encoder of the data's modality, each method's settings and strategy (the implicit
``scratch`` included) against the task, each baseline against the task — so a bad setting stops the study
with one line before its directory exists.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warmstart.baselines import check_baselines
from warmstart.config import read_yaml
from warmstart.study_config import EXECUTION_KEYS, GRID_KEYS, StudyConfig
from warmstart.data import DataBundle, load_data
from warmstart.data.validation import draw_rows
from warmstart.errors import UserError
from warmstart.models.build import build_encoder
from warmstart.objectives import OBJECTIVES
from warmstart.privacy import refuse
from warmstart.strategies import STRATEGIES
from warmstart.study.methods import Method, Methods, compile_methods, merge_settings
from warmstart.tasks import resolve_task


@dataclass(frozen=True)
class Cell:
    """One row of ``results.csv``. ``kind``: "pretrained", "scratch" (random init), "recipe" or "baseline"."""

    kind: str
    objective: str  # the pretraining run ("none" unless pretrained; the recipe's name for recipes)
    strategy: str  # the fine-tune strategy's label, or the baseline's name
    budget: str  # canonical LabelBudget spec, e.g. "count=20"
    seed: int
    setting: str = ""  # the swept fine-tune setting of this cell, e.g. "privacy.epsilon=3" ("" without a sweep)

    @property
    def method(self) -> str:
        if self.kind == "recipe":
            return f"recipe:{self.objective}"
        base = f"{self.objective}+{self.strategy}" if self.kind == "pretrained" else self.strategy
        return f"{base}[{self.setting}]" if self.setting else base

    @property
    def base_method(self) -> str:
        """The method's label without the swept setting (the key of ``StudyPlan.methods``)."""
        return self.method.split("[", 1)[0]

    @property
    def key(self) -> str:
        return f"{self.method}__{self.budget}__seed{self.seed}".replace("=", "-").replace(":", "-")


@dataclass
class StudyPlan:
    config: StudyConfig
    data: DataBundle
    task: Any  # warmstart.tasks.Task
    cells: list[Cell]
    sizes: dict[str, int]  # budget spec -> number of labels it keeps
    baselines: list[str]
    methods: Methods

    def method(self, cell: Cell) -> Method:
        return self.methods.methods[cell.base_method]


def _check_pretrainings(methods: Methods, config: StudyConfig, data: DataBundle, task) -> None:
    private = config.pretrain.get("privacy") or {}
    if private and not private.get("private_pool"):
        raise UserError("pretrain.privacy settings make the pool private: add pretrain.privacy.private_pool=true, or "
                        "drop them (the pool is then public and fine-tuning alone is private: finetune.privacy...)")
    for label, run in methods.pretrainings.items():
        pre = run.config(config, 0, len(data.x_train))
        if data.modality not in OBJECTIVES.get(pre.objective).modalities:
            raise UserError(f"objective '{pre.objective}' ({label}) does not apply to {data.modality} data; "
                            f"it works on: {', '.join(OBJECTIVES.get(pre.objective).modalities)}")
        if pre.privacy is not None:
            refuse("objective", pre.objective, OBJECTIVES.get(pre.objective).not_private,
                   "pretrain the private pool with autoencoder, denoising, masked or vae")
        encoder = build_encoder(pre.encoder, data.input_shape, pre.encoder_args, data.modality,
                                corpus=data.handler.corpus(data), schema=data.schema)
        task.build_model(encoder, task.info(data))  # the head fits this encoder (dense heads need feature maps)
        OBJECTIVES.build(pre.objective, encoder, **pre.objective_args)


def _check_method(method: Method, config: StudyConfig, plan_data, implicit: bool) -> None:
    data, task, budgets = plan_data
    runs = {label: f"<{label}>" for label in method.runs}
    try:
        for budget, labels in budgets.items():  # every budget: recipes change settings with the label count
            for setting in config.settings():
                finetune = method.config(config, budget, labels, 0, len(data.x_train), runs, setting)
                STRATEGIES.build(finetune.strategy, **finetune.strategy_args)
        # The task and modality checks, without the runs' directories: this study has not made them yet.
        args = {k: v for k, v in finetune.strategy_args.items() if k not in ("features_from", "student")}
        strategy = STRATEGIES.build(finetune.strategy, **args)
        strategy.check(task, data, finetune.strategy)
        for setting in config.settings():
            if method.config(config, budget, labels, 0, len(data.x_train), runs, setting).privacy is not None:
                refuse("strategy", finetune.strategy, strategy.privacy_problem(),
                       "use full, linear or scratch with privacy")
                refuse("task", task.name, task.not_private, "privacy serves the classify task")
    except UserError as err:
        if implicit:  # the user never named scratch: say why it runs and where its arguments came from
            raise UserError(f"the study always runs scratch as the baseline, with finetune.strategy_args: "
                            f"{err}") from err
        raise UserError(f"{method.label}: {err}") from err


def plan_study(config: StudyConfig, data: DataBundle | None = None) -> StudyPlan:
    """Check everything a study will need — data, task, budgets, names, options — and list its cells."""
    data = data if data is not None else load_data(config.data, config.data_dir)
    data, task = resolve_task(data, config.task)
    sizes = {spec: task.size(data, spec) for spec in config.labels}
    if config.metric is not None and config.metric not in task.metric_names:
        raise UserError(f"metric '{config.metric}' is not one of the {task.name} task's: "
                        f"{', '.join(task.metric_names)}")
    for spec in config.labels:  # a validation split the budget cannot give stops here
        draw_rows(task, data, spec, config.validation, config.seed_start)
    baselines = task.baselines(data.modality) if config.baselines is None else list(config.baselines)
    check_baselines(baselines, task.name, data.modality)
    methods = compile_methods(config, data.modality, len(data.x_train), math.prod(data.input_shape))
    implicit = config.scratch and "scratch" not in methods.methods
    if implicit:
        base = {**config.finetune, "encoder": config.encoder, "encoder_args": config.encoder_args}
        methods.methods = {"scratch": Method("scratch", "scratch", "none", "scratch",
                                             merge_settings(base, {"strategy": "scratch"})), **methods.methods}
    _check_pretrainings(methods, config, data, task)
    for method in methods.methods.values():
        _check_method(method, config, (data, task, sizes), implicit and method.label == "scratch")
    seeds = range(config.seed_start, config.seed_start + config.seeds)
    grid = [(budget, seed) for budget in config.labels for seed in seeds]
    cells = [Cell("baseline", "none", name, b, s) for name in baselines for b, s in grid]
    # Every fine-tuned cell runs once per swept setting; the baselines do not read fine-tune settings.
    settings = config.settings()
    order = {"scratch": 0, "pretrained": 1, "recipe": 2}
    for method in sorted(methods.methods.values(), key=lambda m: order[m.kind]):  # stable: runs stay grouped
        cells += [Cell(method.kind, method.objective, method.strategy, b, s, v) for v in settings for b, s in grid]
    return StudyPlan(config, data, task, cells, sizes, baselines, methods)


def open_study_dir(out: Path, config: StudyConfig) -> None:
    """Refuse a directory that holds something else, or a study whose cells were computed differently."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a directory path")
    if not (out.is_dir() and any(out.iterdir())):
        return
    if not (out / "study.yaml").is_file():
        raise UserError(f"--out {out} already holds something that is not a study; choose another --out")
    free = GRID_KEYS + EXECUTION_KEYS
    old = {k: v for k, v in read_yaml(out / "study.yaml").items() if k not in free}
    new = {k: v for k, v in config.model_dump(mode="json").items() if k not in free}
    changed = [k for k in new if old.get(k) != new[k]]
    if changed:
        raise UserError(f"--out {out} holds a study with different settings ({', '.join(changed)}); rerun with "
                        "its settings (see its study.yaml) or choose another --out")
