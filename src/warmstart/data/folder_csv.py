"""The ``folder:`` (class-per-folder images) and ``csv:`` (table of numeric and categorical columns, or text) sources.

Both read data a user made by hand, so they check it strictly and say which file, line or column to fix.
Images of different sizes are brought to one (``?image_size=``, default the most common size: shorter side
resized, centre crop) and the resolved rule is part of the source spec written into each run's config.
A CSV's target column decides the task (``data/targets.py``). Registered in ``data/sources.py``.
"""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs

import numpy as np

from warmstart.data.bundle import DataBundle
from warmstart.data.splits import fixed_split
from warmstart.data.tables import encode_columns, is_missing, parse_cells, resolved_options, table_bundle
from warmstart.data.targets import infer_targets, is_number
from warmstart.errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
#: The most a folder's decoded pixels may take in memory (uint8): beyond it, say so instead of swapping.
MAX_BYTES = 8 * 2**30


def split_options(name: str, path: str, allowed: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """``file.csv?target=y`` → (``file.csv``, {"target": "y"}); an unknown option is one clear line."""
    file, _, query = path.partition("?")
    options = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise UserError(f"{name}: unknown option '{unknown[0]}'; {name.split(':')[0]}: understands "
                        + ", ".join(f"?{a}=..." for a in allowed))
    return file, options


# --- folder ---------------------------------------------------------------------------------

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


def _parse_size(name: str, text: str) -> tuple[int, int]:
    """``"32"`` → (32, 32); ``"40x30"`` → (40, 30) as (width, height)."""
    parts = text.lower().split("x")
    try:
        size = tuple(int(p) for p in parts) * (2 if len(parts) == 1 else 1)
    except ValueError:
        size = ()
    if len(size) != 2 or min(size) < 1 or max(size) > 4096:
        raise UserError(f"{name}: image_size={text!r} is not a size; write image_size=N or WxH (1..4096)")
    return size


def _read_image(path: Path, mode: str, size: tuple[int, int], name: str) -> np.ndarray:
    """The image in ``mode`` at ``size``: the shorter side scaled to cover it, then a centre crop."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im = im.convert(mode)
            if im.size != size:
                im = ImageOps.fit(im, size, method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))
            return np.asarray(im, np.uint8)
    except Exception as e:  # Pillow's decoders raise OSError, struct.error, ValueError... on damaged data
        raise UserError(f"{name}: cannot read image {path} ({type(e).__name__}: {e}); fix or remove it") from None


def _scan(name: str, files: list[tuple[Path, int]]) -> tuple[Counter, set]:
    """Sizes and colour modes of every image, from the headers only (cheap, and fails before decoding)."""
    from PIL import Image

    sizes, modes = Counter(), set()
    for f, _ in files:
        try:
            with Image.open(f) as im:
                sizes[im.size] += 1
                modes.add(im.mode)
        except Exception as e:  # also DecompressionBombError: a header declaring a huge size
            raise UserError(f"{name}: cannot read image {f} ({e}); fix or remove it") from None
    return sizes, modes


def load_folder(path: str, data_dir: str | None) -> DataBundle:
    """Class-per-folder images, read as grayscale when every file is, else RGB, and brought to one size."""
    name = f"folder:{path}"
    file, options = split_options(name, path, ("image_size",))
    root = Path(file)
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
    sizes, modes = _scan(name, files)
    size = _parse_size(name, options["image_size"]) if "image_size" in options else sizes.most_common(1)[0][0]
    mode = "L" if modes <= _GRAY_MODES else "RGB"
    needed = len(files) * size[0] * size[1] * (1 if mode == "L" else 3)
    if needed > MAX_BYTES:
        raise UserError(f"{name}: {len(files)} images of {size[0]}x{size[1]} would take {needed / 2**30:.1f} GiB in "
                        f"memory (limit {MAX_BYTES / 2**30:.0f} GiB); give a smaller ?image_size= or use npz:")
    x = np.stack([_read_image(f, mode, size, name) for f, _ in files])
    x = x[:, None] if mode == "L" else x.transpose(0, 3, 1, 2)
    y = np.array([i for _, i in files], np.int64)
    if split:
        n = len(files) - len(test_files)
        tr, te = np.arange(n), np.arange(n, len(files))
    else:
        tr, te = fixed_split(y)
    spec = f"folder:{file}?image_size={size[0]}x{size[1]}"
    return DataBundle(name, x[tr], y[tr], x[te], y[te], "image", classes, 1 / 255, spec=spec)


# --- csv ------------------------------------------------------------------------------------


def _read_rows(name: str, file: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file (a header row is optional and detected by being non-numeric)."""
    try:
        with open(file, newline="") as f:
            rows = [r for r in csv.reader(f) if r]
    except FileNotFoundError:
        raise UserError(f"{name}: file not found; check the path") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"{name}: cannot read ({e}); save it as UTF-8 CSV") from None
    if rows and not all(is_number(c) for c in rows[0]):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    else:
        header = [f"column {i + 1}" for i in range(len(rows[0]) if rows else 0)]
    if len(header) < 2 or len(rows) < 2:
        raise UserError(f"{name}: need a header, at least one feature column, a target column and 2 rows")
    for r, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise UserError(f"{name}: line {r} has {len(row)} fields but the header has {len(header)}; fix that line")
    return header, rows


