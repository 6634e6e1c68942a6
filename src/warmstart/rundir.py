"""Run-directory I/O: what ``pretrain`` and ``finetune`` save, and the one loader that reads any of it back.

A pretraining run holds ``encoder.safetensors`` (the encoder) and ``objective.safetensors`` (the encoder
and the objective's heads, which ``joint`` keeps training); a fine-tuning run holds ``model.safetensors``
(encoder and task head). Each file's metadata carries the encoder's spec (name, options, input shape,
modality, tokenizer), so ``load_run`` rebuilds the same module without pickle. Text encoders also get a
Hugging Face directory ``hf/`` that ``transformers.AutoModel.from_pretrained`` loads.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from warmstart.checkpoint import load_tensors, save_tensors
from warmstart.errors import UserError

ENCODER_FILE = "encoder.safetensors"
OBJECTIVE_FILE = "objective.safetensors"
MODEL_FILE = "model.safetensors"
#: What each kind of file holds, and the command that writes it (for the error when it is missing).
PARTS = {"encoder": (ENCODER_FILE, "pretrain"), "objective": (OBJECTIVE_FILE, "pretrain"),
         "model": (MODEL_FILE, "finetune")}


def save_pretrained(run_dir: Path, objective: nn.Module, meta: dict[str, Any]) -> None:
    """The encoder alone, the whole objective (encoder + heads) and, for text, the Hugging Face directory."""
    meta = {**objective.encoder.spec, **meta}
    save_tensors(run_dir / ENCODER_FILE, objective.encoder.state_dict(), meta)
    save_tensors(run_dir / OBJECTIVE_FILE, objective.state_dict(), {**meta, **objective.spec})
    save_hf(run_dir, objective.encoder)


def save_model(run_dir: Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """A fine-tuned model: its encoder's spec, the task and the task's head info in the metadata."""
    save_tensors(run_dir / MODEL_FILE, model.state_dict(), {**model.encoder.spec, **meta})
    save_hf(run_dir, model.encoder)


def save_hf(run_dir: Path, encoder: nn.Module) -> None:
    from warmstart.models.text import TextEncoder

    if isinstance(encoder, TextEncoder):
        encoder.save_pretrained(Path(run_dir) / "hf")


def load_run(run_dir: str | Path, part: str) -> tuple[nn.Module, dict[str, Any]]:
    """``(module, metadata)`` of ``part`` ("encoder", "objective" or "model") saved in ``run_dir``."""
    from warmstart.models.build import build_encoder

    file, command = PARTS[part]
    path = Path(run_dir) / file
    if str(run_dir).startswith("hf:"):
        raise UserError(f"{run_dir} is a Hugging Face model, not a run directory; use --encoder {run_dir} "
                        "(its weights are the pretrained encoder)")
    if not path.exists():
        raise UserError(f"{run_dir}: no {file}; point to a finished `warmstart {command}` run directory"
                        + (" (pretraining runs made before objectives were saved need a rerun)"
                           if part == "objective" and (Path(run_dir) / ENCODER_FILE).exists() else ""))
    tensors, meta = load_tensors(path)
    encoder = build_encoder(meta["encoder"], tuple(meta["input_shape"]), meta["encoder_args"],
                            meta.get("modality", "image"), tokenizer=meta.get("tokenizer"),
                            schema=meta.get("schema"))
    if part == "encoder":
        module = encoder
    elif part == "objective":
        from warmstart.objectives import OBJECTIVES

        module = OBJECTIVES.build(meta["objective"], encoder, **meta["objective_args"])
        module.spec = {"objective": meta["objective"], "objective_args": meta["objective_args"]}
    else:
        from warmstart.tasks import TASKS

        module = TASKS.get(meta.get("task", "classify")).build_model(encoder, meta)
    module.load_state_dict(tensors)
    return module, meta
