"""IDX files (the MNIST family's format) and the ``fashion-mnist`` / ``mnist`` sources.

The named sets are looked up on disk first (an explicit directory, ``$WARMSTART_DATA``, the user
cache, Debian's ``/usr/share/datasets``) so that offline machines work, and only then downloaded,
with SHA-256 checks, into the cache. Parsed arrays are cached as ``.npy`` and memory-mapped, so a
second run neither re-inflates 26 MB of gzip nor holds a private copy of the pixels.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import math
import os
import secrets
import struct
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from warmstart.data.bundle import DataBundle
from warmstart.errors import UserError

# IDX type byte → big-endian dtype, as in the format's definition.
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {np.dtype(v).newbyteorder(">"): k for k, v in _DTYPES.items()}

# The four files of an IDX data set, by the DataBundle field they fill.
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

# Where to download from; a module variable (and $WARMSTART_MIRROR) so tests and mirrors can
# override it. With $WARMSTART_MIRROR=URL the files are fetched from URL/<name>/<file>.gz.
URLS = {
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
}
# SHA-256 of the published .gz files (as recorded in tensorflow_datasets' url_checksums).
CHECKSUMS = {
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
}
CLASS_NAMES = {
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    "mnist": [str(i) for i in range(10)],
}
SYSTEM_DIR = Path("/usr/share/datasets")  # Debian's dataset-fashion-mnist installs here
TIMEOUT_S = 10.0


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse one IDX file (optionally gzipped) into a native-endian array.

    The header is read first and the body no further than the size it declares (plus one byte, to notice
    extra data): a damaged or lying header costs at most the bytes really in the file, never its claim.
    """
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            dtype, shape = _idx_header(path, f)
            expected = math.prod(shape) * dtype.itemsize
            on_disk = path.stat().st_size - (4 + 4 * len(shape))
            if path.suffix != ".gz" and on_disk != expected:  # checked before reading a byte of the body
                raise UserError(_size_error(path, shape, expected, f"{on_disk} bytes"))
            body = _read_at_most(f, expected + 1)
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError; zlib.error: bad deflate data
        raise UserError(f"{path}: cannot read IDX file ({e}); re-download or replace it") from None
    if len(body) != expected:
        held = f"{len(body)} bytes" if len(body) < expected else "more bytes"
        raise UserError(_size_error(path, shape, expected, held))
    return np.frombuffer(body, dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _idx_header(path: Path, f) -> tuple[np.dtype, tuple[int, ...]]:
    magic = f.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _DTYPES:
        raise UserError(f"{path}: not an IDX file (bad magic number); check that it is an MNIST-style file")
    dims = f.read(4 * magic[3])
    if len(dims) < 4 * magic[3]:
        raise UserError(f"{path}: IDX header is truncated; re-download or replace the file")
    return np.dtype(_DTYPES[magic[2]]), struct.unpack(f">{magic[3]}I", dims)


def _read_at_most(f, limit: int, chunk: int = 1 << 20) -> bytes:
    """Up to ``limit`` bytes of ``f``, in chunks, so memory follows the data actually there."""
    parts, size = [], 0
    while size < limit and (part := f.read(min(chunk, limit - size))):
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def _size_error(path: Path, shape: tuple[int, ...], expected: int, held: str) -> str:
    return (f"{path}: IDX body holds {held} but its header {shape} needs {expected}; "
            "the file is truncated or corrupt, re-download or replace it")


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as IDX (gzipped when ``path`` ends in ``.gz``), atomically."""
    path, array = Path(path), np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder(">"))
    if code is None:
        raise UserError(f"{path}: IDX cannot store dtype {array.dtype}; use uint8, int8/16/32 or float32/64")
    data = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    data += np.ascontiguousarray(array, array.dtype.newbyteorder(">")).tobytes()
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    _write_atomic(path, data)


def _write_atomic(path: Path, data: bytes) -> None:
    """Temp file in the same directory, then ``os.replace``: readers never see half a file."""
    tmp = _part_path(path)
    try:
        with open(tmp, "xb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _part_path(path: Path) -> Path:
    """A fresh hidden sibling of ``path``; opened with "xb" so it gets the usual umask permissions."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.part")


def find_idx_files(directory: str | os.PathLike) -> dict[str, Path] | None:
    """The 4 IDX files in ``directory`` (plain or ``.gz``), or None unless all 4 are there."""
    found = {}
    for key, stem in IDX_FILES.items():
        for name in (stem, stem + ".gz"):
            if (Path(directory) / name).is_file():
                found[key] = Path(directory) / name
                break
        else:
            return None
    return found


