"""Tables with categorical columns: the schema, its round trip through a saved model, the csv/parquet/named
sources and their bad input, SCARF's and VIME's corruption, and that their features beat random ones."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from conftest import require_dataset
from warmstart import pipeline
from warmstart.config import FinetuneConfig, PretrainConfig
from warmstart.data import DataBundle, load_data
from warmstart.data.modalities.table_schema import UNSEEN_SLOT, TableSchema
from warmstart.data.tables import encode_columns
from warmstart.errors import UserError
from warmstart.models.build import build_encoder
from warmstart.objectives import OBJECTIVES
from warmstart.rundir import load_run
from warmstart.tasks import TASKS


def write_csv(path, header, rows) -> str:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def shop_rows(n: int, seed: int, shift: float = 0.0, colours=("red", "green", "blue")) -> list[list]:
    """``size`` (numeric, some '?'), ``colour`` (categorical, some empty), ``price`` = f(size, colour)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        size, colour = rng.normal() + shift, colours[i % len(colours)]
        price = 2 * size + {"red": 1.0, "green": -1.0}.get(colour, 0.0) + 0.1 * rng.normal()
        rows.append(["?" if i % 11 == 0 else f"{size:.4f}", "" if i % 13 == 0 else colour, f"{price:.4f}"])
    return rows


# --- schema ---------------------------------------------------------------------------------------

def test_schema_encodes_standardised_numbers_indicators_and_level_slots():
    columns = {"n": np.array([1.0, 3.0, np.nan, 5.0, 100.0]), "c": np.array(["a", "b", None, "a", "z"], object)}
    x, schema = encode_columns("t", columns, train=np.arange(4))
    n, c = schema.columns
    assert (n.mean, n.indicator, c.levels, c.counts) == (3.0, True, ("a", "b"), (2, 1))
    encoded = schema.encode(x)  # n: value + indicator; c: missing, unseen, a, b
    assert encoded.shape == (5, 6) and np.allclose(encoded[:, 0], np.array([-2, 0, 0, 2, 97]) / n.std, atol=1e-5)
    assert encoded[:, 1].tolist() == [0, 0, 1, 0, 0]
    assert encoded[:, 2:].argmax(1).tolist() == [2, 3, 0, 2, UNSEEN_SLOT]  # 'z' only in the test row: unseen
    assert TableSchema.from_spec(json.loads(json.dumps(schema.spec()))) == schema


def test_schema_adopts_another_files_codes_by_level_name_and_refuses_other_columns():
    _, mine = encode_columns("a", {"c": np.array(["x", "y", "y"], object)}, np.arange(3))
    codes, theirs = encode_columns("b", {"c": np.array(["new", "y", None], object)}, np.arange(3))
    adopted = mine.adopt(theirs, "b")
    assert adopted.encode(codes)[:, :].argmax(1).tolist() == [UNSEEN_SLOT, 3, 0]
    _, other = encode_columns("b", {"d": np.array(["y"], object)}, np.arange(1))
    with pytest.raises(UserError, match="b lacks column 'c'; the model reads columns c"):
        mine.adopt(other, "b")


def test_autoencoder_reconstructs_table_rows_without_squashing_them_into_0_1():
    """A sigmoid decoder (the image default) cannot reproduce standardised values below 0 or above 1."""
    data = load_data("diabetes")
    encoder = build_encoder("mlp", data.input_shape, {"width": 16, "feature_dim": 8}, "table", schema=data.schema)
    recon = OBJECTIVES.build("autoencoder", encoder).decoder(torch.randn(64, 8) * 10)
    assert recon.min() < 0 and recon.max() > 1


# --- sources --------------------------------------------------------------------------------------

def test_csv_with_categorical_and_missing_cells_states_its_choices_in_the_spec(tmp_path):
    path = write_csv(tmp_path / "shop.csv", ["size", "colour", "price"], shop_rows(100, 0))
    data = load_data(f"csv:{path}")
    assert data.task == "regress" and [c.kind for c in data.schema.columns] == ["numeric", "categorical"]
    assert data.spec == f"csv:{path}?target=price&categorical=colour&missing=size"
    again = load_data(data.spec)
    assert again.schema == data.schema and np.array_equal(again.x_train, data.x_train, equal_nan=True)


