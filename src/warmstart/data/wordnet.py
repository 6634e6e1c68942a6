"""WordNet supersenses: a real text classification corpus and a real tagging corpus, offline.

Debian's ``wordnet-base`` ships ``/usr/share/wordnet/data.noun`` and ``data.verb``. Each line is one synset:
``offset lex_filenum ss_type w_cnt word lex_id ... | gloss``. The lexicographer file number names the
synset's *supersense* (Ciaramita & Johnson, 2003): 26 noun classes and 15 verb classes.

* ``wordnet``: each synset's gloss (definition and example sentences) → its supersense; ~96k documents.
* ``wordnet-tags``: supersense tagging of a given word (Ciaramita & Altun, 2006, restricted to the one target
  word each example illustrates) — in each example sentence, the words of the synset's own lemma (found
  through WordNet's inflection lists, e.g. "ran" → run) are marked in the input by the words ``[`` and ``]``
  (``she [ ran ] home``) and tagged ``B-/I-<supersense>``, every other word (markers included) ``O``. The mark
  says which word the sense is asked of; without it the target is one unmarked word among many and the
  task has no learnable signal (entity F1 about 0.03 unmarked).

Both split synsets into train/test with one fixed seeded split (10% test, independent of the run seed), so
the tagging test sentences come from synsets never seen in training.
"""
from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import numpy as np

from warmstart.data.bundle import DataBundle
from warmstart.errors import UserError

# WordNet 3.0 lexicographer files, by number (lexnames(5WN)); 3..43 are the noun and verb supersenses.
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body noun.cognition "
    "noun.communication noun.event noun.feeling noun.food noun.group noun.location noun.motive noun.object "
    "noun.person noun.phenomenon noun.plant noun.possession noun.process noun.quantity noun.relation noun.shape "
    "noun.state noun.substance noun.time verb.body verb.change verb.cognition verb.communication verb.competition "
    "verb.consumption verb.contact verb.creation verb.emotion verb.motion verb.perception verb.possession "
    "verb.social verb.stative verb.weather adj.ppl"
).split()
SUPERSENSES = LEXNAMES[3:44]
TEST_FRACTION = 0.1
SPLIT_SEED = 0
WORD = re.compile(r"\w+(?:['-]\w+)*|[^\w\s]")
#: The words that enclose the target lemma in a ``wordnet-tags`` sentence (neither occurs in WordNet's examples).
MARKS = ("[", "]")


SEARCH = ["/usr/share/wordnet"]  # Debian's wordnet-base; $WNHOME and --data-dir are tried first


def locate(data_dir: str | None = None) -> Path | None:
    for d in ([data_dir] if data_dir else []) + [os.environ.get("WNHOME", "")] + SEARCH:
        if d and (Path(d) / "data.noun").is_file() and (Path(d) / "data.verb").is_file():
            return Path(d)
    return None


MISSING = "/usr/share/wordnet/data.noun; install it with `apt-get install wordnet-base`"


def _require(data_dir: str | None) -> Path:
    root = locate(data_dir)
    if root is None:
        raise UserError(f"wordnet: no {MISSING} (or point --data-dir at a folder holding data.noun and data.verb)")
    return root


@functools.lru_cache(maxsize=2)  # ~96k lines: both WordNet sources (and a study's many cells) parse them once
def read_synsets(root: Path) -> list[tuple[list[str], int, str]]:
    """``(lemmas, supersense index, gloss)`` for every noun and verb synset, in file order."""
    synsets = []
    for part in ("noun", "verb"):
        with open(root / f"data.{part}", encoding="latin-1") as f:
            for line in f:
                if line.startswith(" "):  # the licence header
                    continue
                head, _, gloss = line.partition(" | ")
                fields = head.split()
                count = int(fields[3], 16)
                lemmas = [fields[4 + 2 * i].lower() for i in range(count)]
                synsets.append((lemmas, int(fields[1]) - 3, gloss.strip()))
    return synsets


