"""DDP on 2 CPU processes (gloo): sharding, rank-0-only writes, resume, and agreement with one process.

The global batch is ``batch_size x processes``: 2 ranks of 32 see the same rows as one process of 64.
DDP averages the two shard means' gradients, which is exactly one process minimising the mean of the two
shard means; against the plain mean over 64 rows it differs only by float rounding, which Adam then
amplifies a little. Encoders use GroupNorm here, because BatchNorm normalises each rank's shard with its
own statistics (no SyncBatchNorm on CPU) and so would differ by design.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from warmstart import runtime
from warmstart.checkpoint import load_tensors
from warmstart.config import PretrainConfig
from warmstart.engine import CHECKPOINT, METRICS, fit
from warmstart.errors import UserError
from warmstart.objectives import OBJECTIVES
from warmstart.pipeline import ENCODER_FILE, build_encoder, pretrain, seed_everything

from conftest import SRC

ARGS = ["epochs=2", "batch_size=32", "encoder_args.norm=group", "encoder_args.width=32", "encoder_args.feature_dim=16"]


def config(**changes) -> PretrainConfig:
    values = dict(epochs=2, batch_size=32, encoder_args={"norm": "group", "width": 32, "feature_dim": 16})
    return PretrainConfig(**{**values, **changes})


def torchrun(*args: str) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node=2 -m warmstart ARGS`` with this checkout's sources.

    No ``--master_port``: a port picked here (bind, read, close) could be taken before torchrun binds it;
    without one, torchrun's rendezvous store binds port 0 itself and the workers share that store.
    """
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "warmstart", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """The real CLI under ``torchrun`` with 2 processes."""
    out = tmp_path_factory.mktemp("ddp") / "run"
    done = torchrun("pretrain", "--out", str(out), *ARGS)
    assert done.returncode == 0, done.stderr[-2000:]
    return out, done.stdout


def _encoder(path):
    return load_tensors(path / ENCODER_FILE)[0]


def test_torchrun_writes_one_run_from_rank_zero(ddp_run):
    out, stdout = ddp_run
    assert stdout.count("pretrained mlp with autoencoder") == 1  # rank 1 stays quiet
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.safetensors", "config.yaml", "encoder.safetensors",
                                                     "metrics.jsonl", "objective.safetensors"]
    records = [json.loads(line) for line in (out / METRICS).read_text().splitlines()]
    assert [r["step"] for r in records] == [22, 44]  # 1437 rows // global batch 64 = 22 steps per epoch
    assert records[1]["loss"] < 0.8 * records[0]["loss"]
    tensors, meta = load_tensors(out / CHECKPOINT)
    assert meta["world_size"] == 2 and "rng.rank1" in tensors

    # Bad input stops every rank with the same one line, not rank 1 stuck or dying with a traceback.
    again = torchrun("pretrain", "--out", str(out), *ARGS)
    assert again.returncode != 0
    assert again.stderr.count("warmstart: error: --out") == 2 and "[rank1]: Traceback" not in again.stderr


def test_ddp_matches_one_process_with_the_same_global_batch(ddp_run, digits):
    out, _ = ddp_run
    ddp = _encoder(out)
    records = [json.loads(line) for line in (out / METRICS).read_text().splitlines()]

    # One process, global batch 64, minimising the mean of the two shard means: bit-identical to DDP.
    cfg = config(batch_size=64)
    seed_everything(cfg.seed)
    encoder = build_encoder("mlp", digits.input_shape, cfg.encoder_args)
    objective = OBJECTIVES.build("autoencoder", encoder)
    stream = digits.input_stream(np.arange(len(digits.x_train)), 64)

    def shard_means(batch):
        x = batch[0]
        return (objective.loss(x[0::2])[0] + objective.loss(x[1::2])[0]) / 2, {}
    fit(objective, shard_means, [stream], cfg)
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, ddp[key]), key

    # The plain single-process run: same to rounding. Stated tolerance: epoch losses within 1e-3
    # relative, weights within 1e-2 absolute after 44 Adam steps (measured: 5e-5 and 1.1e-3).
    single = pretrain(cfg, data=digits)
    for ours, theirs in zip(records, single.history):
        assert ours["loss"] == pytest.approx(theirs["loss"], rel=1e-3)
    worst = max(float((value - ddp[key]).abs().max()) for key, value in single.encoder.state_dict().items())
    assert worst < 1e-2


def _resume_worker(rank: int, root: str, data) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2")
    torch.set_num_threads(1)
    # The group meets through a file, not a port: no port to choose here and hand to rank 0, which another
    # process could take in between. pretrain then finds the group joined (runtime.init_from_env).
    dist.init_process_group("gloo", store=dist.FileStore(f"{root}/store", 2), rank=rank, world_size=2)
    # Denoising draws noise every step, so each rank's RNG state has to travel in the checkpoint.
    cfg = config(objective="denoising", checkpoint_every=7)
    pretrain(cfg, f"{root}/whole", data=data)

    def kill(step: int) -> None:
        if step == 17:  # the last checkpoint was at step 14
            raise KeyboardInterrupt
    try:
        pretrain(cfg, f"{root}/killed", data=data, after_step=kill)
    except KeyboardInterrupt:
        pass
    pretrain(cfg, f"{root}/killed", data=data, resume=True)
    runtime.shutdown()


def test_ddp_resume_after_kill_is_bit_identical(tmp_path, digits):
    mp.spawn(_resume_worker, args=(str(tmp_path), digits), nprocs=2)
    whole, resumed = _encoder(tmp_path / "whole"), _encoder(tmp_path / "killed")
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key
    assert (tmp_path / "whole" / METRICS).read_text().count("\n") == 2
    losses = [[json.loads(line)["loss"] for line in (tmp_path / run / METRICS).read_text().splitlines()]
              for run in ("whole", "killed")]
    assert losses[0] == losses[1]

    # Resuming with another number of processes would change the global batch: refused.
    with pytest.raises(UserError, match="checkpointed by 2 process"):
        pretrain(config(objective="denoising", checkpoint_every=7), tmp_path / "killed", data=digits, resume=True)


def _shutdown_worker(rank: int, root: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2")
    dist.init_process_group("gloo", store=dist.FileStore(f"{root}/store", 2), rank=rank, world_size=2)
    if rank == 1:  # a rank that is slower to finish, as under load
        time.sleep(1.0)
        open(f"{root}/rank1-finished", "w").close()
    runtime.shutdown()
    if rank == 0:  # rank 0 must not have left before rank 1 was done (torchrun would then kill rank 1)
        assert os.path.exists(f"{root}/rank1-finished")


def test_shutdown_waits_for_every_rank(tmp_path):
    mp.spawn(_shutdown_worker, args=(str(tmp_path),), nprocs=2)


def test_amp_settings_are_checked_before_work(tmp_path, digits):
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="amp=fp16 needs a CUDA GPU"):
            pretrain(config(amp="fp16"), tmp_path / "run", data=digits)
        with pytest.raises(UserError, match="no CUDA GPU"):
            pretrain(config(device="cuda"), tmp_path / "run", data=digits)
        assert not (tmp_path / "run").exists()
    # bf16 autocast runs on any device and still learns.
    history = pretrain(config(amp="bf16", epochs=3), data=digits).history
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]
