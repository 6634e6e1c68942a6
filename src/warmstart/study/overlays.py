"""Overlay grids for dense tasks: test scenes with masks or boxes drawn over them, truth beside predictions."""
from __future__ import annotations

import io

import numpy as np


def _colours(n: int) -> np.ndarray:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return np.array([cmap(i % cmap.N)[:3] for i in range(n)])


def _picture(image: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` model-unit pixels → ``(H, W, 3)`` in [0, 1] for drawing."""
    rgb = np.repeat(image, 3, 0) if image.shape[0] == 1 else image[:3]
    low, high = rgb.min(), rgb.max()
    return ((rgb - low) / max(high - low, 1e-9)).transpose(1, 2, 0)


def _draw_masks(ax, image: np.ndarray, classes: np.ndarray, colours: np.ndarray) -> None:
    """Pixels of class ``1 + c`` tinted with colour ``c``; the background (0) left as it is."""
    picture = _picture(image)
    tint = np.where(classes[..., None] > 0, colours[np.clip(classes - 1, 0, None)], picture)
    ax.imshow(np.where(classes[..., None] > 0, 0.45 * picture + 0.55 * tint, picture), interpolation="nearest")


def _draw_boxes(ax, image: np.ndarray, rows: np.ndarray, colours: np.ndarray, names: list[str], scored: bool) -> None:
    """Rows ``x1, y1, x2, y2, score, label`` (label < 0: padding) as rectangles coloured by class."""
    from matplotlib.patches import Rectangle

    ax.imshow(_picture(image), interpolation="nearest")
    for x1, y1, x2, y2, score, label in rows:
        if label < 0:
            continue
        colour = colours[int(label)]
        ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=1.4))
        text = names[int(label)] if int(label) < len(names) else str(int(label))
        ax.text(x1 - 0.5, y1 - 1, f"{text} {score:.2f}" if scored else text, color="white", fontsize=5.5,
                va="bottom", bbox={"facecolor": colour, "alpha": 0.8, "pad": 0.6, "linewidth": 0})


def overlay_grid(samples: dict[str, dict[str, np.ndarray]], task: str, class_names: list[str], title: str) -> bytes:
    """A PNG: one row per scene; the ground truth, then each method's predictions (``samples``: method →
    ``image`` ``(n, C, H, W)``, ``true`` and ``pred`` as the task saved them). ``task`` is segment or detect."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    methods = list(samples)
    first = samples[methods[0]]
    n = len(first["image"])
    colours = _colours(max(len(class_names), 1))
    columns = [("ground truth", first["true"], False)] + [(m, samples[m]["pred"], True) for m in methods]
    fig, axes = plt.subplots(n, len(columns), figsize=(2.3 * len(columns), 2.3 * n + 0.9), squeeze=False)
    for r in range(n):
        for c, (label, arrays, scored) in enumerate(columns):
            ax = axes[r, c]
            if task == "segment":
                _draw_masks(ax, first["image"][r], arrays[r], colours)
            else:
                _draw_boxes(ax, first["image"][r], arrays[r], colours, class_names, scored)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(label, fontsize=9)
    handles = [Patch(color=colours[i], label=name) for i, name in enumerate(class_names)]
    fig.legend(handles=handles, loc="lower center", ncol=min(5, max(len(handles), 1)), fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()
