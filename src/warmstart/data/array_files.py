"""Loaders of the array-file sources: ``npz:PATH`` (a NumPy archive) and ``idx:PATH`` (MNIST-style IDX files).

An ``.npz`` archive's members are memory-mapped in place when stored uncompressed (inflated in chunks when
compressed), each member's header checked against its size first, so a damaged file fails in one line
instead of asking for the memory its header claims. An archive without a test split gets the fixed
stratified split (``splits.fixed_split``). Registered in ``data/sources.py``.
"""
from __future__ import annotations

import math
import os
import struct
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from warmstart.data import idx
from warmstart.data.bundle import DataBundle
from warmstart.data.splits import fixed_split
from warmstart.data.targets import infer_array
from warmstart.errors import UserError


# --- npz ------------------------------------------------------------------------------------

def _npz_member(path: str, archive: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
    """Memory-map an uncompressed member in place; inflate a compressed one.

    The member's header is checked against the member's size before anything is mapped or allocated, so a
    damaged header fails here (``ValueError``) instead of asking for the terabytes it may claim.
    """
    info = archive.zip.getinfo(key + ".npy")
    with archive.zip.open(info) as member:
        version = np.lib.format.read_magic(member)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        try:
            shape, fortran, dtype = reader(member)
        except (SyntaxError, tokenize.TokenError) as err:  # numpy parses the header as a Python literal
            raise ValueError(f"{key}: unreadable .npy header ({err})") from None
        if dtype.hasobject:
            raise ValueError("object arrays are not supported")
        start, nbytes = member.tell(), math.prod(shape) * dtype.itemsize
        if start + nbytes != info.file_size:
            raise ValueError(f"{key}: its header declares {shape} {dtype} ({nbytes} bytes), the member holds "
                             f"{info.file_size - start}")
        order = "F" if fortran else "C"
        if info.compress_type != zipfile.ZIP_STORED:  # read in chunks: memory follows the data really there
            body = bytearray()
            while len(body) < nbytes and (chunk := member.read(min(1 << 20, nbytes - len(body)))):
                body += chunk
            if len(body) != nbytes:
                raise ValueError(f"{key}: data ends after {len(body)} of {nbytes} bytes")
            return np.frombuffer(body, dtype).reshape(shape, order=order)
    if nbytes == 0:  # mmap cannot map zero bytes
        return np.empty(shape, dtype)
    with open(path, "rb") as f:  # the member's data starts after its local header, name and extra field
        f.seek(info.header_offset)
        name_len, extra_len = struct.unpack("<26xHH", f.read(30))
    return np.memmap(path, dtype, "r", info.header_offset + 30 + name_len + extra_len + start, shape, order)


def _npz_arrays(name: str, path: str, archive) -> tuple[dict[str, np.ndarray], list[str]]:
    keys = set(archive.files)
    missing = [k for k in ("x_train", "y_train") if k not in keys]
    if missing or ("x_test" in keys) != ("y_test" in keys):
        missing = missing or [k for k in ("x_test", "y_test") if k not in keys]
        raise UserError(
            f"{name}: missing array(s) {', '.join(missing)} (found: {', '.join(sorted(keys)) or 'none'}); "
            "save x_train, y_train and optionally both x_test and y_test"
        )
    arrays = {k: _npz_member(path, archive, k) for k in ("x_train", "y_train", "x_test", "y_test") if k in keys}
    names = _npz_member(path, archive, "class_names") if "class_names" in keys else np.array([])
    class_names = [str(c) for c in names.reshape(-1)]
    return arrays, class_names


def _checked(name: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Arrays a DataBundle can hold: examples along axis 0, numeric features, numeric labels."""
    for key, array in arrays.items():
        if array.ndim == 0:
            raise UserError(f"{name}: {key} has shape (); save one row per example (shape (N, ...))")
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            what = "features" if key.startswith("x") else "labels (class indices 0..K-1)"
            raise UserError(f"{name}: {key} holds {array.dtype} values, not numeric {what}; convert it to numbers")
    return arrays


def load_npz(path: str, data_dir: str | None) -> DataBundle:
    """The ``npz:PATH`` source: x_train, y_train [, x_test, y_test, class_names], checked and split."""
    name = f"npz:{path}"
    if not Path(path).is_file():
        raise UserError(f"{name}: file not found; check the path")
    try:
        with open(path, "rb") as fh:
            if fh.read(6) == b"\x93NUMPY":
                raise UserError(f"{name}: holds a single array; save with np.savez(path, x_train=..., y_train=...)")
            fh.seek(0)
            with np.load(fh) as archive:  # members are memory-mapped by _npz_member, not read here
                arrays, class_names = _npz_arrays(name, path, archive)
                arrays = _checked(name, arrays)
    except UserError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, struct.error, zlib.error) as e:
        raise UserError(
            f"{name}: cannot read ({type(e).__name__}: {e}); the file is truncated or corrupt, re-save it"
        ) from None
    for split in [s for s in ("_train", "_test") if "x" + s in arrays]:
        nx, ny = len(arrays["x" + split]), len(arrays["y" + split])
        if nx != ny:
            raise UserError(f"{name}: x{split} has {nx} rows but y{split} has {ny}; give one label per example")
    if "x_test" not in arrays:
        y = np.asarray(arrays["y_train"])
        tr, te = fixed_split(y if infer_array(y)[0] == "classify" else np.zeros(len(y), np.int64))
        x, y = arrays["x_train"], arrays["y_train"]
        arrays = {"x_train": x[tr], "y_train": y[tr], "x_test": x[te], "y_test": y[te]}
    x = arrays["x_train"]
    if x.ndim not in (2, 3, 4):
        raise UserError(f"{name}: x_train has shape {x.shape}; expected (N, D), (N, H, W) or (N, C, H, W)")
    if x.ndim == 3:
        arrays = {k: (v[:, None] if k.startswith("x") else v) for k, v in arrays.items()}
    scale = 1 / 255 if x.dtype == np.uint8 else 1.0
    modality = "table" if x.ndim == 2 else "image"
    task, why = infer_array(np.asarray(arrays["y_train"]))
    return DataBundle(name, modality=modality, class_names=class_names, scale=scale, task=task, inferred=why,
                      **arrays)


# --- idx ------------------------------------------------------------------------------------

def load_idx(path: str, data_dir: str | None) -> DataBundle:
    """The ``idx:PATH`` source: a folder of the 4 MNIST-style IDX files (optionally .gz) as images."""
    name = f"idx:{path}"
    if not Path(path).is_dir():
        raise UserError(f"{name}: not a directory; point it at the folder holding the 4 IDX files")
    npy_dir = Path(path) if os.access(path, os.W_OK) else None
    arrays = idx.load_idx_dir(path, npy_dir)
    if arrays is None:
        files = ", ".join(f"{s}[.gz]" for s in idx.IDX_FILES.values())
        raise UserError(f"{name}: missing IDX files; the folder must hold {files}")
    for key in ("x_train", "x_test"):
        if arrays[key].ndim not in (3, 4):
            raise UserError(f"{name}: {idx.IDX_FILES[key]} has shape {arrays[key].shape}, not images "
                            "(N, H, W) or (N, C, H, W); check that the 4 files are not mixed up")
    arrays = {k: (v[:, None] if v.ndim == 3 else v) for k, v in arrays.items()}
    scale = 1 / 255 if arrays["x_train"].dtype == np.uint8 else 1.0
    return DataBundle(name, modality="image", scale=scale, **arrays)
