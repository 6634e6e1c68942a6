"""What individual strategies promise beyond the registry-wide contract (``test_strategies_registry.py``):
layer-wise LR decay, LP-FT's probe head, self-training's targets and students; ``joint`` and ``selftrain``
run end to end (CLI pretrain → finetune) on digits and must learn.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from warmstart import pipeline
from warmstart.config import FinetuneConfig, PretrainConfig
from warmstart.data import DataBundle
from warmstart.data.splits import LabelBudget
from warmstart.errors import UserError
from warmstart.evaluate import embed
from warmstart.finetune_start import objective_around
from warmstart.models import Classifier
from warmstart.probes import LinearProbe
from warmstart.strategies import STRATEGIES, FinetuneContext, Full, layer_ids
from warmstart.tasks import TASKS
from warmstart.tasks.classify import spread_labels

CLASSIFY = TASKS.get("classify")


def propagate(features, ctx, neighbors, alpha=0.2):
    return spread_labels(features, ctx.data.y_train, ctx.labeled, ctx.model.head.out_features, neighbors, alpha)


def probe(features, ctx, c=1.0):
    fitted = LinearProbe("logistic", c=c).fit(features[ctx.labeled], ctx.data.y_train[ctx.labeled],
                                         ctx.model.head.out_features, scale_from=features)
    return torch.as_tensor(fitted.predict_proba(features), dtype=torch.float32)

# Options that make each strategy's tiny run cheap; everything else is the strategy's default.
TINY_ARGS = {"joint": {"unlabeled_batch": 64, "epochs": 2}, "selftrain": {"batch": 64, "epochs": 2}}


@pytest.fixture(scope="module")
def pretrained(digits):
    """A small CNN pretrained with the autoencoder for a few epochs (seconds on one thread)."""
    config = PretrainConfig(objective="autoencoder", encoder="cnn", encoder_args={"width": 8}, epochs=3)
    return pipeline.pretrain(config, data=digits).objective


def _context(strategy_name: str, digits, objective, epochs: int = 6) -> FinetuneContext:
    config = FinetuneConfig(strategy=strategy_name, labels="per_class=5", epochs=epochs, batch_size=25, lr=3e-3)
    labeled, unlabeled = LabelBudget.parse(config.labels).split(digits.y_train, 0)
    torch.manual_seed(0)
    encoder = pipeline.build_encoder("cnn", digits.input_shape, {"width": 8})
    strategy = STRATEGIES.build(strategy_name, **TINY_ARGS.get(strategy_name, {}))
    if strategy.load_pretrained:
        encoder.load_state_dict(objective.encoder.state_dict())
    model = Classifier(encoder, digits.num_classes)
    aux = objective_around(objective, encoder) if strategy.needs_objective else None
    return strategy, FinetuneContext(config, digits, CLASSIFY, labeled, unlabeled, model, aux)


def test_layer_decay_groups_cover_every_parameter_once_with_growing_scales(digits, pretrained):
    model = Classifier(pipeline.build_encoder("cnn", digits.input_shape, {"width": 8}), digits.num_classes)
    groups = Full(layer_decay=0.5).param_groups(model)
    seen = [id(p) for g in groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in model.parameters())
    scales = [g["lr_scale"] for g in groups]
    assert scales == sorted(scales) and scales[-1] == 1.0 and scales[0] == 0.5 ** (len(groups) - 1)
    assert len(set(layer_ids(model.encoder).values())) == 5  # the CNN's five convs


@pytest.mark.parametrize("bad", [{"augment": "strong"}, {"layer_decay": 1.5}, {"lam": -1.0}, {"temperature": 0}])
def test_bad_strategy_options_are_one_line_user_errors(bad, digits):
    name = "joint" if "lam" in bad else "selftrain" if "temperature" in bad else "full"
    with pytest.raises(UserError, match="strategy"):
        pipeline.finetune(FinetuneConfig(strategy=name, strategy_args=bad, epochs=1), data=digits)


def test_joint_without_a_pretraining_run_says_how_to_fix_it(digits):
    with pytest.raises(UserError, match="--from"):
        pipeline.finetune(FinetuneConfig(strategy="joint", epochs=1), data=digits)


def _accuracy(cli, run_dir, *args):
    done = cli("finetune", "--data", "digits", "--labels", "per_class=5", "--out", str(run_dir), *args)
    assert done.returncode == 0, done.stderr
    return json.loads((run_dir / "test_metrics.json").read_text())["accuracy"]


def test_joint_and_selftrain_end_to_end_on_digits(cli, tmp_path):
    """CLI pretrain, then joint (CLI) and selftrain (API) from that run directory: both learn (chance 0.10)."""
    pre = tmp_path / "pre"
    done = cli("pretrain", "--data", "digits", "--objective", "autoencoder", "--encoder", "mlp", "--out", str(pre),
               "epochs=10")
    assert done.returncode == 0, done.stderr
    assert (pre / "objective.safetensors").exists()
    joint = _accuracy(cli, tmp_path / "joint", "--from", str(pre), "--strategy", "joint", "epochs=60",
                      "strategy_args.lam=0.5")
    config = FinetuneConfig(pretrained=str(pre), strategy="selftrain", epochs=60)  # in process: one start-up less
    selftrain = pipeline.finetune(config, tmp_path / "selftrain").metrics["accuracy"]
    assert joint > 0.75 and selftrain > 0.75, (joint, selftrain)
    log = [json.loads(line) for line in (tmp_path / "joint" / "metrics.jsonl").read_text().splitlines()]
    assert {"loss_fine", "loss_pre", "lam"} <= set(log[0]) and np.isfinite(log[-1]["loss_pre"])


def test_label_spreading_targets_are_distributions_that_recover_labels(digits):
    """`selftrain(targets=propagate)`'s targets: on digits pixels, 5 labels per class spread to the pool."""
    labeled, unlabeled = LabelBudget.parse("per_class=5").split(digits.y_train, 0)
    model = Classifier(pipeline.build_encoder("mlp", digits.input_shape, {}), digits.num_classes)
    ctx = FinetuneContext(FinetuneConfig(), digits, CLASSIFY, labeled, unlabeled, model)
    targets = propagate(digits.batch(digits.x_train).flatten(1).numpy(), ctx, neighbors=10)
    assert targets.shape == (len(digits.x_train), digits.num_classes)
    assert torch.allclose(targets.sum(1), torch.ones(len(targets)), atol=1e-5)
    recovered = (targets[unlabeled].argmax(1).numpy() == digits.y_train[unlabeled]).mean()
    assert recovered > 0.85, recovered
    far = propagate(digits.batch(digits.x_train).flatten(1).numpy(), ctx, neighbors=10, alpha=0.99)
    assert (far[unlabeled].argmax(1).numpy() == digits.y_train[unlabeled]).mean() > 0.85


