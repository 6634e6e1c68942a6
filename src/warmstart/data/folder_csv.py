"""The ``folder:`` (class-per-folder images) and ``csv:`` (numeric table, or text) sources.

Both read data a user made by hand, so they check it strictly — one image size, numeric columns, no
missing values — and say which file, line or column to fix. Registered in ``data/sources.py``.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from warmstart.data.bundle import DataBundle
from warmstart.data.splits import fixed_split
from warmstart.errors import UserError

# --- folder ---------------------------------------------------------------------------------

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def _image_files(root: Path, name: str) -> tuple[list[str], list[tuple[Path, int]]]:
    """Sorted class folders under ``root`` and the (file, class index) pairs inside them."""
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise UserError(f"{name}: {root} holds no class subfolders; put images in one folder per class")
    files = []
    for i, c in enumerate(classes):
        found = sorted(f for f in (root / c).rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise UserError(f"{name}: class folder '{c}' holds no images; add images or remove the folder")
        files += [(f, i) for f in found]
    return classes, files


def _read_image(path: Path, mode: str, name: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert(mode), np.uint8)
    except Exception as e:  # Pillow's decoders raise OSError, struct.error, ValueError... on damaged data
        raise UserError(f"{name}: cannot read image {path} ({type(e).__name__}: {e}); fix or remove it") from None


def load_folder(path: str, data_dir: str | None) -> DataBundle:
    """Class-per-folder images. One size is required: silently resizing would hide data problems."""
    from PIL import Image

    name, root = f"folder:{path}", Path(path)
    if not root.is_dir():
        raise UserError(f"{name}: directory not found; check the path")
    split = (root / "train").is_dir() and (root / "test").is_dir()
    classes, files = _image_files(root / "train" if split else root, name)
    if split:
        test_classes, test_files = _image_files(root / "test", name)
        unknown = sorted(set(test_classes) - set(classes))
        if unknown:
            raise UserError(f"{name}: test/ has class '{unknown[0]}' that train/ lacks; use the same class folders")
        files += [(f, classes.index(test_classes[i])) for f, i in test_files]
    modes, first = set(), None
    for f, _ in files:  # headers only: cheap, and fails before decoding anything
        try:
            with Image.open(f) as im:
                size, mode = im.size, im.mode
        except Exception as e:  # also DecompressionBombError: a header declaring a huge size
            raise UserError(f"{name}: cannot read image {f} ({e}); fix or remove it") from None
        first = first or (f, size)
        if size != first[1]:
            raise UserError(
                f"{name}: {f} is {size[0]}x{size[1]} but {first[0]} is {first[1][0]}x{first[1][1]}; "
                "resize all images to one size"
            )
        modes.add(mode)
    mode = "L" if modes <= _GRAY_MODES else "RGB"
    x = np.stack([_read_image(f, mode, name) for f, _ in files])
    x = x[:, None] if mode == "L" else x.transpose(0, 3, 1, 2)
    y = np.array([i for _, i in files], np.int64)
    if split:
        n = len(files) - len(test_files)
        tr, te = np.arange(n), np.arange(n, len(files))
    else:
        tr, te = fixed_split(y)
    return DataBundle(name, x[tr], y[tr], x[te], y[te], "image", classes, 1 / 255)


# --- csv ------------------------------------------------------------------------------------

def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def load_csv(path: str, data_dir: str | None) -> DataBundle:
    """Numeric features plus a label column named ``label`` (else the last column; a header row is
    optional and detected by being non-numeric). Features are standardised with train statistics."""
    name = f"csv:{path}"
    from warmstart.data import text

    if text.wants_text_csv(path):  # a 'text' column (or ?text=COL): documents, not numeric features
        return text.load_csv_text(path, data_dir)
    try:
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f) if r]
    except FileNotFoundError:
        raise UserError(f"{name}: file not found; check the path") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"{name}: cannot read ({e}); save it as UTF-8 CSV") from None
    if rows and not all(_is_number(c) for c in rows[0]):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    else:
        header = [f"column {i + 1}" for i in range(len(rows[0]) if rows else 0)]
    if len(header) < 2 or len(rows) < 2:
        raise UserError(f"{name}: need a header, at least one feature column, a label column and 2 rows")
    label_col = header.index("label") if "label" in header else len(header) - 1
    for r, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise UserError(f"{name}: line {r} has {len(row)} fields but the header has {len(header)}; fix that line")
    features = [c for c in range(len(header)) if c != label_col]
    x = np.empty((len(rows), len(features)), np.float64)
    for j, c in enumerate(features):
        try:
            x[:, j] = np.array([row[c] for row in rows], np.float64)
        except ValueError:
            r = next(r for r, row in enumerate(rows) if not _is_number(row[c]))
            raise UserError(
                f"{name}: column '{header[c]}' is not numeric (line {r + 2}: {rows[r][c]!r}); "
                "encode it as numbers or drop it"
            ) from None
        if np.isnan(x[:, j]).any() or np.isinf(x[:, j]).any():
            raise UserError(f"{name}: column '{header[c]}' has missing or infinite values; fill or drop them")
    raw = [row[label_col].strip() for row in rows]
    numeric = all(_is_number(v) for v in raw)
    class_names = sorted(set(raw), key=float if numeric else None)
    index = {c: i for i, c in enumerate(class_names)}
    y = np.array([index[v] for v in raw], np.int64)
    tr, te = fixed_split(y)
    mean, std = x[tr].mean(0), x[tr].std(0)
    std[std == 0] = 1.0
    x = ((x - mean) / std).astype(np.float32)
    return DataBundle(name, x[tr], y[tr], x[te], y[te], "tabular", class_names)
