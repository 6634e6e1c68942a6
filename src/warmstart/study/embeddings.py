"""The test embedding maps a study keeps per pretraining run: a 2-D PCA of the test split's features and
what each point is coloured by (``warmstart report`` draws them; ``warmstart explain`` reuses the colours)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA

from warmstart.checkpoint import save_tensors
from warmstart.data.bundle import final_evaluation
from warmstart.evaluate import embed

EMBEDDING_FILE = "embedding.safetensors"


def colour_values(task, data) -> tuple[np.ndarray, list[str]]:
    """What a test embedding map is coloured by: the class, the first target's value, or a tagged
    sentence's first entity type; and the class names (empty for a continuous value). A task may say
    otherwise (``Task.embedding_colours``)."""
    custom = task.embedding_colours(data)
    if custom is not None:
        return custom
    if task.name == "classify":
        return data.y_test.astype(np.float32), list(data.class_names)
    if task.name == "tag":
        first = [int((t[t > 0][0] - 1) // 2) if (t > 0).any() else data.num_classes for t in data.y_test]
        return np.array(first, np.float32), [*data.class_names, "(no entity)"]
    return np.asarray(data.y_test, np.float32).reshape(len(data.y_test), -1)[:, 0], []  # regress, rate, rank


def save_embedding(encoder: torch.nn.Module, data, task, path: Path, objective: str) -> None:
    """A 2-D PCA map of the test split's features from ``encoder``, coloured by ``colour_values``, into ``path``."""
    with final_evaluation():
        features = embed(encoder, data.handler.prepare(data, encoder), data.x_test)
        values, names = colour_values(task, data)
    pca = PCA(2, svd_solver="full")
    xy = pca.fit_transform(features).astype(np.float32)
    save_tensors(path, {"xy": torch.from_numpy(xy), "y": torch.from_numpy(values)}, {
        "objective": objective, "explained_variance": pca.explained_variance_ratio_.round(4).tolist(),
        "class_names": names,
        "coloured_by": data.target_names[0] if not names and data.target_names else ""})
