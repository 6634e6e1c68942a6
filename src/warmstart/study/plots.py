"""The study report's figures as PNG bytes (matplotlib's object API: no pyplot state, no display)."""
from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from warmstart.study.summary import Summary


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def curve_png(summary: "Summary") -> bytes:
    if len(summary.budgets) == 1:
        return _bars_png(summary)
    fig = _figure(7.5, 4.6)
    ax = fig.add_subplot()
    x = np.array([summary.labels[b] for b in summary.budgets], dtype=float)
    for method in summary.methods:
        points = [(summary.labels[b], summary.stat[method, b]) for b in summary.budgets if (method, b) in summary.stat]
        xs = np.array([p[0] for p in points], float)
        mean = np.array([p[1].mean for p in points])
        ci = np.nan_to_num(np.array([p[1].ci for p in points]))
        style = {"baseline": ":", "scratch": "--"}.get(summary.kind[method], "-")
        (line,) = ax.plot(xs, mean, style, marker="o", lw=2, ms=4, label=method)
        ax.fill_between(xs, mean - ci, mean + ci, color=line.get_color(), alpha=0.15, lw=0)
    ax.set_xscale("log")
    ax.set_xticks(x, [str(int(v)) for v in x])
    ax.minorticks_off()
    ax.set_xlabel("labeled examples (log scale)")
    ax.set_ylabel(f"test {summary.metric}" + ("" if summary.higher_is_better else " (lower is better)"))
    ax.set_title("Label efficiency (mean over seeds, 95% CI bands)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def _bars_png(summary: "Summary") -> bytes:
    """One budget: no curve to draw, so one bar per method with its 95% CI."""
    budget = summary.budgets[0]
    methods = [m for m in summary.methods if (m, budget) in summary.stat]
    stats = [summary.stat[m, budget] for m in methods]
    fig = _figure(7.0, 0.9 + 0.38 * len(methods))
    ax = fig.add_subplot()
    colours = {"scratch": "#8c8c8c", "pretrained": "#4c72b0", "baseline": "#dd8452"}
    ax.barh(methods, [s.mean for s in stats], xerr=np.nan_to_num([s.ci for s in stats]), capsize=3,
            color=[colours.get(summary.kind[m], "#4c72b0") for m in methods])
    if summary.higher_is_better and all(0 <= s.mean <= 1 for s in stats):  # a score in [0, 1]: zoom on the top
        ax.set_xlim(max(0.0, min(s.mean for s in stats) - 0.15), 1.0)
    ax.invert_yaxis()
    lower = "" if summary.higher_is_better else ", lower is better"
    ax.set_xlabel(f"test {summary.metric} (mean over seeds, 95% CI{lower})")
    ax.set_title(f"{summary.labels[budget]} labels ({budget})")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def sweep_png(lines: dict[str, list[tuple[float, float, float]]], xlabel: str, ylabel: str, log_x: bool) -> bytes:
    """One line per label through its ``(x, mean, 95% CI half-width)`` points: a metric versus a swept setting."""
    fig = _figure(7.5, 4.6)
    ax = fig.add_subplot()
    for label, points in lines.items():
        xs, mean, ci = (np.array([p[i] for p in sorted(points)], float) for i in range(3))
        (line,) = ax.plot(xs, mean, marker="o", lw=2, ms=4, label=label)
        spread = np.nan_to_num(ci)
        ax.fill_between(xs, mean - spread, mean + spread, color=line.get_color(), alpha=0.15, lw=0)
    if log_x:
        ax.set_xscale("log")
        ticks = sorted({p[0] for points in lines.values() for p in points})
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
    means = [p[1] for points in lines.values() for p in points]
    if means and all(0 <= m <= 1 for m in means):  # a score in [0, 1]: wide intervals of few seeds stay in range
        ax.set_ylim(max(0.0, min(means) - 0.1), min(1.0, max(means) + 0.1))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def confusion_png(matrix: np.ndarray, class_names: list[str], title: str) -> bytes:
    return _png(confusion_figure(matrix, class_names, title))


def confusion_figure(matrix: np.ndarray, class_names: list[str], title: str) -> Figure:
    """The counts as a heat map from 0 (so a count's shade, and its white-or-black label, follow its size)."""
    fig = _figure(5.2, 4.6)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues", vmin=0)
    k = len(matrix)
    ax.set_xticks(range(k), class_names, rotation=45 if max(map(len, class_names)) > 2 else 0, fontsize=8)
    ax.set_yticks(range(k), class_names, fontsize=8)
    if k <= 15:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def embedding_png(xy: np.ndarray, y: np.ndarray, class_names: list[str], title: str, value_name: str = "",
                  axes: tuple[str, str] = ("PC 1", "PC 2")) -> bytes:
    """A 2-D map coloured by class (``class_names``) or, with ``value_name`` and no classes, by a value;
    ``axes`` names its two axes (a t-SNE map's are "t-SNE 1", "t-SNE 2")."""
    fig = _figure(6.2, 5.0)
    ax = fig.add_subplot()
    if class_names:
        cmap = "tab10" if len(class_names) <= 10 else "tab20"
        scatter = ax.scatter(xy[:, 0], xy[:, 1], c=y, cmap=cmap, s=8, alpha=0.8, vmin=-0.5,
                             vmax=len(class_names) - 0.5)
        handles = [ax.scatter([], [], color=scatter.cmap(scatter.norm(i)), s=20, label=name)
                   for i, name in enumerate(class_names)]
        ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5), title="class")
    else:
        scatter = ax.scatter(xy[:, 0], xy[:, 1], c=y, cmap="viridis", s=8, alpha=0.8)
        fig.colorbar(scatter, ax=ax, label=value_name or "target")
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.set_title(title, fontsize=10)
    return _png(fig)
