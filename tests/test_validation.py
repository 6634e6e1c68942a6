"""The validation rule: validation rows are disjoint from labeled and test rows for every task, choices are
made on them, and the test split is read only by the final evaluation (a sealed bundle checks it)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import TASK_SETUPS
from warmstart import pipeline
from warmstart.config import FinetuneConfig, PretrainConfig
from warmstart.study_config import resolve_study
from warmstart.data import DataBundle
from warmstart.data.bundle import in_final_evaluation
from warmstart.data.validation import Validation, draw_rows
from warmstart.errors import UserError
from warmstart.selection import BEST_FILE, EpochSelector, scoring_epochs
from warmstart.study import run_study
from warmstart.tasks import TASKS


class SealedBundle(DataBundle):
    """A bundle whose test split may only be read inside ``final_evaluation()``; it counts the reads."""

    reads = 0

    def _test(self, name: str):
        if not in_final_evaluation():
            raise AssertionError(f"{name} read before the final evaluation")
        type(self).reads += 1
        return self.__dict__[name]

    x_test = property(lambda self: self._test("x_test"), lambda self, v: self.__dict__.__setitem__("x_test", v))
    y_test = property(lambda self: self._test("y_test"), lambda self, v: self.__dict__.__setitem__("y_test", v))

    @property
    def n_test(self) -> int:
        return len(self.__dict__["y_test"])


def sealed(bundle: DataBundle) -> SealedBundle:
    """The same data, sealed: built normally (its checks read both splits), then its class swapped."""
    copy = DataBundle(**{f: getattr(bundle, f) for f in bundle.__dataclass_fields__})
    copy.__class__ = SealedBundle
    SealedBundle.reads = 0
    return copy


@pytest.mark.parametrize("task_name", sorted(TASK_SETUPS))
@pytest.mark.parametrize("spec", ["budget=0.25", "extra=30"])
def test_validation_rows_are_disjoint_stratified_and_leave_the_budget_draw_alone(task_name, spec):
    load, _, _, _, budget = TASK_SETUPS[task_name]
    data, task = load(), TASKS.get(task_name)
    plain = draw_rows(task, data, budget, "none", 3)
    if task.no_validation:  # rank: every training interaction is a label; it validates on held-out ones
        with pytest.raises(UserError, match=f"validation={spec} does not apply to the {task_name} task"):
            draw_rows(task, data, budget, spec, 3)
        return
    rows = draw_rows(task, data, budget, spec, 3)
    n = len(data.x_train)
    assert np.array_equal(rows.budget, plain.budget)  # the budget's draw does not depend on validation
    parts = [rows.labeled, rows.validation, rows.unlabeled]
    assert sum(map(len, parts)) == n and len(np.unique(np.concatenate(parts))) == n  # disjoint, covering
    assert all(p.min() >= 0 and p.max() < n for p in parts if len(p))  # training rows only (rank: no pool)
    assert len(rows.validation) == (30 if spec.startswith("extra") else round(0.25 * len(rows.budget)))
    strata, _ = task.strata(data, int(task.budget(budget).value))  # as draw_rows stratifies
    if spec.startswith("budget"):
        assert set(strata[rows.labeled]) == set(strata[rows.budget])  # every stratum keeps a training label
    else:
        _, counts = np.unique(strata[rows.validation], return_counts=True)
        assert counts.max() - counts.min() <= max(2, counts.max() // 2)  # spread over the strata
    again = draw_rows(task, data, budget, spec, 3)
    assert np.array_equal(again.validation, rows.validation)  # a pure function of the seed
    assert not np.array_equal(draw_rows(task, data, budget, spec, 4).validation, rows.validation)


@pytest.mark.parametrize("spec, message", [("budget=1", "strictly between 0 and 1"), ("extra=0", "at least one"),
                                            ("half", "cannot read validation 'half'"), ("extra=5000", "can spare")])
def test_bad_validation_specs_are_one_line(digits, spec, message):
    with pytest.raises(UserError, match=message):
        draw_rows(TASKS.get("classify"), digits, "per_class=5", Validation.parse(spec), 0)


def test_selector_keeps_the_best_scored_weights_and_resumes_to_the_same_choice(digits, tmp_path):
    task = TASKS.get("classify")
    model = task.build_model(pipeline.build_encoder("mlp", digits.input_shape, {"width": 32}), task.info(digits))
    result = pipeline.finetune(FinetuneConfig(strategy="scratch", labels="per_class=10", epochs=40, lr=1e-2,
                                              encoder_args={"width": 32}), data=digits)
    good = {k: v.clone() for k, v in result.model.state_dict().items()}
    bad = {k: v.clone() for k, v in model.state_dict().items()}  # untrained: about chance
    rows = draw_rows(task, digits, "per_class=10", "extra=100", 0).validation
    assert scoring_epochs(10, 5) == {2, 4, 6, 8}
    selector = EpochSelector(task, digits, rows, model, validations=5, run_dir=tmp_path, resume=False)
    selector.start(10)
    for epoch in range(1, 10):
        model.load_state_dict(good if epoch == 4 else bad)
        selector(epoch)
    model.load_state_dict(bad)
    chosen = selector.finish(10, keep_best=True)
    assert chosen["epoch"] == 4 and chosen["score"] > 0.7 > chosen["scores"]["10"]
    assert all(torch.equal(model.state_dict()[k], good[k]) for k in good)
    assert (tmp_path / BEST_FILE).exists()
    resumed = EpochSelector(task, digits, rows, model, validations=5, run_dir=tmp_path, resume=True)
    model.load_state_dict(bad)
    assert resumed.finish(10, keep_best=True)["epoch"] == 4  # the best weights came back from the run dir
    model.load_state_dict(bad)
    assert EpochSelector(task, digits, rows, model, 5, None, False).finish(10, keep_best=False)["epoch"] == 10


def test_finetune_chooses_on_validation_and_reads_the_test_split_once_at_the_end(digits, tmp_path):
    pre = pipeline.pretrain(PretrainConfig(objective="denoising", epochs=3), data=digits)
    data = sealed(digits)
    with pytest.raises(AssertionError, match="before the final evaluation"):
        data.x_test  # the seal holds outside the final evaluation  # noqa: B018
    for strategy in ("full", "selftrain"):
        config = FinetuneConfig(strategy=strategy, labels="per_class=5", epochs=20, lr=1e-2, validation="extra=100",
                                strategy_args={"epochs": 3} if strategy == "selftrain" else {})
        result = pipeline.finetune(config, tmp_path / strategy, data=data, encoder=pre.encoder)
        chosen = json.loads((tmp_path / strategy / "validation.json").read_text())
        assert chosen["rows"] == 100 and chosen["epoch"] in {int(e) for e in chosen["scores"]}
        assert result.metrics["validation_rows"] == 100 and result.metrics["labels"] == 50
        assert result.metrics["accuracy"] > 0.5
    assert SealedBundle.reads > 0  # the final evaluations did read it, inside the marker


def test_a_study_reads_the_test_split_only_in_final_evaluations(digits, tmp_path):
    strategies = ["full", {"name": "selftrain", "strategy_args": {"epochs": 1}}]
    config = resolve_study(flags={"labels": "20", "seeds": 1, "objectives": "autoencoder", "strategies": strategies,
                                  "baselines": "logistic_regression,label_spreading"},
                           overrides=["pretrain.epochs=2", "finetune.epochs=10", "encoder_args.width=32",
                                      "validation=budget=0.5"])
    rows = run_study(config, tmp_path / "study", data=sealed(digits), echo=lambda line: None)
    assert {r["val_rows"] for r in rows} == {10} and {r["train_labels"] for r in rows} == {10}
    assert all(r["val_accuracy"] is not None for r in rows) and SealedBundle.reads > 0
    protocol = (tmp_path / "study" / "report.md").read_text()
    assert "Validation (budget=0.5)" in protocol and "marked by validation score" in protocol
