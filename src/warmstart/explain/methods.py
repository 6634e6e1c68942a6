"""Captum's attribution methods on tensor inputs (images, tables) and on a text encoder's embedding layer.

Every explained output is a function ``score(inputs) -> (B,)`` (``Task.explain_outputs``), so Captum is
called with ``target=None``. Token ids cannot be interpolated, so text methods attribute the output of the
word-embedding layer (Captum's ``Layer*`` classes) and sum over the hidden size to one value per token.
"""
from __future__ import annotations

import torch

from warmstart.errors import UserError
from warmstart.explain.views import IG_STEPS, INTERNAL_BATCH, SMOOTHGRAD_NOISE, SMOOTHGRAD_SAMPLES


def require_captum():
    try:
        import captum  # noqa: F401
    except ImportError:
        raise UserError("warmstart explain needs Captum: pip install 'warmstart[explain]'") from None


def input_attribution(method: str, score, x: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
    """``method`` ("ig", "saliency" or "smoothgrad") attribution of ``score`` at ``x (1, ...)``."""
    from captum.attr import IntegratedGradients, NoiseTunnel, Saliency

    spread = float(x.max() - x.min()) or 1.0
    x = x.detach().clone().requires_grad_(True)
    if method == "ig":
        return IntegratedGradients(score).attribute(x, baselines=baseline, n_steps=IG_STEPS,
                                                    internal_batch_size=INTERNAL_BATCH)
    if method == "saliency":
        return Saliency(score).attribute(x, abs=True)
    if method == "smoothgrad":
        return NoiseTunnel(Saliency(score)).attribute(
            x, nt_type="smoothgrad", nt_samples=SMOOTHGRAD_SAMPLES, nt_samples_batch_size=INTERNAL_BATCH,
            stdevs=SMOOTHGRAD_NOISE * spread)
    raise ValueError(f"no input attribution method {method!r}")


def embedding_attribution(method: str, score, layer: torch.nn.Module, ids: torch.Tensor,
                          baseline_ids: torch.Tensor) -> torch.Tensor:
    """``(1, L)`` per-token attribution of ``score`` at the output of the embedding ``layer``: Integrated
    Gradients from the baseline ids' embeddings ("ig"), or the L2 norm of the gradient ("saliency")."""
    from captum.attr import LayerGradientXActivation, LayerIntegratedGradients

    if method == "ig":
        attribution = LayerIntegratedGradients(score, layer).attribute(
            ids, baselines=baseline_ids, n_steps=IG_STEPS, internal_batch_size=INTERNAL_BATCH)
        return attribution.sum(-1)
    if method == "saliency":
        gradient = LayerGradientXActivation(score, layer, multiply_by_inputs=False).attribute(ids)
        return gradient.norm(dim=-1)
    raise ValueError(f"no embedding attribution method {method!r}")
