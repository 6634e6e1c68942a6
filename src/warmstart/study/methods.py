"""What a study's settings name, compiled into pretraining runs and methods before any cell is planned.

``objectives`` entries are pretraining runs: ``"simclr"``, or ``{name: simclr, as: simclr-cnn, encoder: cnn,
epochs: 8, ...}`` (any ``PretrainConfig`` setting; ``as`` names the run, default the objective). Several
entries may use different encoders. ``strategies`` entries are fine-tunes: ``"full"``, or ``{name: full, as:
full-lpft, head_init: probe, lr: 3e-4}`` — keys that are ``FinetuneConfig`` settings set the run, every other
key is a strategy option; ``from: [runs]`` limits which pretraining runs it starts from (default all), and
``features_from: [runs]`` names runs of this study whose features the strategy reads (``selftrain``).
A strategy that starts from random weights runs once per budget and seed (kind ``scratch``; with
``features_from`` it is a method of those runs, kind ``pretrained``). ``recipes`` add their own pretraining
runs (named ``<recipe>-v<version>.<run>``) and one method each, kind ``recipe``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from warmstart.config import FinetuneConfig, PretrainConfig, merge_nested, parse_overrides
from warmstart.study_config import STUDY_CONTROLLED, StudyConfig
from warmstart.errors import UserError, closest
from warmstart.recipes import Choice, choose, scaled, settings_of

#: Settings every run of the study shares, recipes included: the machine's, not the method's.
MACHINE = ("threads", "device", "amp", "checkpoint_every")
ARG_KEYS = ("strategy_args", "objective_args", "encoder_args")


@dataclass(frozen=True)
class Pretraining:
    """One pretraining run of the study: ``settings`` are complete ``PretrainConfig`` fields but data and seed."""

    label: str
    settings: dict[str, Any]
    min_steps: int = 0

    def config(self, study: StudyConfig, seed: int, rows: int) -> PretrainConfig:
        settings = dict(self.settings)
        if self.min_steps:
            from warmstart.recipes import Stage

            settings = scaled(Stage(min_steps=self.min_steps), settings, rows, "epochs", "batch_size", 128)
        if not (settings.get("privacy") or {}).get("private_pool"):
            settings.pop("privacy", None)  # a public pool trains plainly; only a private pool runs DP-SGD
        return PretrainConfig(**{**settings, "data": study.data, "data_dir": study.data_dir, "seed": seed})


@dataclass(frozen=True)
class Method:
    """One row label of results.csv: how its model is fine-tuned, and from which of the study's runs."""

    label: str
    kind: str  # "scratch" (random init), "pretrained" or "recipe"
    objective: str  # the run it starts from, "none", or the recipe it came from
    strategy: str  # the strategy's label in the grid (its registered name for recipes)
    settings: dict[str, Any]  # FinetuneConfig fields but data, seed, labels and validation
    start: str | None = None  # pretraining label the model starts from
    when: tuple[dict[str, Any], ...] = ()  # recipes: settings (and `from`) for budgets of at least min_labels
    min_steps: int = 0
    choice: Choice | None = None

    def at(self, labels: int) -> tuple[dict[str, Any], str | None, tuple[str, ...]]:
        """``(settings, start run, features_from runs)`` at a budget of ``labels`` (after the ``when`` rules)."""
        settings, start = dict(self.settings), self.start
        for rule in self.when:
            if labels >= rule["min_labels"]:
                start = rule.get("from", start)
                settings = merge_settings(settings, {k: v for k, v in rule.items() if k not in ("min_labels", "from")})
        return settings, start, tuple(settings.get("strategy_args", {}).get("features_from") or ())

    @property
    def runs(self) -> list[str]:
        """Every pretraining run the method reads at some budget."""
        found = [self.start, *self.settings.get("strategy_args", {}).get("features_from", [])]
        for rule in self.when:
            found += [rule.get("from"), *rule.get("strategy_args", {}).get("features_from", [])]
        return list(dict.fromkeys(r for r in found if r))

    def config(self, study: StudyConfig, budget: str, labels: int, seed: int, rows: int,
               runs: dict[str, str], setting: str = "") -> FinetuneConfig:
        """The cell's ``FinetuneConfig``; ``runs`` maps pretraining labels to their directories, ``setting``
        is the cell's swept ``key=value`` (``StudyConfig.sweep``), applied over the method's own settings."""
        settings, _, features_from = self.at(labels)
        if setting:
            settings = merge_nested(settings, parse_overrides([setting]))
        if self.min_steps:
            from warmstart.recipes import Stage

            settings = scaled(Stage(min_steps=self.min_steps), settings, rows, "epochs", "batch", 256, args=True)
        if features_from:
            settings["strategy_args"] = {**settings.get("strategy_args", {}),
                                         "features_from": [runs[label] for label in features_from]}
        return FinetuneConfig(**{**settings, "data": study.data, "data_dir": study.data_dir, "seed": seed,
                                 "task": study.task, "labels": budget, "validation": study.validation})


@dataclass
class Methods:
    pretrainings: dict[str, Pretraining] = field(default_factory=dict)
    methods: dict[str, Method] = field(default_factory=dict)


