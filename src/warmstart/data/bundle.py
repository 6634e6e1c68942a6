"""``DataBundle``: what every source returns and every later stage consumes."""
from __future__ import annotations

import contextvars
import mmap
import os
from collections.abc import Iterator
from contextlib import contextmanager
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


_FINAL = contextvars.ContextVar("final_evaluation", default=False)


@contextmanager
def final_evaluation() -> Iterator[None]:
    """Marks the one place a run reads its test split: the final evaluation, after every choice is made.

    The pipeline and the study enter it around ``task.evaluate``, a baseline's predictions and the report's
    test embedding map; nothing else reads ``x_test`` / ``y_test`` (the tests seal a bundle's test split
    and check that every read happens inside).
    """
    token = _FINAL.set(True)
    try:
        yield
    finally:
        _FINAL.reset(token)


def in_final_evaluation() -> bool:
    return _FINAL.get()


@dataclass
class DataBundle:
    """Train/test arrays of one data set, what its inputs are (``modality``) and what its labels are (``task``).

    ``x_*`` keep their stored dtype (``uint8`` pixels stay ``uint8``, and may be memory-mapped) so a
    60k-image set costs 47 MB, not 188 MB; ``batch`` turns the rows a step needs into model inputs through
    the modality (``data/modalities/``). Images are ``(N, C, H, W)``, table rows ``(N, D)``, text a 1-D
    object array of documents or word tuples. The targets ``y_*`` are the task's (``tasks/``): ``int64``
    class indices for ``classify``, ``float32 (N, k)`` values for ``regress``, an object array of per-word
    ``int64`` tag ids for ``tag``; the task checks them when the bundle is made. Interaction bundles hold
    ``(N, 2)`` int64 rows ``[user, item]`` (``-1`` for "none": a user row is ``[u, -1]``) and a ``catalog``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    modality: str  # a key of MODALITIES: "image", "table", "text" or "interactions"
    class_names: list[str] = field(default_factory=list)  # classify: the classes; tag: the entity types
    scale: float = 1.0
    task: str = "classify"  # a key of TASKS
    target_names: list[str] = field(default_factory=list)  # regress: one name per target column
    # Text: the tokenizer the encoder brings (``prepare``); until then batches cannot be made.
    tokenizer: Any = None
    max_length: int = 128
    spec: str = ""  # the source spec with its defaults filled in, written into run configs ("" = name)
    inferred: str = ""  # why the source chose ``task``, quoted when a user asks for another one
    # Table: the column schema with the training split's statistics (data/modalities/table_schema.py).
    schema: Any = None
    # Interactions: the users, items, training interactions and side tables (``data/interactions.py``).
    catalog: Any = None
    # Tables: the original column of each feature index (one-hot levels of a categorical column repeat its
    # name), so attributions can be folded back to columns; empty: every feature index is its own column.
    feature_columns: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        from warmstart.data.modalities import MODALITIES
        from warmstart.tasks import TASKS

        MODALITIES.get(self.modality)
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if len(x) != len(y):
                raise UserError(
                    f"{self.name}: x_{split} has {len(x)} rows but y_{split} has {len(y)}; "
                    "give one label per example"
                )
        if len(self.x_train) == 0:
            raise UserError(f"{self.name}: the training split is empty")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise UserError(
                f"{self.name}: train examples have shape {self.x_train.shape[1:]} but test examples "
                f"{self.x_test.shape[1:]}; both splits must share one shape"
            )
        self.spec = self.spec or self.name
        self.handler.check(self)
        if self.feature_columns and len(self.feature_columns) != int(np.prod(self.input_shape)):
            raise UserError(f"{self.name}: {len(self.feature_columns)} feature column names for "
                            f"{int(np.prod(self.input_shape))} features; give one name per feature index")
        TASKS.get(self.task).check(self)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one model input (for a table, the width of its encoded row)."""
        return self.handler.input_shape(self)

    @property
    def n_test(self) -> int:
        """How many test examples there are (a count, not a read of the test split)."""
        return len(self.y_test)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def handler(self):
        """The registered ``Modality`` object of this bundle."""
        from warmstart.data.modalities import MODALITIES

        return MODALITIES.get(self.modality)

    def with_tokenizer(self, tokenizer: Any, max_length: int) -> "DataBundle":
        """A copy of this text bundle whose ``batch`` tokenises with ``tokenizer``."""
        return replace(self, tokenizer=tokenizer, max_length=max_length)

    def rows(self, x: np.ndarray, index: np.ndarray | None = None) -> np.ndarray:
        """Rows ``index`` of ``x`` (all rows when None) as stored; memory-mapped pools are read with ``pread``."""
        if index is not None and isinstance(x, np.memmap) and not x.flags.writeable and x.flags.c_contiguous:
            return read_rows(x, index)  # rows of a memory-mapped pool, without mapping its pages
        return x if index is None else x[index]

    def batch(self, x: np.ndarray, index: np.ndarray | None = None) -> torch.Tensor:
        """Rows ``index`` of ``x`` (all rows when None) as one model-input tensor: float32 in model units for
        images and tables, ``(B, L)`` int64 token ids padded with the tokenizer's pad id for text."""
        return self.handler.batch(self, self.rows(x, index))

    def input_stream(self, index: np.ndarray, batch_size: int):
        """An engine ``Stream`` of batches ``(inputs,)`` of training rows ``index`` (no labels)."""
        from warmstart.engine import Stream

        return Stream(len(index), min(batch_size, len(index)), lambda rows: (self.batch(self.x_train, index[rows]),))
