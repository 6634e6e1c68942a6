"""Explaining image models: pixels (all channels together) are the units, black is the baseline."""
from __future__ import annotations

import base64
import io

import numpy as np
import torch

from warmstart.explain.views import VIEWS, Example, InputView, escape

#: Images are drawn about this many pixels wide (nearest-neighbour upscaling keeps pixels visible).
DRAWN = 96
RED, BLUE = np.array([0.84, 0.15, 0.16]), np.array([0.12, 0.47, 0.71])


def png_data(rgb: np.ndarray) -> str:
    """A ``data:`` URI of an ``(H, W, 3)`` float image in [0, 1], upscaled to about ``DRAWN`` pixels."""
    from PIL import Image

    h, w = rgb.shape[:2]
    factor = max(1, round(DRAWN / max(h, w)))
    image = Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8)).resize((w * factor, h * factor),
                                                                                  Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def heat_map(gray: np.ndarray, attribution: np.ndarray) -> np.ndarray:
    """``(H, W, 3)``: the signed ``attribution`` (red +, blue −, opacity by size relative to its largest)
    over the dimmed grayscale input."""
    scale = np.abs(attribution).max()
    alpha = (np.abs(attribution) / scale if scale > 0 else np.zeros_like(attribution))[..., None] * 0.85
    tint = np.where((attribution >= 0)[..., None], RED, BLUE)
    under = np.repeat((0.25 + 0.5 * gray)[..., None], 3, axis=2)
    return under * (1 - alpha) + tint * alpha


class ImageView(InputView):
    modality = "image"

    def example(self, bundle, model, row) -> Example:
        x = bundle.handler.batch(bundle, np.asarray(row)[None])  # (1, C, H, W)
        channels, pixels = x.shape[1], x.shape[2] * x.shape[3]
        units = [np.arange(channels) * pixels + p for p in range(pixels)]
        return Example(x, torch.zeros_like(x), units, [f"pixel {p}" for p in range(pixels)])

    def draw(self, example, groups) -> str:
        x = example.x[0].numpy()
        h, w = x.shape[1:]
        gray = x.mean(0)
        span = gray.max() - gray.min()
        gray = (gray - gray.min()) / span if span > 0 else np.zeros_like(gray)
        if x.shape[0] == 3:
            shown = np.transpose(x, (1, 2, 0))
            shown = (shown - shown.min()) / max(float(shown.max() - shown.min()), 1e-12)
        else:
            shown = np.repeat(gray[..., None], 3, axis=2)
        methods = [method for method, _ in groups[0][1]]
        rows = ['<tr><th>input</th><th></th>' + "".join(f"<th>{escape(m)}</th>" for m in methods) + "</tr>"]
        for i, (title, maps) in enumerate(groups):
            first = (f'<td rowspan="{len(groups)}"><img src="{png_data(shown)}" alt="input"></td>' if i == 0 else "")
            rows.append(f"<tr>{first}<th>{escape(title)}</th>" + "".join(
                f'<td><img src="{png_data(heat_map(gray, values.reshape(h, w)))}" alt="{escape(m)}: {escape(title)}">'
                "</td>" for m, values in maps) + "</tr>")
        return '<table class="imaps">' + "".join(rows) + "</table>"


VIEWS.register("image")(ImageView())
