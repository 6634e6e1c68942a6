"""The few text-specific steps of ``pipeline.pretrain`` / ``finetune``, kept here so the pipeline reads as one path.

Text fits the same pipeline as images: the encoder brings (or trains) a tokenizer, the data bundle is given
that tokenizer so its batches are token ids, and tagging data swaps in a per-token head, stream and metric.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from warmstart.data import DataBundle
from warmstart.errors import UserError
from warmstart.models.text import TextEncoder, TokenClassifier, build_text_encoder, is_text_encoder

__all__ = ["is_text_encoder", "save_text", "tagging_parts", "text_encoder", "text_ready"]


def text_encoder(
    name: str, options: dict[str, Any], modality: str, tokenizer: Any, corpus: Any, weights: bool = True,
) -> TextEncoder:
    if not is_text_encoder(name):
        raise UserError(f"encoder '{name}' does not read text; use --encoder transformer, gpt or hf:PATH")
    if modality != "text":
        raise UserError(f"encoder '{name}' reads text but the data is {modality}; use a text source "
                        "(wordnet, text:PATH, jsonl:PATH) or an image encoder (mlp, cnn, resnet)")
    encoder = build_text_encoder(name, options, tokenizer, corpus, weights)
    encoder.spec["modality"] = "text"
    return encoder


def text_ready(data: DataBundle, encoder, labels_needed: bool = True) -> DataBundle:
    """``data`` whose batches are token ids from ``encoder``'s tokenizer (non-text data passes through)."""
    if data.modality != "text":
        return data
    if labels_needed and data.num_classes < 2:
        raise UserError(f"{data.name} has no labels; fine-tune on labeled text (wordnet, or jsonl:/csv: with a "
                        "label column) and use this source for pretraining")
    return data.with_tokenizer(encoder.tokenizer, encoder.max_length)


def tagging_parts(data: DataBundle | str, stream, evaluate):
    """``(make_model(encoder, num_classes), make_stream, evaluate)`` for the data's task: the given
    classification parts, or the token-classification ones for ``task="tagging"``."""
    from warmstart.models.heads import Classifier

    task = data if isinstance(data, str) else data.task
    if task != "tagging":
        return Classifier, stream, evaluate
    from warmstart.tagging import evaluate_tagging, tag_names, tag_stream

    return (lambda encoder, k: TokenClassifier(encoder, len(tag_names(["c"] * k)))), tag_stream, evaluate_tagging


def save_text(run_dir: Path | None, encoder) -> None:
    """Next to warmstart's own checkpoint, a Hugging Face directory ``run_dir/hf`` (weights, config,
    tokenizer) that ``transformers.AutoModel.from_pretrained`` loads."""
    if run_dir is not None and isinstance(encoder, TextEncoder):
        encoder.save_pretrained(Path(run_dir) / "hf")
