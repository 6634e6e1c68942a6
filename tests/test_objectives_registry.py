"""Every registered objective × every compatible encoder, on tiny inputs: shapes and gradients, the loss
falls on a fixed batch, a checkpoint round trip reproduces the loss exactly, incompatible pairs are refused.

A new objective gets all of these by registering itself; if it cannot work with some pair, add the pair
to ``REFUSED`` and make ``pipeline.pretrain`` refuse it with a clear ``UserError``.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from warmstart.checkpoint import load_tensors, save_tensors
from warmstart.config import PretrainConfig, TrainSettings
from warmstart.data import DataBundle
from warmstart.engine import Stream, fit
from warmstart.errors import UserError
from warmstart.models import ENCODERS
from warmstart.objectives import OBJECTIVES
from warmstart.pipeline import build_encoder, pretrain

ENCODER_ARGS = {
    "linear": {"feature_dim": 8},
    "mlp": {"width": 32, "feature_dim": 16},
    "cnn": {"width": 4},
    "resnet": {"width": 4},
    "transformer": {"hidden": 16, "layers": 1, "heads": 2, "vocab_size": 60, "max_length": 16},
    "gpt": {"hidden": 16, "layers": 1, "heads": 2, "vocab_size": 60, "max_length": 16},
    "tabular": {"d_token": 4, "width": 16, "feature_dim": 8, "bins": 4},
    "embedding": {"dim": 16, "init_std": 0.5},
}
SHAPES = {"image": (1, 8, 8), "table": (12,), "text": (), "interactions": (2,)}


def tiny_table(n: int = 40, seed: int = 0) -> DataBundle:
    """A table whose schema encodes rows as 12 inputs: 3 numeric columns (one with missing cells, so a
    missing indicator: 4 inputs) and a categorical one with 6 levels (2 slots + 6)."""
    from warmstart.data.tables import encode_columns

    rng = np.random.default_rng(seed)
    numbers = rng.normal(size=(n, 3))
    numbers[::7, 2] = np.nan
    columns = {"a": numbers[:, 0], "b": numbers[:, 1], "c": numbers[:, 2],
               "level": np.array([f"l{i % 6}" for i in range(n)], dtype=object)}
    train, test = np.arange(32), np.arange(32, n)
    x, schema = encode_columns("tiny-table", columns, train)
    y = np.arange(n) % 2
    return DataBundle("tiny-table", x[train], y[train], x[test], y[test], "table", schema=schema)


TABLE = tiny_table()
assert TABLE.input_shape == SHAPES["table"]
# Text rows are documents; text encoders train their tokenizer on them (deterministically, so a tokenizer
# trained again on TEXTS gives the encoder's ids).
TEXTS = np.array([f"the {a} {b} {c} today" for a in ("old", "red", "small", "big") for b in ("cat", "saw", "dog", "cup")
                  for c in ("runs", "sleeps")], dtype=object)
# Pairs an objective refuses on purpose, with the reason in the objective's docstring.
REFUSED = {("gan", "linear", "image"), ("mlm", "gpt", "text"), ("clm", "transformer", "text"),
           ("masked-dense", "linear", "image"), ("masked-dense", "mlp", "image"),  # no feature maps
           ("dense-contrast", "linear", "image"), ("dense-contrast", "mlp", "image")}
# Adversarial losses are a sum of two players' losses that need not fall together; the discriminator's
# own loss must still fall on a fixed batch (it learns to tell that batch from the generator's output),
# though slowly, since the generator adapts at the same time: a smaller required drop.
# VIME's estimators are linear (the paper's): on the linear encoder the whole model is one linear map, whose
# reconstruction falls steadily but slowly (3.18 -> 2.91 in 20 steps); test_tables checks VIME on real rows.
# Graph propagation averages each vector with its neighbours', so 20 small steps move propagated scores
# less than the vectors: LightGCN's BPR (and SimGCL's BPR + contrastive loss) falls steadily, but by less.
PROGRESS = {"gan": ("d_loss", 0.97), "vime": ("loss", 0.95), "lightgcn": ("bpr", 0.97), "simgcl": ("loss", 0.97)}


def refused(objective: str, encoder: str, modality: str) -> bool:
    return (
        (objective, encoder, modality) in REFUSED
        or modality not in OBJECTIVES.get(objective).modalities
        or modality not in ENCODERS.get(encoder).modalities
    )


ALL = [(o, e, m) for o in OBJECTIVES.names() for e in ENCODER_ARGS for m in SHAPES]
COMPATIBLE = [c for c in ALL if not refused(*c)]
INCOMPATIBLE = [c for c in ALL if refused(*c)]


def tiny_interactions():
    from conftest import toy_interactions

    return toy_interactions("rank")


def tiny_batch(modality: str, n: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if modality == "interactions":  # (B, 2) training interactions [user, item]
        pairs = tiny_interactions().x_train
        return torch.from_numpy(pairs[torch.randperm(len(pairs), generator=g)[:n].numpy()])
    if modality == "text":  # (B, L) token ids, padded
        from warmstart.data.text import encode, train_tokenizer

        rows = torch.randperm(len(TEXTS), generator=g)[:n].numpy()
        return encode(train_tokenizer(TEXTS, ENCODER_ARGS["transformer"]["vocab_size"]), TEXTS[rows], 16)[0]
    if modality == "image":  # blobs on black, in [0, 1] like scaled pixels
        x = torch.zeros(n, 1, 8, 8)
        x[:, :, 2:6, 2:6] = torch.rand(n, 1, 4, 4, generator=g)
        return x
    return TABLE.schema.draw(n, generator=g)  # (B, 12) encoded rows from the table's marginals


def make_objective(objective: str, encoder: str, modality: str, seed: int = 0):
    torch.manual_seed(seed)
    if modality == "interactions":  # sized by the catalogue and bound to it, as pretraining does
        data = tiny_interactions()
        enc = build_encoder(encoder, SHAPES[modality], ENCODER_ARGS[encoder], modality, corpus=data.catalog)
        data.handler.prepare(data, enc)
        return OBJECTIVES.build(objective, enc)
    enc = build_encoder(encoder, SHAPES[modality], ENCODER_ARGS[encoder], modality, corpus=TEXTS,
                        schema=TABLE.schema if modality == "table" else None)
    return OBJECTIVES.build(objective, enc)


def test_every_objective_has_a_compatible_pair():
    assert {o for o, _, _ in COMPATIBLE} == set(OBJECTIVES.names())
    assert {"masked", "simclr", "vae", "gan"} <= set(OBJECTIVES.names())


@pytest.mark.parametrize("objective,encoder,modality", COMPATIBLE)
def test_forward_backward_shapes(objective, encoder, modality):
    model = make_objective(objective, encoder, modality)
    x = tiny_batch(modality)
    assert model.encoder(x).shape == (len(x), model.encoder.feature_dim)
    loss, logs = model.loss(x)
    assert loss.shape == () and torch.isfinite(loss)
    assert all(v.shape == () and not v.requires_grad for v in logs.values())
    loss.backward()
    for name, p in model.named_parameters():
        if not p.requires_grad:  # frozen on purpose (e.g. the unused BERT pooler kept for HF loading)
            continue
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"{name} got no finite gradient"
    assert any(p.grad.abs().sum() > 0 for p in model.encoder.parameters())


def pinned(model, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss with the objective's random draws (views, masks, noise, samples) pinned by a seed: a
    deterministic function of the weights, which gradient steps on one batch must drive down. (The
    digits tests check that the *stochastic* objectives learn features.)"""
    torch.manual_seed(0)
    return model.loss(x)


