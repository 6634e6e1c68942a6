"""``coco:PATH``: instance annotations in COCO format (boxes, polygon or RLE masks, categories) plus images.

PATH is a folder holding ``train/annotations.json`` and ``test/annotations.json`` (each split's
``file_name``s relative to its own folder), or one ``annotations.json`` (a folder holding it, or the file
itself), which is split 80/20 with the fixed seed every source uses. ``?size=N`` resizes every image to
N×N (boxes and masks with it); images of different sizes need it. Masks are rasterised with
``pycocotools`` (the ``vision`` extra).

Each image's targets are one dict (``instances``): ``boxes`` ``(n, 4)`` float32 ``x1, y1, x2, y2`` in
pixels, ``labels`` ``(n,)`` int64 category indices (categories sorted by id), and ``masks`` — an
``(H, W)`` instance map (0: no instance, ``i + 1``: instance ``i``; where masks overlap the later
annotation owns the pixel) or None when the annotations carry no segmentation. ``write_coco`` writes
the same structure back, so a scene data set built here goes through ``coco:`` like any user's data.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from warmstart.errors import UserError

#: Boxes may overshoot the image by this many pixels (float rounding in exporters) and are clipped.
BOX_TOLERANCE = 1.0


def require_pycocotools():
    try:
        from pycocotools import mask
    except ImportError:
        raise UserError("COCO annotations need pycocotools: pip install 'warmstart[vision]'") from None
    return mask


def objects(items: list) -> np.ndarray:
    """A 1-D object array of ``items`` (numpy would otherwise try to stack dicts of arrays)."""
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _read_json(name: str, path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{name}: {path} not found; give a COCO annotations.json or a folder holding one "
                        "(or train/annotations.json and test/annotations.json)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{name}: {path} is not valid JSON ({e}); fix or re-export the annotations") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise UserError(f"{name}: {path} has no '{key}' list; a COCO instances file holds images, "
                            "annotations and categories")
    return data


def _read_image(name: str, path: Path, image: dict, mode: str):
    from PIL import Image

    if not path.is_file():
        raise UserError(f"{name}: image id {image.get('id')} ('{image.get('file_name')}') is missing: no file "
                        f"{path}; add the image or drop it from the annotations")
    try:
        with Image.open(path) as im:
            return im.convert(mode) if mode else im.copy()
    except OSError as e:
        raise UserError(f"{name}: cannot read image {path} ({e}); re-save it") from None


def _instance(name: str, ann: dict, width: int, height: int, cats: dict, mask_api) -> tuple:
    """``(box xyxy, label, mask (H, W) bool or None)`` of one annotation, checked."""
    where = f"annotation id {ann.get('id')} (image {ann.get('image_id')})"
    if ann.get("category_id") not in cats:
        known = ", ".join(str(c) for c in sorted(cats))
        raise UserError(f"{name}: {where} has category_id {ann.get('category_id')}, which is not in 'categories' "
                        f"(known ids: {known}); fix the id or add the category")
    try:
        x, y, w, h = (float(v) for v in ann["bbox"])
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{name}: {where} has no bbox [x, y, width, height]; add one") from None
    if w <= 0 or h <= 0:
        raise UserError(f"{name}: {where} has an empty bbox {ann['bbox']} (width and height must be > 0)")
    t = BOX_TOLERANCE
    if x < -t or y < -t or x + w > width + t or y + h > height + t:
        raise UserError(f"{name}: {where} has bbox {ann['bbox']} outside its {width}x{height} image; fix the box "
                        "(x, y is the top-left corner, then width and height, in pixels)")
    box = [max(x, 0.0), max(y, 0.0), min(x + w, width), min(y + h, height)]
    segmentation = ann.get("segmentation")
    if segmentation is None:
        return box, cats[ann["category_id"]], None
    try:
        if isinstance(segmentation, list):  # polygons
            rles = mask_api.frPyObjects(segmentation, height, width) if segmentation else []
            rle = mask_api.merge(rles) if rles else None
        elif isinstance(segmentation.get("counts"), list):  # uncompressed RLE
            rle = mask_api.frPyObjects(segmentation, height, width)
        else:
            rle = dict(segmentation, counts=segmentation["counts"].encode() if isinstance(
                segmentation["counts"], str) else segmentation["counts"])
        mask = mask_api.decode(rle).astype(bool) if rle is not None else None
    except Exception as e:  # pycocotools raises bare Exceptions / TypeErrors on malformed input
        raise UserError(f"{name}: {where} has a malformed segmentation ({type(e).__name__}: {e}); give polygons "
                        "or RLE") from None
    if mask is None or mask.shape != (height, width) or not mask.any():
        raise UserError(f"{name}: {where} has an empty mask (its segmentation covers no pixel); fix or drop it")
    return box, cats[ann["category_id"]], mask


def _resize(image, boxes: np.ndarray, masks: list, size: int | None):
    from PIL import Image

    width, height = image.size
    if size is None or (width, height) == (size, size):
        return image, boxes, masks
    scale = np.array([size / width, size / height] * 2, np.float32)
    masks = [None if m is None else np.asarray(Image.fromarray(m).resize((size, size), Image.Resampling.NEAREST))
             for m in masks]
    return image.resize((size, size), Image.Resampling.BILINEAR), boxes * scale, masks


def read_split(name: str, path: Path, size: int | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(images (N, C, H, W) uint8, instances, category names)`` of one annotations file."""
    mask_api = require_pycocotools()
    data = _read_json(name, path)
    categories = sorted(data["categories"], key=lambda c: c["id"])
    cats = {c["id"]: i for i, c in enumerate(categories)}
    by_image: dict[Any, list] = {}
    for ann in data["annotations"]:
        by_image.setdefault(ann.get("image_id"), []).append(ann)
    known = {im.get("id") for im in data["images"]}
    orphans = [a for a in by_image if a not in known]
    if orphans:
        raise UserError(f"{name}: annotations refer to image_id {orphans[0]}, which is not in 'images'; "
                        "fix the id or add the image")
    if not data["images"]:
        raise UserError(f"{name}: {path} lists no images")
    root, pixels, targets = path.parent, [], []
    grey = all(_read_image(name, root / im["file_name"], im, "").mode in ("1", "L") for im in data["images"][:32])
    for image in data["images"]:
        picture = _read_image(name, root / str(image.get("file_name")), image, "L" if grey else "RGB")
        width, height = picture.size
        found = [_instance(name, a, width, height, cats, mask_api) for a in by_image.get(image["id"], [])]
        boxes = np.array([f[0] for f in found], np.float32).reshape(-1, 4)
        picture, boxes, masks = _resize(picture, boxes, [f[2] for f in found], size)
        pixels.append(np.asarray(picture, np.uint8))
        targets.append(instances(boxes, [f[1] for f in found], masks, picture.size[::-1]))
    shapes = {p.shape for p in pixels}
    if len(shapes) > 1:
        raise UserError(f"{name}: images have different sizes ({', '.join(map(str, sorted(shapes)[:3]))}, ...); "
                        f"resize them to one size with coco:{path.parent}?size=N")
    x = np.stack(pixels)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    return x, objects(targets), [str(c.get("name", c["id"])) for c in categories]


