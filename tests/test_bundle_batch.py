"""DataBundle.batch must copy: model-unit scaling never writes into the data set."""
from __future__ import annotations

import numpy as np

from warmstart.data import load_data


def test_batches_of_float32_data_never_write_into_the_data(tmp_path):
    """A float32 slice is a view; scaling it in place once crashed on memory-mapped npz data."""
    x = np.random.default_rng(0).random((40, 1, 4, 4), dtype=np.float32)
    np.savez(tmp_path / "f32.npz", x_train=x, y_train=np.arange(40) % 2, x_test=x[:10], y_test=np.arange(10) % 2)
    data = load_data(f"npz:{tmp_path / 'f32.npz'}")
    data.scale = 0.5
    for _ in range(2):
        assert np.allclose(data.batch(data.x_test[0:10]).numpy(), x[:10] * 0.5)
    assert np.array_equal(np.asarray(data.x_test), x[:10])
