"""What ``segment`` and ``detect`` share: per-image instance targets, budgets of labeled images, moving
targets with the pixels under augmentation, and the study report's overlay grid.

A row's target is one dict (``warmstart.data.coco``): ``boxes`` ``(n, 4)`` float32 ``x1, y1, x2, y2`` in
pixels, ``labels`` ``(n,)`` int64 in ``0..K-1`` (``class_names``), ``masks`` an ``(H, W)`` instance map
(``i + 1`` where instance ``i`` is, 0 elsewhere) or None. A label budget counts labeled *images*
(``count=N`` or ``fraction=F``; a labeled image carries all its instances), stratified by each image's
dominant class (its largest instance's); every other training image is the unlabeled pool.
"""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from warmstart.errors import UserError
from warmstart.tasks.base import Task

#: Test scenes a study keeps per cell for the report's overlay grid.
REPORT_SCENES = 6


def dominant_class(targets, k: int) -> np.ndarray:
    """Each image's largest instance's class (by box area), ``k`` for images without instances."""
    out = np.full(len(targets), k, np.int64)
    for i, t in enumerate(targets):
        if len(t["labels"]):
            areas = (t["boxes"][:, 2] - t["boxes"][:, 0]) * (t["boxes"][:, 3] - t["boxes"][:, 1])
            out[i] = t["labels"][int(np.argmax(areas))]
    return out


def check_instances(bundle, task: str, need_masks: bool) -> None:
    """Validate ``bundle.y_*`` as instance targets of images of ``bundle.input_shape``; one line per problem."""
    if bundle.modality != "image":
        raise UserError(f"{bundle.name}: the {task} task needs images, not {bundle.modality} data")
    height, width = bundle.input_shape[-2:]
    k = len(bundle.class_names)
    for split in ("train", "test"):
        for i, t in enumerate(getattr(bundle, f"y_{split}")):
            where = f"{bundle.name}: {split} image {i}"
            if not isinstance(t, dict) or not {"boxes", "labels", "masks"} <= set(t):
                raise UserError(f"{where}: targets must be dicts of boxes, labels and masks (see warmstart.data.coco)")
            boxes, labels = np.asarray(t["boxes"], np.float32).reshape(-1, 4), np.asarray(t["labels"], np.int64)
            if len(boxes) != len(labels):
                raise UserError(f"{where}: {len(boxes)} boxes but {len(labels)} labels; give one label per box")
            if len(labels) and (labels.min() < 0 or labels.max() >= k):
                raise UserError(f"{where}: class {int(labels.max())} is outside 0..{k - 1} ({k} class names)")
            if len(boxes) and ((boxes[:, 2:] <= boxes[:, :2]).any() or boxes.min() < 0
                               or boxes[:, 2].max() > width or boxes[:, 3].max() > height):
                raise UserError(f"{where}: a box lies outside the {width}x{height} image or is empty; boxes are "
                                "x1, y1, x2, y2 pixels with x1 < x2 <= width, y1 < y2 <= height")
            masks = t["masks"]
            if masks is None and need_masks:
                raise UserError(f"{where} has no masks; the {task} task needs instance masks (polygons or RLE in "
                                "the COCO file); use --task detect for boxes alone")
            if masks is not None and (np.shape(masks) != (height, width) or np.max(masks, initial=0) > len(labels)):
                raise UserError(f"{where}: the instance map must be {height}x{width} with values 0..{len(labels)}")
            t["boxes"], t["labels"] = boxes, labels


