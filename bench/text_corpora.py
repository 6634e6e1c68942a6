"""The corpora, pretraining pools and recipes of ``bench/text_accuracy.py``.

A corpus is a warmstart source plus what the benchmark does with it: label budgets, metrics, the library
baseline that is its classical peer, the MLM pools its pretrained rows start from, and the fine-tuning
recipes. Recipes with more than one learning rate are chosen on a **validation split**: ``validation`` rows
carved once (seed 0, stratified for classes) out of the source's training split. Those rows are then held
out of everything — labels, pretraining, tokenizers — in both runs: ``--split validation`` scores on them,
``--split test`` scores on the source's test split with the learning rate that validation chose.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from warmstart.data import DataBundle, load_data

# Two layers (as the WordNet benchmark found: half the cost of four, the same from scratch) and 64 tokens,
# which keep 99% of movie sentences and tweets whole under a tokenizer trained on them.
ENCODER = {"hidden": 128, "layers": 2, "heads": 4, "vocab_size": 8000, "max_length": 64}


@dataclass(frozen=True)
class Pool:
    """Unlabeled text an MLM encoder is pretrained on once: a source's training rows (``validation`` rows
    carved out as the corpus does), masking ``mask`` of the tokens for ``epochs`` at peak ``lr``.

    ``extra`` sources add their training rows to the pool (no corpus' test split is ever pretrained on),
    except any text that also occurs anywhere in ``source`` (compared on letters and digits only), so that
    no validation or test sentence of ``source`` reaches pretraining by another road."""

    source: str
    epochs: int
    validation: int = 0
    lr: float = 2e-3
    mask: float = 0.4  # Wettig et al. (2023): 40% beats BERT's 15% on short inputs
    encoder: dict = field(default_factory=lambda: dict(ENCODER))
    extra: tuple[str, ...] = ()
    objective: str = "mlm"  # or "simcse" (its rows are then ``simcse:<pool>``; its run is ``pretrain-<pool>``)

    @property
    def name(self) -> str:
        return "+".join((self.source, *self.extra))


POOLS = {
    # The WordNet benchmark's pool (32 tokens: glosses only).
    "wordnet32": Pool("wordnet", 4, encoder={**ENCODER, "max_length": 32}),
    # 86k glosses, the general-English pool, with room for 64-token sentences and tweets; two epochs
    # (~244 sequences per CPU-second at 64 tokens) keep it under 15 CPU-minutes.
    "wordnet": Pool("wordnet", 2),
    # The unlabeled side of each corpus: small, so many passes fit in the same CPU budget.
    "movie": Pool("movie-sentiment", 20, validation=1200),
    "wnut16": Pool("wnut16", 80, validation=300),
    # Review-like text around the movie sentences: VADER's other three domains and the Rotten Tomatoes
    # reviews that are not among VADER's movie snippets (19.6k rows, 2.7x the movie pool alone).
    "reviews": Pool("movie-sentiment", 9, validation=1200,
                    extra=("amazon-valence", "tweet-valence", "nyt-valence", "rotten-tomatoes")),
    # Unsupervised SimCSE (from random weights: pretraining here cannot start from another run) on the same
    # text, ``simcse:reviews-simcse``; the paper's temperature 0.05, batches of 128.
    "reviews-simcse": Pool("movie-sentiment", 9, validation=1200, lr=1e-3, objective="simcse",
                           extra=("amazon-valence", "tweet-valence", "nyt-valence", "rotten-tomatoes")),
    # The same plus WordNet's 86k glosses: in-domain and general English in one pool.
    "reviews-wordnet": Pool("movie-sentiment", 2, validation=1200,
                            extra=("amazon-valence", "tweet-valence", "nyt-valence", "rotten-tomatoes", "wordnet")),
}


# How an MLM-pretrained encoder is fine-tuned: ``mlm:<pool>`` is ``full``, ``mlm:<pool>:<name>`` one of these.
FINETUNES = {
    "full": {"strategy": "full", "label": "full fine-tune"},
    # L_fine + λ·L_MLM on the corpus' own unlabeled rows (λ decaying to 0): the program's θ* in one loop.
    "joint": {"strategy": "joint", "objective": True, "label": "joint fine-tune + MLM",
              "strategy_args": {"lam": 1.0, "schedule": "linear", "unlabeled_batch": 64}},
    # A fine-tuned teacher's soft targets over the unlabeled rows, distilled into a student.
    "selftrain": {"strategy": "selftrain", "label": "full, then self-training",
                  "strategy_args": {"targets": "teacher"}},
}


@dataclass(frozen=True)
class Corpus:
    source: str
    title: str
    section: str
    budgets: tuple[int, ...]
    metrics: tuple[str, ...]  # the task's primary metric first
    baseline: str  # a warmstart.baselines name
    pools: tuple[str, ...]  # one "mlm:<pool>" row each
    encoder: dict
    batch: int
    epochs: dict[int, int]  # fine-tuning epochs per label budget (scratch and MLM-pretrained)
    lrs: tuple[float, ...]  # chosen on validation when more than one
    minilm_epochs: dict[int, int]
    minilm_lr: float = 1e-4
    validation: int = 0
    test_size: int | None = None  # a fixed subset of the test split (None: all of it)


CORPORA = {
    "wordnet": Corpus("wordnet", "WordNet supersenses (41-way gloss classification)", "text_accuracy",
                      (100, 1000), ("accuracy", "macro_f1"), "tfidf_logistic", ("wordnet32",),
                      {**ENCODER, "max_length": 32}, 32, {100: 40, 1000: 15}, (5e-4,), {100: 10, 1000: 3},
                      test_size=2000),
    "sentiment": Corpus("movie-sentiment", "movie-review sentiment (Pang & Lee sentences, VADER valence sign)",
                        "text_sentiment", (100, 1000), ("accuracy", "macro_f1"), "tfidf_logistic",
                        ("movie", "wordnet", "reviews", "reviews-wordnet", "reviews-simcse"), ENCODER, 32,
                        {100: 40, 1000: 15},
                        (3e-4, 1e-3), {100: 10, 1000: 3},
                        validation=POOLS["movie"].validation),
    "wnut16": Corpus("wnut16", "WNUT-16 Twitter NER (entity F1, exact spans)", "text_ner", (100, 500),
                     ("entity_f1", "entity_precision", "entity_recall"), "majority_tag", ("wnut16", "wordnet"),
                     ENCODER, 16, {100: 60, 500: 30}, (3e-4, 1e-3), {100: 15, 500: 5},
                     validation=POOLS["wnut16"].validation),
    "wordnet-tags": Corpus("wordnet-tags", "WordNet supersense of the marked word (tagging)", "text_wordnet_tags",
                           (1000,), ("entity_f1", "token_accuracy"), "majority_tag", ("wordnet",), ENCODER, 32,
                           {1000: 15}, (5e-4,), {1000: 3}),
}


def _carve(data: DataBundle, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed ``(fit, validation)`` rows of the training split: seed 0, stratified by class for classify."""
    from sklearn.model_selection import train_test_split

    order = np.arange(len(data.x_train))
    strata = data.y_train if data.task == "classify" else None
    fit, val = train_test_split(order, test_size=rows, random_state=0, stratify=strata)
    return np.sort(fit), np.sort(val)


def _bundle(data: DataBundle, train: np.ndarray, x_test, y_test) -> DataBundle:
    return DataBundle(data.name, data.x_train[train], data.y_train[train], x_test, y_test, "text",
                      data.class_names, task=data.task, target_names=data.target_names)


def corpus_data(corpus: Corpus, split: str) -> DataBundle:
    """The bundle a run scores on: training rows minus the validation rows, and the validation rows
    (``split="validation"``) or the test split (``"test"``, or its fixed ``test_size`` subset)."""
    data = load_data(corpus.source)
    if not corpus.validation:
        if split == "validation":
            raise SystemExit(f"{corpus.source}: its recipes are fixed (no validation split); use --split test")
        fit = np.arange(len(data.x_train))
    else:
        fit, val = _carve(data, corpus.validation)
        if split == "validation":
            return _bundle(data, fit, data.x_train[val], data.y_train[val])
    test = np.arange(len(data.x_test))
    if corpus.test_size:
        test = np.sort(np.random.default_rng(0).choice(len(test), corpus.test_size, replace=False))
    return _bundle(data, fit, data.x_test[test], data.y_test[test])


def _letters(text) -> str:
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


def pool_data(pool: Pool) -> DataBundle:
    """The pool's unlabeled rows as a bundle (labels dropped, no test split): ``source``'s training rows
    (less its validation rows), then each ``extra`` source's training rows whose text ``source`` lacks."""
    data = load_data(pool.source)
    rows = _carve(data, pool.validation)[0] if pool.validation else np.arange(len(data.x_train))
    texts = list(data.x_train[rows])
    seen = {_letters(t) for t in (*data.x_train, *data.x_test)}
    for name in pool.extra:
        other = load_data(name)
        texts += [t for t in other.x_train if _letters(t) not in seen]
    x = np.empty(len(texts), dtype=object)
    x[:] = texts
    y = np.zeros(len(x), np.int64)
    return DataBundle(f"{pool.name} (unlabeled)", x, y, x[:0], y[:0], "text", ["(unlabeled)"])
