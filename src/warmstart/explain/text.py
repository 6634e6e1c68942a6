"""Explaining text models: the tokens other than the special ones ([CLS], [SEP]) are the units; a removed
token becomes the pad token, which attention masks out. Integrated Gradients and saliency attribute the
word-embedding layer's output (token ids cannot be interpolated); attention rollout reads the encoder's
attention."""
from __future__ import annotations

import numpy as np
import torch

from warmstart.explain.views import VIEWS, Example, InputView, colour, escape


class TextView(InputView):
    modality = "text"
    methods = ("ig", "saliency", "rollout")

    def example(self, bundle, model, row) -> Example:
        from warmstart.data.text import encode

        ids, encodings = encode(bundle.tokenizer, [row], bundle.max_length)  # (1, L), no padding
        special = np.asarray(encodings[0].special_tokens_mask, bool)
        positions = np.flatnonzero(~special)
        baseline = ids.clone()
        baseline[0, torch.as_tensor(positions, dtype=torch.long)] = model.encoder.pad_id
        tokens = list(encodings[0].tokens)
        return Example(ids, baseline, [np.array([p]) for p in positions], [tokens[p] for p in positions],
                       {"tokens": tokens, "positions": positions})

    def attribute(self, method, model, score, example, focus):
        if method == "rollout":
            from warmstart.explain.rollout import token_rollout

            return token_rollout(model.encoder, example.x, focus)
        from warmstart.explain.methods import embedding_attribution

        layer = model.encoder.model.get_input_embeddings()
        return embedding_attribution(method, score, layer, example.x, example.baseline)

    def draw(self, example, groups) -> str:
        focus = example.extra.get("focus")
        lines = []
        for title, maps in groups:
            for method, values in maps:
                scale = float(np.abs(values).max()) if len(values) else 0.0
                spans = []
                for name, value, position in zip(example.names, values, example.extra["positions"]):
                    mark = ' class="focus"' if position == focus else ""
                    spans.append(f'<span{mark} style="background:{colour(value, scale)}" title="{value:+.3g}">'
                                 f"{escape(name)}</span>")
                lines.append(f'<div class="tokens"><b>{escape(method)} · {escape(title)}</b> ' + " ".join(spans)
                             + "</div>")
        return "".join(lines)


VIEWS.register("text")(TextView())
