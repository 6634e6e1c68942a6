"""Test-set metrics: accuracy, macro-F1 and the confusion matrix (scikit-learn's definitions)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
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


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict[str, Any]:
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", labels=list(range(num_classes)), zero_division=0)),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=list(range(num_classes))).tolist(),
        "n": int(len(y_true)),
    }


def evaluate_model(model: nn.Module, data: DataBundle) -> dict[str, Any]:
    """Metrics of ``model`` on ``data``'s test split."""
    y_pred = predict_logits(model, data, data.x_test).argmax(1).numpy()
    return classification_metrics(data.y_test, y_pred, data.num_classes)
