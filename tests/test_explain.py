"""``warmstart explain``: Captum attributions, attention rollout, faithfulness curves, the study section."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

pytest.importorskip("captum")

from conftest import TASK_SETUPS, TEXT_ARGS, run_cli, toy_tags  # noqa: E402

from warmstart import pipeline  # noqa: E402
from warmstart.config import FinetuneConfig  # noqa: E402
from warmstart.data import DataBundle, load_data  # noqa: E402
from warmstart.explain import explain  # noqa: E402
from warmstart.explain.methods import input_attribution  # noqa: E402
from warmstart.explain.rollout import attention_rollout, eager_attention  # noqa: E402
from warmstart.rundir import load_run  # noqa: E402


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    """An MLP trained on 300 digits labels (about 0.9 test accuracy), saved as a fine-tuning run."""
    out = tmp_path_factory.mktemp("explain") / "digits-ft"
    config = FinetuneConfig(data="digits", strategy="scratch", encoder="mlp", labels="count=300", epochs=40,
                            lr=3e-3, encoder_args={"width": 64, "feature_dim": 32})
    result = pipeline.finetune(config, out)
    assert result.metrics["accuracy"] > 0.85
    return out


def test_integrated_gradients_sum_to_the_output_difference(digits_model):
    """Completeness (Sundararajan et al., 2017): Σ IG = f(x) − f(baseline), checked for the predicted class
    within the paper's 5% (its check that the path integral has enough steps)."""
    model, meta = load_run(digits_model, "model")
    model.eval()
    data = load_data("digits")
    x = data.batch(data.x_test, np.arange(6))
    for i in range(len(x)):
        xi, baseline = x[i:i + 1], torch.zeros_like(x[i:i + 1])
        c = int(model(xi).argmax())

        def score(inputs, c=c):
            return torch.softmax(model(inputs), 1)[:, c]
        attribution = input_attribution("ig", score, xi, baseline)
        with torch.no_grad():
            difference = float(score(xi) - score(baseline))
        assert abs(float(attribution.detach().sum()) - difference) < 0.05 * max(abs(difference), 0.05), i


def test_rollout_of_a_one_layer_transformer_equals_the_hand_computed_matrix():
    """With the query and key maps zeroed, every head attends uniformly (1/L), so the rollout of the single
    layer is 0.5·(1/L) everywhere plus 0.5 on the diagonal."""
    from transformers import BertConfig, BertModel

    model = BertModel(BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=16, max_position_embeddings=8)).eval()
    attention = model.encoder.layer[0].attention.self
    for layer in (attention.query, attention.key):
        torch.nn.init.zeros_(layer.weight)
        torch.nn.init.zeros_(layer.bias)
    ids = torch.tensor([[2, 7, 9, 4, 3]])
    with eager_attention(model), torch.no_grad():
        attentions = model(input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True).attentions
    length = ids.shape[1]
    expected = torch.full((length, length), 0.5 / length) + 0.5 * torch.eye(length)
    torch.testing.assert_close(attention_rollout(attentions)[0], expected)


def test_rollout_multiplies_the_layers_bottom_first_with_heads_averaged():
    layer1 = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]]])  # two heads: mean 0.5 everywhere
    layer2 = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    # Â1 = [[.75, .25], [.25, .75]], Â2 = [[.5, .5], [0, 1]], rollout = Â2 · Â1
    expected = torch.tensor([[0.5, 0.5], [0.25, 0.75]])
    torch.testing.assert_close(attention_rollout([layer1, layer2])[0], expected)


def test_ig_deletion_beats_a_random_ranking_on_a_trained_digits_model(digits_model):
    result = explain([digits_model], "digits", n=40, methods=["ig", "saliency"], pick="random", maps=False)
    faith = result.results[0].faithfulness
    assert faith["ig"]["deletion_auc"] < faith["random"]["deletion_auc"] - 0.15, faith
    assert faith["ig"]["insertion_auc"] > faith["random"]["insertion_auc"] + 0.15
    assert result.results[0].versus["ig"]["deletion"]["verdict"] == "better than random"


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_explaining_writes_the_report_and_never_changes_the_weights(digits_model, tmp_path):
    before = {k: v.clone() for k, v in load_run(digits_model, "model")[0].state_dict().items()}
    digest = _digest(digits_model / "model.safetensors")
    result = explain([digits_model], "digits", tmp_path / "ex", n=6)
    after = result.results[0].subject.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert _digest(digits_model / "model.safetensors") == digest
    page = (tmp_path / "ex" / "explain.html").read_text()
    assert "src=\"http" not in page and page.count("data:image/png;base64,") > 20
    assert "Wrong predictions" in page and "t-SNE" in page
    info = json.loads((tmp_path / "ex" / "faithfulness.json").read_text())
    assert [r["ranking"] for r in info["models"][0]["table"]] == ["ig", "saliency", "smoothgrad", "random"]
    from warmstart.checkpoint import load_tensors

    tensors, meta = load_tensors(tmp_path / "ex" / "attributions.safetensors")
    assert tensors["scratch/ig/input"].shape == (6, 1, 8, 8) and tensors["scratch/ig/units"].shape == (6, 64)
    assert meta["methods"] == ["ig", "saliency", "smoothgrad"]