def _target_columns(name: str, header: list[str], options: dict[str, str]) -> list[int]:
    """``?target=a,b`` (or ``?label=``), else a column named ``label`` or ``target``, else the last column."""
    wanted = options.get("target") or options.get("label")
    if wanted:
        missing = [c for c in wanted.split(",") if c.strip() not in header]
        if missing:
            raise UserError(f"{name}: no target column '{missing[0]}' (columns: {', '.join(header)}); "
                            "name it with ?target=COLUMN")
        return [header.index(c.strip()) for c in wanted.split(",")]
    for default in ("label", "target"):
        if default in header:
            return [header.index(default)]
    return [len(header) - 1]


def table_targets(name: str, target_names: list[str], cells: list[list],
                  where=lambda row: f"line {row + 2}") -> tuple[str, np.ndarray, list[str], str]:
    """``(task, y, class_names, why)`` of the target columns' ``cells`` (one list per column); a missing
    target is refused, naming its place (``where(row)``: a csv line, counting the header, by default)."""
    for col, values in zip(target_names, cells):
        bad = [i for i, v in enumerate(values) if is_missing(v)]
        if bad:
            raise UserError(f"{name}: target column '{col}' is empty on {where(bad[0])} ({len(bad)} row(s) in all); "
                            "fill those targets or drop the rows")
    if len(cells) > 1:
        y = np.stack([_numbers(name, col, values) for col, values in zip(target_names, cells)], 1)
        return "regress", y.astype(np.float32), [], f"{len(cells)} target columns; inferred regress"
    return infer_targets([str(v).strip() for v in cells[0]])


def _numbers(name: str, col: str, values: list) -> np.ndarray:
    try:
        out = np.array([float(v) for v in values], np.float64)
    except (TypeError, ValueError):
        bad = next(v for v in values if not is_number(str(v)))
        raise UserError(f"{name}: target column '{col}' is not numeric ({bad!r}); give one target column to "
                        "classify, or numbers to regress") from None
    if not np.isfinite(out).all():
        raise UserError(f"{name}: target column '{col}' has infinite values; fix or drop those rows")
    return out


TABLE_OPTIONS = ("target", "label", "categorical", "numeric", "drop", "missing")


def _names(options: dict[str, str], key: str) -> list[str]:
    return [c.strip() for c in options.get(key, "").split(",") if c.strip()]


def load_table(name: str, file: str, header: list[str], cells: list[list], options: dict[str, str],
               where=lambda row: f"line {row + 2}") -> DataBundle:
    """A bundle from a table's columns (``cells``: one list of raw cells per column of ``header``).

    Target columns per ``_target_columns``; the task inferred from them; the fixed 80/20 split (stratified
    by class when classifying); the feature columns typed and fitted on the training split
    (``data/tables.py``). The spec records every choice: target, categorical columns, dropped columns and
    the columns with a missing indicator."""
    kind = name.split(":")[0]
    targets = _target_columns(name, header, options)
    dropped = _names(options, "drop")
    unknown = [c for c in dropped if c not in header]
    if unknown:
        raise UserError(f"{name}: ?drop= names no column '{unknown[0]}' (columns: {', '.join(header)})")
    features = [c for c in range(len(header)) if c not in targets and header[c] not in dropped]
    if not features:
        raise UserError(f"{name}: every column is a target or dropped; keep at least one feature column")
    task, y, class_names, why = table_targets(name, [header[c] for c in targets], [cells[c] for c in targets], where)
    train, test = fixed_split(y if task == "classify" else np.zeros(len(y), np.int64))
    columns = {header[c]: parse_cells(cells[c]) for c in features}
    indicators = set(_names(options, "missing")) if "missing" in options else None
    x, schema = encode_columns(name, columns, train, categorical=_names(options, "categorical"),
                               numeric=_names(options, "numeric"), indicators=indicators)
    spec = f"{kind}:{file}?target={','.join(header[c] for c in targets)}" + resolved_options(schema, dropped)
    return table_bundle(name, x, schema, y, train, test, class_names=class_names, task=task, spec=spec,
                        target_names=[header[c] for c in targets] if task == "regress" else [], inferred=why)


def load_csv(path: str, data_dir: str | None) -> DataBundle:
    """Feature columns (numeric and categorical) and one or more target columns (``?target=COL[,COL]``;
    default ``label``, else ``target``, else the last column); ``?categorical=``, ``?numeric=``, ``?drop=``
    and ``?missing=`` type, drop and flag columns (``data/tables.py``). The task is inferred from the target
    (whole numbers with few distinct values or strings: classify; otherwise, or several columns: regress)."""
    from warmstart.data import text

    if text.wants_text_csv(path):  # a 'text' column (or ?text=COL): documents, not numeric features
        return text.load_csv_text(path, data_dir)
    from warmstart.data import interaction_sources

    if interaction_sources.wants_interactions_csv(path):  # ?user=COL&item=COL: an interaction log
        return interaction_sources.load_interactions_csv(path, data_dir)
    name = f"csv:{path}"
    file, options = split_options(name, path, TABLE_OPTIONS)
    header, rows = _read_rows(name, file)
    return load_table(name, file, header, [[row[c] for row in rows] for c in range(len(header))], options)
