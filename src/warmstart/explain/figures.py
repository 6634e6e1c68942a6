"""The explanation report's figures: mean deletion/insertion curves, and embedding maps (PCA, t-SNE) of
the test set for each explained model side by side (scikit-learn's ``PCA`` and ``TSNE``)."""
from __future__ import annotations

import numpy as np

from warmstart.explain.faithfulness import GRID
from warmstart.study.plots import _figure, _png, embedding_png

#: Test rows an embedding map shows (a seeded sample when the split is larger; t-SNE is quadratic-ish).
MAP_POINTS = 1000


def curves_png(label: str, summaries: dict[str, dict]) -> bytes:
    """Mean normalised deletion (left) and insertion (right) curves, one line per ranking."""
    fig = _figure(8.4, 3.3)
    for i, curve in enumerate(("deletion", "insertion")):
        ax = fig.add_subplot(1, 2, i + 1)
        for name, s in summaries.items():
            style = {"linestyle": "--", "color": "#777"} if name == "random" else {}
            ax.plot(GRID, s[f"{curve}_curve"], lw=2, label=f"{name} (AUC {s[f'{curve}_auc']:.3f})", **style)
        ax.set_xlabel(f"fraction of units {'removed' if curve == 'deletion' else 'inserted'}, most attributed first")
        ax.set_ylabel("explained output (1 = input, 0 = baseline)")
        ax.set_title(f"{label}: {curve} ({'lower' if curve == 'deletion' else 'higher'} AUC is better)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _png(fig)


def map_rows(n_test: int, seed: int) -> np.ndarray:
    if n_test <= MAP_POINTS:
        return np.arange(n_test)
    return np.sort(np.random.default_rng(seed).choice(n_test, MAP_POINTS, replace=False))


def embedding_maps(features: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """``{"PCA": (n, 2), "t-SNE": (n, 2)}`` of ``features (n, F)`` (t-SNE: PCA init, perplexity 30 or less)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    features = np.asarray(features, np.float64)
    pca = PCA(2, svd_solver="full", random_state=seed).fit_transform(features)
    perplexity = float(min(30.0, max(2.0, (len(features) - 1) / 3)))
    tsne = TSNE(2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(features)
    return {"PCA": pca.astype(np.float32), "t-SNE": tsne.astype(np.float32)}


def map_png(xy: np.ndarray, values: np.ndarray, class_names: list[str], title: str, value_name: str,
            kind: str) -> bytes:
    return embedding_png(xy, values, class_names, title, value_name, axes=(f"{kind} 1", f"{kind} 2"))