@pytest.mark.parametrize("objective,encoder,modality", COMPATIBLE)
def test_loss_decreases_on_a_fixed_batch(objective, encoder, modality):
    model = make_objective(objective, encoder, modality)
    x = tiny_batch(modality)
    key, ratio = PROGRESS.get(objective, ("loss", 0.9))
    settings = TrainSettings(epochs=20, lr=3e-3, warmup=0.0, weight_decay=0.0)
    stream = Stream(len(x), len(x), lambda rows: (x[rows],))  # one step per "epoch": a per-step log
    losses = [h[key] for h in fit(model, lambda batch: pinned(model, batch[0]), [stream], settings)]
    assert np.mean(losses[-3:]) < ratio * np.mean(losses[:3]), losses


@pytest.mark.parametrize("objective,encoder,modality", COMPATIBLE)
def test_checkpoint_round_trip_gives_identical_loss(objective, encoder, modality, tmp_path):
    model = make_objective(objective, encoder, modality, seed=0)
    x = tiny_batch(modality)
    fit(model, lambda batch: model.loss(batch[0]), [Stream(len(x), len(x), lambda rows: (x[rows],))],
        TrainSettings(epochs=2, lr=1e-2))  # move weights and BatchNorm statistics off their initial values
    save_tensors(tmp_path / "objective.safetensors", model.state_dict(), {"objective": objective})
    restored = make_objective(objective, encoder, modality, seed=1)
    tensors, meta = load_tensors(tmp_path / "objective.safetensors")
    restored.load_state_dict(tensors)
    assert meta == {"objective": objective}
    losses = []
    for m in (model, restored):
        m.train()
        torch.manual_seed(123)  # same views, masks, noise and samples for both
        losses.append(m.loss(x)[0].item())
    assert losses[0] == losses[1]
    model.eval(), restored.eval()
    assert torch.equal(model.encoder(x), restored.encoder(x))


