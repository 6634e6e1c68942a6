"""DP-SGD through Opacus: the accountant's ε, per-example clipping, BatchNorm conversion, resume, refusals."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("opacus")

from warmstart.config import FinetuneConfig, PretrainConfig, PrivacySettings  # noqa: E402
from warmstart.engine import Stream  # noqa: E402
from warmstart.errors import UserError  # noqa: E402
from warmstart.pipeline import finetune, pretrain  # noqa: E402
from warmstart.privacy import PoissonStream, PrivateTraining, default_delta, resolve  # noqa: E402
from warmstart.rundir import load_run  # noqa: E402

SMALL = {"width": 32, "feature_dim": 16}


def private_config(**extra) -> FinetuneConfig:
    base = dict(strategy="scratch", labels="per_class=20", epochs=4, batch_size=40, lr=1e-2, threads=1,
                encoder_args={**SMALL, "norm": "group"}, privacy={"noise_multiplier": 1.1})
    return FinetuneConfig(**{**base, **extra})


def test_default_delta_is_the_power_of_ten_below_one_over_n():
    assert default_delta(50) == 0.01
    assert default_delta(100) == 0.001  # strictly below 1/N
    assert default_delta(30000) == 1e-5
    assert default_delta(1000) == 1e-4


def test_poisson_stream_draws_each_row_with_the_sample_rate_as_a_function_of_the_step():
    stream = PoissonStream.from_stream(Stream(1000, 50, lambda rows: (torch.as_tensor(rows),)))
    assert stream.sample_rate == pytest.approx(1 / 20) and stream.steps_per_epoch == 20
    sizes = [len(stream.indices_at(step, 0, 0)) for step in range(400)]
    assert abs(np.mean(sizes) - 50) < 2.0 and np.std(sizes) > 3  # a Binomial(1000, 0.05) size, not a fixed 50
    again = PoissonStream.from_stream(Stream(1000, 50, lambda rows: (torch.as_tensor(rows),)))
    assert np.array_equal(stream.indices_at(7, 0, 0), again.indices_at(7, 0, 0))
    assert not np.array_equal(stream.indices_at(7, 0, 0), stream.indices_at(8, 0, 0))


def test_reported_epsilon_is_opacus_accountants_for_the_same_steps_and_sample_rate(digits):
    from opacus.accountants import PRVAccountant, RDPAccountant

    result = finetune(private_config(), data=digits)
    info = result.metrics["privacy"]
    n, batch = 200, 40
    assert info["sample_rate"] == pytest.approx(1 / math.ceil(n / batch))
    assert info["steps"] == 4 * math.ceil(n / batch)
    accountant = PRVAccountant()
    accountant.history = [(1.1, info["sample_rate"], info["steps"])]
    assert result.metrics["delta"] == default_delta(n)
    assert result.metrics["epsilon"] == pytest.approx(accountant.get_epsilon(result.metrics["delta"]), abs=1e-4)
    assert [r["epsilon"] for r in result.history] == sorted(r["epsilon"] for r in result.history)  # logged each epoch
    rdp = finetune(private_config(privacy={"noise_multiplier": 1.1, "accountant": "rdp"}), data=digits)
    check = RDPAccountant()
    check.history = [(1.1, info["sample_rate"], info["steps"])]
    assert rdp.metrics["epsilon"] == pytest.approx(check.get_epsilon(rdp.metrics["delta"]), abs=1e-4)


def test_a_target_epsilon_is_reached_and_not_exceeded(digits):
    result = finetune(private_config(privacy={"epsilon": 2.0, "accountant": "rdp"}), data=digits)
    assert 1.9 <= result.metrics["epsilon"] <= 2.0 + 1e-6


def test_one_private_step_clips_every_per_example_gradient():
    torch.manual_seed(0)
    x, y = torch.randn(64, 10) * 5, torch.randint(0, 3, (64,))
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))
    private = PrivateTraining(resolve(PrivacySettings(noise_multiplier=1.0, max_grad_norm=0.1), 64, "rows"), 64)
    optimizer, (stream,) = private.attach(model, torch.optim.SGD(model.parameters(), lr=0.1),
                                          [Stream(64, 16, lambda rows: (x[rows], y[rows]))], epochs=1)
    rows = stream.indices_at(0, 0, 0)
    nn.functional.cross_entropy(model(x[rows]), y[rows]).backward()
    params = [p for p in model.parameters()]
    per_example = torch.cat([p.grad_sample.flatten(1) for p in params], 1)  # (B, all weights)
    assert per_example.shape[0] == len(rows)
    norms = per_example.norm(dim=1)
    assert (norms > 0.1).all()  # every example's raw gradient is above the bound: all get clipped
    optimizer.clip_and_accumulate()
    clipped = per_example * (0.1 / (norms + 1e-6)).clamp(max=1.0)[:, None]
    summed = torch.cat([p.summed_grad.flatten() for p in params])
    assert torch.allclose(summed, clipped.sum(0), atol=1e-6)
    assert (clipped.norm(dim=1) <= 0.1 + 1e-6).all()
    # The noise the optimiser adds next has std noise_multiplier * max_grad_norm.
    assert optimizer.noise_multiplier == 1.0 and optimizer.max_grad_norm == 0.1
    private.detach()


def test_a_batchnorm_encoder_is_converted_and_the_run_says_so(tmp_path, digits):
    pre = pretrain(PretrainConfig(objective="denoising", epochs=2, encoder_args=SMALL, threads=1), tmp_path / "pre",
                   data=digits)
    assert any(isinstance(m, nn.BatchNorm1d) for m in pre.encoder.modules())
    config = FinetuneConfig(pretrained=str(tmp_path / "pre"), strategy="full", labels="per_class=20", epochs=3,
                            batch_size=40, threads=1, privacy={"noise_multiplier": 1.0})
    result = finetune(config, tmp_path / "ft", data=digits)
    written = (tmp_path / "ft" / "config.yaml").read_text()
    assert "encoder_args.norm: batch -> group" in written and "in-place activations" in written
    assert any("batch -> group" in c for c in result.metrics["privacy"]["changes"])
    model, meta = load_run(tmp_path / "ft", "model")
    assert meta["encoder_args"]["norm"] == "group"
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in model.modules())
    assert json.loads((tmp_path / "ft" / "test_metrics.json").read_text())["epsilon"] > 0
    # The linear probe's frozen encoder keeps its BatchNorm: in eval mode it treats each example alone.
    linear = finetune(config.model_copy(update={"strategy": "linear", "strategy_args": {"head_init": "random"}}),
                      data=digits)
    assert any(isinstance(m, nn.BatchNorm1d) for m in linear.model.modules())


class Killed(KeyboardInterrupt):
    pass


def test_resume_of_a_private_run_gives_the_same_epsilon_and_bit_identical_weights(tmp_path, digits):
    config = private_config(epochs=3, checkpoint_every=4)

    def kill(step):
        if step == 9:
            raise Killed()

    whole = finetune(config, tmp_path / "whole", data=digits)
    with pytest.raises(Killed):
        finetune(config, tmp_path / "killed", data=digits, after_step=kill)
    resumed = finetune(config, tmp_path / "killed", data=digits, resume=True)
    assert resumed.metrics["epsilon"] == whole.metrics["epsilon"] > 0
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_private_fine_tuning_learns(digits):
    # 500 private rows, σ = 0.6 for 150 steps (ε ≈ 18 at δ = 1e-3): DP-SGD's noise slows learning, not stops it.
    result = finetune(private_config(labels="per_class=50", batch_size=50, epochs=15,
                                     privacy={"noise_multiplier": 0.6}), data=digits)
    assert result.history[-1]["loss"] < result.history[0]["loss"] - 0.5
    assert result.metrics["accuracy"] > 0.4  # ten classes: chance is 0.1


def test_private_pretraining_runs_dp_sgd_on_the_objective(tmp_path, digits):
    config = PretrainConfig(objective="denoising", epochs=2, encoder_args=SMALL, threads=1,
                            privacy={"noise_multiplier": 1.0, "private_pool": True})
    result = pretrain(config, tmp_path / "pre", data=digits)
    assert result.privacy["epsilon"] > 0 and result.privacy["delta"] == default_delta(len(digits.x_train))
    assert json.loads((tmp_path / "pre" / "privacy.json").read_text())["epsilon"] == result.privacy["epsilon"]
    assert "norm: batch -> group" in (tmp_path / "pre" / "config.yaml").read_text()
    assert [r["epsilon"] for r in result.history][-1] == result.privacy["epsilon"]


@pytest.mark.parametrize("extra, message", [
    ({"strategy": "selftrain"}, "strategy 'selftrain' cannot be made differentially private: its soft targets"),
    ({"strategy": "full", "strategy_args": {"head_init": "probe"}}, "head_init=probe fits its"),
    ({"strategy": "linear"}, "(give strategy_args.head_init=random)"),
    ({"privacy": {"noise_multiplier": 1.0, "delta": 0.01}}, "privacy.delta=0.01 is not below 1/N = 0.005"),
    ({"privacy": {"delta": 1e-4}}, "privacy needs privacy.epsilon"),
    ({"privacy": {"epsilon": 1.0, "noise_multiplier": 1.0}}, "not both"),
])
def test_what_cannot_be_private_is_refused_in_one_line(digits, extra, message):
    with pytest.raises(UserError) as err:
        finetune(private_config(**extra), data=digits)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_private_pretraining_refuses_a_contrastive_objective_and_a_public_pool(digits):
    with pytest.raises(UserError, match="objective 'simclr' cannot be made differentially private: NT-Xent"):
        pretrain(PretrainConfig(objective="simclr", privacy={"epsilon": 3, "private_pool": True}), data=digits)
    with pytest.raises(UserError, match="add privacy.private_pool=true"):
        pretrain(PretrainConfig(objective="denoising", privacy={"epsilon": 3}), data=digits)


@pytest.mark.parametrize("override, message", [
    ("privacy.epsilon=0", "setting privacy.epsilon=0"),
    ("privacy.epsilon=-1", "setting privacy.epsilon=-1"),
    ("privacy.delta=0.5", "privacy.delta=0.5 is not below 1/N"),
    ("privacy.accountant=gdp", "setting privacy.accountant='gdp'"),
])
def test_cli_bad_privacy_settings_exit_2_and_write_nothing(cli, tmp_path, override, message):
    out = tmp_path / "run"
    done = cli("finetune", "--data", "digits", "--strategy", "scratch", "--out", str(out), override,
               "privacy.noise_multiplier=1" if "epsilon" not in override else "epochs=1")
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not out.exists()


def test_cli_refuses_a_strategy_that_cannot_be_private(cli, tmp_path):
    done = cli("finetune", "--data", "digits", "--strategy", "joint", "--out", str(tmp_path / "run"),
               "privacy.epsilon=3")
    assert done.returncode == 2
    assert "strategy 'joint' cannot be made differentially private: each step adds the pretraining loss" in done.stderr
    assert not (tmp_path / "run").exists()


def test_a_study_sweeps_epsilon_and_its_report_draws_accuracy_versus_epsilon(tmp_path, digits):
    from warmstart.study_config import resolve_study
    from warmstart.study import run_study

    config = resolve_study(
        flags={"objectives": "denoising", "strategies": "full", "labels": "100", "seeds": 1, "baselines": "none",
               "encoder_args": SMALL | {"norm": "group"}, "sweep": {"privacy.epsilon": "2,8"}},
        overrides=["pretrain.epochs=2", "finetune.epochs=5", "finetune.lr=1e-2", "finetune.privacy.accountant=rdp"])
    rows = run_study(config, tmp_path / "study", data=digits)
    assert sorted({r["setting"] for r in rows}) == ["privacy.epsilon=2", "privacy.epsilon=8"]
    assert {r["method"] for r in rows} == {"scratch[privacy.epsilon=2]", "scratch[privacy.epsilon=8]",
                                           "denoising+full[privacy.epsilon=2]", "denoising+full[privacy.epsilon=8]"}
    assert all(r["epsilon"] <= float(r["setting"].split("=")[1]) + 1e-6 for r in rows)
    header = (tmp_path / "study" / "results.csv").read_text().splitlines()[0]
    assert header.endswith("setting,epsilon,delta")
    report = (tmp_path / "study" / "report.md").read_text()
    assert "## accuracy versus privacy.epsilon" in report and "accuracy-versus-ε" in report
    assert "the labeled rows are the private data" in report and "pretraining pool is treated as public" in report
    assert (tmp_path / "study" / "sweep.png").stat().st_size > 1000


def test_a_study_refuses_a_strategy_that_cannot_be_private_before_writing(tmp_path, digits):
    from warmstart.study_config import resolve_study
    from warmstart.study import run_study

    config = resolve_study(flags={"strategies": "selftrain", "sweep": {"privacy.epsilon": "3"}})
    with pytest.raises(UserError, match="strategy 'selftrain' cannot be made differentially private"):
        run_study(config, tmp_path / "study", data=digits)
    assert not (tmp_path / "study").exists()
