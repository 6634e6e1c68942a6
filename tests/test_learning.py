"""End to end: pretraining learns something a linear probe can use, on real data (digits)."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from warmstart.config import PretrainConfig
from warmstart.data.sources import load_data
from warmstart.evaluate import embed
from warmstart.pipeline import build_encoder, pretrain, seed_everything


@pytest.mark.parametrize("objective", ["autoencoder", "denoising"])
def test_pretrained_features_beat_random_features(objective):
    data = load_data("digits")
    args = {"feature_dim": 32, "width": 128}

    def probe(encoder) -> float:
        clf = LogisticRegression(max_iter=2000).fit(embed(encoder, data, data.x_train), data.y_train)
        return clf.score(embed(encoder, data, data.x_test), data.y_test)

    gains, loss_ratios = [], []
    for seed in range(3):
        config = PretrainConfig(objective=objective, encoder="mlp", encoder_args=args, epochs=30, lr=3e-3, seed=seed)
        result = pretrain(config, data=data)
        seed_everything(seed)
        random_encoder = build_encoder("mlp", data.input_shape, args)
        gains.append(probe(result.encoder) - probe(random_encoder))
        loss_ratios.append(result.history[-1]["recon"] / result.history[0]["recon"])
    # Measured: probe accuracy 0.96-0.97 pretrained vs 0.78 random; loss falls to ~5-20% of epoch 1.
    assert np.mean(gains) > 0.10, gains
    assert max(loss_ratios) < 0.3, loss_ratios
