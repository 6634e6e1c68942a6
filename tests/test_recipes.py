"""Recipes (shipped YAML pipelines), `warmstart recipes` / `run --recipe` / `study --recipes`, and the study
entries recipes need: per-strategy arguments, several encoders, methods that read several pretraining runs."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import yaml

from warmstart import recipes
from warmstart.cli import main
from warmstart.study_config import resolve_study
from warmstart.errors import UserError
from warmstart.study import TIMING_COLUMNS, plan_study, run_study
from warmstart.study import run as study_run

TINY = {
    "name": "tiny", "version": 2, "summary": "two small pretrainings, a selftrain student of both",
    "modalities": ["image"],
    "reference": {"data": "digits", "rows": 1437, "input_size": 64},
    "pretrain": {
        "ae": {"objective": "autoencoder", "encoder": "mlp", "encoder_args": {"width": 32, "feature_dim": 16},
               "epochs": 3, "health_samples": 0, "cost_minutes": 0.1},
        "dn": {"objective": "denoising", "encoder": "mlp", "encoder_args": {"width": 32, "feature_dim": 16},
               "epochs": 3, "health_samples": 0, "cost_minutes": 0.1}},
    "finetune": {"strategy": "selftrain", "from": "ae", "epochs": 20, "lr": 0.01, "cost_minutes": 0.1,
                 "strategy_args": {"targets": "probe+propagate", "graph": "pretrained", "features_from": ["dn"],
                                   "epochs": 2},
                 "when": [{"min_labels": 40, "strategy_args": {"epochs": 3}}]},
}

pytestmark = pytest.mark.usefixtures("one_blas_thread")  # conftest: one BLAS thread per module


def write_recipe(path: Path, **changes) -> Path:
    recipe = json.loads(json.dumps(TINY))
    for dotted, value in changes.items():
        node, *parents = recipe, *dotted.split(".")[:-1]
        for part in parents:
            node = node[part]
        if value is None:
            node.pop(dotted.split(".")[-1])
        else:
            node[dotted.split(".")[-1]] = value
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_every_shipped_recipe_loads_and_says_what_it_costs(capsys):
    assert {"auto", "best", "fast"} <= set(recipes.names())
    for name in recipes.names():
        recipe = recipes.load(name)
        assert recipe.version >= 1 and recipe.summary and "CPU-minutes" in recipe.cost_text() or recipe.choose
    assert main(["recipes"]) == 0
    listed = capsys.readouterr().out
    assert "best-v1" in listed and "fast-v2" in listed and "measured:" in listed
    assert main(["recipes", "best"]) == 0 and "features_from: [simclr-mlp, simclr-cnn]" in capsys.readouterr().out


@pytest.mark.parametrize("changes, message", [
    ({"finetune.strategy_args.features_from": ["ae", "simclr"]}, "names pretraining 'simclr', which the recipe "
                                                                 "does not define"),
    ({"finetune.from": "dnn"}, "finetune.from names pretraining 'dnn'"),
    ({"pretrain.ae.epoch": 3}, "pretrain.ae: unknown setting 'epoch' (did you mean 'epochs'?)"),
    ({"finetune.labels": "count=5"}, "finetune: unknown setting 'labels'"),
    ({"cost": 3}, "unknown key 'cost'"),
    ({"version": None}, "version: Field required"),
    ({"finetune.when": [{"epochs": 3}]}, "when[0] needs min_labels"),
    ({"finetune.when": [{"min_labels": 40, "from": "ea"}]}, "finetune.when[0].from names pretraining 'ea'"),
])
def test_a_bad_recipe_is_refused_in_one_line_before_any_work(tmp_path, capsys, changes, message):
    recipe = write_recipe(tmp_path / "bad.yaml", **changes)
    out = tmp_path / "never"
    assert main(["run", "--recipe", str(recipe), "--labels", "per_class=5", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()
    assert main(["study", "--recipes", str(recipe), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_auto_picks_by_modality_size_and_time_and_says_why():
    big = recipes.choose("auto", "image", 60000, 784, budget_minutes=15)
    small = recipes.choose("auto", "image", 1437, 64, budget_minutes=15)
    rich = recipes.choose("auto", "image", 60000, 784, budget_minutes=120)
    assert big.recipe.name == "fast" and small.recipe.name == "best" and rich.recipe.name == "best"
    assert "budget_minutes=15" in big.why and "best about" in big.why and "fast about" in big.why
    assert recipes.choose("auto", "text", 1000, 1, 15).recipe.name == "text"
    with pytest.raises(UserError, match="made for image data, not text; use auto or another recipe made for "
                                        "text data"):  # `run` has --recipe and `study` --recipes: no flag named
        recipes.choose("best", "text", 1000, 1, 15)
    # Small data gets as many steps, not as many epochs: min_steps raises the passes, and the cost with them.
    fast = recipes.load("fast")
    assert recipes.estimate_minutes(fast, 6000, 784) > 0.1 * recipes.estimate_minutes(fast, 60000, 784)


def test_run_recipe_resumes_after_a_kill_to_the_same_result(tmp_path, digits, monkeypatch, capsys):
    recipe = write_recipe(tmp_path / "tiny.yaml")
    args = ["run", "--recipe", str(recipe), "--labels", "per_class=5", "--seed", "1", "validation=extra=100",
            "threads=1", "checkpoint_every=2"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    printed = capsys.readouterr().out
    assert "recipe:tiny (tiny-v2) on 50 labels, seed 1: test accuracy" in printed and "on 100 rows" in printed
    real = study_run.finetune

    def killed_mid_student(config, out, **kwargs):  # the student dies after 5 steps, once
        def stop(step):
            if step == 5:
                raise KeyboardInterrupt
        return real(config, out, after_step=stop, **kwargs)

    monkeypatch.setattr(study_run, "finetune", killed_mid_student)
    assert main([*args, "--out", str(tmp_path / "killed")]) == 130
    assert "rerun the same command to continue" in capsys.readouterr().err
    monkeypatch.setattr(study_run, "finetune", real)
    assert main([*args, "--out", str(tmp_path / "killed")]) == 0
    capsys.readouterr()
    rows = [list(csv.DictReader(open(tmp_path / d / "results.csv")))[0] for d in ("whole", "killed")]
    for row in rows:
        for column in TIMING_COLUMNS:
            row.pop(column)
    assert rows[0] == rows[1]  # resumed from its checkpoint: the same test and validation scores
    cell = next((tmp_path / "killed" / "runs").iterdir())
    assert not (cell / "checkpoint.safetensors").exists()  # spent once the cell finished
    assert len((cell / "metrics.jsonl").read_text().splitlines()) == len(
        (tmp_path / "whole" / "runs" / cell.name / "metrics.jsonl").read_text().splitlines())
    why = yaml.safe_load((tmp_path / "killed" / "recipes" / "tiny.yaml").read_text())
    assert why["recipe"]["version"] == 2 and "asked for by name" in why["why"]


def test_study_entries_per_strategy_arguments_several_encoders_and_shared_runs(tmp_path, digits):
    objectives = ["autoencoder", {"name": "denoising", "as": "dn-cnn", "encoder": "cnn", "encoder_args": {"width": 8},
                                  "epochs": 2}]
    strategies = [{"name": "full", "as": "full-lpft", "head_init": "probe", "lr": 3e-3, "from": ["autoencoder"]},
                  {"name": "full", "lr": 1e-2},
                  {"name": "selftrain", "as": "student", "student": "scratch", "targets": "probe+propagate",
                   "features_from": ["autoencoder", "dn-cnn"], "strategy_args": {"epochs": 3, "batch": 64}}]
    config = resolve_study(flags={"labels": "20,40", "seeds": 1, "objectives": objectives, "strategies": strategies,
                                  "recipes": str(write_recipe(tmp_path / "tiny.yaml")), "baselines": "none"},
                           overrides=["pretrain.epochs=2", "finetune.epochs=10", "encoder_args.width=32",
                                      "encoder_args.feature_dim=16"])
    plan = plan_study(config, digits)
    methods = list(dict.fromkeys(c.method for c in plan.cells))
    assert methods == ["scratch", "autoencoder+full-lpft", "autoencoder+full", "dn-cnn+full",
                       "autoencoder+dn-cnn+student", "recipe:tiny"]
    out = tmp_path / "study"
    rows = run_study(config, out, data=digits, echo=lambda line: None)
    assert all(r["accuracy"] > 0.4 for r in rows if r["method"] != "scratch")  # 10 steps: scratch is near chance
    settings = {p.name: yaml.safe_load((p / "config.yaml").read_text()) for p in (out / "runs").iterdir()}
    lpft, plain = settings["autoencoder+full-lpft__count-20__seed0"], settings["autoencoder+full__count-20__seed0"]
    assert (lpft["lr"], lpft["strategy_args"]) == (3e-3, {"head_init": "probe"}) and plain["lr"] == 1e-2
    student = settings["autoencoder+dn-cnn+student__count-20__seed0"]["strategy_args"]
    assert student["features_from"] == [str(out / "pretrain" / "autoencoder"), str(out / "pretrain" / "dn-cnn")]
    assert yaml.safe_load((out / "pretrain" / "dn-cnn" / "config.yaml").read_text())["encoder"] == "cnn"
    tiny = settings["recipe-tiny__count-40__seed0"]["strategy_args"]
    assert tiny["epochs"] == 3 and tiny["features_from"] == [str(out / "pretrain" / "tiny-v2.dn")]  # when: 40 labels
    assert settings["recipe-tiny__count-20__seed0"]["strategy_args"]["epochs"] == 2


@pytest.mark.parametrize("strategies, message", [
    ([{"name": "full", "from": ["simclr"]}], "names pretraining 'simclr', which this study does not run"),
    ([{"name": "full"}, {"name": "full"}], "two methods are named 'autoencoder+full'"),
    ([{"name": "full", "head_init": "lp"}], "head_init must be one of random, probe"),
    ([{"name": "full", "warp": 2}], "has no option 'warp'"),
    ([{"strategy": "full"}], "must be a name or a mapping with a 'name' key"),
])
def test_bad_study_entries_are_refused_before_any_work(digits, strategies, message):
    config = resolve_study(flags={"labels": "20", "seeds": 1, "objectives": "autoencoder", "strategies": strategies})
    with pytest.raises(UserError, match=re.escape(message)):
        plan_study(config, digits)
