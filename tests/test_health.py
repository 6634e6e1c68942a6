"""Label-free health checks: RankMe, normalised feature std, kNN probe, collapse warning, pipeline wiring."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from warmstart.config import PretrainConfig
from warmstart.data.sources import load_data
from warmstart.errors import UserError
from warmstart.health import HealthMonitor, feature_std, knn_accuracy, rankme
from warmstart.pipeline import pretrain


def test_rankme_counts_used_directions():
    torch.manual_seed(0)
    assert rankme(torch.randn(2000, 1) @ torch.randn(1, 32)) == pytest.approx(1.0, abs=0.01)  # rank one
    assert rankme(torch.randn(2000, 32)) > 28  # isotropic: close to the 32 dimensions
    spread = torch.randn(2000, 32) * torch.tensor([1.0] * 4 + [1e-3] * 28)
    assert 3.5 < rankme(spread) < 5.5  # four directions carry the variance


def test_feature_std_is_scale_free_and_zero_when_collapsed():
    torch.manual_seed(0)
    x = torch.randn(1000, 16)
    assert feature_std(x) == pytest.approx(feature_std(100 * x), rel=1e-6)
    assert 0.9 < feature_std(x) < 1.1
    assert feature_std(torch.ones(1000, 16) + 1e-6 * torch.randn(1000, 16)) < 1e-3


def test_knn_accuracy_separates_clusters_and_not_noise():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 50)
    clustered = np.eye(8)[y] + 0.1 * rng.normal(size=(200, 8))
    assert knn_accuracy(clustered, y) == 1.0
    assert knn_accuracy(rng.normal(size=(200, 8)), y) < 0.45  # chance is 0.25


def test_collapse_warns_with_a_clear_message():
    class Constant(torch.nn.Module):
        def forward(self, x):
            return torch.ones(len(x), 8)

    monitor = HealthMonitor(Constant(), torch.rand(64, 1, 8, 8))
    with pytest.warns(RuntimeWarning, match="collapsed"):
        logs = monitor(3)
    assert logs["feature_std"] == 0.0 and logs["rankme"] < 1.5


def test_pretrain_logs_health_each_epoch_and_probe_labels_are_validated(tmp_path):
    data = load_data("digits")
    config = PretrainConfig(objective="simclr", encoder="mlp", epochs=2, probe_labels=100, health_samples=256)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a healthy run must not cry collapse
        pretrain(config, tmp_path / "run", data=data)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for r in records:
        assert 1 < r["rankme"] <= 128 and 0 < r["feature_std"] and 0.5 < r["knn_accuracy"] <= 1
    with pytest.raises(UserError, match="probe_labels=5000"):
        pretrain(config.model_copy(update={"probe_labels": 5000}), tmp_path / "bad", data=data)
    assert not (tmp_path / "bad").exists()
    off = pretrain(config.model_copy(update={"probe_labels": 0, "health_samples": 0, "epochs": 1}), data=data)
    assert "rankme" not in off.history[0] and "knn_accuracy" not in off.history[0]
