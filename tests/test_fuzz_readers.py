"""Every file reader, fed damaged files: it returns usable data or raises one ``UserError`` line, nothing else.

Hypothesis damages a small valid file of each format (truncation, bit flips, overwritten or inserted bytes,
mostly near the header) and the reader must either give a ``DataBundle`` whose rows can be batched or raise
``UserError`` with a one-line message: no other exception, no hang. Lying headers that declare huge sizes must
fail before anything that size is allocated (checked with ``tracemalloc``, which sees numpy's allocations).
Examples are derandomized so CI sees the same files every run; ``max_examples`` keeps the module near 10 s.
"""
from __future__ import annotations

import gzip
import io
import json
import struct
import tempfile
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from warmstart.data import idx
from warmstart.data.sources import load_data
from warmstart.errors import UserError

FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])
MiB = 1 << 20


@st.composite
def damage(draw, data: bytes) -> bytes:
    """``data`` truncated, bit-flipped, overwritten or grown; positions favour the first 64 bytes (headers)."""
    out = bytearray(data)
    where = st.integers(0, min(63, len(out) - 1)) | st.integers(0, len(out) - 1)
    kind = draw(st.sampled_from(["truncate", "flip", "overwrite", "insert"]))
    if kind == "truncate":
        return bytes(out[:draw(st.integers(0, len(out) - 1))])
    if kind == "flip":
        for pos in draw(st.lists(where, min_size=1, max_size=8)):
            out[pos] ^= 1 << draw(st.integers(0, 7))
    elif kind == "overwrite":
        pos, junk = draw(where), draw(st.binary(min_size=1, max_size=16))
        out[pos:pos + len(junk)] = junk
    else:
        pos = draw(where)
        out[pos:pos] = draw(st.binary(min_size=1, max_size=16))
    return bytes(out)


def usable_or_user_error(load) -> None:
    """``load()`` gives a bundle whose first rows batch, or raises a one-line ``UserError``."""
    try:
        bundle = load()
    except UserError as err:
        assert str(err) and "\n" not in str(err)
        return
    if bundle.modality != "text":
        bundle.batch(bundle.x_train, np.arange(min(2, len(bundle.x_train))))


def written(tmp: str, name: str, data: bytes) -> Path:
    path = Path(tmp) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def peak_bytes(load) -> int:
    """Peak traced allocation while ``load()`` runs (it must raise ``UserError``)."""
    tracemalloc.start()
    try:
        with pytest.raises(UserError):
            load()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --- IDX ------------------------------------------------------------------------------------

def idx_bytes(array: np.ndarray, gz: bool) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("f.gz" if gz else "f")
        idx.write_idx(path, array)
        return path.read_bytes()


IMAGES = np.arange(5 * 4 * 4, dtype=np.uint8).reshape(5, 4, 4)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_idx_reader_survives_damage(gz):
    @FUZZ
    @given(damage(idx_bytes(IMAGES, gz)))
    def check(data):
        with tempfile.TemporaryDirectory() as tmp:
            path = written(tmp, "f.gz" if gz else "f", data)
            try:
                idx.read_idx(path)
            except UserError as err:
                assert "\n" not in str(err)
    check()


def test_idx_source_refuses_labels_in_place_of_images(tmp_path):
    for key, stem in idx.IDX_FILES.items():
        idx.write_idx(tmp_path / stem, np.zeros(5, np.uint8) if key != "x_test" else IMAGES)
    with pytest.raises(UserError, match="not images"):
        load_data(f"idx:{tmp_path}")


def test_idx_source_survives_a_damaged_file():
    @FUZZ
    @given(damage(idx_bytes(np.zeros(5, np.uint8), gz=False)))
    def check(labels):
        with tempfile.TemporaryDirectory() as tmp:
            for key, stem in idx.IDX_FILES.items():
                array = IMAGES if key.startswith("x") else np.zeros(5, np.uint8)
                idx.write_idx(Path(tmp) / stem, array)
            written(tmp, idx.IDX_FILES["y_train"], labels)
            usable_or_user_error(lambda: load_data(f"idx:{tmp}"))
    check()


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_idx_header_declaring_terabytes_fails_before_allocating(tmp_path, gz):
    lying = bytes([0, 0, 0x08, 3]) + struct.pack(">III", 100_000, 100_000, 100_000) + bytes(64)
    path = tmp_path / ("f.gz" if gz else "f")
    path.write_bytes(gzip.compress(lying) if gz else lying)
    assert peak_bytes(lambda: idx.read_idx(path)) < 16 * MiB


def test_idx_gzip_bomb_is_read_no_further_than_its_header_allows(tmp_path):
    # A valid 8-byte header for 1000 bytes, followed by 64 MiB of zeros (a 64 KiB .gz).
    path = tmp_path / "f.gz"
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 0x08, 1]) + struct.pack(">I", 1000))
        for _ in range(64):
            f.write(bytes(MiB))
    assert peak_bytes(lambda: idx.read_idx(path)) < 16 * MiB


# --- npz ------------------------------------------------------------------------------------

def npz_bytes(compressed: bool) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(
        buf, x_train=np.arange(6 * 4, dtype=np.uint8).reshape(6, 4), y_train=np.array([0, 1] * 3),
        class_names=np.array(["a", "b"]))
    return buf.getvalue()


@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "deflated"])
def test_npz_reader_survives_damage(compressed):
    @FUZZ
    @given(damage(npz_bytes(compressed)))
    def check(data):
        with tempfile.TemporaryDirectory() as tmp:
            path = written(tmp, "d.npz", data)
            usable_or_user_error(lambda: load_data(f"npz:{path}"))
    check()


