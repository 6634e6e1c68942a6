"""`warmstart study` and `warmstart report`: the grid, resume after a kill, validation, the report."""
from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from warmstart.cli import main
from warmstart.study_config import resolve_study
from warmstart.errors import UserError
from warmstart.study.report import write_report
from warmstart.study.summary import Summary, read_results, t_interval
from warmstart.study import TIMING_COLUMNS, plan_study, run_study

TINY = ["pretrain.epochs=5", "finetune.epochs=30", "finetune.lr=0.01", "encoder_args.width=32",
        "encoder_args.feature_dim=16", "explain=0"]  # explanations: tests/test_explain.py

pytestmark = pytest.mark.usefixtures("one_blas_thread")  # conftest: one BLAS thread per module


def tiny_config(**flags):
    return resolve_study(flags={"labels": "20,40", "seeds": 2, "objectives": "autoencoder", **flags}, overrides=TINY)


def read_csv(path: Path, drop=TIMING_COLUMNS) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, digits):
    """An uninterrupted tiny study: every cell kind, two budgets, two seeds."""
    out = tmp_path_factory.mktemp("study") / "full"
    run_study(tiny_config(), out, data=digits, echo=lambda line: None)
    return out


def test_grid_has_every_method_budget_and_seed_once(finished):
    rows = read_csv(finished / "results.csv")
    methods = {r["method"] for r in rows}
    assert methods == {"scratch", "autoencoder+linear", "autoencoder+full", "logistic_regression",
                       "label_spreading", "self_training"}
    assert len(rows) == len(methods) * 2 * 2 == len({(r["method"], r["budget"], r["seed"]) for r in rows})
    assert {r["labels"] for r in rows} == {"20", "40"}
    # Every method at one (budget, seed) was given exactly the same labeled examples.
    for budget in ("count=20", "count=40"):
        for seed in ("0", "1"):
            hashes = {r["labeled_hash"] for r in rows if r["budget"] == budget and r["seed"] == seed}
            assert len(hashes) == 1
    assert rows[0]["labeled_hash"] != [r for r in rows if r["seed"] == "1"][0]["labeled_hash"]
    # Learned something real: well above 10% chance on the 360 test digits.
    assert all(float(r["accuracy"]) > 0.3 for r in rows)


def test_killed_study_resumes_to_the_same_results(finished, tmp_path, digits):
    out, seen = tmp_path / "killed", []

    def kill_after_18(cell, row):  # past the baselines and scratch, inside the pretrained cells
        seen.append(cell.key)
        if len(seen) == 18:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_study(tiny_config(), out, data=digits, after_cell=kill_after_18, echo=lambda line: None)
    assert len(read_csv(out / "results.csv")) == 18 and not (out / "report.html").exists()
    (out / "pretrain" / "autoencoder" / "pretrain_info.json").unlink()  # as if killed right after pretraining
    rerun: list[str] = []
    run_study(tiny_config(), out, data=digits, after_cell=lambda cell, row: rerun.append(cell.key),
              echo=lambda line: None)
    assert len(rerun) == 24 - 18 and not set(rerun) & set(seen)  # finished cells were not recomputed
    assert read_csv(out / "results.csv") == read_csv(finished / "results.csv")
    assert (out / "report.html").exists()


def test_grown_grid_reuses_cells_but_changed_settings_are_refused(finished, tmp_path, digits):
    out = tmp_path / "grow"
    shutil.copytree(finished, out)
    ran: list[str] = []
    run_study(tiny_config(seeds=3), out, data=digits, after_cell=lambda c, r: ran.append(c.key),
              echo=lambda line: None)
    assert ran and all(key.endswith("seed2") for key in ran)
    changed = resolve_study(flags={"labels": "20,40", "seeds": 2, "objectives": "autoencoder"},
                            overrides=TINY + ["finetune.lr=0.02"])
    with pytest.raises(UserError, match="different settings.*finetune"):
        run_study(changed, out, data=digits)


def test_plan_includes_strategies_from_the_registry_and_checks_budgets(digits):
    plan = plan_study(tiny_config(strategies="full", baselines="logistic_regression"), digits)
    assert [c.method for c in plan.cells][::4] == ["logistic_regression", "scratch", "autoencoder+full"]
    assert plan.sizes == {"count=20": 20, "count=40": 40}
    with pytest.raises(UserError, match="per_class=1000"):
        plan_study(resolve_study(flags={"labels": "per_class=1000"}), digits)


