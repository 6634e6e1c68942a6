"""Text data: tokenizers, batches of token ids, and the ``text:``, ``jsonl:`` and text-``csv:`` sources.

A text ``DataBundle`` keeps documents as 1-D object arrays of strings (or, for tagging, of
``(words, start, end)`` tuples) and gets a tokenizer attached once the encoder is known; its ``batch``
then returns padded ``(B, L)`` int64 token ids. Padding id and attention mask travel together: the mask
is ``ids != pad_id``, so one tensor is the whole batch and every stage (engine, evaluation, objectives)
keeps passing a single tensor around as it does for images.

Tokenizers are Hugging Face ``tokenizers`` objects: trained here (WordPiece, BERT normalisation) on the
unlabeled training corpus, or loaded from a pretrained model directory.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import numpy as np
import torch

from warmstart.errors import UserError

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # [PAD] first: pad id 0, as in BERT


def require_text_extra() -> None:
    try:
        import tokenizers  # noqa: F401
        from transformers.utils import logging
    except ImportError:
        raise UserError("text support needs Hugging Face transformers and tokenizers; "
                        "run: pip install 'warmstart[text]'") from None
    logging.disable_progress_bar()  # per-file load/save bars would drown the run's own output


def train_tokenizer(corpus, vocab_size: int = 8000, min_frequency: int = 2):
    """A lower-cased WordPiece tokenizer (BERT's recipe) trained on ``corpus`` (an iterable of strings).

    The post-processor wraps every text in ``[CLS] ... [SEP]`` so pooled and causal models see a start token.

    >>> tok = train_tokenizer(["a cat sat", "a dog sat"] * 10, vocab_size=100)
    >>> tok.decode(tok.encode("a cat sat").ids)
    'a cat sat'
    """
    require_text_extra()
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    if vocab_size < len(SPECIAL_TOKENS) + 26:
        raise ValueError(f"vocab_size must be at least {len(SPECIAL_TOKENS) + 26}, got {vocab_size}")
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS, show_progress=False)
    tok.train_from_iterator((as_text(d) for d in corpus), trainer)
    # The trainer numbers tokens in hash order, which changes between runs; renumber them (specials
    # first, then sorted) so the same corpus always gives the same ids and a seeded run repeats exactly.
    learned = sorted(set(tok.get_vocab()) - set(SPECIAL_TOKENS))
    tok.model = models.WordPiece({t: i for i, t in enumerate(SPECIAL_TOKENS + learned)}, unk_token="[UNK]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[(t, tok.token_to_id(t)) for t in ("[CLS]", "[SEP]")])
    return tok


def load_tokenizer(spec: Any):
    """A ``tokenizers.Tokenizer`` from one, from its JSON string, or from a model directory."""
    require_text_extra()
    from tokenizers import Tokenizer

    if isinstance(spec, Tokenizer):
        return spec
    if isinstance(spec, str) and spec.lstrip().startswith("{"):
        return Tokenizer.from_str(spec)
    path = Path(spec)
    if (path / "tokenizer.json").is_file():
        return Tokenizer.from_file(str(path / "tokenizer.json"))
    from transformers import AutoTokenizer

    try:  # a slow tokenizer (vocab.txt only) converts to a fast one offline
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True, use_fast=True).backend_tokenizer
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: no usable tokenizer (tokenizer.json or vocab files) found; save the model's "
                        "tokenizer there with tokenizer.save_pretrained") from err


def pad_id(tok) -> int:
    """The id batches are padded with: [PAD], else <pad>, else 0 (models without one never see padding
    inside a sequence, and the attention mask hides it)."""
    for name in ("[PAD]", "<pad>"):
        if (i := tok.token_to_id(name)) is not None:
            return i
    return 0


def as_text(doc: Any) -> str:
    """A document as one string: word sequences (tuples of words, for tagging) are joined by spaces."""
    return " ".join(doc) if isinstance(doc, (tuple, list)) else str(doc)


def encode(tok, docs, max_length: int) -> tuple[torch.Tensor, list]:
    """``(B, L)`` int64 ids padded to the longest document (at most ``max_length``), and the encodings.

    ``docs`` hold strings, or tuples of pre-split words (token classification), whose encodings carry
    ``word_ids`` for aligning word tags with sub-word tokens.
    """
    tok.enable_truncation(max_length)
    tok.enable_padding(pad_id=pad_id(tok), pad_token=tok.id_to_token(pad_id(tok)) or "[PAD]")
    docs = list(docs)
    if docs and isinstance(docs[0], (tuple, list)):
        encodings = tok.encode_batch([visible_words(tok, d) for d in docs], is_pretokenized=True)
    else:
        encodings = tok.encode_batch([str(d) for d in docs])
    return torch.tensor([e.ids for e in encodings], dtype=torch.int64), encodings


def visible_words(tok, words) -> list[str]:
    """``words`` with every word the tokenizer would erase replaced by its unknown token, so that each word
    keeps a first sub-word to carry its tag. BERT's normaliser deletes control and format characters (a lone
    zero-width joiner U+200D) and combining marks (a lone emoji variation selector U+FE0F) and the
    pre-tokenizer drops whitespace: such a word would otherwise get no token at all."""
    unk = getattr(tok.model, "unk_token", None)
    if tok.normalizer is None or unk is None or tok.token_to_id(unk) is None:
        return list(words)
    return [w if tok.normalizer.normalize_str(w).strip() else unk for w in words]


def special_ids(tok) -> list[int]:
    return sorted({i for t in SPECIAL_TOKENS + ["<s>", "</s>", "<pad>", "<|endoftext|>"]
                   if (i := tok.token_to_id(t)) is not None})


# --- sources --------------------------------------------------------------------------------

def _split_spec(path: str) -> tuple[str, dict[str, str]]:
    """``data.jsonl?text=body&label=topic`` → (``data.jsonl``, {"text": "body", "label": "topic"})."""
    file, _, query = path.partition("?")
    options = {k: v[-1] for k, v in parse_qs(query).items()}
    unknown = sorted(set(options) - {"text", "label", "target"})
    if unknown:
        raise UserError(f"unknown option '{unknown[0]}' in '{path}'; only ?text=COLUMN&label=COLUMN are understood")
    if "target" in options:  # ?target= is the table sources' name for the same thing
        options["label"] = options.pop("target")
    return file, options


def _bundle(name: str, texts: list[str], labels: list[str] | None):
    from warmstart.data.bundle import DataBundle
    from warmstart.data.sources import fixed_split

    if not texts:
        raise UserError(f"{name}: no documents found; the file or folder is empty")
    x = np.empty(len(texts), dtype=object)
    x[:] = texts
    if labels is None:  # unlabeled: everything trains the tokenizer and the objective
        y = np.zeros(len(texts), np.int64)
        return DataBundle(name, x, y, x[:0], y[:0], "text", ["(unlabeled)"])
    from warmstart.data.targets import infer_targets

    task, y, class_names, why = infer_targets(labels)
    tr, te = fixed_split(y if task == "classify" else np.zeros(len(y), np.int64))
    return DataBundle(name, x[tr], y[tr], x[te], y[te], "text", class_names, task=task, inferred=why)


def load_text(path: str, data_dir: str | None = None):
    """``text:PATH``: one document per line of a file, or every ``.txt`` file in a folder (unlabeled)."""
    name, p = f"text:{path}", Path(path)
    if p.is_dir():
        files = sorted(p.rglob("*.txt"))
        if not files:
            raise UserError(f"{name}: the folder holds no .txt files; add some or point to a text file")
        texts = [f.read_text(errors="replace").strip() for f in files]
    elif p.is_file():
        try:
            texts = [line.strip() for line in p.read_text().splitlines()]
        except UnicodeDecodeError:
            raise UserError(f"{name}: not UTF-8 text; convert it with iconv -t utf-8") from None
    else:
        raise UserError(f"{name}: file or folder not found; check the path")
    return _bundle(name, [t for t in texts if t], None)


def _columns(name: str, rows: list[dict], options: dict[str, str], where: str):
    text_col, label_col = options.get("text", "text"), options.get("label", "label")
    if not rows:
        raise UserError(f"{name}: no rows found; the file is empty")
    if text_col not in rows[0]:
        raise UserError(f"{name}: no '{text_col}' column in {where} (found: {', '.join(map(str, rows[0]))}); "
                        f"name the text column with ?text=COLUMN")
    has_label = label_col in rows[0]
    if "label" in options and not has_label:
        raise UserError(f"{name}: no '{label_col}' column in {where}; check ?label=COLUMN")
    texts, labels = [], []
    for i, row in enumerate(rows, start=1):
        if text_col not in row or (has_label and label_col not in row):
            raise UserError(f"{name}: row {i} lacks the '{text_col}' or '{label_col}' field; fix that row")
        texts.append(str(row[text_col]))
        if has_label:
            labels.append(str(row[label_col]))
    return _bundle(name, texts, labels if has_label else None)


def load_jsonl(path: str, data_dir: str | None = None):
    """``jsonl:PATH[?text=COL&label=COL]``: one JSON object per line; label optional (unlabeled if absent)."""
    file, options = _split_spec(path)
    name = f"jsonl:{path}"
    if not Path(file).is_file():
        raise UserError(f"{name}: file not found; check the path")
    rows = []
    for i, line in enumerate(Path(file).read_text(errors="replace").splitlines(), start=1):
        if line.strip():
            try:
                row = json.loads(line)
            except (ValueError, RecursionError) as err:  # JSONDecodeError, over-long integers, deep nesting
                why = getattr(err, "msg", err)
                raise UserError(f"{name}: line {i} is not valid JSON ({why}); fix that line") from None
            if not isinstance(row, dict):
                raise UserError(f"{name}: line {i} is not a JSON object; write one {{...}} per line")
            rows.append(row)
    return _columns(name, rows, options, "the first line")


def wants_text_csv(path: str) -> bool:
    """A ``csv:`` spec is text when it names a text column (``?text=``) or its header has a ``text`` column."""
    file, options = path.partition("?")[0], parse_qs(path.partition("?")[2])
    if "text" in options:
        return True
    try:
        with open(file, newline="") as f:
            header = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return "text" in [c.strip() for c in header]


def load_csv_text(path: str, data_dir: str | None = None):
    """``csv:PATH[?text=COL&label=COL]`` with a text column: documents, and labels when the column exists."""
    file, options = _split_spec(path)
    name = f"csv:{path}"
    try:
        with open(file, newline="") as f:
            rows = [{k.strip(): v for k, v in r.items() if k is not None} for r in csv.DictReader(f)]
    except FileNotFoundError:
        raise UserError(f"{name}: file not found; check the path") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"{name}: cannot read ({e}); save it as UTF-8 CSV") from None
    return _columns(name, rows, options, "the header")