@pytest.mark.parametrize("args, message", [
    (["--method", "rollout"], "method 'rollout' does not apply to image data; methods for image data: ig, "
                              "saliency, smoothgrad"),
    (["--n", "361"], "--n 361: the test split of digits has 360 rows"),
    (["--method", "gradcam"], "unknown explanation method 'gradcam'"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(digits_model, tmp_path, capsys, args, message):
    from warmstart.cli import main

    out = tmp_path / "ex"
    assert main(["explain", "--model", str(digits_model), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_a_pretraining_run_is_not_a_fine_tuned_model(tmp_path):
    from warmstart.config import PretrainConfig

    pipeline.pretrain(PretrainConfig(data="digits", epochs=1, encoder_args={"width": 16, "feature_dim": 8}),
                      tmp_path / "pre")
    done = run_cli("explain", "--model", str(tmp_path / "pre"), "--out", str(tmp_path / "ex"))  # as a user would
    assert done.returncode == 2 and "holds a pretrained encoder, not a fine-tuned model" in done.stderr
    assert done.stderr.count("\n") == 1 and not (tmp_path / "ex").exists()


def test_tagger_is_explained_at_its_word_by_token_attributions_and_rollout(tmp_path):
    data = toy_tags()
    config = FinetuneConfig(strategy="scratch", encoder="transformer", encoder_args=TEXT_ARGS, labels="count=100",
                            epochs=30, lr=3e-3)
    pipeline.finetune(config, tmp_path / "tag", data=data)
    model_before = {k: v.clone() for k, v in load_run(tmp_path / "tag", "model")[0].state_dict().items()}
    result = explain([tmp_path / "tag"], data, tmp_path / "ex", n=8, maps=False)
    r = result.results[0]
    assert r.subject.model.encoder.model.config._attn_implementation != "eager"  # restored after rollout
    assert all(torch.equal(model_before[k], v) for k, v in r.subject.model.state_dict().items())
    assert all(e.focus is not None for e in r.explained)
    for method in ("ig", "saliency", "rollout"):
        assert r.faithfulness[method]["deletion_auc"] < r.faithfulness["random"]["deletion_auc"], method
    page = (tmp_path / "ex" / "explain.html").read_text()
    assert 'class="focus"' in page and "rollout" in page


def test_table_attributions_fold_one_hot_levels_into_their_column():
    rng = np.random.default_rng(0)
    levels = rng.integers(0, 3, 200)
    x = np.concatenate([rng.normal(size=(200, 1)), np.eye(3)[levels]], 1).astype(np.float32)
    y = (x[:, 0] + 2 * (levels == 2)).astype(np.float32)
    data = DataBundle("toy-table", x[:160], y[:160], x[160:], y[160:], "table", task="regress",
                      feature_columns=["size", "colour", "colour", "colour"])
    config = FinetuneConfig(strategy="scratch", encoder="mlp", encoder_args={"width": 32, "feature_dim": 16},
                            labels="count=120", epochs=60, lr=3e-3)
    model = pipeline.finetune(config, data=data).model.eval()
    from warmstart.explain.table import TableView

    example = TableView().example(data, model, data.x_test[0])
    assert example.names == ["size", "colour"] and [list(u) for u in example.units] == [[0], [1, 2, 3]]

    def score(inputs):
        return model.destandardise(model(inputs))[:, 0]
    raw = input_attribution("ig", score, example.x, example.baseline)
    folded = example.per_unit(raw)
    with torch.no_grad():
        difference = float(score(example.x) - score(example.baseline))
    assert folded.shape == (2,) and abs(folded.sum() - difference) < 0.05 * max(abs(difference), 0.05)


def test_study_report_gets_an_explanations_section(tmp_path):
    from warmstart.study_config import resolve_study
    from warmstart.study import run_study

    config = resolve_study(flags={"labels": "30", "seeds": 1, "strategies": "full", "baselines": "none"},
                           overrides=["pretrain.epochs=3", "finetune.epochs=20", "finetune.lr=0.01",
                                      "encoder_args.width=32", "encoder_args.feature_dim=16", "explain=4"])
    run_study(config, tmp_path / "study", echo=lambda line: None)
    md = (tmp_path / "study" / "report.md").read_text()
    assert "## Explanations" in md and "autoencoder+full" in md.split("## Explanations")[1]
    assert (tmp_path / "study" / "explain" / "explain.html").is_file()
    page = (tmp_path / "study" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 + 3  # two models' curves and their maps side by side
    # The explained models are the cells' own: fine-tuned again with the same seed, they score the same.
    import csv

    with open(tmp_path / "study" / "results.csv", newline="") as f:
        scores = {r["method"]: float(r["accuracy"]) for r in csv.DictReader(f)}
    for method in ("autoencoder+full", "scratch"):
        again = json.loads((tmp_path / "study" / "explain-models" / method.replace("+", "-") /
                            "test_metrics.json").read_text())
        assert abs(again["accuracy"] - scores[method]) < 1e-6


@pytest.mark.parametrize("task", sorted(TASK_SETUPS))
def test_every_task_is_explained_by_every_method_of_its_modality(task, task_runs, tmp_path):
    """Registry-wide: each task's ``explain_outputs`` and each modality's methods give finite attributions
    (one per unit), curves that start at the input (1) and end at the baseline (0)."""
    from warmstart.explain.views import VIEWS
    from warmstart.tasks import TASKS

    assert set(TASK_SETUPS) == set(TASKS.names())  # a new task brings a setup, and so this test
    data, objective = task_runs[task]
    config = FinetuneConfig(strategy="full", labels=TASK_SETUPS[task][4], epochs=3, lr=3e-3)
    pipeline.finetune(config, tmp_path / "ft", data=data, encoder=objective.encoder)
    if task in ("segment", "detect"):  # no scalar output to attribute is defined for masks and boxes yet
        from warmstart.errors import UserError

        with pytest.raises(UserError, match=f"the {task} task does not say which output to explain"):
            explain([tmp_path / "ft"], data, n=3, maps=False)
        return
    if data.modality == "interactions":  # no attribution views are built for user-item rows yet
        from warmstart.errors import UserError

        with pytest.raises(UserError, match="explain does not handle interactions data yet"):
            explain([tmp_path / "ft"], data, n=3, maps=False)
        return
    result = explain([tmp_path / "ft"], data, n=3, maps=False)
    r = result.results[0]
    assert result.methods == list(VIEWS.get(data.modality).methods)
    for method in result.methods:
        for example, units in zip(r.examples, r.attributions[method]):
            assert units.shape == (len(example.units),) and np.isfinite(units).all()
    curves = r.faithfulness["random"]
    assert abs(curves["deletion_curve"][0] - 1) < 1e-6 and abs(curves["deletion_curve"][-1]) < 1e-6


def test_a_study_skips_explanations_its_task_or_data_cannot_have():
    """A study of masks, boxes or user-item rows reports without an Explanations section instead of failing
    after its last cell (before, the study exited 2 there)."""
    from warmstart.explain.study import explain_problem
    from warmstart.tasks import TASKS

    assert explain_problem(TASKS.get("classify"), "image") == ""
    assert explain_problem(TASKS.get("segment"), "image") == "the segment task does not say which output to explain yet"
    assert explain_problem(TASKS.get("rank"), "interactions") == "explain does not handle interactions data yet"


def test_a_report_says_why_a_study_has_no_explanations(tmp_path):
    """The report of a study whose data explain cannot read gives that reason, not "install the explain
    extra" (before, a MovieLens study with Captum installed was told to install it)."""
    from warmstart.explain.study import report_blocks

    info = {"task": "classify", "modality": "interactions"}
    text = " ".join(b[1] for b in report_blocks(tmp_path, {}, info) if b[0] == "p")
    assert "explain does not handle interactions data yet" in text and "pip install" not in text
    text = " ".join(b[1] for b in report_blocks(tmp_path, {}, {"task": "segment", "modality": "image"}) if b[0] == "p")
    assert "the segment task does not say which output to explain yet" in text
    text = " ".join(b[1] for b in report_blocks(tmp_path, {}, {"task": "classify", "modality": "image"}) if b[0] == "p")
    assert "pip install 'warmstart[explain]'" in text


def test_a_sweep_study_explains_scratch_at_the_best_methods_sweep_value():
    """In a study that sweeps privacy.epsilon, scratch is "scratch[privacy.epsilon=8]": the Explanations
    section compares the best pretrained method with it (before, scratch was missing from the section)."""
    from types import SimpleNamespace

    from warmstart.explain.study import explained_cells
    from warmstart.tasks import TASKS

    methods = {f"{m}[privacy.epsilon={e}]": k for m, k in (("scratch", "scratch"), ("ae+full", "pretrained"))
               for e in (1, 8)}
    rows = [{"method": m, "kind": k, "budget": "count=20", "labels": 20, "seed": s,
             "accuracy": 0.5 + 0.01 * int(m[-2]) + (0.1 if k == "pretrained" else 0)}
            for m, k in methods.items() for s in (0, 1)]
    cells = [SimpleNamespace(method=m, budget="count=20", seed=s) for m in methods for s in (0, 1)]
    runner = SimpleNamespace(task=TASKS.get("classify"), plan=SimpleNamespace(cells=cells))
    chosen = explained_cells(runner, rows)
    assert [(c.method, c.seed) for c in chosen] == [("ae+full[privacy.epsilon=8]", 0),
                                                    ("scratch[privacy.epsilon=8]", 0)]
