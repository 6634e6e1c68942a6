"""``fashion-scenes`` / ``mnist-scenes``: multi-object scenes pasted together from the real 28×28 images.

The "Multi-MNIST" construction of the detection and segmentation literature (e.g. Eslami et al., 2016,
"Attend, Infer, Repeat"): each scene is a 64×64 black canvas with 1–6 items drawn from Fashion-MNIST (or
MNIST), each resized to a random side of 16–32 pixels and pasted at a random position where its box
overlaps no earlier item's box by more than ``MAX_OVERLAP`` of the smaller box (an item that finds no such
place in 50 tries is skipped). A later item covers an earlier one where they touch. Each item's mask is
its own pixels above ``THRESHOLD`` with interior holes filled, less what later items cover; its box is the
tight box of that visible mask and its class the source image's label.

10,000 training scenes come from the training images and 2,000 test scenes from the test images only,
with fixed seeds, so the data set is the same on every machine. It is written once to the cache
(``~/.cache/warmstart/<name>-v1/``) in COCO format and read back through the ``coco:`` source.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from warmstart.data import coco, idx

CANVAS = 64
SIDES = (16, 32)
MAX_ITEMS = 6
MAX_OVERLAP = 0.2
THRESHOLD = 32  # of 255: the item's own pixels, not the faint halo bilinear resizing leaves
SIZES = {"train": 10_000, "test": 2_000}
SEEDS = {"train": 0, "test": 1}
VERSION = "v1"  # bump when the construction changes: the cache folder is named after it


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection of boxes ``a`` and ``b`` (xyxy) over the smaller one's area."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return float(w * h / smaller)


def _item(image: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (28, 28) uint8 resized to ``side``² → (pixels, filled mask above the threshold)."""
    from PIL import Image
    from scipy.ndimage import binary_fill_holes

    pixels = np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.BILINEAR))
    return pixels, binary_fill_holes(pixels > THRESHOLD)


def build_scenes(images: np.ndarray, labels: np.ndarray, n: int, seed: int, canvas: int = CANVAS):
    """``n`` scenes from ``images`` ``(M, 28, 28)`` uint8 with ``labels`` → ``(x (n, 1, S, S) uint8,
    instances)`` in the ``coco`` target format (see the module docstring for the construction)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 1, canvas, canvas), np.uint8)
    targets = []
    for s in range(n):
        owner = np.zeros((canvas, canvas), np.int64)  # 0: background, i + 1: item i
        placed, classes = [], []
        for _ in range(int(rng.integers(1, MAX_ITEMS + 1))):
            pick = int(rng.integers(len(images)))
            pixels, mask = _item(images[pick], int(rng.integers(SIDES[0], SIDES[1] + 1)))
            if not mask.any():
                continue
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            for _try in range(50):
                top, left = (int(v) for v in rng.integers(0, canvas - len(mask) + 1, 2))
                box = np.array([left + cols[0], top + rows[0], left + cols[-1] + 1, top + rows[-1] + 1], float)
                if all(_overlap(box, other) <= MAX_OVERLAP for other in placed):
                    break
            else:
                continue
            region = (slice(top, top + len(mask)), slice(left, left + len(mask)))
            x[s, 0][region] = np.where(mask, pixels, x[s, 0][region])
            owner[region][mask] = len(placed) + 1
            placed.append(box)
            classes.append(int(labels[pick]))
        masks = [owner == i + 1 for i in range(len(placed))]
        kept = [i for i, m in enumerate(masks) if m.any()]
        boxes = [_tight_box(masks[i]) for i in kept]
        targets.append(coco.instances(np.array(boxes, np.float32), [classes[i] for i in kept],
                                      [masks[i] for i in kept], (canvas, canvas)))
    return x, coco.objects(targets)


def _tight_box(mask: np.ndarray) -> list[float]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return [float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)]


def scenes_dir(base: str) -> Path:
    return idx.cache_root() / f"{base}-scenes-{VERSION}"


def load_scenes(base: str, data_dir: str | None = None):
    """The ``<base>-scenes`` source: built from ``base`` (``fashion-mnist`` or ``mnist``) on first use."""
    target = scenes_dir(base)
    if not (target / "test" / "annotations.json").is_file():
        source = idx.load_named(base, data_dir)  # a clear error if the images are not on this machine
        splits = {split: build_scenes(np.asarray(getattr(source, f"x_{split}"))[:, 0],
                                      np.asarray(getattr(source, f"y_{split}")), SIZES[split], SEEDS[split])
                  for split in ("train", "test")}
        coco.write_coco(target, splits, source.class_names)
    bundle = coco.load_coco(str(target), name=f"{base.split('-')[0]}-scenes")
    bundle.spec = bundle.name
    return bundle