def test_parquet_keeps_column_types(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    n = 40
    table = pa.table({"size": pa.array([float(i) if i % 7 else None for i in range(n)]),
                      "flag": pa.array([i % 3 == 0 for i in range(n)]),
                      "colour": pa.array(["red", "blue"] * (n // 2)).dictionary_encode(),
                      "label": pa.array(["yes" if i % 2 else "no" for i in range(n)])})
    pq.write_table(table, tmp_path / "t.parquet")
    data = load_data(f"parquet:{tmp_path / 't.parquet'}")
    assert data.class_names == ["no", "yes"]
    assert data.spec.endswith("?target=label&categorical=flag,colour&missing=size")
    assert [c.kind for c in data.schema.columns] == ["numeric", "categorical", "categorical"]


def test_adult_keeps_the_official_split_and_its_missing_cells():
    require_dataset("adult")
    data = load_data("adult")
    assert (len(data.x_train), len(data.x_test), data.x_train.shape[1]) == (32561, 16281, 14)
    assert data.class_names == ["<=50K", ">50K"] and abs(data.y_test.mean() - 0.236) < 0.001
    kinds = {c.name: c.kind for c in data.schema.columns}
    assert sum(k == "numeric" for k in kinds.values()) == 6 and kinds["workclass"] == "categorical"
    assert data.schema.columns[1].missing > 0.05  # '?' in workclass: the missing slot


def test_diamonds_reads_cut_colour_and_clarity_as_categories():
    require_dataset("diamonds")
    data = load_data("diamonds")
    cats = [c for c in data.schema.columns if c.kind == "categorical"]
    assert [c.name for c in cats] == ["cut", "color", "clarity"] and len(cats[0].levels) == 5
    assert (len(data.x_train), len(data.x_test)) == (43152, 10788) and data.target_names == ["log_price"]


def bad_tables(tmp):
    rows = shop_rows(30, 0)
    cases = {
        "no such target": (write_csv(tmp / "a.csv", ["size", "colour", "price"], rows) + "?target=cost",
                           "no target column 'cost'"),
        "missing target": (write_csv(tmp / "b.csv", ["size", "colour", "price"], rows[:5] + [["1", "red", "?"]]
                                     + rows[5:]), "target column 'price' is empty on line 7 (1 row(s) in all)"),
        "all missing": (write_csv(tmp / "c.csv", ["size", "empty", "price"], [[r[0], "", r[2]] for r in rows]),
                        "column 'empty' is empty in every row; drop it with ?drop=empty"),
        "50,000 levels": (write_csv(tmp / "d.csv", ["id", "size", "price"],
                                    [[f"user{i}", i % 7, i % 3] for i in range(50_000)]),
                          "column 'id' has 50,000 distinct values, too many for a categorical column"),
    }
    return cases


@pytest.mark.parametrize("case", ["no such target", "missing target", "all missing", "50,000 levels", "truncated"])
def test_bad_tables_are_one_line_exit_2_and_write_nothing(case, cli, tmp_path):
    if case == "truncated":
        pa = pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"x": np.arange(100.0), "label": np.arange(100) % 2}), tmp_path / "t.parquet")
        whole = (tmp_path / "t.parquet").read_bytes()
        (tmp_path / "cut.parquet").write_bytes(whole[: len(whole) // 2])
        spec, message = f"parquet:{tmp_path / 'cut.parquet'}", "the file is truncated or not Parquet"
    else:
        path, message = bad_tables(tmp_path)[case]
        spec = f"csv:{path}"
    result = cli("pretrain", "--data", spec, "--encoder", "tabular", "--out", str(tmp_path / "run"), "epochs=1")
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


# --- a saved model on new rows ---------------------------------------------------------------------

def test_saved_model_predicts_new_rows_with_unseen_levels_and_missing_cells_in_its_training_statistics(tmp_path):
    train_csv = write_csv(tmp_path / "train.csv", ["size", "colour", "price"], shop_rows(200, 0))
    config = FinetuneConfig(data=f"csv:{train_csv}", strategy="scratch", encoder="tabular", labels="count=100",
                            epochs=30, lr=3e-3, encoder_args={"d_token": 8, "width": 32, "feature_dim": 16})
    result = pipeline.finetune(config, tmp_path / "model")
    model, meta = load_run(tmp_path / "model", "model")
    assert meta["schema"] == result.model.encoder.spec["schema"]
    # New rows: sizes shifted (other statistics, if the file's own were used), a colour never seen, holes.
    new_csv = write_csv(tmp_path / "new.csv", ["size", "colour", "price"],
                        shop_rows(60, 1, shift=3.0, colours=("red", "purple")) + shop_rows(200, 0)[:40])
    new = load_data(f"csv:{new_csv}")
    new = new.handler.prepare(new, model.encoder)  # read in the model's schema
    encoded = new.batch(new.x_train)
    purple = np.array([new.schema.columns[1].values[int(c)] == "purple" if c == c else False
                       for c in new.x_train[:, 1]])
    assert purple.any() and encoded[purple][:, 2 + UNSEEN_SLOT].eq(1).all()
    task = TASKS.get("regress")
    predicted = task.predict(model, new, new.x_train)
    assert np.isfinite(predicted).all()
    # A row shared by both files gets the prediction the trained model gave it in the training file.
    old = result.model
    train_data = load_data(f"csv:{train_csv}")
    shared = [i for i, row in enumerate(new.x_train) if not np.isnan(row).any()
              and new.schema.columns[1].values[int(row[1])] != "purple"]
    rows_new = new.x_train[shared]
    sizes = train_data.x_train[:, 0]
    match = [(i, int(np.flatnonzero(np.isclose(sizes, r[0]))[0])) for i, r in zip(shared, rows_new)
             if np.isclose(sizes, r[0]).any()]
    assert match, "some rows of the training file should be in the new file's training split"
    for i, j in match[:5]:
        assert task.predict(model, new, new.x_train[[i]]) == pytest.approx(
            task.predict(old, train_data, train_data.x_train[[j]]), abs=1e-5)
    metrics = pipeline.evaluate(tmp_path / "model", f"csv:{new_csv}")
    assert np.isfinite(metrics["rmse"])


# --- SCARF and VIME ------------------------------------------------------------------------------

def split_table() -> DataBundle:
    """Training rows: x in [0, 1], levels a (75 %) and b; test rows: x in [10, 11], only level c."""
    rng = np.random.default_rng(0)
    n = 400
    x = np.concatenate([rng.random(300), 10 + rng.random(100)])
    level = np.array(["a" if i % 4 else "b" for i in range(300)] + ["c"] * 100, object)
    stored, schema = encode_columns("split", {"x": x, "level": level}, np.arange(300))
    y = np.arange(n) % 2
    return DataBundle("split", stored[:300], y[:300], stored[300:], y[300:], "table", schema=schema)


@pytest.mark.parametrize("objective", ["scarf", "vime"])
def test_corruption_draws_from_the_training_marginals_only(objective):
    data = split_table()
    encoder = build_encoder("tabular", data.input_shape, {"d_token": 4}, "table", schema=data.schema)
    corrupt = OBJECTIVES.build(objective, encoder, **({"corruption_rate": 0.5} if objective == "scarf" else
                                                       {"mask_prob": 0.5})).corrupt
    test = data.batch(data.x_test)  # (100, 1 + 4): x, then slots missing / unseen / a / b
    torch.manual_seed(0)
    views = torch.cat([(corrupt(test)[0] if objective == "vime" else corrupt(test)) for _ in range(40)])
    replaced_x = views[:, 0][views[:, 0] < 5]  # a test row's own x is >= 10 standardised units... below 5: drawn
    low, high = [(v - data.schema.columns[0].mean) / data.schema.columns[0].std for v in (0.0, 1.0)]
    assert len(replaced_x) > 1000 and replaced_x.min() >= low - 1e-5 and replaced_x.max() <= high + 1e-5
    slots = views[:, 1:].argmax(1)
    drawn = slots[slots != UNSEEN_SLOT]  # test level c is unseen; every other slot was drawn
    assert len(drawn) > 1000 and set(drawn.tolist()) <= {2, 3}
    assert (drawn == 2).float().mean().item() == pytest.approx(0.75, abs=0.03)  # a's training share


def adult_subset(n_train: int = 6000, n_test: int = 3000) -> DataBundle:
    require_dataset("adult")
    data = load_data("adult")
    rng = np.random.default_rng(0)
    tr, te = rng.choice(len(data.x_train), n_train, replace=False), rng.choice(len(data.x_test), n_test, replace=False)
    return DataBundle("adult-subset", data.x_train[tr], data.y_train[tr], data.x_test[te], data.y_test[te], "table",
                      data.class_names, schema=data.schema)


ENCODER = {"d_token": 8, "width": 128, "feature_dim": 64}


def test_vime_mask_loss_falls_on_adult():
    data = adult_subset(4000, 10)
    config = PretrainConfig(objective="vime", encoder="tabular", encoder_args=ENCODER, epochs=4, batch_size=128,
                            lr=2e-3, health_samples=0)
    history = pipeline.pretrain(config, data=data).history
    masks = [h["mask_loss"] for h in history]
    assert masks[-1] < 0.9 * masks[0] and history[-1]["reconstruction"] < history[0]["reconstruction"], history


def test_scarf_features_beat_random_ones_on_adult():
    """A logistic probe on 200 labeled rows: SCARF's features against the same encoder at random init."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    from warmstart.evaluate import embed

    data = adult_subset()
    config = PretrainConfig(objective="scarf", encoder="tabular", encoder_args=ENCODER, epochs=8, batch_size=256,
                            lr=2e-3, health_samples=0)
    pretrained = pipeline.pretrain(config, data=data).encoder
    torch.manual_seed(0)
    random = build_encoder("tabular", data.input_shape, ENCODER, "table", schema=data.schema)
    labeled = TASKS.get("classify").split(data, "count=200", 0)[0]
    scores = {}
    for name, encoder in (("scarf", pretrained), ("random", random)):
        z_train, z_test = embed(encoder, data, data.x_train[labeled]), embed(encoder, data, data.x_test)
        scale = StandardScaler().fit(z_train)
        probe = LogisticRegression(max_iter=2000).fit(scale.transform(z_train), data.y_train[labeled])
        scores[name] = roc_auc_score(data.y_test, probe.predict_proba(scale.transform(z_test))[:, 1])
    assert scores["scarf"] > scores["random"] + 0.02, scores
