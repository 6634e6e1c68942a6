"""Where training runs: CPU threads, the device, the process group under ``torchrun``, and mixed precision.

One process on a CPU needs none of this: ``rank_world()`` is ``(0, 1)`` and ``fit`` takes its plain path.
Under ``torchrun --nproc_per_node=N`` the environment carries ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``;
``init_from_env`` joins the process group (gloo for CPU tensors, NCCL for CUDA ones) and ``fit`` wraps
the model in PyTorch's own ``DistributedDataParallel``. No home-made distribution layer.
"""
from __future__ import annotations

import contextlib
import math
import os
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from warmstart.errors import UserError

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# How long a rank waits at shutdown for the others before leaving anyway (see ``shutdown``).
SHUTDOWN_WAIT = timedelta(seconds=60)


def default_threads() -> int:
    """Torch CPU threads for ``threads=0`` ("auto"): a thread per core that no other process is using now.

    torch's own default, a thread per core, collapses when another process holds a core: each op waits for
    its slowest thread, and a thread that shares its core gets half of it (measured on 2 cores beside two
    busy processes: see BENCHMARKS.md, "Threads"). So: ``$OMP_NUM_THREADS`` when set (torchrun sets 1 per
    process); else the cores this process may use (its CPU affinity, capped by a cgroup CPU quota) less the
    cores other processes are running on right now, shared among the ranks of this node; at least 1.
    Decided when called (``engine.fit`` calls it as a run starts); a neighbour that starts later is not seen.
    """
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    free = usable_cores() - busy_elsewhere()
    return max(1, free // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def usable_cores() -> int:
    """Cores this process may run on: its affinity mask, capped by a cgroup v2 CPU quota (containers)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def busy_elsewhere() -> int:
    """Threads of other processes that are running or waiting for a core right now (Linux; else 0).

    The kernel's count of runnable threads (``/proc/loadavg``, 4th field) less this process's own: an
    instant reading, unlike the load average, which lags a neighbour that just started by a minute and
    counts this process's own past work.
    """
    try:
        runnable = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
        own = 0
        for task in Path("/proc/self/task").iterdir():
            stat = (task / "stat").read_text()
            own += stat[stat.rindex(")") + 2] == "R"  # the state follows the parenthesised command name
    except (OSError, ValueError, IndexError):
        return 0
    return max(0, runnable - own)


def init_from_env() -> None:
    """Join the process group ``torchrun`` describes in the environment; a no-op for one process."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return
    if not dist.is_available():
        raise UserError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed; run one process")
    # One backend per device type: gloo moves CPU tensors (and the CPU-side RNG states), NCCL CUDA ones.
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)


def rank_world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process; ``(0, 1)`` outside ``torchrun``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """Only rank 0 writes run directories, logs and checkpoints."""
    return rank_world()[0] == 0


def barrier() -> None:
    if rank_world()[1] > 1:
        dist.barrier()


def shutdown() -> None:
    """Leave the process group together: wait (up to ``SHUTDOWN_WAIT``) until every rank is here, then close.

    A rank that closes its connections while a peer is still working makes the peer's next collective fail,
    and under ``torchrun`` the first rank to exit gets the others killed (a slower rank's error line was lost
    that way). The wait is gloo's ``monitored_barrier``: point-to-point messages that cannot be mistaken for a
    collective a peer is still in, and a timeout, so a rank whose peer died still leaves.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    if rank_world()[1] > 1:
        try:
            if dist.get_backend() == dist.Backend.GLOO:
                dist.monitored_barrier(timeout=SHUTDOWN_WAIT, wait_all_ranks=True)
            else:
                dist.barrier()
        except RuntimeError:
            pass  # a peer is gone or stuck: leave anyway, the error that stopped it is reported there
    dist.destroy_process_group()


def resolve_device(device: str, amp: str = "none") -> torch.device:
    """The ``torch.device`` for the ``device`` setting, checked together with ``amp`` before any work.

    ``auto`` is CUDA when present (rank ``r`` of a node takes ``cuda:LOCAL_RANK``), else the CPU.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device={device} but no CUDA GPU is visible to PyTorch; use device=cpu or device=auto")
    if device == "cuda":
        device = f"cuda:{local_rank % torch.cuda.device_count()}"
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise UserError(f"device={device!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if resolved.type not in ("cpu", "cuda"):
        raise UserError(f"device={device!r} is not supported; use auto, cpu, cuda or cuda:N")
    if amp == "fp16" and resolved.type != "cuda":
        raise UserError("amp=fp16 needs a CUDA GPU (fp16 autocast with loss scaling); on CPU use amp=bf16 or amp=none")
    if amp == "bf16" and resolved.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError(f"amp=bf16: GPU {torch.cuda.get_device_name(resolved)} has no bfloat16; use amp=fp16")
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    return resolved


def autocast(amp: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The forward pass's autocast context (a no-op for ``amp=none``)."""
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AMP_DTYPES[amp])


class _LossModule(nn.Module):
    """``model`` with ``loss_fn`` as its forward: DDP synchronises gradients only for calls to its forward."""

    def __init__(self, model: nn.Module, loss_fn) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, *batches):
        return self.loss_fn(*batches)


def distributed_loss(model: nn.Module, loss_fn, device: torch.device):
    """``loss_fn`` itself for one process; under ``torchrun`` the same function behind DDP.

    DDP broadcasts rank 0's parameters and buffers on construction, so every rank starts identical, and
    averages gradients in ``backward``. Each rank's loss is the mean over its shard of equal size, so the
    averaged gradient is the gradient of the global batch's mean loss.
    """
    if rank_world()[1] == 1:
        return loss_fn
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(_LossModule(model, loss_fn), device_ids=ids)


def mean_over_ranks(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each value averaged over the ranks, in one all-reduce (the same keys on every rank)."""
    if rank_world()[1] == 1 or not values:
        return values
    keys = sorted(values)
    # On the CPU (once per epoch): gloo carries CPU tensors even when CUDA tensors go through NCCL.
    stacked = torch.stack([torch.as_tensor(values[k]).detach().cpu().double() for k in keys])
    dist.all_reduce(stacked)
    stacked /= rank_world()[1]
    return {k: stacked[i] for i, k in enumerate(keys)}


def gather(tensor: torch.Tensor) -> list[torch.Tensor]:
    """``tensor`` from every rank, in rank order (CPU tensors of one shape and dtype)."""
    if rank_world()[1] == 1:
        return [tensor]
    out = [torch.empty_like(tensor) for _ in range(rank_world()[1])]
    dist.all_gather(out, tensor)
    return out