def read_idx_cached(path: Path, npy_dir: Path | None) -> np.ndarray:
    """``read_idx`` through a ``.npy`` cache in ``npy_dir`` that later runs memory-map.

    The cache name carries a key of the source's path, size and mtime, so a replaced or different
    source file never picks up a stale cache; older caches of the same file are removed.
    """
    if npy_dir is None:
        return read_idx(path)
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    stem = path.name.removesuffix(".gz")
    npy = npy_dir / f"{stem}.{key}.npy"
    if npy.is_file():
        try:
            return np.load(npy, mmap_mode="r")
        except (OSError, ValueError):
            pass  # a damaged cache is rebuilt below
    array = read_idx(path)
    try:
        npy_dir.mkdir(parents=True, exist_ok=True)
        _write_atomic(npy, _npy_bytes(array))
        for old in npy_dir.glob(f"{stem}.*.npy"):
            if old != npy:
                old.unlink(missing_ok=True)
        return np.load(npy, mmap_mode="r")
    except OSError:
        return array  # caching is an optimisation; a read-only disk must not break loading


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def load_idx_dir(directory: str | os.PathLike, npy_dir: Path | None = None) -> dict[str, np.ndarray] | None:
    """The 4 arrays of an IDX directory keyed like ``IDX_FILES``, or None if a file is missing."""
    files = find_idx_files(directory)
    if files is None:
        return None
    return {key: read_idx_cached(path, npy_dir) for key, path in files.items()}


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/warmstart`` (``~/.cache/warmstart`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "warmstart"


def candidate_dirs(name: str, data_dir: str | None = None) -> list[Path]:
    """Where ``name`` is looked for, in order."""
    dirs = [Path(data_dir)] if data_dir else []
    if os.environ.get("WARMSTART_DATA"):
        root = Path(os.environ["WARMSTART_DATA"])
        dirs += [root / name, root]
    return dirs + [cache_root() / name, SYSTEM_DIR / name]


def locate(name: str, data_dir: str | None = None) -> Path | None:
    """The first candidate directory holding all 4 files of ``name``, or None."""
    return next((d for d in candidate_dirs(name, data_dir) if find_idx_files(d)), None)


def base_url(name: str) -> str:
    """``$WARMSTART_MIRROR/<name>/`` when that is set, else the official location."""
    mirror = os.environ.get("WARMSTART_MIRROR")
    return mirror.rstrip("/") + f"/{name}/" if mirror else URLS[name]


def download(name: str, data_dir: str | None = None) -> Path:
    """Fetch the 4 ``.gz`` files of ``name`` into the cache; all verified before any is kept."""
    base = base_url(name)
    target = cache_root() / name
    parts: dict[str, Path] = {}
    try:
        target.mkdir(parents=True, exist_ok=True)
        for file, expected in CHECKSUMS[name].items():
            parts[file] = _part_path(target / file)
            digest = hashlib.sha256()
            with open(parts[file], "xb") as out, urllib.request.urlopen(base + file, timeout=TIMEOUT_S) as resp:
                while chunk := resp.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != expected:
                raise UserError(
                    f"{name}: {base + file} has SHA-256 {digest.hexdigest()[:12]}..., expected "
                    f"{expected[:12]}...; the download is corrupt, try again or set WARMSTART_MIRROR"
                )
        for file, tmp in parts.items():
            os.replace(tmp, target / file)
        parts.clear()
    except (OSError, http.client.HTTPException) as e:  # URLError, timeouts, refusals, cut-off replies
        reason = getattr(e, "reason", None) or e
        raise UserError(offline_message(name, f"download from {base} failed: {reason}", data_dir)) from None
    finally:
        for tmp in parts.values():
            tmp.unlink(missing_ok=True)
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
    return target


def offline_message(name: str, why: str, data_dir: str | None = None) -> str:
    """One line telling the user exactly which files to put where."""
    files = ", ".join(f"{stem}[.gz]" for stem in IDX_FILES.values())
    where = ", ".join(str(d) for d in candidate_dirs(name, data_dir))
    hint = "; `apt-get install dataset-fashion-mnist` provides Fashion-MNIST" if name == "fashion-mnist" else ""
    return f"{name}: not found locally and {why}; put {files} in one of: {where} (or set $WARMSTART_DATA){hint}"


def load_named(name: str, data_dir: str | None = None) -> DataBundle:
    """The ``fashion-mnist`` / ``mnist`` source: find (or download) the files, then load them."""
    directory = locate(name, data_dir) or download(name, data_dir)
    # Cache parsed arrays next to the user's files, but never inside the system's /usr/share.
    system = directory.resolve().is_relative_to(SYSTEM_DIR.resolve())
    npy_dir = directory if os.access(directory, os.W_OK) and not system else cache_root() / name
    arrays = load_idx_dir(directory, npy_dir)
    if arrays is None:  # files vanished between locate and load
        raise UserError(offline_message(name, f"{directory} is incomplete", data_dir))
    arrays = {k: (v[:, None] if k.startswith("x") and v.ndim == 3 else v) for k, v in arrays.items()}
    return DataBundle(name=name, modality="image", class_names=list(CLASS_NAMES[name]), scale=1 / 255, **arrays)
