"""Text encoders built with Hugging Face ``transformers``: ``transformer`` (BERT-style), ``gpt`` (causal), ``hf:PATH``.

A text encoder maps ``(B, L)`` token ids (padded with the tokenizer's pad id, which doubles as the attention
mask) to ``(B, hidden)`` features by mean pooling over real tokens (what sentence-transformers does for
all-MiniLM-L6-v2); ``hidden(ids)`` gives the per-token ``(B, L, hidden)`` states that MLM, CLM and tagging
heads read. The tokenizer travels with the encoder: it is part of the checkpoint spec and of the saved
Hugging Face directory, so a saved model is usable with ``transformers.AutoModel.from_pretrained(dir)``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from warmstart.data.text import load_tokenizer, pad_id, require_text_extra, train_tokenizer
from warmstart.errors import UserError
from warmstart.models.encoders import ENCODERS, Encoder
from warmstart.models.heads import Classifier


class TextEncoder(Encoder):
    """Base: wraps a Hugging Face base model (``last_hidden_state`` output) and its tokenizer."""

    modalities = ("text",)
    modality = "text"
    causal = False

    def _setup(self, model: nn.Module, tokenizer, max_length: int) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.pad_id = pad_id(tokenizer)
        self.max_length = max_length
        self.feature_dim = int(model.config.hidden_size)

    def hidden(self, ids: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` ids → ``(B, L, hidden)`` token states; padding is masked out of attention."""
        mask = (ids != self.pad_id).long()
        return self.model(input_ids=ids, attention_mask=mask).last_hidden_state

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # (B, L) -> (B, hidden)
        states = self.hidden(ids)
        mask = (ids != self.pad_id).unsqueeze(-1).to(states.dtype)
        return (states * mask).sum(1) / mask.sum(1).clamp_min(1.0)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write a Hugging Face model directory: config.json, model.safetensors and the tokenizer files."""
        from transformers import PreTrainedTokenizerFast

        directory = Path(directory)
        self.model.save_pretrained(directory)
        specials = {k: t for k, t in (("pad_token", "[PAD]"), ("unk_token", "[UNK]"), ("cls_token", "[CLS]"),
                                      ("sep_token", "[SEP]"), ("mask_token", "[MASK]"))
                    if self.tokenizer.token_to_id(t) is not None}
        fast = PreTrainedTokenizerFast(tokenizer_object=self.tokenizer, model_max_length=self.max_length, **specials)
        fast.save_pretrained(directory)


def _check_sizes(hidden: int, layers: int, heads: int, max_length: int, dropout: float) -> None:
    if hidden < 1 or layers < 1 or heads < 1 or hidden % heads:
        raise ValueError(f"need hidden divisible by heads and all >= 1, got hidden={hidden}, heads={heads}, "
                         f"layers={layers}")
    if max_length < 4:
        raise ValueError(f"max_length must be at least 4 tokens, got {max_length}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout}")


@ENCODERS.register("transformer")
class TransformerEncoder(TextEncoder):
    """A small BERT (Devlin et al., 2019): bidirectional self-attention over WordPiece tokens.

    ``vocab_size`` is the size of the tokenizer trained on the unlabeled corpus when none is given.
    """

    def __init__(
        self, input_shape: tuple[int, ...], tokenizer, vocab_size: int = 8000, hidden: int = 128, layers: int = 4,
        heads: int = 4, intermediate: int = 0, dropout: float = 0.1, max_length: int = 64,
    ) -> None:
        super().__init__(input_shape)
        _check_sizes(hidden, layers, heads, max_length, dropout)
        from transformers import BertConfig, BertModel

        config = BertConfig(
            vocab_size=tokenizer.get_vocab_size(), hidden_size=hidden, num_hidden_layers=layers,
            num_attention_heads=heads, intermediate_size=intermediate or 4 * hidden, hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout, max_position_embeddings=max_length, type_vocab_size=1,
            pad_token_id=pad_id(tokenizer))
        model = BertModel(config)
        # The pooler is unused (features are mean-pooled) but kept, frozen, so that a saved model loads
        # into AutoModel without "missing weights" warnings.
        model.pooler.requires_grad_(False)
        self._setup(model, tokenizer, max_length)


@ENCODERS.register("gpt")
class GPTEncoder(TextEncoder):
    """A small GPT-2 (Radford et al., 2019): causal self-attention, token t sees tokens <= t only."""

    causal = True

    def __init__(
        self, input_shape: tuple[int, ...], tokenizer, vocab_size: int = 8000, hidden: int = 128, layers: int = 4,
        heads: int = 4, dropout: float = 0.1, max_length: int = 64,
    ) -> None:
        super().__init__(input_shape)
        _check_sizes(hidden, layers, heads, max_length, dropout)
        from transformers import GPT2Config, GPT2Model

        config = GPT2Config(
            vocab_size=tokenizer.get_vocab_size(), n_embd=hidden, n_layer=layers, n_head=heads,
            n_positions=max_length, resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
            pad_token_id=pad_id(tokenizer))
        self._setup(GPT2Model(config), tokenizer, max_length)


class HFEncoder(TextEncoder):
    """``hf:PATH``: any local Hugging Face model directory (config.json, weights, tokenizer), loaded offline."""

    def __init__(self, input_shape: tuple[int, ...], path: str, max_length: int = 128, weights: bool = True) -> None:
        super().__init__(input_shape)
        from transformers import AutoConfig, AutoModel

        if not (Path(path) / "config.json").is_file():
            raise UserError(f"hf:{path}: no config.json there; point hf:PATH at a Hugging Face model directory")
        try:
            config = AutoConfig.from_pretrained(path, local_files_only=True)
            model = AutoModel.from_pretrained(path, local_files_only=True) if weights else AutoModel.from_config(config)
        except (OSError, ValueError, KeyError) as err:
            raise UserError(f"hf:{path}: cannot load the model ({str(err).splitlines()[0]}); "
                            "it must hold config.json and model.safetensors (or pytorch_model.bin)") from err
        self.causal = bool(getattr(config, "is_decoder", False)) or config.model_type in ("gpt2", "llama", "mistral")
        limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or max_length
        self._setup(model, load_tokenizer(path), min(max_length, int(limit)))


TEXT_ENCODERS = ("transformer", "gpt")


def is_text_encoder(name: str) -> bool:
    return name.startswith("hf:") or name in TEXT_ENCODERS


def build_text_encoder(name: str, options: dict[str, Any], tokenizer=None, corpus=None, weights=True) -> TextEncoder:
    """Build ``name`` with user ``options``. Our own encoders take ``tokenizer`` (a Tokenizer or its JSON)
    or train one on ``corpus``; ``hf:PATH`` brings its own. ``encoder.spec`` records how to rebuild it."""
    require_text_extra()
    if name.startswith("hf:"):
        unknown = sorted(set(options) - {"max_length"})
        if unknown:
            raise UserError(f"encoder 'hf:PATH' has no option '{unknown[0]}'; its options are: max_length")
        encoder = HFEncoder((), name[3:], weights=weights, **options)
        encoder.spec = {"encoder": name, "encoder_args": dict(options), "input_shape": []}
        return encoder
    if tokenizer is None:
        if corpus is None:
            raise UserError(f"encoder '{name}' needs a tokenizer; pretrain or fine-tune it on text data")
        vocab_size = options.get("vocab_size", 8000)
        try:
            tokenizer = train_tokenizer(corpus, int(vocab_size))
        except ValueError as err:
            raise UserError(f"encoder '{name}': {err}") from err
    tokenizer = load_tokenizer(tokenizer)
    encoder = ENCODERS.build(name, (), tokenizer, **options)
    encoder.spec = {"encoder": name, "encoder_args": dict(options), "input_shape": [], "tokenizer": tokenizer.to_str()}
    return encoder


class TokenClassifier(Classifier):
    """Text encoder + linear tag head on every token: ``(B, L)`` ids → ``(B * L, num_tags)`` logits.

    Flattened so the strategies' ``cross_entropy(logits, tags)`` applies unchanged, with tags of -100
    (PyTorch's ignore index) on padding, special tokens and non-first sub-words.
    """

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.encoder_frozen:
            with torch.no_grad():
                states = self.encoder.hidden(ids)
        else:
            states = self.encoder.hidden(ids)
        logits = self.head(states)  # (B, L, T)
        return logits.reshape(-1, logits.shape[-1])
