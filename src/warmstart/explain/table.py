"""Explaining table models: the original columns are the units (a one-hot categorical column's levels
are removed and scored together, ``DataBundle.feature_columns``); the baseline is 0: the training mean of a
standardised numeric column, no level at all for a categorical one."""
from __future__ import annotations

import numpy as np
import torch

from warmstart.explain.views import VIEWS, Example, InputView, colour, escape


def column_groups(bundle) -> tuple[list[str], list[np.ndarray]]:
    """The column names, in first-appearance order, and the feature indices of each."""
    size = int(np.prod(bundle.input_shape))
    names = bundle.feature_columns or [f"feature {i}" for i in range(size)]
    order = list(dict.fromkeys(names))
    return order, [np.flatnonzero(np.asarray(names) == name) for name in order]


class TableView(InputView):
    modality = "table"

    def example(self, bundle, model, row) -> Example:
        x = bundle.handler.batch(bundle, np.asarray(row)[None])  # (1, D)
        names, units = column_groups(bundle)
        return Example(x, torch.zeros_like(x), units, names)

    def draw(self, example, groups) -> str:
        x = example.x.reshape(-1).numpy()
        maps = [(f"{method} · {title}", values) for title, group in groups for method, values in group]
        head = "<tr><th>column</th><th>value (standardised)</th>" + "".join(
            f"<th>{escape(title)}</th>" for title, _ in maps) + "</tr>"
        scales = [float(np.abs(values).max()) for _, values in maps]
        rows = []
        for u, (name, index) in enumerate(zip(example.names, example.units)):
            value = f"{x[index[0]]:.2f}" if len(index) == 1 else f"one-hot, level {int(np.argmax(x[index])) + 1}"
            rows.append(f"<tr><td>{escape(name)}</td><td>{value}</td>" + "".join(
                f'<td style="background:{colour(values[u], scale)}">{values[u]:+.3g}</td>'
                for (_, values), scale in zip(maps, scales)) + "</tr>")
        return '<table class="attr">' + head + "".join(rows) + "</table>"


VIEWS.register("table")(TableView())
