"""Batched inference in eval mode: a model's outputs and an encoder's features for many rows.

The metrics themselves belong to the tasks (``warmstart.tasks``).
"""
from __future__ import annotations


import numpy as np
import torch
from torch import nn

from warmstart.data import DataBundle


@torch.no_grad()
def predict_logits(model: nn.Module, data: DataBundle, x: np.ndarray, batch_size: int = 1024) -> torch.Tensor:
    """Logits for every row of ``x``, computed in eval mode in chunks."""
    model.eval()
    device = next(model.parameters(), torch.empty(0)).device  # a model still on the GPU mid-training is fine
    chunks = [model(data.batch(x[i:i + batch_size]).to(device)).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(chunks)


@torch.no_grad()
def embed(encoder: nn.Module, data: DataBundle, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Encoder features ``(N, feature_dim)`` for every row of ``x``."""
    encoder.eval()
    device = next(encoder.parameters(), torch.empty(0)).device
    return torch.cat([encoder(data.batch(x[i:i + batch_size]).to(device)).cpu()
                      for i in range(0, len(x), batch_size)]).numpy()