def merge_settings(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``; the ``*_args`` dictionaries are merged key by key."""
    out = {**base, **extra}
    for key in ARG_KEYS:
        if key in base and key in extra:
            out[key] = {**base[key], **extra[key]}
    return out


def _base(study: StudyConfig, section: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """The study's settings an entry starts from; its encoder options only if it keeps the study's encoder."""
    own = options.get("encoder", study.encoder) != study.encoder
    return {**section, "encoder": study.encoder, "encoder_args": {} if own else study.encoder_args}


def _entry(raw: Any, kind: str) -> tuple[str, str, dict[str, Any]]:
    """``(label, name, options)`` of an objectives/strategies entry."""
    if isinstance(raw, str):
        return raw, raw, {}
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise UserError(f"a {kind} entry must be a name or a mapping with a 'name' key, got {raw!r}")
    options = {k: v for k, v in raw.items() if k not in ("name", "as")}
    return str(raw.get("as", raw["name"])), raw["name"], options


def _unique(label: str, seen: dict, kind: str) -> None:
    if label in seen:
        raise UserError(f"two {kind} are named '{label}'; give one of them another name with as: NAME")


def compile_methods(study: StudyConfig, modality: str, rows: int, input_size: int) -> Methods:
    """The study's pretraining runs and methods, every name and reference checked (one ``UserError`` line)."""
    out = Methods()
    for raw in study.objectives:
        label, name, options = _entry(raw, "objectives")
        _unique(label, out.pretrainings, "pretraining runs")
        out.pretrainings[label] = Pretraining(label, _pretrain_settings(study, name, options, label))
    grid = list(out.pretrainings)
    for raw in study.strategies:
        _add_strategy(out, study, raw, grid)
    for asked in study.recipes:
        _add_recipe(out, study, choose(asked, modality, rows, input_size, study.budget_minutes))
    return out


def _pretrain_settings(study: StudyConfig, objective: str, options: dict[str, Any], label: str) -> dict[str, Any]:
    fields = [f for f in PretrainConfig.model_fields if f not in STUDY_CONTROLLED or f in ("encoder", "encoder_args")]
    for key in options:
        if key not in fields:
            raise UserError(f"objectives entry '{label}': unknown setting '{key}'{closest(key, fields)}; valid: "
                            f"{', '.join(f for f in fields if f != 'objective')}")
    return merge_settings(_base(study, study.pretrain, options), {**options, "objective": objective})


def _add_strategy(out: Methods, study: StudyConfig, raw: Any, grid: list[str]) -> None:
    from warmstart.strategies import STRATEGIES

    label, name, options = _entry(raw, "strategies")
    start_from = options.pop("from", None)
    settings, args = {}, dict(options.pop("strategy_args", {}) or {})
    fields = [f for f in FinetuneConfig.model_fields if f not in STUDY_CONTROLLED or f in ("encoder", "encoder_args")]
    for key, value in options.items():
        (settings if key in fields else args)[key] = value
    features_from = tuple(args.get("features_from") or ())
    for run in [*features_from, *(start_from or [])]:
        if run not in grid:
            raise UserError(f"strategies entry '{label}' names pretraining '{run}', which this study does not run"
                            f"{closest(str(run), grid)}; its runs: {', '.join(grid) or 'none'}")
    settings = merge_settings(_base(study, study.finetune, settings), {**settings, "strategy": name,
                                                                       "strategy_args": args})
    strategy = STRATEGIES.get(name)
    starts_pretrained = getattr(strategy, "load_pretrained", True) and args.get("student", "pretrained") != "scratch"
    if not starts_pretrained:
        method_label = label if not features_from else f"{'+'.join(features_from)}+{label}"
        kind, objective = ("pretrained", "+".join(features_from)) if features_from else ("scratch", "none")
        _unique(method_label, out.methods, "methods")
        out.methods[method_label] = Method(method_label, kind, objective, label, settings)
        return
    for run in start_from or grid:
        method_label = f"{run}+{label}"
        _unique(method_label, out.methods, "methods")
        out.methods[method_label] = Method(method_label, "pretrained", run, label, settings, start=run)


def _add_recipe(out: Methods, study: StudyConfig, choice: Choice) -> None:
    recipe = choice.recipe
    machine_pre = {k: v for k, v in study.pretrain.items() if k in MACHINE}
    machine_fine = {k: v for k, v in study.finetune.items() if k in MACHINE}
    prefix = recipe.label
    for run, stage in recipe.pretrain.items():
        label = f"{prefix}.{run}"
        if label not in out.pretrainings:
            settings = settings_of(stage, PretrainConfig, f"recipe {recipe.name}: pretrain.{run}")
            out.pretrainings[label] = Pretraining(label, {**machine_pre, **settings}, stage.min_steps)
    stage = recipe.finetune
    settings = {**machine_fine, **settings_of(stage, FinetuneConfig, f"recipe {recipe.name}: finetune")}
    method_label = f"recipe:{choice.asked}"
    _unique(method_label, out.methods, "methods")
    out.methods[method_label] = Method(
        method_label, "recipe", choice.asked, settings["strategy"], _qualified(settings, prefix),
        start=f"{prefix}.{stage.start}" if stage.start else None,
        when=tuple(_qualified(rule, prefix) for rule in stage.when), min_steps=stage.min_steps, choice=choice)


def _qualified(settings: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A recipe's settings with its run names (``from``, ``features_from``) made the study's: ``prefix.run``."""
    out = dict(settings)
    if out.get("from"):
        out["from"] = f"{prefix}.{out['from']}"
    args = out.get("strategy_args")
    if args and "features_from" in args:
        out["strategy_args"] = {**args, "features_from": [f"{prefix}.{r}" for r in args["features_from"]]}
    return out

