"""How ``warmstart explain`` treats one modality's inputs (registry ``VIEWS``, keyed by modality name).

A view knows, for one example's model input ``x`` of shape ``(1, ...)``: the *units* that are ranked,
removed and inserted (pixels over all channels, table columns with their one-hot levels folded together,
tokens other than the special ones), each as flat indices into ``x``; the *baseline* a removed unit takes
(black pixels, the training mean of a standardised column, the pad token); the attribution methods that
apply; and how the example and its per-unit attributions are drawn in HTML. Everything else — which
output is explained (the task's ``explain_outputs``), the faithfulness curves, the report — is shared.
One file and one registration line per modality.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from warmstart.registry import Registry

VIEWS: Registry["InputView"] = Registry("explainable modality")

#: Integrated Gradients' path steps (Sundararajan et al., 2017, use 20-300; Captum's default is 50) and
#: how many of the interpolated inputs go through the model at once: without ``internal_batch_size``
#: Captum runs all ``n_steps`` copies in one batch, the known memory trap on large inputs.
IG_STEPS = 50
INTERNAL_BATCH = 25
#: SmoothGrad (Smilkov et al., 2017): noisy copies averaged, noise sd 15% of the input's range (the
#: paper's 10-20%); the paper averages 50 copies, 25 already give stable maps on these small inputs.
SMOOTHGRAD_SAMPLES = 25
SMOOTHGRAD_NOISE = 0.15

#: Methods whose attributions carry a sign (the others give sizes: absolute gradients, attention shares).
SIGNED = ("ig",)
#: Methods whose attributions depend on the explained output (attention rollout does not: one map per row).
CLASS_DEPENDENT = ("ig", "saliency", "smoothgrad")

METHOD_DOCS = {
    "ig": "Integrated Gradients (Sundararajan et al., 2017): the gradient averaged along the straight path "
          f"from the baseline to the input ({IG_STEPS} steps) times (input − baseline); the attributions sum "
          "to f(input) − f(baseline)",
    "saliency": "Saliency (Simonyan et al., 2014): the absolute gradient of the explained output",
    "smoothgrad": f"SmoothGrad (Smilkov et al., 2017): the absolute gradient averaged over {SMOOTHGRAD_SAMPLES} "
                  f"noisy copies of the input (noise sd {SMOOTHGRAD_NOISE:.0%} of its range)",
    "rollout": "attention rollout (Abnar & Zuidema, 2020): each layer's head-averaged attention with the "
               "residual added (0.5·A + 0.5·I, rows renormalised), multiplied through the layers; it explains "
               "the encoder's pooled output and is the same for every class",
}


@dataclass
class Example:
    """One explained row in model inputs: ``x (1, ...)``, its ``baseline`` (every unit removed), the units as
    flat index arrays into ``x``, and what drawing needs (``extra``: tokens, column names, ...)."""

    x: torch.Tensor
    baseline: torch.Tensor
    units: list[np.ndarray]
    names: list[str]
    extra: dict[str, Any] = field(default_factory=dict)

    def with_units(self, chosen: np.ndarray, keep: bool) -> torch.Tensor:
        """``(len(chosen), ...)`` variants of ``x``: row ``k`` has the units ``chosen[k]`` (a boolean mask
        over the units) kept from ``x`` and the rest from the baseline (``keep``), or removed (not ``keep``)."""
        flat_x, flat_b = self.x.reshape(-1), self.baseline.reshape(-1)
        out = flat_x.repeat(len(chosen), 1)
        for k, mask in enumerate(chosen):
            removed = [u for u, m in zip(self.units, mask) if m != keep]
            if removed:
                idx = torch.as_tensor(np.concatenate(removed))
                out[k, idx] = flat_b[idx]
        return out.reshape(len(chosen), *self.x.shape[1:])

    def per_unit(self, attribution: torch.Tensor) -> np.ndarray:
        """An input-shaped ``(1, ...)`` attribution summed over each unit's indices → ``(units,)``."""
        flat = attribution.detach().reshape(-1).double().numpy()
        return np.array([flat[u].sum() for u in self.units])


class InputView:
    """Base class; one instance per explainable modality."""

    modality = ""
    methods: tuple[str, ...] = ("ig", "saliency", "smoothgrad")

    def example(self, bundle, model, row: Any) -> Example:
        raise NotImplementedError

    def attribute(self, method: str, model, score, example: Example, focus: int | None) -> torch.Tensor:
        """An attribution shaped like ``example.x`` of the scalar ``score(inputs) -> (B,)``; the default runs
        Captum's gradient methods on the input tensor itself."""
        from warmstart.explain.methods import input_attribution

        return input_attribution(method, score, example.x, example.baseline)

    def draw(self, example: Example, groups: list[tuple[str, list[tuple[str, np.ndarray]]]]) -> str:
        """HTML of the example and its maps: ``groups`` of ``(title, [(method, per-unit attribution)])``,
        one group per explained output (the prediction, the true label)."""
        raise NotImplementedError


def colour(value: float, scale: float) -> str:
    """A CSS background for a signed attribution: red supports the explained output, blue opposes it."""
    if not scale or not np.isfinite(value):
        return "transparent"
    alpha = min(1.0, abs(value) / scale) * 0.85
    return f"rgba(214,39,40,{alpha:.2f})" if value >= 0 else f"rgba(31,119,180,{alpha:.2f})"


def escape(text: Any) -> str:
    return html.escape(str(text))