def bundle(modality: str) -> DataBundle:
    if modality == "interactions":
        return tiny_interactions()
    if modality == "table":
        return TABLE
    rng = np.random.default_rng(0)
    shape = SHAPES[modality]
    x = np.resize(TEXTS, 40) if modality == "text" else rng.random((40, *shape)).astype(np.float32)
    y = np.arange(40) % 2
    return DataBundle(f"tiny-{modality}", x[:32], y[:32], x[32:], y[32:], modality)


@pytest.mark.parametrize("objective,encoder,modality", INCOMPATIBLE)
def test_incompatible_pairs_are_refused_before_work(objective, encoder, modality, tmp_path):
    config = PretrainConfig(objective=objective, encoder=encoder, encoder_args=ENCODER_ARGS[encoder], epochs=1)
    with pytest.raises(UserError) as err:
        pretrain(config, tmp_path / "run", data=bundle(modality))
    message = str(err.value)
    assert "\n" not in message and (objective in message or encoder in message)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("options", [
    {"objective": "simclr", "objective_args": {"temperature": 0}},
    {"objective": "masked", "objective_args": {"patch_size": 3}},
    {"objective": "masked", "objective_args": {"mask_ratio": 1.0}},
    {"objective": "vae", "objective_args": {"likelihood": "poisson"}},
    {"objective": "simclr", "objective_args": {"augment": {"crop_scale": [0.9, 0.1]}}},
    {"objective": "simclr", "objective_args": {"augment": {"rotate": 10}}},
])
def test_bad_objective_settings_are_one_line_user_errors(options, tmp_path):
    with pytest.raises(UserError) as err:
        pretrain(PretrainConfig(encoder="mlp", epochs=1, **options), tmp_path / "run", data=bundle("image"))
    assert "\n" not in str(err.value) and options["objective"] in str(err.value)
    assert not (tmp_path / "run").exists()


def test_gan_single_loss_gives_each_player_its_own_gradient():
    """The summed loss must hand D exactly ∂d_loss/∂θ_D and G exactly ∂g_loss/∂θ_G (see GAN's docstring)."""
    model = make_objective("gan", "mlp", "image")
    x = tiny_batch("image")
    d_params = list(model.encoder.parameters()) + list(model.head.parameters())
    g_params = list(model.generator.parameters())

    def total_grads() -> list[torch.Tensor]:
        model.zero_grad()
        torch.manual_seed(7)
        model.loss(x)[0].backward()
        return [p.grad.clone() for p in d_params + g_params]

    def reference_grads() -> list[torch.Tensor]:
        # Each player's own loss, differentiated on its own with plain autograd (same noise: same seed).
        torch.manual_seed(7)
        fake = model.generator(torch.randn(len(x), model.noise_dim))
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        real_logit = model.head(model.encoder(x)).squeeze(1)
        fake_logit = model.head(model.encoder(fake.detach())).squeeze(1)
        d_loss = bce(real_logit, torch.ones_like(real_logit)) + bce(fake_logit, torch.zeros_like(fake_logit))
        g_logit = model.head(model.encoder(fake)).squeeze(1)
        g_loss = bce(g_logit, torch.ones_like(g_logit))
        return list(torch.autograd.grad(d_loss, d_params)) + list(torch.autograd.grad(g_loss, g_params))

    total, reference = total_grads(), reference_grads()
    for a, b in zip(total, reference):
        assert torch.allclose(a, b, atol=1e-6)


def test_cli_refuses_an_incompatible_pair_in_one_line(cli, tmp_path):
    result = cli("pretrain", "--objective", "gan", "--encoder", "linear", "--out", str(tmp_path / "run"))
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "linear" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("objective", ["simclr", "masked"])
def test_resumed_stochastic_pretraining_is_bit_identical(objective, tmp_path):
    """Views and masks come from torch's global RNG, which the engine checkpoints: a killed and resumed
    run must end with exactly the weights of an uninterrupted one."""
    data = bundle("image")
    config = PretrainConfig(objective=objective, encoder="mlp", encoder_args=ENCODER_ARGS["mlp"], epochs=3,
                            batch_size=8, checkpoint_every=3, health_samples=0)

    def kill(step: int) -> None:
        if step == 7:
            raise KeyboardInterrupt

    whole = pretrain(config, tmp_path / "whole", data=data)
    with pytest.raises(KeyboardInterrupt):
        pretrain(config, tmp_path / "resumed", data=data, after_step=kill)
    resumed = pretrain(config, tmp_path / "resumed", data=data, resume=True)
    for key, value in whole.encoder.state_dict().items():
        assert torch.equal(value, resumed.encoder.state_dict()[key]), key


def test_docstring_examples_run():
    import doctest
    import importlib

    for name in ["warmstart.augment", "warmstart.health", *(
            f"warmstart.objectives.{m}" for m in ("ntxent_loss", "simclr", "masked", "vae", "gan", "scarf", "vime",
                                                  "dense_masked"))]:
        failed, _ = doctest.testmod(importlib.import_module(name))
        assert failed == 0, name
