"""Bad COCO input: one clear line, exit code 2, nothing written — for each way annotations go wrong."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import toy_scenes
from warmstart.data.coco import require_pycocotools, write_coco


@pytest.fixture(scope="module")
def coco_dir(tmp_path_factory):
    scenes = toy_scenes("detect", n_train=12, n_test=4)
    root = tmp_path_factory.mktemp("coco") / "scenes"
    write_coco(root, {"train": (scenes.x_train, scenes.y_train), "test": (scenes.x_test, scenes.y_test)},
               scenes.class_names)
    return root


def _edit(path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _empty_mask(data) -> None:
    mask_api = require_pycocotools()
    rle = mask_api.encode(np.zeros((64, 64), np.uint8, order="F"))
    data["annotations"][0]["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}


CASES = {
    "missing image": (lambda root: (root / "train" / "images" / "000003.png").unlink(),
                      "image id 4 ('images/000003.png') is missing"),
    "box outside the image": (lambda root: _edit(root / "train" / "annotations.json",
                                                 lambda d: d["annotations"][0].update(bbox=[50, 50, 30, 30])),
                              "has bbox [50, 50, 30, 30] outside its 64x64 image"),
    "unknown category": (lambda root: _edit(root / "test" / "annotations.json",
                                            lambda d: d["annotations"][1].update(category_id=99)),
                         "has category_id 99, which is not in 'categories'"),
    "empty mask": (lambda root: _edit(root / "train" / "annotations.json", _empty_mask), "has an empty mask"),
    "corrupt JSON": (lambda root: (root / "train" / "annotations.json").write_text('{"images": [{"id": 1,'),
                     "is not valid JSON"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_coco_input_is_one_line_exit_2_and_nothing_written(case, coco_dir, tmp_path, cli):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(coco_dir, root)
    spoil, message = CASES[case]
    spoil(root)
    out = tmp_path / "run"
    done = cli("finetune", "--data", f"coco:{root}", "--task", "segment", "--strategy", "scratch", "--encoder", "cnn",
               "--out", str(out), "epochs=1")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in done.stderr, done.stderr
    assert not out.exists()


def test_the_intact_folder_loads_and_segment_needs_masks(coco_dir, tmp_path):
    from warmstart.data import load_data
    from warmstart.errors import UserError
    from warmstart.tasks import resolve_task

    data = load_data(f"coco:{coco_dir}")
    assert (len(data.x_train), len(data.x_test), data.task) == (12, 4, "detect")
    assert resolve_task(data, "segment")[1].name == "segment"
    root = tmp_path / "boxes-only"
    import shutil

    shutil.copytree(coco_dir, root)
    for split in ("train", "test"):
        _edit(root / split / "annotations.json", lambda d: [a.pop("segmentation") for a in d["annotations"]])
    boxes_only = load_data(f"coco:{root}")
    with pytest.raises(UserError, match="has no masks; the segment task needs instance masks"):
        resolve_task(boxes_only, "segment")
    with pytest.raises(UserError, match="--task classify"):
        resolve_task(boxes_only, "classify")
