"""``tag``: token classification with BIO tags — entity-level F1 (primary, seqeval-style) and token accuracy.

A tagging bundle's rows are word sequences (tuples of strings) and its targets one int64 tag id per word:
0 = ``O``, ``1 + 2c`` = ``B-<c>``, ``2 + 2c`` = ``I-<c>``, with ``class_names`` the entity types. Only the
first sub-word of each word carries a training target (Devlin et al., 2019, §5.3); other sub-words, padding
and special tokens get -100 (ignored). Words cut off by the encoder's ``max_length`` are predicted ``O``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from warmstart.engine import Stream
from warmstart.errors import UserError
from warmstart.probes import LinearProbe
from warmstart.tasks.base import TASKS, Explained, Task

IGNORE = -100


def tag_names(class_names: list[str]) -> list[str]:
    return ["O"] + [f"{prefix}-{c}" for c in class_names for prefix in ("B", "I")]


def span_tags(n_words: int, spans: list[tuple[int, int, int]]) -> np.ndarray:
    """Per-word tag ids of a sentence whose entities are ``(start, end, class)`` word spans."""
    tags = np.zeros(n_words, np.int64)
    for start, end, label in spans:
        tags[start] = 1 + 2 * label
        tags[start + 1:end] = 2 + 2 * label
    return tags


def first_subwords(encoding) -> tuple[list[int], list[int]]:
    """``(token positions, word indices)`` of each word's first sub-word in one ``tokenizers`` encoding."""
    positions, words, previous = [], [], None
    for t, w in enumerate(encoding.word_ids):
        if w is not None and w != previous:
            positions.append(t)
            words.append(w)
        previous = w
    return positions, words


def align(encodings, tag_rows) -> torch.Tensor:
    """``(B, L)`` token targets: each word's tag on its first sub-word, -100 elsewhere."""
    out = torch.full((len(encodings), len(encodings[0].ids)), IGNORE, dtype=torch.int64)
    for b, (enc, tags) in enumerate(zip(encodings, tag_rows)):
        positions, words = first_subwords(enc)
        out[b, positions] = torch.as_tensor(np.asarray(tags)[words], dtype=torch.int64)
    return out


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


def _objects(items: list) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


@torch.no_grad()
def word_outputs(module, bundle, x: np.ndarray, batch_size: int = 256) -> list[tuple[np.ndarray, list[int]]]:
    """For every row of ``x``: ``module``'s ``(n_kept, D)`` outputs at each kept word's first sub-word and the
    kept word indices. ``module`` maps ``(B, L)`` ids to ``(B, L, D)`` (``encoder.hidden``) or ``(B*L, D)``."""
    from warmstart.data.text import encode

    out = []
    for i in range(0, len(x), batch_size):
        ids, encodings = encode(bundle.tokenizer, x[i:i + batch_size], bundle.max_length)
        states = module(ids).reshape(ids.shape[0], ids.shape[1], -1).float()
        for b, enc in enumerate(encodings):
            positions, words = first_subwords(enc)
            out.append((states[b, positions].numpy(), words))
    return out


def tag_score(model: nn.Module, position: int, tag: int):
    """``ids (B, L) -> (B,)``: the probability of ``tag`` at token ``position``."""
    def score(ids: torch.Tensor) -> torch.Tensor:
        logits = model(ids).reshape(ids.shape[0], ids.shape[1], -1)
        return torch.softmax(logits[:, position], -1)[:, tag]
    return score


