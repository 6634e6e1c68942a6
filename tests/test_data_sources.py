"""Data sources: every loader's happy path, its one-line errors, IDX lookup order and downloads.

Nothing here touches the network or the real caches: an autouse fixture points the cache, the
system dataset directory and the download mirror at temporary places.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from warmstart.data import idx
from warmstart.data.sources import describe_sources, load_data
from warmstart.errors import UserError


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens here once the socket is closed


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("WARMSTART_DATA", raising=False)
    monkeypatch.setenv("WARMSTART_MIRROR", closed_port_url())
    monkeypatch.setattr(idx, "SYSTEM_DIR", tmp_path / "system")


def make_idx_set(directory: Path, label: int, gz: bool = True, n: int = 20) -> dict[str, np.ndarray]:
    """Four tiny IDX files whose labels are all ``label``, so tests can tell sets apart."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(label)
    arrays = {
        "x_train": rng.integers(0, 256, (n, 4, 5), dtype=np.uint8),
        "y_train": np.full(n, label, np.uint8),
        "x_test": rng.integers(0, 256, (n // 2, 4, 5), dtype=np.uint8),
        "y_test": np.full(n // 2, label, np.uint8),
    }
    for key, stem in idx.IDX_FILES.items():
        idx.write_idx(directory / (stem + (".gz" if gz else "")), arrays[key])
    return arrays


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and message
    return message


# --- names and specs ------------------------------------------------------------------------

def test_digits_is_fixed_and_stratified():
    a, b = load_data("digits"), load_data("digits")
    assert a.x_train.shape == (1437, 1, 8, 8) and a.x_test.shape == (360, 1, 8, 8)
    assert a.scale == 1 / 16 and a.x_train.max() == 16 and a.modality == "image"
    assert np.array_equal(a.y_test, b.y_test) and np.array_equal(a.x_train, b.x_train)
    assert np.all(np.bincount(a.y_test, minlength=10) >= 35)
    assert float(a.batch(a.x_train).max()) == 1.0


def test_unknown_names_and_malformed_specs():
    with pytest.raises(UserError, match="did you mean 'fashion-mnist'") as e:
        load_data("fashion_mnist")
    assert "npz:PATH" in one_line(e)
    with pytest.raises(UserError, match="needs a path; write it as npz:PATH"):
        load_data("npz")
    with pytest.raises(UserError, match="takes no path"):
        load_data("digits:/tmp")


def test_bare_path_gets_a_kind_hint(tmp_path):
    np.savez(tmp_path / "d.npz", x_train=np.zeros((4, 2)), y_train=np.arange(4))
    with pytest.raises(UserError, match=f"did you mean 'npz:{tmp_path / 'd.npz'}'"):
        load_data(str(tmp_path / "d.npz"))


def test_describe_sources_reports_availability(tmp_path):
    make_idx_set(tmp_path / "system" / "fashion-mnist", 1)
    rows = {r["name"]: r for r in describe_sources()}
    assert rows["digits"]["available"] and rows["npz:PATH"]["available"]
    assert rows["fashion-mnist"]["where"] == str(tmp_path / "system" / "fashion-mnist")
    assert not rows["mnist"]["available"]
    assert str(tmp_path / "system" / "mnist") in rows["mnist"]["where"] and "downloads from" in rows["mnist"]["where"]


# --- npz --------------------------------------------------------------------------------------

def test_npz_round_trip_is_memory_mapped(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (30, 6, 7), dtype=np.uint8)
    y = np.arange(30) % 3
    np.savez(tmp_path / "d.npz", x_train=x[:20], y_train=y[:20], x_test=x[20:], y_test=y[20:],
             class_names=np.array(["a", "b", "c"]))
    b = load_data(f"npz:{tmp_path / 'd.npz'}")
    assert b.x_train.shape == (20, 1, 6, 7) and b.scale == 1 / 255 and b.class_names == ["a", "b", "c"]
    assert isinstance(b.x_train.base, np.memmap) or isinstance(b.x_train, np.memmap)
    assert np.array_equal(b.x_train[:, 0], x[:20]) and np.array_equal(b.y_test, y[20:])


def test_npz_compressed_tabular_without_test_split(tmp_path):
    x, y = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32), np.arange(50) % 2
    np.savez_compressed(tmp_path / "t.npz", x_train=x, y_train=y)
    b = load_data(f"npz:{tmp_path / 't.npz'}")
    assert b.modality == "table" and b.scale == 1.0 and (len(b.x_train), len(b.x_test)) == (40, 10)
    assert np.array_equal(np.bincount(b.y_test), [5, 5])
    assert np.array_equal(load_data(f"npz:{tmp_path / 't.npz'}").y_test, b.y_test)


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x_train": np.zeros((4, 2))}, "missing array.*y_train"),
        ({"x_train": np.zeros((4, 2)), "y_train": np.zeros(4), "x_test": np.zeros((2, 2))}, "missing array.*y_test"),
        ({"x_train": np.zeros((4, 2)), "y_train": np.zeros(3)}, "x_train has 4 rows but y_train has 3"),
        ({"x_train": np.zeros((4, 2)), "y_train": np.array([0, 1, 2, 3]), "x_test": np.zeros((1, 2)),
          "y_test": np.array([5]), "class_names": np.array(list("abcd"))}, "label 5 is out of range"),
        ({"x_train": np.zeros((4, 2)), "y_train": np.array([0, np.nan, 1, 1.5])}, "missing or infinite"),
        ({"x_train": np.zeros((4, 2)), "y_train": np.array([0, -1, 1, 1])}, "negative labels"),
        ({"x_train": np.zeros((4,)), "y_train": np.array([0, 1, 0, 1])}, r"expected \(N, D\)"),
    ],
)
def test_npz_bad_contents(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(UserError, match=message) as e:
        load_data(f"npz:{tmp_path / 'bad.npz'}")
    one_line(e)


def test_npz_missing_truncated_and_plain_npy(tmp_path):
    with pytest.raises(UserError, match="file not found; check the path"):
        load_data(f"npz:{tmp_path / 'nope.npz'}")
    np.savez(tmp_path / "d.npz", x_train=np.zeros((100, 8)), y_train=np.zeros(100))
    data = (tmp_path / "d.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated or corrupt") as e:
        load_data(f"npz:{tmp_path / 'cut.npz'}")
    one_line(e)
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(UserError, match="single array"):
        load_data(f"npz:{tmp_path / 'one.npy'}")


# --- csv and folder ---------------------------------------------------------------------------

def test_csv_string_labels_are_sorted_and_features_standardised(tmp_path):
    rows = ["a,label,b"] + [f"{i},{'cat' if i % 2 else 'ant'},{i * i}" for i in range(20)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    b = load_data(f"csv:{tmp_path / 't.csv'}")
    assert b.class_names == ["ant", "cat"] and b.modality == "table" and b.x_train.dtype == np.float32
    features = b.batch(b.x_train).numpy()  # the schema standardises with the training split's statistics
    assert features.shape == (16, 2) and np.allclose(features.mean(0), 0, atol=1e-6)
    assert np.allclose(features.std(0), 1, atol=1e-5)


def test_csv_without_header_uses_last_column_and_numeric_order(tmp_path):
    (tmp_path / "t.csv").write_text("".join(f"{i},{i % 3 * 5}\n" for i in range(30)))
    assert load_data(f"csv:{tmp_path / 't.csv'}").class_names == ["0", "5", "10"]


def test_csv_string_column_is_categorical_and_forcing_it_numeric_is_named(tmp_path):
    (tmp_path / "t.csv").write_text("x,colour,label\n1,red,a\n2,blue,b\n3,red,a\n4,blue,b\n5,red,a\n")
    b = load_data(f"csv:{tmp_path / 't.csv'}")
    assert [c.kind for c in b.schema.columns] == ["numeric", "categorical"] and "categorical=colour" in b.spec
    with pytest.raises(UserError, match="column 'colour' is not numeric \\('red'\\)") as e:
        load_data(f"csv:{tmp_path / 't.csv'}?numeric=colour")
    one_line(e)


def save_png(path: Path, value: int, mode: str = "L", size=(5, 4)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value, 0, 255 - value)).save(path)


def test_folder_grayscale_with_fixed_split(tmp_path):
    for c, v in (("cat", 10), ("dog", 200)):
        for i in range(5):
            save_png(tmp_path / "imgs" / c / f"{i}.png", v)
    b = load_data(f"folder:{tmp_path / 'imgs'}")
    assert b.class_names == ["cat", "dog"] and b.x_train.shape == (8, 1, 4, 5) and b.scale == 1 / 255
    assert np.all(b.x_train[b.y_train == 1] == 200) and np.array_equal(np.bincount(b.y_test), [1, 1])


def test_folder_rgb_with_train_and_test(tmp_path):
    for split, n in (("train", 3), ("test", 1)):
        for c in ("a", "b"):
            for i in range(n):
                save_png(tmp_path / split / c / f"{i}.png", 50, "L" if c == "a" else "RGB")
    b = load_data(f"folder:{tmp_path}")
    assert b.x_train.shape == (6, 3, 4, 5) and b.x_test.shape == (2, 3, 4, 5)
    assert np.array_equal(b.y_test, [0, 1]) and b.x_train[-1, 2, 0, 0] == 205


def test_folder_of_rgb_jpegs_of_different_sizes_is_resized_to_the_most_common_size(tmp_path):
    """What every real photo folder is: colour JPEGs of several sizes. Read as RGB, brought to the most common
    size (shorter side scaled to cover it, centre crop), the rule written into the resolved spec."""
    rng = np.random.default_rng(0)
    for c, sizes in (("cat", [(40, 30), (40, 30), (64, 48)]), ("dog", [(40, 30), (30, 50), (41, 31)])):
        for i, size in enumerate(sizes):
            path = tmp_path / "photos" / c / f"{i}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, quality=90)
    b = load_data(f"folder:{tmp_path / 'photos'}")
    assert b.x_train.shape[1:] == (3, 30, 40) and b.spec.endswith("?image_size=40x30")
    square = load_data(f"folder:{tmp_path / 'photos'}?image_size=16")
    assert square.x_train.shape[1:] == (3, 16, 16) and square.spec.endswith("?image_size=16x16")
    # The centre crop keeps the middle: a 64x48 image whose centre is white stays white in the middle.
    Image.new("RGB", (64, 48), (0, 0, 0)).save(tmp_path / "photos" / "cat" / "0.jpg")
    white = np.zeros((48, 64, 3), np.uint8)
    white[:, 4:60] = 255
    Image.fromarray(white).save(tmp_path / "photos" / "cat" / "2.jpg", quality=95)
    b = load_data(f"folder:{tmp_path / 'photos'}?image_size=30")
    both = np.concatenate([b.x_train, b.x_test])
    # 64x48 scaled by 30/48 is 40x30; the centre 30 columns are source columns 8..56: inside the white band.
    assert any(x.mean() > 240 for x in both)
    with pytest.raises(UserError, match="image_size='big' is not a size"):
        load_data(f"folder:{tmp_path / 'photos'}?image_size=big")
    with pytest.raises(UserError, match="unknown option 'size'"):
        load_data(f"folder:{tmp_path / 'photos'}?size=3")


def test_folder_without_class_folders(tmp_path):
    save_png(tmp_path / "a" / "1.png", 0)
    with pytest.raises(UserError, match="no class subfolders"):
        load_data(f"folder:{tmp_path / 'a'}")


def test_folder_run_config_records_the_resize_rule(tmp_path):
    """The resolved source spec, with the image size chosen, is what a run's config.yaml says."""
    from warmstart import pipeline
    from warmstart.config import FinetuneConfig, read_yaml

    for c in ("a", "b"):
        for i, size in enumerate([(8, 8), (8, 8), (12, 10)]):
            save_png(tmp_path / "imgs" / c / f"{i}.png", 40 * i, size=size)
    config = FinetuneConfig(data=f"folder:{tmp_path / 'imgs'}", strategy="scratch", labels="per_class=1", epochs=1)
    pipeline.finetune(config, tmp_path / "run")
    assert read_yaml(tmp_path / "run" / "config.yaml")["data"] == f"folder:{tmp_path / 'imgs'}?image_size=8x8"


# --- IDX ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["f-idx3-ubyte", "f-idx3-ubyte.gz"])
def test_idx_round_trip(tmp_path, dtype, name):
    a = (np.arange(60).reshape(3, 4, 5) - 7).astype(dtype) if dtype != np.uint8 else np.arange(60, dtype=dtype)
    idx.write_idx(tmp_path / name, a)
    b = idx.read_idx(tmp_path / name)
    assert b.dtype == a.dtype and np.array_equal(a, b)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_idx_truncated_and_bad_magic(tmp_path):
    idx.write_idx(tmp_path / "f", np.zeros((10, 3, 3), np.uint8))
    (tmp_path / "cut").write_bytes((tmp_path / "f").read_bytes()[:-5])
    with pytest.raises(UserError, match="truncated or corrupt"):
        idx.read_idx(tmp_path / "cut")
    (tmp_path / "magic").write_bytes(b"\x01\x02\x08\x03" + bytes(100))
    with pytest.raises(UserError, match="bad magic number"):
        idx.read_idx(tmp_path / "magic")
    (tmp_path / "cut.gz").write_bytes(gzip.compress((tmp_path / "f").read_bytes())[:-10])
    with pytest.raises(UserError, match="cannot read IDX file"):
        idx.read_idx(tmp_path / "cut.gz")


def test_idx_source_caches_npy_and_memory_maps(tmp_path):
    arrays = make_idx_set(tmp_path / "set", 3, gz=False)
    first = load_data(f"idx:{tmp_path / 'set'}")
    assert first.x_train.shape == (20, 1, 4, 5) and first.scale == 1 / 255
    assert len(list((tmp_path / "set").glob("train-images-idx3-ubyte.*.npy"))) == 1
    second = load_data(f"idx:{tmp_path / 'set'}")
    assert isinstance(second.x_train.base, np.memmap)
    assert np.array_equal(second.x_train[:, 0], arrays["x_train"])
    make_idx_set(tmp_path / "set", 4, gz=False)  # replaced files must not reuse the old cache
    assert load_data(f"idx:{tmp_path / 'set'}").y_train[0] == 4
    assert len(list((tmp_path / "set").glob("train-labels-idx1-ubyte.*.npy"))) == 1
    with pytest.raises(UserError, match="missing IDX files"):
        load_data(f"idx:{tmp_path}")


# --- named IDX sets: lookup order, download, offline --------------------------------------------

def test_lookup_order(tmp_path, monkeypatch):
    name = "fashion-mnist"
    make_idx_set(tmp_path / "system" / name, 1)
    assert load_data(name).y_train[0] == 1
    assert not list((tmp_path / "system" / name).glob("*.npy")), "never write into the system dir"
    assert list((tmp_path / "xdg" / "warmstart" / name).glob("train-images-idx3-ubyte.*.npy"))
    make_idx_set(tmp_path / "xdg" / "warmstart" / name, 2)
    assert load_data(name).y_train[0] == 2
    monkeypatch.setenv("WARMSTART_DATA", str(tmp_path / "wd"))
    make_idx_set(tmp_path / "wd", 3)
    assert load_data(name).y_train[0] == 3
    make_idx_set(tmp_path / "wd" / name, 4)
    assert load_data(name).y_train[0] == 4
    make_idx_set(tmp_path / "explicit", 5, gz=False)
    bundle = load_data(name, data_dir=str(tmp_path / "explicit"))
    assert bundle.y_train[0] == 5 and bundle.class_names[0] == "T-shirt/top"


@pytest.fixture
def mirror(tmp_path):
    """A local HTTP server on 127.0.0.1 serving ``tmp_path/mirror``."""
    root = tmp_path / "mirror"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_verifies_checksums_and_caches(tmp_path, monkeypatch, mirror):
    root, url = mirror
    make_idx_set(root / "mnist", 7)
    sums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (root / "mnist").iterdir()}
    monkeypatch.setitem(idx.CHECKSUMS, "mnist", sums)
    monkeypatch.setenv("WARMSTART_MIRROR", url)
    bundle = load_data("mnist")
    assert bundle.y_train[0] == 7 and bundle.class_names == [str(i) for i in range(10)]
    cached = tmp_path / "xdg" / "warmstart" / "mnist"
    assert sorted(p.name for p in cached.glob("*.gz")) == sorted(sums)
    assert not list(cached.glob(".*part"))


def test_download_with_bad_checksum_leaves_nothing(tmp_path, monkeypatch, mirror):
    root, url = mirror
    make_idx_set(root / "mnist", 7)
    sums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (root / "mnist").iterdir()}
    (root / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(b"corrupted")
    monkeypatch.setitem(idx.CHECKSUMS, "mnist", sums)
    monkeypatch.setenv("WARMSTART_MIRROR", url)
    with pytest.raises(UserError, match="SHA-256.*corrupt") as e:
        load_data("mnist")
    one_line(e)
    cache = tmp_path / "xdg" / "warmstart"
    assert not (cache / "mnist").exists() or not list((cache / "mnist").iterdir())


def test_offline_gives_one_line_with_where_to_put_files(tmp_path):
    with pytest.raises(UserError) as e:
        load_data("fashion-mnist")
    message = one_line(e)
    assert "train-images-idx3-ubyte[.gz]" in message and str(tmp_path / "system" / "fashion-mnist") in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert not (tmp_path / "xdg" / "warmstart" / "fashion-mnist").exists()
