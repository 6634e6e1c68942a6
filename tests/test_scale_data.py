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


def _pool(path, rows: int) -> str:
    rng = np.random.default_rng(rows)
    pool = rng.integers(0, 256, (rows, 1, 28, 28), dtype=np.uint8)
    np.savez(path, x_train=pool, y_train=rng.integers(0, 10, rows), x_test=pool[:64], y_test=np.zeros(64, np.int64))
    return f"npz:{path}"


def test_pretraining_memory_does_not_grow_with_a_memory_mapped_pool(tmp_path):
    sources = {rows: _pool(tmp_path / f"pool{rows}.npz", rows) for rows in (6_000, 12_000)}
    assert isinstance(load_data(sources[6_000]).x_train, np.memmap)  # an uncompressed member is mapped in place

    def peak(rows: int) -> int:
        config = PretrainConfig(data=sources[rows], epochs=1, batch_size=256, encoder="linear",
                                encoder_args={"feature_dim": 8})
        tracemalloc.start()
        history = pretrain(config).history
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert history[0]["step"] == rows // 256
        return top

    peak(6_000)  # a first run pays for lazy imports (torch._dynamo, sympy, ...), which would swamp the count
    small, large = peak(6_000), peak(12_000)
    # Fixed-size buffers (batches, the health check's 1024-row sample) are allowed; per-row copies are not:
    # 6,000 more rows of 784 bytes would add 4.7 MB if the pool were copied even once.
    assert large - small < 6_000 * 784 / 4, f"{(large - small) / 2**20:.2f} MB more for 6,000 more rows"


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


def test_memory_mapped_rows_are_read_without_mapping_them(tmp_path):
    """``DataBundle.batch`` reads rows of a read-only memory map with pread: same values as indexing the map
    (also for a view that starts mid-file), without the pages landing in this process's resident set."""
    from warmstart.data.bundle import DataBundle, read_rows

    rng = np.random.default_rng(0)
    pool = rng.integers(0, 256, size=(5000, 1, 28, 28), dtype=np.uint8)
    path = tmp_path / "pool.npy"
    np.save(path, pool)
    mapped = np.load(path, mmap_mode="r")
    index = np.sort(rng.choice(4000, size=300, replace=False))
    assert np.array_equal(read_rows(mapped, index), pool[index])
    assert np.array_equal(read_rows(mapped[700:], index), pool[700:][index])
    bundle = DataBundle("pool", mapped, np.zeros(5000, np.int64), mapped[:10], np.zeros(10, np.int64), "image",
                        scale=1 / 255)
    assert torch.equal(bundle.batch(mapped, index), torch.from_numpy(pool[index].astype(np.float32)).mul_(1 / 255))