class InstanceTask(Task):
    """Base of ``segment`` and ``detect`` (see the module docstring)."""

    modalities = ("image",)
    budget_kinds = ("count", "fraction")
    default_budget = "count=50"
    pseudo_sources: tuple[str, ...] = ()
    default_pseudo = ""
    linear_probe = False
    need_masks = False
    not_private = ("its loss is normalised over the whole batch (Dice over the batch's pixels, CenterNet over "
                   "the batch's objects), so one image's gradient is scaled by the others")

    def check(self, bundle) -> None:
        check_instances(bundle, self.name, self.need_masks)

    def adopt(self, bundle):
        """``detect`` and ``segment`` read the same instances (segment needs their masks)."""
        if bundle.task not in ("detect", "segment"):
            raise UserError(f"--task {self.name} needs images with instance annotations (a COCO source such as "
                            f"coco:PATH or fashion-scenes); {bundle.name} holds {bundle.task} targets; drop --task")
        return replace(bundle, task=self.name)

    def strata(self, bundle, size):
        return dominant_class(bundle.y_train, bundle.num_classes), [*bundle.class_names, "(no object)"]

    def make_batch(self, bundle, index):
        return bundle.batch(bundle.x_train, index), self.target_tensor(bundle.y_train[index])

    def view(self, modality, x, target, kind):
        x, theta = modality.augment_spatial(x, kind)
        return x, (target if theta is None else self.warp(target, theta, tuple(x.shape[-2:])))

    def warp(self, target: torch.Tensor, theta: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The batch's targets moved by the ``(B, 2, 3)`` affines the pixels were resampled with."""
        raise NotImplementedError

    @torch.no_grad()
    def outputs(self, model: nn.Module, bundle, x: np.ndarray, batch_size: int = 256):
        """``model``'s raw outputs for rows ``x``, in eval mode, chunk by chunk (a generator)."""
        model.eval()
        for i in range(0, len(x), batch_size):
            yield model(bundle.batch(x[i:i + batch_size]))

    def baselines(self, modality: str) -> list[str]:
        return []

    def embedding_colours(self, bundle):
        return (dominant_class(bundle.y_test, bundle.num_classes).astype(np.float32),
                [*bundle.class_names, "(no object)"])

    # --- the report's overlay grid -------------------------------------------------------------------

    def report_samples(self, model, bundle) -> dict[str, np.ndarray]:
        """The first ``REPORT_SCENES`` test images, their targets and this model's predictions, as arrays."""
        rows = np.arange(min(REPORT_SCENES, len(bundle.x_test)))
        return {"image": bundle.batch(bundle.x_test, rows).numpy(),
                **self.sample_arrays(bundle.y_test[rows], self.predict(model, bundle, bundle.x_test[rows]))}

    #: What the overlay caption adds about what is drawn.
    drawn = ""

    def sample_arrays(self, true, pred) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def report_sections(self, run_dir, summary):
        from warmstart.checkpoint import load_tensors
        from warmstart.study.overlays import overlay_grid
        from warmstart.study.plan import Cell

        smallest = summary.budgets[0]
        best = summary.best(smallest, ("pretrained",))
        methods = [("scratch", Cell("scratch", "none", "scratch", smallest, 0))]
        if best is not None:
            methods.append((best, Cell("pretrained", *best.split("+", 1), smallest, 0)))
        found = [(m, run_dir / "cells" / f"{c.key}.samples.safetensors") for m, c in methods]
        found = [(m, p) for m, p in found if p.is_file()]
        if not found:
            return [], {}
        samples = {m: {k: v.numpy() for k, v in load_tensors(p)[0].items()} for m, p in found}
        info = run_dir / "study_info.json"
        names = json.loads(info.read_text()).get("class_names", []) if info.is_file() else []
        title = f"{self.name}: test scenes at {summary.labels[smallest]} labeled images (seed 0)"
        png = overlay_grid(samples, self.name, names, title)
        caption = (f"The first {REPORT_SCENES} test scenes: ground truth, then the predictions of "
                   + " and ".join(m for m, _ in found) + f" (the best pretrained method at {summary.labels[smallest]}"
                   " labeled images), each trained on the same labeled images of seed 0" + self.drawn)
        return [("h2", "Predictions on test scenes"), ("img", "overlays.png", caption)], {"overlays.png": png}
