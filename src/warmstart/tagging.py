"""Token classification (BIO tagging) on the same engine: word tags aligned to sub-word tokens, entity F1.

A tagging ``DataBundle`` (``task="tagging"``, e.g. ``wordnet-tags``) holds rows ``(words, start, end)`` with
``y`` the entity's class: words ``start..end-1`` are tagged ``B-<class>``, ``I-<class>``..., all others ``O``.
Tag ids: 0 = ``O``, ``1 + 2c`` = ``B-c``, ``2 + 2c`` = ``I-c``. Only the first sub-word of each word carries
a training target (Devlin et al., 2019, §5.3); the rest, padding and special tokens get -100 (ignored).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from warmstart.data import DataBundle
from warmstart.data.text import encode
from warmstart.engine import Stream

IGNORE = -100


def tag_names(class_names: list[str]) -> list[str]:
    return ["O"] + [f"{prefix}-{c}" for c in class_names for prefix in ("B", "I")]


def word_tags(start: int, end: int, label: int, n_words: int) -> list[int]:
    """BIO tag ids of one sentence's words."""
    tags = [0] * n_words
    for i in range(start, end):
        tags[i] = 1 + 2 * label + (i > start)
    return tags


def align(encodings, rows, labels: np.ndarray) -> torch.Tensor:
    """``(B, L)`` token targets: each word's tag on its first sub-word, -100 elsewhere."""
    out = torch.full((len(encodings), len(encodings[0].ids)), IGNORE, dtype=torch.int64)
    for b, (enc, (words, start, end), label) in enumerate(zip(encodings, rows, labels)):
        tags, previous = word_tags(start, end, int(label), len(words)), None
        for t, w in enumerate(enc.word_ids):
            if w is not None and w != previous:
                out[b, t] = tags[w]
            previous = w
    return out


def tag_stream(data: DataBundle, index: np.ndarray, batch_size: int, with_labels: bool = True) -> Stream:
    """Batches ``(ids (B, L), flattened targets (B*L,))`` of training rows ``index``."""
    def make(rows: np.ndarray) -> tuple[torch.Tensor, ...]:
        docs = data.x_train[index[rows]]
        ids, encodings = encode(data.tokenizer, docs, data.max_length)
        return ids, align(encodings, docs, data.y_train[index[rows]]).reshape(-1)
    return Stream(len(index), min(batch_size, len(index)), make)


def entities(tags: list[str]) -> set[tuple[str, int, int]]:
    """``(type, start, end)`` spans of a BIO sequence, read the way seqeval's default (conlleval) mode
    does: an ``I-X`` that does not continue an ``X`` entity starts a new one."""
    spans, kind, start = set(), None, 0
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, name = tag.partition("-")
        if kind is not None and (prefix != "I" or name != kind):
            spans.add((kind, start, i))
            kind = None
        if prefix == "B" or (prefix == "I" and kind is None):
            kind, start = name, i
    return spans


def _prf(hits: int, n_pred: int, n_true: int) -> tuple[float, float, float]:
    precision = hits / n_pred if n_pred else 0.0
    recall = hits / n_true if n_true else 0.0
    return precision, recall, (2 * precision * recall / (precision + recall) if precision + recall else 0.0)


def entity_f1(true: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
    """Entity-level scores: a predicted entity counts only if its type and both boundaries match exactly
    (CoNLL-2003 / seqeval). Micro-averaged precision, recall and F1, and the macro average of per-type F1
    over the types present in ``true`` (seqeval's "macro avg")."""
    counts: dict[str, list[int]] = {}  # type -> [hits, predicted, true]
    for t, p in zip(true, pred):
        gold, guess = entities(t), entities(p)
        for span in gold | guess:
            c = counts.setdefault(span[0], [0, 0, 0])
            c[0] += span in gold and span in guess
            c[1] += span in guess
            c[2] += span in gold
    precision, recall, f1 = _prf(*(sum(c[i] for c in counts.values()) for i in range(3)))
    per_type = [_prf(*c)[2] for c in counts.values() if c[2]]
    return {"entity_precision": precision, "entity_recall": recall, "entity_f1": f1,
            "entity_macro_f1": sum(per_type) / len(per_type) if per_type else 0.0}


@torch.no_grad()
def evaluate_tagging(model, data: DataBundle, batch_size: int = 256) -> dict[str, Any]:
    """Entity-level F1 and word accuracy on the test split; a word's prediction is its first sub-word's."""
    model.eval()
    names = tag_names(data.class_names)
    true, pred, correct, words = [], [], 0, 0
    for i in range(0, len(data.x_test), batch_size):
        docs, labels = data.x_test[i:i + batch_size], data.y_test[i:i + batch_size]
        ids, encodings = encode(data.tokenizer, docs, data.max_length)
        best = model(ids).argmax(-1).reshape(ids.shape)
        targets = align(encodings, docs, labels)
        for b, (row, label) in enumerate(zip(docs, labels)):
            gold = word_tags(row[1], row[2], int(label), len(row[0]))
            guess = [0] * len(gold)  # words cut off by max_length count as O
            keep = targets[b] != IGNORE
            for w, tag in zip([w for w, k in zip(encodings[b].word_ids, keep) if k], best[b][keep].tolist()):
                guess[w] = tag
            true.append([names[t] for t in gold])
            pred.append([names[t] for t in guess])
            correct += sum(g == p for g, p in zip(gold, guess))
            words += len(gold)
    scores = entity_f1(true, pred)
    # "accuracy" and "macro_f1" under the names every report reads: word accuracy and macro entity F1.
    return {**scores, "accuracy": correct / max(words, 1), "macro_f1": scores["entity_macro_f1"],
            "n": int(len(data.x_test))}
