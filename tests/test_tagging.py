"""The ``tag`` task on the real ``wordnet-tags`` sentences: every strategy (the bugs: ``full`` with
``head_init=probe`` ended in a raw scikit-learn traceback, ``selftrain`` in a size mismatch) and a study (it
crashed in the TF-IDF baseline), on a slice of the corpus so each run takes seconds."""
from __future__ import annotations

import csv
import os
from dataclasses import replace

import numpy as np
import pytest

from conftest import TEXT_ARGS
from warmstart import pipeline
from warmstart.config import FinetuneConfig, PretrainConfig
from warmstart.study_config import resolve_study

pytestmark = pytest.mark.skipif(not os.path.isdir("/usr/share/wordnet"),
                                reason="WordNet files absent: apt-get install wordnet-base (.ci/run installs it)")


@pytest.fixture(scope="module")
def tags():
    from warmstart.data import load_data

    data = load_data("wordnet-tags")
    rng = np.random.default_rng(0)
    train, test = rng.permutation(len(data.x_train))[:600], rng.permutation(len(data.x_test))[:200]
    return replace(data, x_train=data.x_train[train], y_train=data.y_train[train], x_test=data.x_test[test],
                   y_test=data.y_test[test])


@pytest.fixture(scope="module")
def mlm(tags):
    config = PretrainConfig(objective="mlm", encoder="transformer", encoder_args=TEXT_ARGS, epochs=2, lr=3e-3)
    return pipeline.pretrain(config, data=tags).objective


@pytest.mark.parametrize("strategy,args", [("scratch", {}), ("linear", {}), ("full", {"head_init": "probe"}),
                                           ("joint", {"epochs": 1, "unlabeled_batch": 64}),
                                           ("selftrain", {"epochs": 1, "batch": 64}),
                                           ("selftrain", {"epochs": 1, "batch": 64, "targets": "teacher+probe"})])
def test_every_strategy_tags_wordnet_sentences(tags, mlm, strategy, args):
    config = FinetuneConfig(strategy=strategy, strategy_args=args, labels="count=60", epochs=10, batch_size=20,
                            lr=3e-3, encoder="transformer", encoder_args=TEXT_ARGS)
    metrics = pipeline.finetune(config, data=tags, encoder=mlm.encoder, objective=mlm).metrics
    assert metrics["task"] == "tag" and 0 <= metrics["entity_f1"] <= 1 and "accuracy" not in metrics
    assert metrics["token_accuracy"] > 0.6  # most words are O (about 85%), and 30 steps learn that


def test_lp_ft_probe_head_predicts_what_the_word_probe_predicts(tags, mlm):
    """``head_init=probe`` on tags: a logistic probe over each word's first sub-word state becomes the head."""
    from warmstart.models.build import build_encoder
    from warmstart.probes import LinearProbe
    from warmstart.tasks import TASKS
    from warmstart.tasks.tag import word_outputs

    task = TASKS.get("tag")
    spec = mlm.encoder.spec
    encoder = build_encoder("transformer", (), spec["encoder_args"], "text", tokenizer=spec["tokenizer"])
    encoder.load_state_dict(mlm.encoder.state_dict())
    data = tags.handler.prepare(tags, encoder)
    model = task.build_model(encoder, task.info(data))
    labeled, _ = task.split(data, "count=60", 0)
    task.probe_head(model, data, labeled)
    z, t = task.probe_data(encoder, data, labeled)
    expected = LinearProbe("logistic").fit(z, t, model.head.out_features)
    ours = np.concatenate([logits.argmax(1) for logits, _ in word_outputs(model.eval(), data, data.x_test[:50])])
    states = np.concatenate([s for s, _ in word_outputs(encoder.hidden, data, data.x_test[:50])])
    assert (ours == expected.predict(states)).mean() > 0.99


def test_a_tagging_study_runs_with_the_lexicon_baseline(tags, tmp_path):
    from warmstart.study import run_study

    config = resolve_study(flags={"data": "wordnet-tags", "objectives": "mlm", "strategies": "linear,full",
                                  "labels": "40", "seeds": 1, "encoder": "transformer"},
                           overrides=[f"encoder_args.{k}={v}" for k, v in TEXT_ARGS.items()]
                           + ["pretrain.epochs=1", "finetune.epochs=2", "threads=1"])
    run_study(config, tmp_path / "study", data=tags, echo=lambda line: None)
    with open(tmp_path / "study" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["method"] for r in rows} == {"majority_tag", "scratch", "mlm+linear", "mlm+full"}
    assert {"entity_f1", "entity_precision", "entity_recall", "token_accuracy"} <= set(rows[0])
    assert "Test entity_f1" in (tmp_path / "study" / "report.md").read_text()


def test_the_lexicon_baseline_tags_words_as_they_were_tagged_most_often():
    from warmstart.baselines import BASELINES, BaselineData

    def rows(*sentences):
        out = np.empty(len(sentences), dtype=object)
        out[:] = sentences
        return out

    x = rows(("the", "Cat", "sat"), ("a", "cat", "ran"), ("the", "dog", "ran"), ("big", "dog", "house"))
    # tags: O=0, B-animal=1, I-animal=2, B-place=3
    y = rows(np.array([0, 1, 0]), np.array([0, 1, 0]), np.array([0, 0, 0]), np.array([0, 2, 3]))
    test = rows(("the", "cat", "dog", "zebra"), ("dog", "house"))
    predicted = BASELINES.get("majority_tag").fit_predict(BaselineData(x, y, np.array([0, 1, 3]), test, 0))
    # "cat" was B-animal twice (case folded); "dog" was I-animal once (rows 0,1,3 labeled), which cannot start an
    # entity after a B of the same type... here it follows "cat" (B-animal), so it continues it; unseen: O.
    assert predicted[0].tolist() == [0, 1, 2, 0]
    assert predicted[1].tolist() == [1, 3]  # an I- that starts a sentence becomes B-
