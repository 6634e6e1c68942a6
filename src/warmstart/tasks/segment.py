"""``segment``: a class for every pixel — mIoU (primary), pixel accuracy and per-class IoU.

Classes are the background (index 0) and the data's ``K`` categories (``1 + c``); a pixel belongs to the
instance that owns it in the instance map. The head is an FPN decoder on the encoder's pyramid
(``models/dense.py``), trained with cross-entropy plus soft Dice (the nnU-Net pairing: Dice balances the
small objects against the background, cross-entropy keeps the gradients smooth). mIoU averages the IoU
of the background and every category over the test set's pixels (the PASCAL VOC convention: the
background counts as a class; a class absent from both truth and prediction is left out).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from warmstart.augment import warp_masks
from warmstart.tasks.base import TASKS
from warmstart.tasks.instances import InstanceTask

#: Weight of the soft Dice term beside cross-entropy (nnU-Net sums the two with weight 1).
DICE_WEIGHT = 1.0


def class_map(target: dict) -> np.ndarray:
    """``(H, W)`` int64 classes of one image: 0 background, ``1 + label`` where an instance is."""
    lut = np.concatenate([[0], np.asarray(target["labels"], np.int64) + 1])
    return lut[np.asarray(target["masks"], np.int64)]


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """``1 - `` mean soft Dice over the foreground classes present in the batch (Milletari et al., 2016):
    ``logits`` ``(B, C, H, W)``, ``target`` ``(B, H, W)`` class indices."""
    probs = logits.softmax(1)
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).to(probs)
    inter = (probs * onehot).sum((0, 2, 3))
    total = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    dice = (2 * inter + eps) / (total + eps)
    present = onehot.sum((0, 2, 3))[1:] > 0
    return (1 - dice[1:][present]).mean() if present.any() else logits.sum() * 0.0


def iou_metrics(true: np.ndarray, pred: np.ndarray, names: list[str]) -> dict[str, Any]:
    """mIoU, pixel accuracy and per-class IoU of ``(N, H, W)`` class maps over ``len(names)`` classes."""
    n = len(names)
    counts = np.bincount(true.astype(np.int64).ravel() * n + pred.astype(np.int64).ravel(), minlength=n * n)
    confusion = counts.reshape(n, n)  # rows: truth, columns: prediction
    hits = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - hits
    iou = np.where(union > 0, hits / np.maximum(union, 1), np.nan)
    return {"miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0,
            "pixel_accuracy": float(hits.sum() / max(confusion.sum(), 1)),
            "per_class_iou": {name: (None if np.isnan(v) else round(float(v), 6)) for name, v in zip(names, iou)},
            "n": int(len(true))}


class Segment(InstanceTask):
    """Per-pixel classes (background + the categories); cross-entropy + Dice on an FPN decoder."""

    name = "segment"
    description = "a class per pixel: mIoU (primary, background included), pixel accuracy, per-class IoU"
    primary = "miou"
    metric_names = ("miou", "pixel_accuracy")
    need_masks = True

    def pixel_classes(self, bundle) -> list[str]:
        return ["background", *bundle.class_names]

    def build_model(self, encoder: nn.Module, info: dict[str, Any]) -> nn.Module:
        from warmstart.models.dense import DenseModel, SegmentationHead, check_pyramid

        check_pyramid(encoder, f"the {self.name} task")
        head = SegmentationHead(encoder.pyramid_channels, encoder.pyramid_strides, 1 + len(info["class_names"]))
        return DenseModel(encoder, head)

    def target_tensor(self, y) -> torch.Tensor:
        return torch.from_numpy(np.stack([class_map(t) for t in y]))  # (B, H, W) int64

    def warp(self, target, theta, size):
        return warp_masks(target, theta)

    def loss(self, output, target, model):
        ce = F.cross_entropy(output, target)
        dice = soft_dice_loss(output, target)
        accuracy = (output.detach().argmax(1) == target).float().mean()
        return ce + DICE_WEIGHT * dice, {"loss_ce": ce.detach(), "loss_dice": dice.detach(),
                                         "train_pixel_accuracy": accuracy}

    def predict(self, model, bundle, x):
        """``(N, H, W)`` uint8 class maps (0 background, ``1 + c`` category ``c``)."""
        chunks = [logits.argmax(1).to(torch.uint8).numpy() for logits in self.outputs(model, bundle, x)]
        return np.concatenate(chunks) if chunks else np.zeros((0, *bundle.input_shape[-2:]), np.uint8)

    def metrics(self, bundle, y_true, y_pred):
        true = np.stack([class_map(t) for t in y_true])
        return iou_metrics(true, np.asarray(y_pred), self.pixel_classes(bundle))

    def sample_arrays(self, true, pred):
        return {"true": np.stack([class_map(t) for t in true]).astype(np.int64), "pred": pred.astype(np.int64)}

    def report_sections(self, run_dir, summary):
        blocks, pngs = super().report_sections(run_dir, summary)
        return per_class_table(run_dir, summary) + blocks, pngs


def per_class_table(run_dir, summary) -> list[tuple]:
    """The report's table of test IoU per class at the smallest budget, mean over seeds, for scratch and the
    best pretrained method (a method whose mIoU rose may still have lost the rare classes)."""
    from warmstart.study.files import read_cells

    smallest = summary.budgets[0]
    methods = [m for m in ("scratch", summary.best(smallest, ("pretrained",))) if m]
    found: dict[str, list[dict]] = {m: [] for m in methods}
    for (method, budget, _seed), cell in read_cells(run_dir).items():
        if method in found and budget == smallest and "per_class_iou" in cell:
            found[method].append(cell["per_class_iou"])
    methods = [m for m in methods if found[m]]
    if not methods:
        return []
    classes = list(found[methods[0]][0])

    def mean(method: str, name: str) -> str:
        values = [c[name] for c in found[method] if c.get(name) is not None]
        return f"{100 * np.mean(values):.1f}" if values else "–"

    body = [[name, *(mean(m, name) for m in methods)] for name in classes]
    seeds = ", ".join(f"{m}: {len(found[m])}" for m in methods)
    return [("h2", f"IoU per class at {summary.labels[smallest]} labeled images"),
            ("p", f"Test IoU in points, mean over seeds ({seeds}); the best pretrained method is chosen as in "
                  "the score table."),
            ("table", ["class", *methods], body, set())]


TASKS.register("segment")(Segment())
