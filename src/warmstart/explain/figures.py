"""The explanation report's figures: mean deletion/insertion curves, and embedding maps (PCA, t-SNE) of
the test set for each explained model side by side (scikit-learn's ``PCA`` and ``TSNE``)."""
from __future__ import annotations

import numpy as np

from warmstart.explain.faithfulness import GRID
from warmstart.study.plots import _figure, _png

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


def maps_png(models: list[tuple[str, dict[str, np.ndarray]]], values: np.ndarray, class_names: list[str],
             value_name: str) -> bytes:
    """One figure: a row per map kind (PCA, t-SNE), a column per model, coloured by class or by a value."""
    kinds = list(models[0][1])
    fig = _figure(4.2 * len(models) + 1.4, 3.8 * len(kinds))
    axes = fig.subplots(len(kinds), len(models), squeeze=False)
    cmap = ("tab10" if len(class_names) <= 10 else "tab20") if class_names else "viridis"
    limits = {"vmin": -0.5, "vmax": len(class_names) - 0.5} if class_names else {}
    for row, kind in enumerate(kinds):
        for col, (label, maps) in enumerate(models):
            ax = axes[row][col]
            scatter = ax.scatter(maps[kind][:, 0], maps[kind][:, 1], c=values, cmap=cmap, s=6, alpha=0.8, **limits)
            ax.set_title(f"{label}: {kind}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    if class_names:
        handles = [axes[0][-1].scatter([], [], color=scatter.cmap(scatter.norm(i)), s=16, label=name)
                   for i, name in enumerate(class_names)]
        fig.legend(handles=handles, fontsize=7, loc="outside right center", title="class")
    else:
        fig.colorbar(scatter, ax=axes, label=value_name or "target", shrink=0.8)
    return _png(fig)
