"""``DataBundle``: what every source returns and every later stage consumes."""
from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from warmstart.errors import UserError


def read_rows(x: np.memmap, index: np.ndarray) -> np.ndarray:
    """Rows ``index`` of a read-only memory-mapped array, read with ``pread`` instead of through the mapping.

    Indexing the mapping faults pages into this process; on this kernel one batch of random rows mapped
    ~300 MB of a 470 MB pool (large page-cache folios are mapped whole), so resident memory grew with the
    pool. ``pread`` copies just the rows; the pages stay in the OS page cache, outside our RSS.
    """
    row_bytes = x.strides[0]
    mapped = np.frombuffer(x._mmap, dtype=np.uint8)  # the mapping's first byte
    mapping_start = x.offset - x.offset % mmap.ALLOCATIONGRANULARITY  # np.memmap aligns the mapping
    first_row = mapping_start + x.__array_interface__["data"][0] - mapped.__array_interface__["data"][0]
    out = np.empty((len(index), *x.shape[1:]), dtype=x.dtype)
    view = memoryview(out).cast("B")  # flat bytes of the output, row after row
    fd = os.open(x.filename, os.O_RDONLY)
    try:
        for i, row in enumerate(np.asarray(index, dtype=np.int64)):
            os.preadv(fd, [view[i * row_bytes:(i + 1) * row_bytes]], first_row + int(row) * row_bytes)
    finally:
        os.close(fd)
    return out


@dataclass
class DataBundle:
    """Train/test arrays of one data set.

    ``x_*`` keep their stored dtype (``uint8`` pixels stay ``uint8``, and may be memory-mapped) so a
    60k-image set costs 47 MB, not 188 MB; ``batch`` turns the rows a step needs into float32 times
    ``scale``. Images are ``(N, C, H, W)``, tabular rows ``(N, D)``. Labels are ``int64`` in
    ``[0, num_classes)``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    modality: str  # "image", "tabular" or "text"
    class_names: list[str] = field(default_factory=list)
    scale: float = 1.0
    # Text: x rows are documents (object arrays); ``batch`` needs the tokenizer the encoder brings
    # (``with_tokenizer``). ``task="tagging"``: rows are (words, start, end) entity spans, see data/wordnet.py.
    task: str = "classify"
    tokenizer: Any = None
    max_length: int = 128

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if len(x) != len(y):
                raise UserError(
                    f"{self.name}: x_{split} has {len(x)} rows but y_{split} has {len(y)}; "
                    "give one label per example"
                )
            if y.ndim != 1:
                raise UserError(f"{self.name}: y_{split} must be 1-D, got shape {y.shape}")
            if not np.issubdtype(y.dtype, np.integer):
                if not np.all(np.mod(y, 1) == 0):
                    raise UserError(
                        f"{self.name}: y_{split} holds non-integer labels; labels must be class indices 0..K-1"
                    )
            setattr(self, f"y_{split}", np.asarray(y, dtype=np.int64))
        if len(self.x_train) == 0:
            raise UserError(f"{self.name}: the training split is empty")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise UserError(
                f"{self.name}: train examples have shape {self.x_train.shape[1:]} but test examples "
                f"{self.x_test.shape[1:]}; both splits must share one shape"
            )
        k = int(max(self.y_train.max(initial=0), self.y_test.max(initial=0))) + 1
        if min(self.y_train.min(initial=0), self.y_test.min(initial=0)) < 0:
            raise UserError(f"{self.name}: negative labels found; labels must be class indices 0..K-1")
        if not self.class_names:
            rows = len(self.y_train) + len(self.y_test)
            if k > rows:  # e.g. a damaged label file: naming 2**40 classes would exhaust memory
                raise UserError(f"{self.name}: labels go up to {k - 1} but there are only {rows} examples; labels "
                                "must be class indices 0..K-1 (give class names to declare unused classes)")
            self.class_names = [str(i) for i in range(k)]
        if k > len(self.class_names):
            raise UserError(
                f"{self.name}: label {k - 1} is out of range for {len(self.class_names)} classes; "
                f"labels must lie in 0..{len(self.class_names) - 1}"
            )

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def with_tokenizer(self, tokenizer: Any, max_length: int) -> "DataBundle":
        """A copy of this text bundle whose ``batch`` tokenises with ``tokenizer``."""
        return replace(self, tokenizer=tokenizer, max_length=max_length)

    def batch(self, x: np.ndarray, index: np.ndarray | None = None) -> torch.Tensor:
        """Rows ``index`` of ``x`` (all rows when None) as a float32 tensor in model units; for text,
        ``(B, L)`` int64 token ids padded with the tokenizer's pad id."""
        if index is not None and isinstance(x, np.memmap) and not x.flags.writeable and x.flags.c_contiguous:
            rows = read_rows(x, index)  # rows of a memory-mapped pool, without mapping its pages
        else:
            rows = x if index is None else x[index]
        if self.modality == "text":
            from warmstart.data.text import encode

            if self.tokenizer is None:
                raise RuntimeError("text batches need a tokenizer: use data.with_tokenizer(encoder.tokenizer, ...)")
            return encode(self.tokenizer, rows, self.max_length)[0]
        batch = np.ascontiguousarray(rows, dtype=np.float32)
        if np.may_share_memory(batch, x):  # float32 rows come back as a view: scaling in place would write
            batch = batch.copy()  # into the data set (a segfault on a read-only memory map)
        return torch.from_numpy(batch).mul_(self.scale)
