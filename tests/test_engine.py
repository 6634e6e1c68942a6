"""The engine: schedule, checkpoints, and resume that is bit-identical to an uninterrupted run."""
from __future__ import annotations

import json

import pytest
import torch

from warmstart.checkpoint import load_tensors
from warmstart.config import FinetuneConfig, PretrainConfig, TrainSettings
from warmstart.engine import CHECKPOINT, METRICS, SHORT_RUN_STEPS, Stream, fit, lr_factor
from warmstart.pipeline import ENCODER_FILE, finetune, pretrain


def test_lr_schedule_warms_up_then_decays_to_zero():
    total, warm = 100, 10
    factors = [lr_factor(s, total, warm) for s in range(total)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:]))
    assert factors[-1] < 0.01


def _bn_fit(epochs: int, frozen_first: bool = False):
    """A Linear-BatchNorm net fitted on one fixed batch of 64 rows far from zero mean (LR ~0: weights stay)."""
    torch.manual_seed(0)
    x = torch.randn(64, 4) * 2 + 5
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 1))
    if frozen_first:  # stands for a frozen encoder: eval mode, as Classifier.train keeps it
        net.train = lambda mode=True: (torch.nn.Module.train(net, mode), net[1].eval())[0]
    stream = Stream(64, 64, lambda rows: (x[rows],))
    fit(net, lambda batch: (net(batch[0]).square().mean(), {}), [stream], TrainSettings(epochs=epochs, lr=1e-12))
    return net, net[0](x)


def test_short_run_ends_with_batchnorm_statistics_of_its_data():
    """Momentum-0.1 running averages after 3 steps hold 27% of the batch mean; the engine recomputes them."""
    net, hidden = _bn_fit(epochs=3)
    assert torch.allclose(net[1].running_mean, hidden.mean(0), atol=1e-4)
    assert torch.allclose(net[1].running_var, hidden.var(0), rtol=1e-4)
    long_net, hidden = _bn_fit(epochs=SHORT_RUN_STEPS)  # long runs keep their running averages
    assert int(long_net[1].num_batches_tracked) == SHORT_RUN_STEPS
    frozen, _ = _bn_fit(epochs=3, frozen_first=True)  # a layer that did not train keeps its statistics
    assert torch.equal(frozen[1].running_mean, torch.zeros(8))


class Killed(KeyboardInterrupt):
    pass


def _kill_at(step_to_die: int):
    def hook(step: int) -> None:
        if step == step_to_die:
            raise Killed()
    return hook


@pytest.mark.parametrize("objective", ["autoencoder", "denoising"])
def test_resume_after_kill_is_bit_identical(tmp_path, digits, objective):
    # denoising draws random noise every step: the RNG state must travel in the checkpoint too.
    config = PretrainConfig(objective=objective, epochs=3, batch_size=64, checkpoint_every=7, seed=3,
                            encoder_args={"width": 32, "feature_dim": 16})
    pretrain(config, tmp_path / "whole", data=digits)
    with pytest.raises(Killed):
        pretrain(config, tmp_path / "killed", data=digits, after_step=_kill_at(31))
    assert not (tmp_path / "killed" / ENCODER_FILE).exists()
    _, meta = load_tensors(tmp_path / "killed" / CHECKPOINT)
    assert meta["step"] == 28  # the last checkpoint before the kill
    pretrain(config, tmp_path / "killed", data=digits, resume=True)

    whole, _ = load_tensors(tmp_path / "whole" / ENCODER_FILE)
    resumed, _ = load_tensors(tmp_path / "killed" / ENCODER_FILE)
    assert whole.keys() == resumed.keys()
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key

    def losses(run):
        return [(r["step"], r["loss"]) for r in map(json.loads, (tmp_path / run / METRICS).read_text().splitlines())]
    assert losses("whole") == losses("killed")


def test_finetune_resume_is_bit_identical(tmp_path, digits):
    config = FinetuneConfig(strategy="scratch", labels="per_class=5", epochs=12, batch_size=16, checkpoint_every=5,
                            encoder_args={"width": 32, "feature_dim": 16})
    whole = finetune(config, tmp_path / "whole", data=digits)
    with pytest.raises(Killed):
        finetune(config, tmp_path / "killed", data=digits, after_step=_kill_at(13))
    resumed = finetune(config, tmp_path / "killed", data=digits, resume=True)
    assert whole.metrics == resumed.metrics
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_checkpoint_holds_config_optimizer_and_rng(tmp_path, digits):
    pretrain(PretrainConfig(epochs=1, batch_size=256, encoder_args={"width": 16, "feature_dim": 8}),
             tmp_path / "run", data=digits)
    tensors, meta = load_tensors(tmp_path / "run" / CHECKPOINT)
    assert meta["config"]["epochs"] == 1 and meta["step"] == 5
    assert "rng.torch" in tensors and any(k.startswith("optim.") for k in tensors)
    assert (tmp_path / "run" / "config.yaml").read_text().startswith("data: digits")
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_same_seed_same_numbers_different_seed_different(digits):
    def run(seed):
        config = FinetuneConfig(strategy="scratch", labels="per_class=3", epochs=5, seed=seed,
                                encoder_args={"width": 32, "feature_dim": 16})
        return finetune(config, data=digits).metrics["accuracy"]
    assert run(1) == run(1)
    assert {run(1), run(2), run(3)} != {run(1)}