def test_selftrain_on_the_pretrained_graph_spreads_over_pretrained_features_without_a_teacher(digits, pretrained):
    """`graph="pretrained"`: targets are label spreading over the untouched pretrained encoder's features
    (labeled rows one-hot, with the strategy's `neighbors` and `spread_alpha`), and with `targets="propagate"`
    no teacher is fine-tuned at all."""
    _, ctx = _context("selftrain", digits, pretrained)
    strategy = STRATEGIES.build("selftrain", graph="pretrained", epochs=1, batch=64, spread_alpha=0.9)
    encoder_before = {k: v.clone() for k, v in ctx.model.encoder.state_dict().items()}
    strategy.setup(ctx)
    assert all(torch.equal(v, ctx.model.encoder.state_dict()[k]) for k, v in encoder_before.items())
    features = embed(ctx.model.encoder, digits, digits.x_train)
    expected = propagate(features, ctx, neighbors=10, alpha=0.9)
    expected[ctx.labeled] = torch.nn.functional.one_hot(torch.from_numpy(digits.y_train[ctx.labeled]), 10).float()
    assert torch.allclose(strategy.targets, expected)
    assert not torch.allclose(expected[ctx.unlabeled], propagate(features, ctx, neighbors=10)[ctx.unlabeled])
    agreement = (strategy.targets[ctx.unlabeled].argmax(1).numpy() == digits.y_train[ctx.unlabeled]).mean()
    assert agreement > 0.5, agreement  # autoencoder features of 3 epochs: far above chance (0.10)
    with pytest.raises(ValueError, match="graph"):
        STRATEGIES.build("selftrain", graph="student")
    with pytest.raises(ValueError, match="spread_alpha must be between 0 and 1"):
        STRATEGIES.build("selftrain", spread_alpha=1.0)


