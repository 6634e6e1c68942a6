"""LightGCN (He et al., SIGIR 2020, "LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation"): BPR on embeddings propagated over the user–item graph."""
from __future__ import annotations

from warmstart.models.encoders import Encoder
from warmstart.objectives.bpr import BPR


class LightGCN(BPR):
    """BPR on ``mean_k E^(k)``, ``E^(k+1) = D^-1/2 A D^-1/2 E^(k)`` over the training graph (sparse products on
    the CPU; no weights, no non-linearity). The propagation belongs to the encoder: this objective sets the
    encoder's ``layers``, so the saved encoder, and every fine-tune of it, propagates as it was trained.

    Args:
        layers: propagation layers (3, the paper's best on its data sets).
        reg: L2 weight on the layer-0 vectors of each batch (the paper's 1e-4).
    """

    def __init__(self, encoder: Encoder, layers: int = 3, reg: float = 1e-4) -> None:
        super().__init__(encoder, reg)
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        encoder.propagation(layers, ego=True)