def _split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed synset split: a seeded permutation, independent of the run seed."""
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    cut = int(round(n * TEST_FRACTION))
    return np.sort(order[cut:]), np.sort(order[:cut])


def _objects(items: list) -> np.ndarray:
    x = np.empty(len(items), dtype=object)
    x[:] = items
    return x


def load_wordnet(path: str | None = None, data_dir: str | None = None) -> DataBundle:
    """Supersense classification of glosses: 41 classes."""
    synsets = read_synsets(_require(data_dir))
    x = _objects([gloss for _, _, gloss in synsets])
    y = np.array([label for _, label, _ in synsets], np.int64)
    tr, te = _split(len(synsets))
    return DataBundle("wordnet", x[tr], y[tr], x[te], y[te], "text", list(SUPERSENSES))


# --- supersense tagging -----------------------------------------------------------------------

def _exceptions(root: Path) -> dict[str, set[str]]:
    """Inflected form → base forms, from WordNet's ``noun.exc`` / ``verb.exc`` (irregular forms)."""
    table: dict[str, set[str]] = {}
    for part in ("noun", "verb"):
        path = root / f"{part}.exc"
        if path.is_file():
            for line in path.read_text(encoding="latin-1").splitlines():
                form, *bases = line.split()
                table.setdefault(form, set()).update(bases)
    return table


SUFFIXES = ("s", "es", "ed", "d", "ing", "ies", "ied")


def _bases(word: str, exceptions: dict[str, set[str]]) -> set[str]:
    """Candidate lemma forms of ``word``: itself, its irregular bases, and regular suffix strippings
    (WordNet's own morphy rules, plus consonant doubling: "stopped" → stop)."""
    forms = {word} | exceptions.get(word, set())
    for suffix, repl in (("s", ""), ("es", ""), ("ies", "y"), ("ed", ""), ("ed", "e"), ("ied", "y"),
                         ("ing", ""), ("ing", "e"), ("er", ""), ("est", "")):
        if word.endswith(suffix) and len(word) > len(suffix) + 1:
            stem = word[: -len(suffix)]
            forms.add(stem + repl)
            if len(stem) > 2 and stem[-1] == stem[-2]:
                forms.add(stem[:-1])
    return forms


def find_lemma(words: list[str], lemmas: list[str], exceptions: dict[str, set[str]]) -> tuple[int, int] | None:
    """``(start, end)`` word span of the first lemma occurring in ``words`` (inflections allowed on the
    last word of a multi-word lemma), or None."""
    lowered = [w.lower() for w in words]
    for lemma in sorted(lemmas, key=lambda s: -s.count("_")):  # longest lemma first
        parts = re.findall(WORD, lemma.replace("_", " "))
        n = len(parts)
        for i in range(len(words) - n + 1):
            if lowered[i:i + n - 1] == parts[:-1] and parts[-1] in _bases(lowered[i + n - 1], exceptions):
                return i, i + n
    return None


def tagging_examples(root: Path) -> list[tuple[tuple[str, ...], int, int, int, int]]:
    """``(words, start, end, supersense, synset index)`` for every example sentence whose lemma was found."""
    exceptions = _exceptions(root)
    examples = []
    for s, (lemmas, label, gloss) in enumerate(read_synsets(root)):
        for sentence in re.findall(r'"([^"]+)"', gloss):
            words = WORD.findall(sentence)
            span = find_lemma(words, lemmas, exceptions)
            if span is not None:
                examples.append((tuple(words), span[0], span[1], label, s))
    return examples


def mark(words: tuple[str, ...], start: int, end: int) -> tuple[str, ...]:
    """``words`` with ``MARKS`` around the span ``start:end`` (which then starts at ``start + 1``).

    >>> mark(("she", "ran", "home"), 1, 2)
    ('she', '[', 'ran', ']', 'home')
    """
    return (*words[:start], MARKS[0], *words[start:end], MARKS[1], *words[end:])


def load_wordnet_tags(path: str | None = None, data_dir: str | None = None) -> DataBundle:
    """Supersense tagging of the marked lemma in example sentences (task ``tag``). ``x`` rows are word
    tuples with ``MARKS`` around the lemma; ``y`` rows the per-word tag ids: ``B-``/``I-`` + the synset's
    supersense on the lemma's words, ``O`` elsewhere."""
    from warmstart.tasks.tag import span_tags

    root = _require(data_dir)
    examples = tagging_examples(root)
    tr_synsets, _ = _split(len(read_synsets(root)))
    in_train = np.isin(np.array([e[4] for e in examples]), tr_synsets)
    x = _objects([mark(w, a, b) for w, a, b, _, _ in examples])
    y = _objects([span_tags(len(w) + 2, [(a + 1, b + 1, label)]) for w, a, b, label, _ in examples])
    return DataBundle("wordnet-tags", x[in_train], y[in_train], x[~in_train], y[~in_train], "text",
                      list(SUPERSENSES), task="tag")