def test_lp_ft_head_starts_as_the_logistic_regression_probe(digits, pretrained):
    """`full(head_init="probe")`: before any step the classifier predicts what scikit-learn's probe on the
    standardised frozen features predicts, on held-out rows too (a random head agrees with it 1 time in 10)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _, ctx = _context("full", digits, pretrained)
    STRATEGIES.build("full", head_init="probe").setup(ctx)
    z = embed(ctx.model.encoder, digits, digits.x_train)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probe.fit(z[ctx.labeled], digits.y_train[ctx.labeled])
    with torch.no_grad():
        ctx.model.eval()
        ours = ctx.model(digits.batch(digits.x_train[ctx.unlabeled])).argmax(1).numpy()
    assert (ours == probe.predict(z[ctx.unlabeled])).mean() > 0.99
    assert (ours == digits.y_train[ctx.unlabeled]).mean() > 0.5
    with pytest.raises(ValueError, match="head_init"):
        STRATEGIES.build("full", head_init="zeros")


@pytest.fixture(scope="module")
def mlp_run(digits, tmp_path_factory):
    """A pretraining run directory (an MLP autoencoder, a few seconds) to draw extra features from."""
    out = tmp_path_factory.mktemp("mlp_run")
    config = PretrainConfig(objective="autoencoder", encoder="mlp", encoder_args={"feature_dim": 32}, epochs=3)
    pipeline.pretrain(config, out, data=digits)
    return out


def test_selftrain_probe_targets_over_features_from_another_run(digits, pretrained, mlp_run):
    """`targets="probe+propagate"` with `features_from`: the probe and the kNN graph see the pretrained CNN's
    features next to another run's MLP features (each block unit-length), and their averaged targets recover
    the pool's labels better than either encoder's spread alone would need (far above chance, 0.10)."""
    _, ctx = _context("selftrain", digits, pretrained)
    strategy = STRATEGIES.build("selftrain", graph="pretrained", targets="probe+propagate",
                                features_from=[str(mlp_run)], epochs=1, batch=64)
    features = strategy.features(ctx.model.encoder, ctx)
    own = ctx.model.encoder.feature_dim
    assert features.shape == (len(digits.x_train), own + 32)
    assert np.allclose(np.linalg.norm(features[:, :own], axis=1), 1, atol=1e-4)
    assert np.allclose(np.linalg.norm(features[:, own:], axis=1), 1, atol=1e-4)
    strategy.setup(ctx)
    targets = strategy.targets
    assert torch.allclose(targets.sum(1), torch.ones(len(targets)), atol=1e-5)
    probe_alone = probe(features, ctx)
    assert (probe_alone[ctx.unlabeled].argmax(1).numpy() == digits.y_train[ctx.unlabeled]).mean() > 0.7
    assert (targets[ctx.unlabeled].argmax(1).numpy() == digits.y_train[ctx.unlabeled]).mean() > 0.7
    assert torch.equal(targets[ctx.labeled].argmax(1), torch.from_numpy(digits.y_train[ctx.labeled]))


def test_selftrain_probe_c_sets_the_probe_targets_penalty(digits, pretrained):
    """`probe_c`: the `probe` targets are the logistic probe at that C (a smaller C gives softer, different
    targets than the default 1); it is refused where no logistic probe makes the targets."""
    _, ctx = _context("selftrain", digits, pretrained)
    strategy = STRATEGIES.build("selftrain", graph="pretrained", targets="probe", probe_c=0.01, epochs=1, batch=64)
    strategy.setup(ctx)
    features = strategy.features(ctx.model.encoder, ctx)
    expected = probe(features, ctx, c=0.01)
    expected[ctx.labeled] = torch.nn.functional.one_hot(torch.from_numpy(digits.y_train[ctx.labeled]), 10).float()
    assert torch.allclose(strategy.targets, expected, atol=1e-6)
    default = probe(features, ctx)
    unlabeled = ctx.unlabeled
    assert expected[unlabeled].max(1).values.mean() < default[unlabeled].max(1).values.mean() - 0.05
    with pytest.raises(ValueError, match="probe_c .* must be > 0"):
        STRATEGIES.build("selftrain", probe_c=0.0)
    propagate_only = STRATEGIES.build("selftrain", targets="propagate", probe_c=0.1)
    with pytest.raises(UserError, match="probe_c does not apply"):
        propagate_only.check(CLASSIFY, digits, "selftrain")
    with pytest.raises(UserError, match="probe_c does not apply"):
        STRATEGIES.build("selftrain", targets="probe", probe_c=0.1).check(TASKS.get("regress"), digits, "selftrain")


def test_selftrain_labeled_batch_adds_the_true_labels_to_every_student_step(digits, pretrained):
    _, ctx = _context("selftrain", digits, pretrained)
    strategy = STRATEGIES.build("selftrain", graph="pretrained", labeled_batch=16, epochs=1, batch=64)
    strategy.setup(ctx)
    pool, labeled = strategy.streams(ctx)
    assert (pool.size, labeled.size, labeled.batch_size) == (len(digits.x_train), len(ctx.labeled), 16)
    batches = [s.make_batch(np.arange(s.batch_size)) for s in (pool, labeled)]
    loss, logs = strategy.loss(ctx.model, *batches)
    assert "loss_labeled" in logs and loss > logs["loss_labeled"] > 0


def test_selftrain_features_from_bad_runs_are_one_line_user_errors(digits, tmp_path):
    with pytest.raises(UserError, match="features_from: no encoder.safetensors"):
        pipeline.finetune(FinetuneConfig(strategy="selftrain", strategy_args={"features_from": [str(tmp_path)]},
                                         epochs=1), data=digits)
    other = tmp_path / "other"  # pretrained on 4x4 images: its features cannot describe 8x8 digits
    small = DataBundle("tiny", digits.x_train[:64, :, :4, :4], digits.y_train[:64], digits.x_test[:16, :, :4, :4],
                       digits.y_test[:16], digits.modality, digits.class_names, digits.scale)
    pipeline.pretrain(PretrainConfig(objective="autoencoder", epochs=1), other, data=small)
    with pytest.raises(UserError, match="shape"):
        pipeline.finetune(FinetuneConfig(strategy="selftrain", strategy_args={
            "features_from": [str(other)], "graph": "pretrained"}, epochs=1), data=digits,
            encoder=pipeline.build_encoder("mlp", digits.input_shape, {}))


def test_selftrain_scratch_student_of_another_architecture_learns_from_other_runs(digits, mlp_run):
    """`student="scratch"`: no --from; a CNN (the config's encoder) from random init learns the targets
    of another run's MLP features, and beats chance (0.10) by far."""
    config = FinetuneConfig(strategy="selftrain", encoder="cnn", encoder_args={"width": 8}, seed=0, strategy_args={
        "student": "scratch", "features_from": [str(mlp_run)], "targets": "probe+propagate", "epochs": 8,
        "batch": 64})
    result = pipeline.finetune(config, data=digits)
    assert result.model.encoder.spec["encoder"] == "cnn"
    assert result.metrics["accuracy"] > 0.75, result.metrics
    for bad in ({"student": "scratch"}, {"student": "scratch", "targets": "probe"}, {"student": "teacher"},
                {"student": "scratch", "targets": "teacher+probe", "graph": "pretrained"}):
        with pytest.raises(ValueError, match="student"):
            STRATEGIES.build("selftrain", **bad)


def test_selftrain_from_teacher_starts_the_scratch_student_at_its_trained_teacher(digits):
    """`student="scratch", targets="teacher", from_teacher=True`: classic self-training without pretraining.
    The teacher (the config's CNN from random init, trained on 50 labels) is what the student starts from, so
    before any student step the model already predicts far above chance; without ``from_teacher`` it is the
    untrained copy the teacher started from."""
    def after_setup(**args) -> float:
        _, ctx = _context("scratch", digits, None, epochs=20)
        strategy = STRATEGIES.build("selftrain", student="scratch", targets="teacher", batch=64, epochs=1, **args)
        model = strategy.setup(ctx).eval()
        with torch.no_grad():
            predicted = model(digits.batch(digits.x_test)).argmax(1).numpy()
        return float((predicted == digits.y_test).mean())

    assert after_setup(from_teacher=True) > 0.6 > 0.25 > after_setup()
    with pytest.raises(ValueError, match="from_teacher"):
        STRATEGIES.build("selftrain", graph="pretrained", from_teacher=True)
