"""The study's Explanations section: which cells it explains and what the report says about them."""
from __future__ import annotations

import json
from types import SimpleNamespace

from warmstart.explain.study import EXPLAIN_DIR, explained_cells, report_blocks
from warmstart.explain.write import FAITHFULNESS_FILE


def _row(method: str, kind: str, accuracy: float, val: float, seed: int) -> dict:
    return {"method": method, "kind": kind, "budget": "count=50", "labels": 50, "seed": seed,
            "accuracy": accuracy, "val_accuracy": val}


def test_a_recipe_that_is_the_best_pretrained_method_is_explained():
    """A recipe is a pretrained method: when it scores best on validation, it is the one explained beside
    scratch (a `study --recipes fast` explained scratch alone)."""
    scores = {"scratch": ("scratch", 0.85, 0.84), "denoising+full": ("pretrained", 0.90, 0.86),
              "recipe:fast": ("recipe", 0.88, 0.91), "label_spreading": ("baseline", 0.93, 0.95)}
    rows = [_row(m, kind, acc, val, seed) for m, (kind, acc, val) in scores.items() for seed in (0, 1)]
    cells = [SimpleNamespace(method=m, budget="count=50", seed=s) for m in scores for s in (0, 1)]
    runner = SimpleNamespace(task=SimpleNamespace(primary="accuracy", higher_is_better=True),
                             plan=SimpleNamespace(cells=cells))
    assert [(c.method, c.seed) for c in explained_cells(runner, rows)] == [("recipe:fast", 0), ("scratch", 0)]


def _faithfulness(tmp_path, labels: list[str]):
    (tmp_path / EXPLAIN_DIR).mkdir()
    info = {"n": 16, "correct": 8, "wrong": 8, "wall_s": 3.0,
            "models": [{"label": label, "table": [], "curves_png": f"{label}.png"} for label in labels]}
    (tmp_path / EXPLAIN_DIR / FAITHFULNESS_FILE).write_text(json.dumps(info))


def test_the_report_names_the_score_the_explained_method_was_chosen_by(tmp_path):
    _faithfulness(tmp_path, ["recipe:fast", "scratch"])
    text = report_blocks(tmp_path, {}, {}, "validation")[1][1]
    assert text.startswith("recipe:fast and scratch at the smallest budget (seed 0; the pretrained method is "
                           "the best at that budget by mean validation score")


def test_a_study_without_pretraining_says_so_beside_its_explained_scratch(tmp_path):
    _faithfulness(tmp_path, ["scratch"])
    text = report_blocks(tmp_path, {}, {}, "test")[1][1]
    assert text.startswith("scratch at the smallest budget (seed 0; the study has no pretrained method)")