def instances(boxes: np.ndarray, labels, masks: list, shape: tuple[int, int]) -> dict:
    """One image's target dict from boxes, labels and per-instance boolean masks (or Nones)."""
    have = [m is not None for m in masks]
    instance_map = None
    if masks and all(have):
        dtype = np.uint8 if len(masks) < 255 else np.int32
        instance_map = np.zeros(shape, dtype)
        for i, m in enumerate(masks):
            instance_map[m] = i + 1
    elif not masks:
        instance_map = np.zeros(shape, np.uint8)
    return {"boxes": np.asarray(boxes, np.float32).reshape(-1, 4), "labels": np.asarray(labels, np.int64),
            "masks": instance_map}


def write_split(directory: Path, x: np.ndarray, targets, class_names: list[str]) -> None:
    """Write images ``(N, C, H, W)`` uint8 and their instances as ``directory/annotations.json`` + PNGs
    (masks as compressed RLE, category ids 1..K)."""
    from PIL import Image

    mask_api = require_pycocotools()
    (directory / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i, (pixels, target) in enumerate(zip(x, targets)):
        file_name = f"images/{i:06d}.png"
        Image.fromarray(pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)).save(directory / file_name)
        images.append({"id": i + 1, "file_name": file_name, "height": int(pixels.shape[1]),
                       "width": int(pixels.shape[2])})
        for j, (box, label) in enumerate(zip(target["boxes"], target["labels"])):
            x1, y1, x2, y2 = (float(v) for v in box)
            ann = {"id": len(annotations) + 1, "image_id": i + 1, "category_id": int(label) + 1,
                   "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0}
            if target["masks"] is not None:
                rle = mask_api.encode(np.asfortranarray(target["masks"] == j + 1, dtype=np.uint8))
                ann["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}
                ann["area"] = float(mask_api.area(rle))
            annotations.append(ann)
    categories = [{"id": k + 1, "name": n} for k, n in enumerate(class_names)]
    (directory / "annotations.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": categories}))


def write_coco(target: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]], class_names: list[str]) -> Path:
    """Write ``{"train": (x, instances), "test": ...}`` under ``target`` atomically (a staging folder that is
    renamed into place, so a half-written data set never appears)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        for split, (x, targets) in splits.items():
            write_split(staging / split, x, targets, class_names)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def load_coco(path: str, data_dir: str | None = None, name: str | None = None):
    """The ``coco:PATH[?size=N]`` source (see the module docstring): a ``detect`` bundle (``--task segment``
    reads the same instances as per-pixel classes)."""
    from warmstart.data.bundle import DataBundle
    from warmstart.data.folder_csv import split_options
    from warmstart.data.splits import fixed_split

    name = name or f"coco:{path}"
    file, options = split_options(name, path, ("size",))
    size = None
    if "size" in options:
        if not options["size"].isdigit() or not 1 <= int(options["size"]) <= 4096:
            raise UserError(f"{name}: size={options['size']!r} is not a size; write ?size=N (1..4096)")
        size = int(options["size"])
    root = Path(file)
    if (root / "train" / "annotations.json").is_file():
        x_train, y_train, names = read_split(name, root / "train" / "annotations.json", size)
        x_test, y_test, test_names = read_split(name, root / "test" / "annotations.json", size)
        if test_names != names:
            raise UserError(f"{name}: train and test list different categories; give both splits the same list")
    else:
        x, y, names = read_split(name, root / "annotations.json" if root.is_dir() else root, size)
        tr, te = fixed_split(np.zeros(len(y), np.int64))
        x_train, y_train, x_test, y_test = x[tr], y[tr], x[te], y[te]
    has_masks = all(t["masks"] is not None for t in (*y_train, *y_test))
    why = f"COCO instances with boxes{' and masks' if has_masks else ' (no masks)'}"
    spec = name if size is None or "size=" in name else f"{name}?size={size}"
    return DataBundle(name, x_train, y_train, x_test, y_test, "image", names, 1 / 255, task="detect",
                      spec=spec, inferred=why)
