"""The one training loop. Pretraining, fine-tuning and joint training all call ``fit``.

Read top to bottom: build the optimiser, restore a checkpoint if resuming, then for each step set the
LR, draw the batches, step, accumulate logs; at each epoch end log a line to ``metrics.jsonl`` and save a
checkpoint. Batch order is a pure function of (seed, stream, step), and the torch RNG state travels in
the checkpoint, so a resumed run finishes with bit-identical weights.
"""
from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from warmstart.checkpoint import load_tensors, optimizer_from_tensors, optimizer_to_tensors, save_tensors
from warmstart.config import TrainSettings

CHECKPOINT = "checkpoint.safetensors"
METRICS = "metrics.jsonl"


@dataclass
class Stream:
    """A source of batches: ``size`` examples, served ``batch_size`` at a time by ``make_batch(index)``.

    The first stream given to ``fit`` defines the epoch; the others cycle independently (e.g. unlabeled
    batches beside labeled ones in joint training).
    """

    size: int
    batch_size: int
    make_batch: Callable[[np.ndarray], tuple[torch.Tensor, ...]]

    @property
    def steps_per_epoch(self) -> int:
        return max(1, self.size // self.batch_size)

    def batch_at(self, step: int, seed: int, stream_id: int) -> tuple[torch.Tensor, ...]:
        epoch, position = divmod(step, self.steps_per_epoch)
        stream_seed = int(np.random.SeedSequence([seed, stream_id, epoch]).generate_state(1)[0])
        generator = torch.Generator().manual_seed(stream_seed)
        order = torch.randperm(self.size, generator=generator).numpy()
        index = order[position * self.batch_size:(position + 1) * self.batch_size]
        return self.make_batch(np.sort(index))  # sorted rows read memory-mapped data in order


def lr_factor(step: int, total: int, warmup_steps: int) -> float:
    """Linear warm-up then cosine decay to zero."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


LossFn = Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    streams: Sequence[Stream],
    settings: TrainSettings,
    *,
    param_groups: list[dict] | None = None,
    run_dir: Path | None = None,
    resume: bool = False,
    desc: str = "train",
    on_epoch_end: Callable[[int], dict[str, Any]] | None = None,
    after_step: Callable[[int], None] | None = None,
    config: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Train ``model`` by minimising ``loss_fn(*batches)`` and return one metrics record per epoch.

    ``param_groups`` default to every parameter that requires grad; a group may carry ``lr_scale``.
    ``on_epoch_end(epoch)`` returns extra metrics to log (evaluations, health checks).
    ``after_step(step)`` is a hook for tests (e.g. to simulate a kill).
    """
    if settings.threads:
        torch.set_num_threads(settings.threads)
    groups = param_groups or [{"params": [p for p in model.parameters() if p.requires_grad]}]
    optimizer = torch.optim.AdamW(groups, lr=settings.lr, weight_decay=settings.weight_decay)
    steps_per_epoch = streams[0].steps_per_epoch
    total = settings.epochs * steps_per_epoch
    warmup_steps = max(1, round(settings.warmup * total))
    every = settings.checkpoint_every or steps_per_epoch

    start, sums, history = 0, {}, []
    if resume and run_dir is not None and (run_dir / CHECKPOINT).exists():
        start, sums, history = _restore(run_dir, model, optimizer)

    bar = tqdm(total=total, initial=start, desc=desc, disable=not sys.stderr.isatty(), leave=False, unit="step")
    epoch_started, images = time.perf_counter(), 0
    model.train()
    for step in range(start, total):
        factor = lr_factor(step, total, warmup_steps)
        for group in optimizer.param_groups:
            group["lr"] = settings.lr * factor * group.get("lr_scale", 1.0)
        batches = [s.batch_at(step, settings.seed, i) for i, s in enumerate(streams)]
        loss, logs = loss_fn(*batches)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        # Accumulate detached tensors; converting to Python floats only at epoch end avoids a host
        # sync per step.
        for key, value in {"loss": loss.detach(), **logs}.items():
            sums[key] = sums.get(key, 0.0) + value.detach().float()
        sums["_steps"] = sums.get("_steps", 0.0) + torch.tensor(1.0)
        images += len(batches[0][0])
        bar.update(1)
        done = step + 1
        if done % steps_per_epoch == 0:
            epoch = done // steps_per_epoch
            seconds = time.perf_counter() - epoch_started
            record = {"epoch": epoch, "step": done, "lr": optimizer.param_groups[0]["lr"]}
            count = float(sums.pop("_steps"))
            record.update({k: float(v) / count for k, v in sums.items()})
            record.update({"seconds": round(seconds, 3), "examples_per_s": round(images / max(seconds, 1e-9), 1)})
            if on_epoch_end is not None:
                record.update(on_epoch_end(epoch))
                model.train()
            history.append(record)
            shown = ("loss", "accuracy", "rankme", "knn_accuracy")
            bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k in shown})
            if run_dir is not None:
                with open(run_dir / METRICS, "a") as f:
                    f.write(json.dumps(record) + "\n")
            sums, images, epoch_started = {}, 0, time.perf_counter()
        if run_dir is not None and (done % every == 0 or done == total):
            _save(run_dir, model, optimizer, done, sums, history, config)
        if after_step is not None:
            after_step(done)
    bar.close()
    model.eval()
    return history


def _save(run_dir: Path, model: nn.Module, optimizer, step: int, sums: dict, history: list, config) -> None:
    optim_tensors, groups = optimizer_to_tensors(optimizer)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"optim.{k}": v for k, v in optim_tensors.items()})
    tensors.update({f"sums.{k}": torch.as_tensor(v) for k, v in sums.items()})
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"step": step, "param_groups": groups, "history": history, "config": config or {}}
    save_tensors(run_dir / CHECKPOINT, tensors, meta)


def _restore(run_dir: Path, model: nn.Module, optimizer) -> tuple[int, dict, list]:
    tensors, meta = load_tensors(run_dir / CHECKPOINT)
    sections: dict[str, dict[str, torch.Tensor]] = {"model": {}, "optim": {}, "sums": {}, "rng": {}}
    for key, value in tensors.items():
        section, name = key.split(".", 1)
        sections[section][name] = value
    model.load_state_dict(sections["model"])
    optimizer_from_tensors(optimizer, sections["optim"], meta["param_groups"])
    torch.set_rng_state(sections["rng"]["torch"])
    step = int(meta["step"])
    # Drop log lines written after the checkpoint so the log matches an uninterrupted run.
    metrics = run_dir / METRICS
    if metrics.exists():
        kept = [line for line in metrics.read_text().splitlines() if json.loads(line)["step"] <= step]
        metrics.write_text("".join(line + "\n" for line in kept))
    return step, dict(sections["sums"]), list(meta["history"])
