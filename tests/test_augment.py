"""Augmentations: shapes, ranges, seeded determinism, per-sample randomness from one batched call."""
from __future__ import annotations

import pytest
import torch

from warmstart.augment import Augment, feature_corruption


@pytest.fixture
def images() -> torch.Tensor:
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 6:22, 10:18] = torch.rand(64, 1, 1, 1) * 0.5 + 0.5  # a bright bar on black, like a garment
    return x


@pytest.mark.parametrize("augment", [Augment(), Augment.weak(), Augment(noise_std=0.1, erase_prob=1.0)])
def test_shape_dtype_and_range(images, augment):
    out = augment(images)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert out.min() >= images.min() and out.max() <= images.max()
    assert not torch.equal(out, images)


def test_seeded_determinism_global_and_generator(images):
    augment = Augment(noise_std=0.05)
    torch.manual_seed(3)
    a = augment(images)
    torch.manual_seed(3)
    b = augment(images)
    assert torch.equal(a, b)
    c = augment(images, generator=torch.Generator().manual_seed(7))
    d = augment(images, generator=torch.Generator().manual_seed(7))
    assert torch.equal(c, d) and not torch.equal(a, c)


def test_each_sample_gets_its_own_view(images):
    # Identical inputs in one batch must come out different: the randomness is per sample, not per batch.
    same = images[:1].expand(32, -1, -1, -1).contiguous()
    out = Augment()(same)
    distinct = {tuple(row.flatten().round(decimals=4).tolist()) for row in out}
    assert len(distinct) == 32


def test_batched_ops_only(images, monkeypatch):
    # One call is a fixed number of grid_sample calls however large the batch: no per-sample loop.
    calls = []
    original = torch.nn.functional.grid_sample
    monkeypatch.setattr(torch.nn.functional, "grid_sample", lambda *a, **k: calls.append(1) or original(*a, **k))
    Augment()(images)
    Augment()(torch.cat([images] * 4))
    assert len(calls) == 2


def test_identity_settings_leave_images_alone(images):
    still = Augment(crop_scale=(1, 1), crop_ratio=(1, 1), flip=0, brightness=0, contrast=0, erase_prob=0)
    assert torch.allclose(still(images), images, atol=1e-5)


def test_flip_mirrors(images):
    flipped = Augment(crop_scale=(1, 1), crop_ratio=(1, 1), flip=1, brightness=0, contrast=0, erase_prob=0)
    assert torch.allclose(flipped(images), images.flip(-1), atol=1e-5)


@pytest.mark.parametrize("bad", [dict(crop_scale=(0.9, 0.2)), dict(flip=1.5), dict(brightness=-0.1), dict(contrast=1)])
def test_bad_settings_raise(bad):
    with pytest.raises(ValueError):
        Augment(**bad)


def test_feature_corruption_uses_column_values():
    x = torch.arange(40, dtype=torch.float32).view(8, 5)  # column j holds values ≡ j (mod 5)
    out = feature_corruption(x, rate=0.6, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert torch.equal(out % 5, x % 5)  # every value comes from its own column
    assert not torch.equal(out, x)
