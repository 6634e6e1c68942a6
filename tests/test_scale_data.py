"""Pretraining streams a memory-mapped pool: no copy of the whole pool is ever made.

tracemalloc sees every NumPy allocation (NumPy reports them to it), which is where an accidental
``x.astype(...)``, ``x[train_idx]`` or ``np.array(x)`` of the pool would show up.
"""
from __future__ import annotations

import tracemalloc

import numpy as np
import torch

from warmstart.config import PretrainConfig
from warmstart.data.sources import load_data
from warmstart.engine import Stream
from warmstart.pipeline import pretrain


def test_pretraining_reads_a_memory_mapped_pool_batch_by_batch(tmp_path):
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 256, (12_000, 1, 28, 28), dtype=np.uint8)  # 9.4 MB
    np.savez(tmp_path / "pool.npz", x_train=pool, y_train=rng.integers(0, 10, len(pool)),
             x_test=pool[:64], y_test=np.zeros(64, np.int64))
    del pool
    data = load_data(f"npz:{tmp_path / 'pool.npz'}")
    assert isinstance(data.x_train, np.memmap)  # an uncompressed member is mapped in place

    config = PretrainConfig(data=f"npz:{tmp_path / 'pool.npz'}", epochs=1, batch_size=256, encoder="linear",
                            encoder_args={"feature_dim": 8})
    pretrain(config)  # once untraced: the lazy imports (torch._dynamo, sympy, ...) would swamp the count
    tracemalloc.start()
    history = pretrain(config).history
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert history[0]["step"] == 12_000 // 256
    assert peak < data.x_train.nbytes / 4, f"peak NumPy/Python allocation {peak / 2**20:.1f} MB"


def test_stream_order_is_a_pure_function_of_seed_and_step():
    seen = []
    stream = Stream(1000, 100, lambda rows: (torch.from_numpy(rows),))
    fresh = Stream(1000, 100, lambda rows: (torch.from_numpy(rows),))
    for step in (0, 5, 13, 9, 25, 10):  # out of order and across epochs: the cached permutation must follow
        rows = stream.batch_at(step, seed=4, stream_id=0)[0]
        assert torch.equal(rows, Stream(1000, 100, fresh.make_batch).batch_at(step, seed=4, stream_id=0)[0])
        seen.append(rows)
    epoch = torch.cat([stream.batch_at(s, seed=4, stream_id=0)[0] for s in range(10)])
    assert sorted(epoch.tolist()) == list(range(1000))  # one epoch visits every row once
    assert not torch.equal(seen[0], stream.batch_at(10, seed=4, stream_id=0)[0])  # a new epoch reshuffles
