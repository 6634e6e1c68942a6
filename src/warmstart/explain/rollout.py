"""Attention rollout (Abnar & Zuidema, 2020, "Quantifying Attention Flow in Transformers", §3).

Raw attention ignores the residual stream, so each layer's attention is mixed with the identity,
``Â = 0.5·A + 0.5·I`` (rows renormalised), after fusing the heads by their mean; the rollout to layer ``l``
is ``Â_l · Â_{l-1} ··· Â_1``: row ``i`` says how much of token ``i``'s state at the top comes from each
input token. Captum has no rollout; this is ours.
"""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import torch


def attention_rollout(attentions: Sequence[torch.Tensor], residual: bool = True) -> torch.Tensor:
    """``(B, L, L)`` rollout of per-layer attentions ``(B, heads, L, L)`` (bottom layer first).

    >>> uniform = torch.full((1, 1, 2, 2), 0.5)
    >>> attention_rollout([uniform])[0]
    tensor([[0.7500, 0.2500],
            [0.2500, 0.7500]])
    """
    batch, _, length, _ = attentions[0].shape
    eye = torch.eye(length, dtype=attentions[0].dtype).expand(batch, length, length)
    rollout = eye
    for layer in attentions:
        fused = layer.mean(1)  # (B, L, L): heads fused by their mean
        if residual:
            fused = 0.5 * fused + 0.5 * eye
            fused = fused / fused.sum(-1, keepdim=True)
        rollout = fused @ rollout
    return rollout


@contextmanager
def eager_attention(model: torch.nn.Module):
    """Hugging Face's SDPA kernels return no attention weights; switch ``model`` to eager attention
    while inside (same outputs, slower), then back."""
    before = getattr(model.config, "_attn_implementation", None) or "eager"
    _set_attention(model, "eager")
    try:
        yield
    finally:
        _set_attention(model, before)


def _set_attention(model: torch.nn.Module, name: str) -> None:
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(name)
    else:  # older transformers read the config field
        model.config._attn_implementation = name


@torch.no_grad()
def token_rollout(encoder, ids: torch.Tensor, focus: int | None) -> torch.Tensor:
    """``(1, L)`` share of the explained output drawn from each input token: the rollout row of token
    ``focus`` (a tag), or the mean of the rows of the real tokens (the encoder mean-pools them)."""
    mask = (ids != encoder.pad_id).long()
    with eager_attention(encoder.model):
        attentions = encoder.model(input_ids=ids, attention_mask=mask, output_attentions=True).attentions
    rollout = attention_rollout(attentions)  # (1, L, L)
    if focus is not None:
        return rollout[:, focus]
    weights = mask.to(rollout.dtype) / mask.sum()
    return (weights.unsqueeze(-1) * rollout).sum(1)