class Tag(Task):
    """One BIO tag per word of a word sequence; cross-entropy on a linear head over every token state."""

    name = "tag"
    description = "BIO tags per word: entity F1 (primary, exact spans), precision, recall, token accuracy"
    primary = "entity_f1"
    metric_names = ("entity_f1", "entity_precision", "entity_recall", "token_accuracy", "entity_macro_f1")
    modalities = ("text",)
    pseudo_sources = ("teacher", "probe")
    default_pseudo = "probe"
    row_features = False

    def check(self, bundle) -> None:
        if bundle.modality != "text":
            raise UserError(f"{bundle.name}: the tag task needs word sequences (text), not {bundle.modality} data")
        n_tags = len(tag_names(bundle.class_names))
        for split in ("train", "test"):
            x, y = getattr(bundle, f"x_{split}"), getattr(bundle, f"y_{split}")
            rows = []
            for i, (words, tags) in enumerate(zip(x, y)):
                tags = np.asarray(tags)
                if not isinstance(words, (tuple, list)) or tags.ndim != 1 or len(tags) != len(words):
                    raise UserError(f"{bundle.name}: {split} row {i} is not a word sequence with one tag per word; "
                                    "give (words, tags) rows")
                if not len(words):
                    raise UserError(f"{bundle.name}: {split} row {i} is an empty sentence (no words); drop it")
                if len(tags) and (tags.min() < 0 or tags.max() >= n_tags):
                    raise UserError(f"{bundle.name}: {split} row {i} has tag id {int(tags.max())} outside "
                                    f"0..{n_tags - 1} "
                                    f"(O, then B-/I- of {len(bundle.class_names)} entity types)")
                rows.append(tags.astype(np.int64))
            setattr(bundle, f"y_{split}", _objects(rows))

    def adopt(self, bundle):
        raise UserError(f"--task tag needs word sequences with one BIO tag per word (a tagging source such as "
                        f"wnut16, wordnet-tags or conll:PATH); {bundle.name} holds {bundle.modality} data with "
                        f"{bundle.task} targets; drop --task to use the inferred task")

    def strata(self, bundle, size):
        """Sentences are stratified by the type of their first entity (or "no entity")."""
        k = bundle.num_classes
        first = [int((tags[tags > 0][0] - 1) // 2) if (tags > 0).any() else k for tags in bundle.y_train]
        return np.array(first, np.int64), [*bundle.class_names, "(no entity)"]

    def build_model(self, encoder: nn.Module, info: dict[str, Any]) -> nn.Module:
        from warmstart.models.text import TokenClassifier

        return TokenClassifier(encoder, len(tag_names(info["class_names"])))

    def make_batch(self, bundle, index):
        from warmstart.data.text import encode

        ids, encodings = encode(bundle.tokenizer, bundle.x_train[index], bundle.max_length)
        return ids, align(encodings, bundle.y_train[index]).reshape(-1)

    not_private = ("its loss averages over the batch's tokens, so one sentence's gradient is scaled by the "
                   "others' lengths")

    def loss(self, output, target, model):
        loss = F.cross_entropy(output, target, ignore_index=IGNORE)
        kept = target != IGNORE
        return loss, {"train_token_accuracy": (output.detach().argmax(1)[kept] == target[kept]).float().mean()}

    def soft_stream(self, bundle, index, batch_size, soft) -> Stream:
        """Batches ``(ids (B, L), soft targets (B*L, T))``: each word's distribution on its first sub-word,
        zero rows (ignored by ``soft_loss``) elsewhere."""
        from warmstart.data.text import encode

        def make(rows: np.ndarray) -> tuple[torch.Tensor, ...]:
            chosen = index[rows]
            ids, encodings = encode(bundle.tokenizer, bundle.x_train[chosen], bundle.max_length)
            out = torch.zeros(ids.shape[0], ids.shape[1], soft[chosen[0]].shape[1])
            for b, (enc, row) in enumerate(zip(encodings, chosen)):
                positions, words = first_subwords(enc)
                out[b, positions] = torch.as_tensor(soft[row][words], dtype=torch.float32)
            return ids, out.reshape(-1, out.shape[-1])
        return Stream(len(index), min(batch_size, len(index)), make)

    def soft_loss(self, output, soft, temperature):
        kept = soft.sum(1) > 0
        if not kept.any():
            return output.sum() * 0.0, {}
        return -(soft[kept] * F.log_softmax(output[kept] / temperature, dim=1)).sum(1).mean(), {}

    def agreement(self, output, soft):
        kept = soft.sum(1) > 0
        return (output.detach()[kept].argmax(1) == soft[kept].argmax(1)).float().mean()

    def predict(self, model, bundle, x):
        model.eval()
        out = []
        for row, (logits, words) in zip(x, word_outputs(model, bundle, x)):
            guess = np.zeros(len(row), np.int64)  # words cut off by max_length count as O
            guess[words] = logits.argmax(1)
            out.append(guess)
        return _objects(out)

    def metrics(self, bundle, y_true, y_pred):
        names = tag_names(bundle.class_names)
        true = [[names[t] for t in row] for row in y_true]
        pred = [[names[t] for t in row] for row in y_pred]
        words = sum(len(row) for row in y_true)
        correct = sum(int((np.asarray(a) == np.asarray(b)).sum()) for a, b in zip(y_true, y_pred))
        return {**entity_f1(true, pred), "token_accuracy": correct / max(words, 1), "n": int(len(y_true))}

    def probe_data(self, encoder, bundle, index):
        encoder.eval()
        rows = word_outputs(encoder.hidden, bundle, bundle.x_train[index])
        z = np.concatenate([states for states, _ in rows])
        t = np.concatenate([bundle.y_train[i][words] for i, (_, words) in zip(index, rows)])
        return z, t

    def probe_head(self, model, bundle, labeled) -> None:
        z, t = self.probe_data(model.encoder, bundle, labeled)
        LinearProbe("logistic").fit(z, t, model.head.out_features).to_head(model.head)

    def pseudo_targets(self, source, bundle, labeled, *, features, teacher, model, temperature, neighbors, alpha,
                       probe_c):
        """Per-word tag distributions ``(n_words, T)`` for every training sentence, from the fine-tuned
        ``teacher`` or a logistic probe on the pretrained encoder's word states."""
        n_tags = model.head.out_features
        if source == "teacher":
            teacher.eval()
            rows = word_outputs(teacher, bundle, bundle.x_train)
            scores = [torch.softmax(torch.as_tensor(s) / temperature, 1).numpy() for s, _ in rows]
        else:
            probe = LinearProbe("logistic", c=probe_c).fit(*self.probe_data(model.encoder, bundle, labeled), n_tags)
            rows = word_outputs(model.encoder.eval().hidden, bundle, bundle.x_train)
            scores = [probe.predict_proba(s) if len(s) else np.zeros((0, n_tags)) for s, _ in rows]
        out = []
        for sentence, dist, (_, words) in zip(bundle.x_train, scores, rows):
            full = np.zeros((len(sentence), n_tags), np.float32)
            full[:, 0] = 1.0  # words beyond max_length: O (never aligned to a token anyway)
            full[words] = dist
            out.append(full)
        return _objects(out)

    def keep_labeled(self, soft, bundle, labeled, model):
        n_tags = model.head.out_features
        for i in labeled:
            soft[i] = np.eye(n_tags, dtype=np.float32)[bundle.y_train[i]]
        return soft

    def explain_outputs(self, model, bundle, x, y):
        """One word per sentence: the first word tagged as an entity (else the first gold entity word, else
        the first word); explained is its predicted tag's probability at its first sub-word."""
        from warmstart.data.text import encode

        names, out = tag_names(bundle.class_names), []
        model.eval()
        for words, tags in zip(x, y):
            ids, encodings = encode(bundle.tokenizer, [words], bundle.max_length)
            positions, kept = first_subwords(encodings[0])
            with torch.no_grad():
                guesses = model(ids)[positions].argmax(1).tolist()
            tags = np.asarray(tags)[kept]
            pick = next((i for i, g in enumerate(guesses) if g), next((i for i, t in enumerate(tags) if t), 0))
            if not positions:  # nothing survived tokenisation: explain the first token's O
                positions, kept, guesses, tags, pick = [0], [0], [0], np.zeros(1, np.int64), 0
            position, guess, truth = positions[pick], guesses[pick], int(tags[pick])
            word = words[kept[pick]] if len(words) else ""
            out.append(Explained(tag_score(model, position, guess), f"{word!r}: {names[guess]}", names[truth],
                                 guess == truth, None if guess == truth else tag_score(model, position, truth),
                                 focus=position))
        return out

    def baselines(self, modality: str) -> list[str]:
        return ["majority_tag"]

    def baseline_inputs(self, bundle):
        return bundle.x_train, bundle.x_test


TASKS.register("tag")(Tag())
