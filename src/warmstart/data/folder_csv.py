"""The ``folder:`` (class-per-folder images) and ``csv:`` (numeric table, or text) sources.

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
from warmstart.data.targets import infer_targets
from warmstart.errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


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


def _read_image(path: Path, mode: str, size: tuple[int, int]) -> np.ndarray:
    """The image in ``mode`` at ``size``: the shorter side scaled to cover it, then a centre crop."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im = im.convert(mode)
        if im.size != size:
            im = ImageOps.fit(im, size, method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))
        return np.asarray(im, np.uint8)


def _scan(name: str, files: list[tuple[Path, int]]) -> tuple[Counter, set]:
    """Sizes and colour modes of every image, from the headers only (cheap, and fails before decoding)."""
    from PIL import Image, UnidentifiedImageError

    sizes, modes = Counter(), set()
    for f, _ in files:
        try:
            with Image.open(f) as im:
                sizes[im.size] += 1
                modes.add(im.mode)
        except (OSError, UnidentifiedImageError, ValueError) as e:
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
    x = np.stack([_read_image(f, mode, size) for f, _ in files])
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

def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _read_rows(name: str, file: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file (a header row is optional and detected by being non-numeric)."""
    try:
        with open(file, newline="") as f:
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


def _numeric_column(name: str, header: list[str], rows: list[list[str]], c: int, what: str) -> np.ndarray:
    try:
        values = np.array([row[c] for row in rows], np.float64)
    except ValueError:
        r = next(r for r, row in enumerate(rows) if not _is_number(row[c]))
        raise UserError(f"{name}: {what} column '{header[c]}' is not numeric (line {r + 2}: {rows[r][c]!r}); "
                        "encode it as numbers or drop it") from None
    if not np.isfinite(values).all():
        r = int(np.flatnonzero(~np.isfinite(values))[0])
        raise UserError(f"{name}: {what} column '{header[c]}' has missing or infinite values (line {r + 2}); "
                        "fill or drop them")
    return values


def load_csv(path: str, data_dir: str | None) -> DataBundle:
    """Numeric feature columns and one or more target columns (``?target=COL[,COL]``; default ``label``, else
    ``target``, else the last column). The task is inferred from the target (whole numbers with few
    distinct values or strings: classify; otherwise, or several columns: regress). Features are
    standardised with training-split statistics."""
    from warmstart.data import text

    if text.wants_text_csv(path):  # a 'text' column (or ?text=COL): documents, not numeric features
        return text.load_csv_text(path, data_dir)
    from warmstart.data import interaction_sources

    if interaction_sources.wants_interactions_csv(path):  # ?user=COL&item=COL: an interaction log
        return interaction_sources.load_interactions_csv(path, data_dir)
    name = f"csv:{path}"
    file, options = split_options(name, path, ("target", "label"))
    header, rows = _read_rows(name, file)
    targets = _target_columns(name, header, options)
    features = [c for c in range(len(header)) if c not in targets]
    if not features:
        raise UserError(f"{name}: every column is a target; keep at least one feature column")
    x = np.stack([_numeric_column(name, header, rows, c, "feature") for c in features], 1)
    if len(targets) > 1:
        y = np.stack([_numeric_column(name, header, rows, c, "target") for c in targets], 1).astype(np.float32)
        task, class_names, why = "regress", [], f"{len(targets)} target columns; inferred regress"
    else:
        raw = [row[targets[0]].strip() for row in rows]
        if "" in raw:
            raise UserError(f"{name}: target column '{header[targets[0]]}' is empty on line {raw.index('') + 2}; "
                            "fill or drop the rows without a target")
        task, y, class_names, why = infer_targets(raw)
        if task == "regress":
            y = _numeric_column(name, header, rows, targets[0], "target").astype(np.float32)
    strata = y if task == "classify" else np.zeros(len(y), np.int64)
    tr, te = fixed_split(strata)
    mean, std = x[tr].mean(0), x[tr].std(0)
    std[std == 0] = 1.0
    x = ((x - mean) / std).astype(np.float32)
    return DataBundle(name, x[tr], y[tr], x[te], y[te], "table", class_names, task=task,
                      target_names=[header[c] for c in targets] if task == "regress" else [], inferred=why)