def npy_member(shape: tuple, dtype=np.float64, body: bytes = b"") -> bytes:
    """A .npy member whose header declares ``shape`` but whose data is only ``body``."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape})
    return buf.getvalue() + body


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED], ids=["stored", "deflated"])
@pytest.mark.parametrize("member", ["x_train", "y_train", "class_names"])
def test_npz_member_declaring_terabytes_fails_before_allocating(tmp_path, compression, member):
    path = tmp_path / "lie.npz"
    members = {"x_train": npy_member((4, 2), body=bytes(64)), "y_train": npy_member((4,), np.int64, bytes(32)),
               "class_names": npy_member((2,), "<U1", "ab".encode("utf-32-le"))}
    members[member] = npy_member((10**12,), body=bytes(64))
    with zipfile.ZipFile(path, "w", compression) as archive:
        for key, data in members.items():
            archive.writestr(key + ".npy", data)
    assert peak_bytes(lambda: load_data(f"npz:{path}")) < 16 * MiB


@pytest.mark.parametrize("arrays, message", [
    ({"x_train": np.array(["a", "b", "c"]), "y_train": np.array([0, 1, 0])}, "not numeric"),
    ({"x_train": np.zeros((3, 2)), "y_train": np.array(["a", "b", "a"])}, "labels"),
    ({"x_train": np.zeros((3, 2)), "y_train": np.array(5)}, r"y_train has shape \(\)"),
    ({"x_train": np.array(5.0), "y_train": np.array([0])}, r"x_train has shape \(\)"),
])
def test_npz_arrays_of_the_wrong_kind_are_refused(tmp_path, arrays, message):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(UserError, match=message):
        load_data(f"npz:{tmp_path / 'd.npz'}")


def test_a_damaged_label_does_not_make_a_trillion_class_names(tmp_path):
    np.savez(tmp_path / "d.npz", x_train=np.zeros((3, 2)), y_train=np.array([0, 1, 2**40]),
             x_test=np.zeros((1, 2)), y_test=np.array([1]))
    with pytest.raises(UserError, match="labels go up to 1099511627776 but there are only 4 examples"):
        load_data(f"npz:{tmp_path / 'd.npz'}")


# --- csv, jsonl, text -----------------------------------------------------------------------

NUMERIC_CSV = "a,b,label\n" + "".join(f"{i},{i * 0.5},{'xy'[i % 2]}\n" for i in range(8))
TEXT_CSV = "text,label\n" + "".join(f"document number {i},{'xy'[i % 2]}\n" for i in range(8))
JSONL = "".join(json.dumps({"text": f"document {i}", "label": "xy"[i % 2]}) + "\n" for i in range(8))
TEXT = "".join(f"line {i} of plain text\n" for i in range(8))
ENCODINGS = st.sampled_from(["utf-8", "utf-16", "latin-1", "cp1252"])


@pytest.mark.parametrize("kind, name, content", [
    ("csv", "d.csv", NUMERIC_CSV), ("csv", "d.csv", TEXT_CSV), ("jsonl", "d.jsonl", JSONL), ("text", "d.txt", TEXT),
], ids=["csv", "csv-text", "jsonl", "text"])
def test_text_formats_survive_damage_and_other_encodings(kind, name, content):
    @FUZZ
    @given(st.data())
    def check(draw):
        encoding = draw.draw(ENCODINGS)
        data = (content + "é\n" if kind == "text" else content).encode(encoding, errors="replace")
        data = draw.draw(damage(data) | st.just(data))
        with tempfile.TemporaryDirectory() as tmp:
            path = written(tmp, name, data)
            usable_or_user_error(lambda: load_data(f"{kind}:{path}"))
    check()


@pytest.mark.parametrize("line", ["[" * 100_000 + "]" * 100_000, '{"text": ' + "9" * 5000 + "}"],
                         ids=["deeply-nested", "huge-integer"])
def test_jsonl_lines_that_break_the_json_parser_are_named(tmp_path, line):
    path = tmp_path / "d.jsonl"
    path.write_text(JSONL + line + "\n")
    with pytest.raises(UserError, match="line 9"):
        load_data(f"jsonl:{path}")


# --- folder of images -----------------------------------------------------------------------

def png_bytes(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((6, 6), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def image_folder(tmp: str, damaged: bytes) -> str:
    for c in "ab":
        for i in range(3):
            written(tmp, f"{c}/{i}.png", png_bytes(40 * i))
    written(tmp, "b/2.png", damaged)
    return tmp


def test_folder_reader_survives_a_damaged_image():
    @FUZZ
    @given(damage(png_bytes(7)))
    def check(data):
        with tempfile.TemporaryDirectory() as tmp:
            usable_or_user_error(lambda: load_data(f"folder:{image_folder(tmp, data)}"))
    check()


def test_folder_image_declaring_a_huge_size_fails_before_decoding(tmp_path):
    # A valid PNG whose IHDR (with a fixed CRC) claims 100000 x 100000 pixels: 10 GB as grayscale.
    data = bytearray(png_bytes(7))
    data[16:24] = struct.pack(">II", 100_000, 100_000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    folder = image_folder(str(tmp_path), bytes(data))
    assert peak_bytes(lambda: load_data(f"folder:{folder}")) < 16 * MiB


# --- the command line -------------------------------------------------------------------------

def test_cli_on_a_corrupt_file_exits_2_with_one_line_and_writes_nothing(tmp_path, cli):
    path = tmp_path / "d.npz"
    path.write_bytes(npz_bytes(compressed=True)[:-40])
    done = cli("pretrain", "--data", f"npz:{path}", "--out", str(tmp_path / "run"), "epochs=1")
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("warmstart: error: npz:")
    assert not (tmp_path / "run").exists()
