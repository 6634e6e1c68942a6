"""Recipes: named, versioned pipelines shipped as YAML — pretraining runs, then one fine-tune that uses them.

A recipe file (``recipes/<name>.yaml``) holds ``pretrain:`` (named runs, each a set of ``PretrainConfig``
settings) and ``finetune:`` (``FinetuneConfig`` settings; ``from`` names the run whose encoder the model
starts from, ``strategy_args.features_from`` the runs whose features make its targets), with what it costs
and where that was measured. ``auto`` is a rule instead: for the data's modality it takes the most accurate
recipe whose estimated cost fits ``budget_minutes`` and says why. A file with an unknown key, a setting a
stage does not have, or a reference to a run it does not define is refused in one line before any work.

Small data gets the same number of optimisation steps rather than the same number of epochs: ``min_steps``
raises a stage's epochs (pretraining) or passes over the pool (fine-tuning) on a small training split.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from warmstart.errors import UserError, closest

HERE = Path(__file__).parent
#: Settings a recipe may not fix: the run (data, seed, labels, validation) and the machine set them.
NOT_IN_RECIPES = ("data", "data_dir", "seed", "labels", "task", "pretrained", "validation", "threads", "device",
                  "amp", "checkpoint_every")


class Reference(BaseModel):
    """The data a recipe's costs were measured on."""

    model_config = ConfigDict(extra="forbid")
    data: str
    rows: int = Field(gt=0)
    input_size: int = Field(gt=0, description="values per example (pixels × channels, features)")
    machine: str = ""


class Stage(BaseModel):
    """One pretraining run or the fine-tune: settings of that command, plus the recipe's own keys."""

    model_config = ConfigDict(extra="allow")  # the stage's settings, checked against its config model
    cost_minutes: float = Field(0.0, ge=0, description="CPU-minutes measured on the reference data")
    min_steps: int = Field(0, ge=0, description="at least this many optimisation steps on a small split")


class FinetuneStage(Stage):
    start: str | None = Field(None, alias="from", description="the pretraining run the model starts from")
    when: list[dict[str, Any]] = Field(default_factory=list,
                                       description="[{min_labels: N, <settings>}]: settings for larger budgets")


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    version: int = Field(ge=1)
    summary: str
    description: str = ""
    modalities: list[str] = Field(default_factory=lambda: ["image"])
    measured: str = ""
    reference: Reference | None = None
    pretrain: dict[str, Stage] = Field(default_factory=dict)
    finetune: FinetuneStage | None = None
    choose: dict[str, list[str]] = Field(default_factory=dict, description="auto only: modality -> recipes, "
                                         "most accurate first")

    @property
    def label(self) -> str:
        return f"{self.name}-v{self.version}"

    def cost_text(self) -> str:
        if self.choose:
            return "the chosen recipe's"
        total = sum(s.cost_minutes for s in self.pretrain.values()) + (self.finetune.cost_minutes
                                                                        if self.finetune else 0)
        where = f" on {self.reference.data} ({self.reference.rows} rows)" if self.reference else ""
        return f"about {total:.0f} CPU-minutes{where}"


def names() -> list[str]:
    return sorted(path.stem for path in HERE.glob("*.yaml"))


