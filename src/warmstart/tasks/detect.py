"""``detect``: boxes with classes — COCO mAP@[.5:.95] (primary), mAP@.5, mAP@.75 and mAR@100.

The head is CenterNet's (``models/dense.py``, ``models/centernet.py``): anchor-free, one heatmap peak per
object at stride 2 (the finest stride ≥ 2 the encoder has), no NMS beyond a 3×3 max-pool. Predictions
are at most 100 boxes per image (COCO's ``maxDets``) scoring at least ``SCORE_THRESHOLD``; the metrics
are pycocotools' ``COCOeval`` on bounding boxes over all object sizes.
"""
from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import torch
from torch import nn

from warmstart.augment import warp_boxes
from warmstart.data.coco import objects, require_pycocotools
from warmstart.models.centernet import centernet_loss, decode
from warmstart.tasks.base import TASKS
from warmstart.tasks.instances import InstanceTask

#: Detections below this score are dropped before evaluation (detectron2's default test threshold): they
#: barely move AP and cost COCOeval time.
SCORE_THRESHOLD = 0.05
MAX_DETECTIONS = 100
#: The report's overlay grid keeps each image's best boxes; it draws those scoring at least ``DRAW_THRESHOLD``,
#: or the top ``DRAW_AT_LEAST`` when none does (so a weak detector still shows where it looks).
KEPT_FOR_REPORT, DRAW_THRESHOLD, DRAW_AT_LEAST = 10, 0.3, 3


def coco_eval(true, pred, num_classes: int, size: tuple[int, int]) -> dict[str, float]:
    """COCO box metrics of predictions ``pred`` (per image: boxes, scores, labels) against ``true``
    (per image: boxes, labels); category ``c`` is COCO id ``c + 1``."""
    require_pycocotools()
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    height, width = size
    images = [{"id": i + 1, "height": height, "width": width} for i in range(len(true))]
    gt_anns, dets = [], []
    for i, t in enumerate(true):
        for box, label in zip(t["boxes"], t["labels"]):
            w, h = float(box[2] - box[0]), float(box[3] - box[1])
            gt_anns.append({"id": len(gt_anns) + 1, "image_id": i + 1, "category_id": int(label) + 1,
                            "bbox": [float(box[0]), float(box[1]), w, h], "area": w * h, "iscrowd": 0})
    for i, p in enumerate(pred):
        for box, score, label in zip(p["boxes"], p["scores"], p["labels"]):
            dets.append({"image_id": i + 1, "category_id": int(label) + 1, "score": float(score),
                         "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]})
    names = ("map", "map_50", "map_75", "mar_100")
    if not gt_anns or not dets:
        return dict.fromkeys(names, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO()
        gt.dataset = {"images": images, "annotations": gt_anns,
                      "categories": [{"id": k + 1} for k in range(num_classes)]}
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(dets), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = [max(0.0, float(v)) for v in evaluator.stats]  # -1 marks "no such objects"
    return dict(zip(names, (stats[0], stats[1], stats[2], stats[8])))


class Detect(InstanceTask):
    """Boxes with classes; CenterNet's focal + L1 losses on a heatmap head over the FPN decoder."""

    name = "detect"
    description = "boxes with classes: COCO mAP@[.5:.95] (primary), mAP@.5, mAP@.75, mAR@100 (pycocotools)"
    primary = "map"
    metric_names = ("map", "map_50", "map_75", "mar_100")
    drawn = (f"; predicted boxes scoring at least {DRAW_THRESHOLD} are drawn, or an image's best {DRAW_AT_LEAST} "
             "when none does, with their scores")

    def build_model(self, encoder: nn.Module, info: dict[str, Any]) -> nn.Module:
        from warmstart.models.dense import CenterNetHead, DenseModel, check_pyramid

        check_pyramid(encoder, f"the {self.name} task")
        strides = encoder.pyramid_strides
        stride = min([s for s in strides if s >= 2] or [strides[0]])
        head = CenterNetHead(encoder.pyramid_channels, strides, len(info["class_names"]), stride)
        return DenseModel(encoder, head)

    def target_tensor(self, y) -> torch.Tensor:
        """``(B, M, 5)`` float32 boxes and labels, padded with label -1 to the batch's most objects."""
        most = max([len(t["labels"]) for t in y], default=0)
        out = torch.zeros(len(y), most, 5)
        out[..., 4] = -1
        for i, t in enumerate(y):
            n = len(t["labels"])
            out[i, :n, :4] = torch.from_numpy(np.asarray(t["boxes"], np.float32))
            out[i, :n, 4] = torch.from_numpy(np.asarray(t["labels"], np.float32))
        return out

    def warp(self, target, theta, size):
        return warp_boxes(target, theta, size)

    def loss(self, output, target, model):
        return centernet_loss(output, target, model.head.classes, model.head.stride)

    def predict(self, model, bundle, x):
        """Per image a dict of ``boxes`` ``(n, 4)`` xyxy pixels, ``scores`` and ``labels``, best first."""
        out, size = [], tuple(bundle.input_shape[-2:])
        for output in self.outputs(model, bundle, x):
            boxes, scores, labels = decode(output, model.head.classes, model.head.stride, size, MAX_DETECTIONS)
            for b, s, c in zip(boxes.numpy(), scores.numpy(), labels.numpy()):
                keep = s >= SCORE_THRESHOLD
                out.append({"boxes": b[keep], "scores": s[keep], "labels": c[keep].astype(np.int64)})
        return objects(out)

    def metrics(self, bundle, y_true, y_pred):
        scores = coco_eval(y_true, y_pred, bundle.num_classes, tuple(bundle.input_shape[-2:]))
        return {**scores, "n": int(len(y_true))}

    def sample_arrays(self, true, pred):
        """Padded ``(n, M, 6)`` arrays ``x1, y1, x2, y2, score, label`` (label -1: padding)."""
        def pad(rows: list[np.ndarray]) -> np.ndarray:
            out = np.full((len(rows), max([len(r) for r in rows] + [1]), 6), -1.0, np.float32)
            for i, r in enumerate(rows):
                out[i, :len(r)] = r
            return out
        truth = [np.column_stack([t["boxes"], np.ones(len(t["labels"])), t["labels"]]) for t in true]
        shown = []
        for p in pred:
            rows = np.column_stack([p["boxes"], p["scores"], p["labels"]])[:KEPT_FOR_REPORT]  # best first
            confident = int((rows[:, 4] >= DRAW_THRESHOLD).sum())
            shown.append(rows[:max(confident, DRAW_AT_LEAST)])
        return {"true": pad(truth), "pred": pad(shown)}


TASKS.register("detect")(Detect())