@pytest.mark.parametrize("args, message", [
    (["--objectives", "autoencodr"], "did you mean 'autoencoder'"),
    (["--strategies", "ful"], "did you mean 'full'"),
    (["--baselines", "svm"], "unknown baseline 'svm'"),
    (["--labels", "20,lots"], "cannot read label budget 'lots'"),
    (["--labels", "5"], "below the 10 classes"),
    (["pretrain.epoch=3"], "unknown setting 'pretrain.epoch' (did you mean 'epochs'?)"),
    (["finetune.labels=3"], "use --labels instead"),
    (["finetune.epochs=0"], "finetune.epochs=0"),
    (["--seeds", "0"], "seeds=0"),
    (["--objectives", "autoencoder", "pretrain.objective_args.nope=1"], "has no option 'nope'"),
    (["pretrain.epochs=3"], "this one runs only recipes"),
    (["--recipes", "fastest"], "unknown recipe 'fastest' (did you mean 'fast'?)"),
    (["validation=extra=2000"], "the unlabeled pool can spare"),
    (["validation=half"], "cannot read validation 'half'"),
    # The implicit scratch cells are validated too: before the fix, 27 baseline cells were written first.
    (["--strategies", "full", "finetune.strategy_args.head_init=probe"],
     "the study always runs scratch as the baseline, with finetune.strategy_args: strategy 'scratch' has no option"),
    (["--baselines", "ridge"], "baseline 'ridge' does not apply to the classify task"),
    (["--task", "tag"], "--task tag needs word sequences"),
    (["--data", "diabetes", "--labels", "per_class=3"], "per_class=3 does not apply to the regress task"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, args, message):
    out = tmp_path / "never"
    assert main(["study", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_cli_study_then_report(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["study", "--labels", "20", "--seeds", "1", "--strategies", "linear", "--baselines",
                 "logistic_regression", "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "[3/3] autoencoder+linear" in printed and "20 labels" in printed
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0 and (out / "report.md").exists()
    assert "autoencoder+linear" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    from warmstart.cli_parser import build_parser

    usage = build_parser()._subparsers._group_actions[0].choices["study"].format_help()
    assert "--labels" in usage and "pretrain.epochs=20" in usage


def test_report_has_every_section_and_is_self_contained(finished):
    write_report(finished)
    md, page = (finished / "report.md").read_text(), (finished / "report.html").read_text()
    for section in ("Protocol", "Label-efficiency curve", "Test accuracy", "Labels saved by pretraining",
                    "Confusion matrix", "Test embeddings of the best pretrained encoder", "Compute"):
        assert f"## {section}" in md and section in page
    assert page.count('src="data:image/png;base64,') == 3 and "src=\"http" not in page
    for png in ("curve.png", "confusion.png", "embedding.png"):
        assert (finished / png).read_bytes()[:4] == b"\x89PNG"
    assert md.count("**") >= 4  # best per budget marked


def test_t_interval_and_labels_saved_interpolate_in_log_space():
    mean, std, ci = t_interval([1.0, 2.0, 3.0])
    assert (mean, std) == (2.0, 1.0) and ci == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    rows = [{"method": m, "kind": k, "budget": f"count={n}", "labels": n, "seed": 0, "accuracy": a,
             "macro_f1": a, "strategy": m, "objective": "x"}
            for m, k, n, a in [("scratch", "scratch", 10, 0.5), ("scratch", "scratch", 100, 0.7),
                               ("ae+full", "pretrained", 10, 0.6), ("ae+full", "pretrained", 100, 0.9),
                               ("ae+lin", "pretrained", 10, 0.4), ("ae+lin", "pretrained", 100, 0.7)]]
    summary = Summary(rows)
    assert summary.labels_saved("ae+full", "count=10") == "3.2× (32 labels)"  # 10^1.5 = 31.6
    assert summary.labels_saved("ae+full", "count=100").startswith("> 1.0× (> max budget 100)")
    assert summary.labels_saved("ae+lin", "count=10") == "≤ 1.0×"
    assert summary.labels_saved("ae+lin", "count=100") == "1.0× (100 labels)"
    assert summary.best("count=10") == "ae+full"


def test_report_reads_results_written_by_hand(tmp_path):
    """`warmstart report` needs only results.csv: the sections it cannot draw say so."""
    (tmp_path / "results.csv").write_text(
        "objective,strategy,labels,seed,accuracy\nnone,scratch,10,0,0.5\nnone,scratch,10,1,0.6\n"
        "ae,full,10,0,0.7\nae,full,10,1,0.8\n")
    write_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "ae+full" in md and "Confusion matrix" not in md  # no cells/*.json: nothing to draw it from
    assert len(read_results(tmp_path)) == 4


def test_report_of_shapeless_inputs_names_the_modality_alone(tmp_path):
    """Text has no input shape: the protocol says "text inputs, 2 classes" (before: "text inputs , 2 classes")."""
    (tmp_path / "results.csv").write_text("objective,strategy,labels,seed,accuracy\nnone,scratch,10,0,0.5\n")
    (tmp_path / "study_info.json").write_text(json.dumps(
        {"modality": "text", "input_shape": [], "class_names": ["negative", "positive"], "task": "classify"}))
    write_report(tmp_path)
    assert "(text inputs, 2 classes)" in (tmp_path / "report.md").read_text()


def test_yaml_config_flags_and_overrides_merge_with_defaults_in_one_place(tmp_path, capsys):
    (tmp_path / "study.yaml").write_text("labels: [20, per_class=3]\nseeds: 2\nobjectives: [autoencoder]\n"
                                         "pretrain:\n  epochs: 7\nfinetune: {lr: 0.01}\n")
    args = ["study", "--config", str(tmp_path / "study.yaml"), "--seeds", "4", "finetune.epochs=9", "--print-config"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    config = resolve_study(file=tmp_path / "study.yaml", flags={"seeds": 4}, overrides=["finetune.epochs=9"])
    assert config.labels == ["count=20", "per_class=3"] and config.seeds == 4
    assert config.pretrain["epochs"] == 7 and config.pretrain["batch_size"] == 128  # PretrainConfig's default
    assert config.finetune["epochs"] == 9 and config.finetune["lr"] == 0.01
    assert "per_class=3" in printed and "epochs: 9" in printed


def test_demo_is_a_study_preset_with_the_demo_outputs(tmp_path, capsys):
    from warmstart.demo import run_demo

    rows = run_demo(tmp_path / "demo", seeds=1, quick=True)
    printed = capsys.readouterr().out
    assert {r["method"] for r in rows} >= {"scratch", "simclr+lpft", "simclr+selftrain", "label_spreading"}
    header = (tmp_path / "demo" / "results.csv").read_text().splitlines()[0].split(",")
    assert {"objective", "strategy", "labels", "seed", "accuracy"} <= set(header)
    assert (tmp_path / "demo" / "report.md").exists() and (tmp_path / "demo" / "curve.png").exists()
    assert "mean ± std (ddof=1) over seeds" in printed and "vs scratch" in printed


def test_one_yaml_file_serves_pretrain_finetune_and_study(capsys):
    """examples/classic_autoencoder.yaml (shared keys + pretrain:/finetune: sections) read as a study."""
    example = Path(__file__).resolve().parents[1] / "examples" / "classic_autoencoder.yaml"
    config = resolve_study(file=example, flags={"labels": "100,1000"})
    assert (config.data, config.encoder, config.encoder_args) == ("fashion-mnist", "linear", {"feature_dim": 10})
    assert config.objectives == ["autoencoder"] and config.strategies == ["full"]
    assert config.labels == ["count=100", "count=1000"]  # the flag wins over the file's per_class=10
    assert config.pretrain["objective_args"] == {"decoder_hidden": 0} and config.pretrain["lr"] == 0.003
    assert config.finetune["lr"] == 0.03 and config.finetune["batch_size"] == 10
    assert main(["study", "--config", str(example), "--print-config"]) == 0
    assert "per_class=10" in capsys.readouterr().out


def test_every_registered_objective_and_strategy_can_be_planned(digits):
    """New objectives/strategies join studies through their registries, with no study code to change."""
    from warmstart.objectives import OBJECTIVES
    from warmstart.strategies import STRATEGIES

    image = [o for o in OBJECTIVES.names() if "image" in OBJECTIVES.get(o).modalities]  # digits: text ones refused
    everything = {"objectives": ",".join(image), "strategies": ",".join(STRATEGIES.names())}
    config = resolve_study(flags={**everything, "encoder": "cnn", "seeds": 1}, overrides=["encoder_args.width=8"])
    methods = {cell.method for cell in plan_study(config, digits).cells}
    pretrained = [s for s in STRATEGIES.names() if STRATEGIES.get(s).load_pretrained]
    assert {f"{o}+{s}" for o in image for s in pretrained} <= methods



def test_every_confusion_count_is_readable_on_its_cell():
    """Each count is white on a dark cell and black on a light one. Before, the shades ran from the smallest
    count to the largest while the label colour was chosen against 0..max, so on a balanced binary task the
    smallest off-diagonal count was white on white."""
    from matplotlib.colors import to_rgb

    from warmstart.study.plots import confusion_figure

    matrix = np.array([[1219, 911], [823, 1273]])
    ax = confusion_figure(matrix, ["negative", "positive"], "t").axes[0]
    image = ax.images[0]
    for text in ax.texts:
        i, j = round(text.get_position()[1]), round(text.get_position()[0])
        r, g, b, _ = image.cmap(image.norm(matrix[i, j]))
        shade = 0.299 * r + 0.587 * g + 0.114 * b
        assert (to_rgb(text.get_color()) == (1.0, 1.0, 1.0)) == (shade < 0.5), (int(matrix[i, j]), shade)


def test_protocol_counts_are_singular_for_one():
    from warmstart.study.protocol import _count

    assert _count(1, "epoch") == "1 epoch" and _count(5, "epoch") == "5 epochs" and _count("?", "epoch") == "? epochs"


def test_the_best_method_overall_is_chosen_on_validation_scores_when_every_cell_has_one():
    """The report's "best pretrained encoder" follows the validation rule: here test and validation disagree
    (it used to take the test means)."""
    from warmstart.study.summary import Summary

    rows = [{"method": m, "kind": "pretrained", "budget": "count=20", "labels": 20, "seed": 0, "accuracy": test,
             "val_accuracy": val} for m, test, val in [("a+full", 0.90, 0.70), ("b+full", 0.80, 0.75)]]
    assert Summary(rows).best_overall(("pretrained",)) == "b+full"
    for row in rows:
        row["val_accuracy"] = None  # no validation rows: the test means describe the results
    assert Summary(rows).best_overall(("pretrained",)) == "a+full"