def _first_error(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"unknown key '{where}'"
    return f"{where}: {first['msg'].removeprefix('Value error, ')}"


def load(name_or_path: str) -> Recipe:
    """A shipped recipe by name, or a recipe file by path; checked completely (``check``)."""
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        if name_or_path not in names():
            raise UserError(f"unknown recipe '{name_or_path}'{closest(name_or_path, names())}; "
                            f"choose one of: {', '.join(names())} (see `warmstart recipes`) or give a recipe file")
        path = HERE / f"{name_or_path}.yaml"
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise UserError(f"recipe {path} is not valid YAML ({str(err).splitlines()[0]}); fix its syntax") from err
    if not isinstance(raw, dict):
        raise UserError(f"recipe {path} must hold a mapping (name, version, summary, pretrain, finetune)")
    try:
        recipe = Recipe(**raw)
    except ValidationError as err:
        fields = list(Recipe.model_fields)
        hint = ""
        if err.errors()[0]["type"] == "extra_forbidden":
            key = str(err.errors()[0]["loc"][0])
            hint = f"{closest(key, fields)}; a recipe has: {', '.join(fields)}"
        raise UserError(f"recipe {path.name}: {_first_error(err)}{hint}") from err
    check(recipe, path.name)
    return recipe


def check(recipe: Recipe, where: str) -> None:
    """Every stage's settings exist and validate, and every run a stage refers to is defined."""
    from warmstart.config import FinetuneConfig, PretrainConfig

    if recipe.choose:
        for modality, chosen in recipe.choose.items():
            for name in chosen:
                if name == recipe.name or name not in names():
                    raise UserError(f"recipe {where}: choose.{modality} names '{name}', which is not another "
                                    f"shipped recipe{closest(name, names())}")
        return
    if recipe.finetune is None:
        raise UserError(f"recipe {where}: needs a finetune: section (or choose: for a rule like auto)")
    for run, stage in recipe.pretrain.items():
        settings_of(stage, PretrainConfig, f"recipe {where}: pretrain.{run}")
    settings = settings_of(recipe.finetune, FinetuneConfig, f"recipe {where}: finetune")
    for i, rule in enumerate(recipe.finetune.when):
        if not isinstance(rule.get("min_labels"), int):
            raise UserError(f"recipe {where}: finetune.when[{i}] needs min_labels: N (an integer)")
        extra = {k: v for k, v in rule.items() if k != "min_labels"}
        settings_of(FinetuneStage(**{**settings, **extra}), FinetuneConfig, f"recipe {where}: finetune.when[{i}]")
    runs = list(recipe.pretrain)
    refs = [("finetune.from", recipe.finetune.start)] if recipe.finetune.start else []
    refs += [("finetune.strategy_args.features_from", r) for r in settings.get("strategy_args", {})
             .get("features_from", [])]
    for i, rule in enumerate(recipe.finetune.when):
        refs += [(f"finetune.when[{i}].from", rule["from"])] if rule.get("from") else []
        refs += [(f"finetune.when[{i}].strategy_args.features_from", r)
                 for r in rule.get("strategy_args", {}).get("features_from", [])]
    for key, run in refs:
        if run not in runs:
            raise UserError(f"recipe {where}: {key} names pretraining '{run}', which the recipe does not define"
                            f"{closest(str(run), runs)}; its pretraining runs: {', '.join(runs) or 'none'}")


def settings_of(stage: Stage, model, where: str) -> dict[str, Any]:
    """The stage's settings for ``model`` (PretrainConfig or FinetuneConfig), validated; one line if not."""
    settings = dict(stage.model_extra or {})
    fields = [f for f in model.model_fields if f not in NOT_IN_RECIPES]
    for key in settings:
        if key not in fields:
            raise UserError(f"{where}: unknown setting '{key}'{closest(key, fields)}; valid: {', '.join(fields)}")
    try:
        model(**settings)
    except ValidationError as err:
        raise UserError(f"{where}: {_first_error(err)}") from err
    return settings


def steps_per_pass(rows: int, batch_size: int) -> int:
    return max(1, rows // min(batch_size, rows))


def scaled(stage: Stage, settings: dict[str, Any], rows: int, key: str, batch_key: str, default_batch: int,
           args: bool = False) -> dict[str, Any]:
    """``settings`` with its epochs raised so the stage takes at least ``stage.min_steps`` steps on ``rows``."""
    holder = settings.get("strategy_args", {}) if args else settings
    epochs, batch = holder.get(key), holder.get(batch_key, default_batch)
    if not stage.min_steps or epochs is None:
        return settings
    need = math.ceil(stage.min_steps / steps_per_pass(rows, batch))
    if need <= epochs:
        return settings
    if args:
        return {**settings, "strategy_args": {**holder, key: need}}
    return {**settings, key: need}


@dataclass(frozen=True)
class Choice:
    """A concrete recipe to run, and why (``auto``'s reasoning, or that it was asked for by name)."""

    recipe: Recipe
    asked: str
    why: str


def estimate_minutes(recipe: Recipe, rows: int, input_size: int) -> float:
    """CPU-minutes on ``rows`` examples of ``input_size`` values: each stage's measured minutes scaled by the
    work (passes × rows × input size) against the reference data."""
    ref = recipe.reference
    if ref is None:
        return float("nan")
    total = 0.0
    for stage, passes, ref_passes in _stage_passes(recipe, rows):
        total += stage.cost_minutes * (passes * rows * input_size) / (ref_passes * ref.rows * ref.input_size)
    return total


def _stage_passes(recipe: Recipe, rows: int):
    for stage in recipe.pretrain.values():
        settings = dict(stage.model_extra or {})
        ref = settings.get("epochs", 20)
        yield stage, scaled(stage, settings, rows, "epochs", "batch_size", 128).get("epochs", ref), ref
    settings = dict(recipe.finetune.model_extra or {})
    ref = settings.get("strategy_args", {}).get("epochs") or 1
    now = scaled(recipe.finetune, settings, rows, "epochs", "batch", 256, args=True)
    yield recipe.finetune, now.get("strategy_args", {}).get("epochs") or 1, ref


def choose(asked: str, modality: str, rows: int, input_size: int, budget_minutes: float) -> Choice:
    """The recipe ``asked`` names; for a rule (``auto``), the first recipe for ``modality`` whose estimated
    cost fits ``budget_minutes`` (else the cheapest), with the reasoning in words."""
    recipe = load(asked)
    asked = recipe.name  # a recipe given as a file is known by its name
    if not recipe.choose:
        if modality not in recipe.modalities:
            raise UserError(f"recipe '{asked}' is made for {', '.join(recipe.modalities)} data, not {modality}; "
                            f"use auto or another recipe made for {modality} data (see `warmstart recipes`)")
        return Choice(recipe, asked, f"asked for by name ({recipe.label})")
    options = recipe.choose.get(modality)
    if not options:
        raise UserError(f"recipe '{asked}' has no recipe for {modality} data; it covers "
                        f"{', '.join(recipe.choose)}")
    estimates = [(name, estimate_minutes(load(name), rows, input_size)) for name in options]
    fits = [(n, m) for n, m in estimates if m <= budget_minutes]
    name, minutes = fits[0] if fits else min(estimates, key=lambda e: e[1])
    said = "; ".join(f"{n} about {m:.1f} CPU-minutes" for n, m in estimates)
    verdict = (f"the most accurate that fits budget_minutes={budget_minutes:g}" if fits
               else f"none fits budget_minutes={budget_minutes:g}, so the cheapest")
    why = (f"{recipe.label} chose {name} for {modality} data of {rows} rows x {input_size} values: {said} "
           f"(measured costs at the base settings, scaled by passes x rows x size); {name} is {verdict}")
    return Choice(load(name), asked, why)
