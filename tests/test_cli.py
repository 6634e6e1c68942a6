"""The CLI as a user meets it: --help everywhere, a full pretrain → finetune → evaluate round, and bad input
that ends in one clear line, exit code 2, no traceback and no half-written run directory."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from warmstart.cli import main
from warmstart.data.idx import write_idx

TINY = ["epochs=1", "encoder_args.width=16", "encoder_args.feature_dim=8"]


@pytest.mark.parametrize("command", [[], ["demo"], ["datasets"], ["pretrain"], ["finetune"], ["evaluate"]])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0 and "usage: warmstart" in capsys.readouterr().out


def test_help_in_a_real_process(cli):
    result = cli("--help")
    assert result.returncode == 0 and "pretrain" in result.stdout


def test_pretrain_finetune_evaluate_round_trip(cli, tmp_path):
    pre = cli("pretrain", "--data", "digits", "--objective", "denoising", "--out", str(tmp_path / "pre"), *TINY)
    assert pre.returncode == 0, pre.stderr
    fine = cli("finetune", "--from", str(tmp_path / "pre"), "--data", "digits", "--strategy", "full",
               "--labels", "per_class=5", "--seed", "1", "--out", str(tmp_path / "fine"), "epochs=3")
    assert fine.returncode == 0, fine.stderr
    assert {"config.yaml", "metrics.jsonl", "model.safetensors", "test_metrics.json", "labeled_indices.json"} <= {
        p.name for p in (tmp_path / "fine").iterdir()}
    assert len(json.loads((tmp_path / "fine" / "labeled_indices.json").read_text())) == 50
    ev = cli("evaluate", "--model", str(tmp_path / "fine"), "--data", "digits")
    assert ev.returncode == 0, ev.stderr
    saved = json.loads((tmp_path / "fine" / "test_metrics.json").read_text())
    assert json.loads(ev.stdout)["accuracy"] == saved["accuracy"]
    assert len(json.loads(ev.stdout)["confusion_matrix"]) == 10


def test_datasets_lists_sources(cli):
    result = cli("datasets")
    assert result.returncode == 0
    assert "digits" in result.stdout and "fashion-mnist" in result.stdout


def _npz(path, n=40, labels=None, **extra):
    rng = np.random.default_rng(0)
    y = np.arange(n) % 4 if labels is None else labels
    np.savez(path, x_train=rng.random((n, 6)).astype(np.float32), y_train=y, **extra)
    return f"npz:{path}"


def bad_inputs(tmp: "Path") -> dict[str, tuple[list[str], str]]:  # noqa: F821
    """name → (CLI args, a fragment the one-line error must contain)."""
    (tmp / "trunc.npz").write_bytes(open(_npz(tmp / "ok.npz")[4:], "rb").read()[:200])
    idx_dir = tmp / "idx"
    idx_dir.mkdir()
    for name, arr in [("train-images-idx3-ubyte", np.zeros((8, 4, 4), np.uint8)),
                      ("train-labels-idx1-ubyte", np.zeros(8, np.uint8)),
                      ("t10k-images-idx3-ubyte", np.zeros((4, 4, 4), np.uint8)),
                      ("t10k-labels-idx1-ubyte", np.zeros(4, np.uint8))]:
        write_idx(idx_dir / name, arr)
    data = (idx_dir / "train-images-idx3-ubyte").read_bytes()
    (idx_dir / "train-images-idx3-ubyte").write_bytes(data[:-10])  # truncated
    (tmp / "bad.csv").write_text("a,b,label\n1,2,x\n3,oops,y\n")
    (tmp / "notckpt").mkdir()
    (tmp / "notckpt" / "encoder.safetensors").write_bytes(b"garbage")
    with gzip.open(tmp / "unused.gz", "wb") as f:
        f.write(b"")
    fine = ["finetune", "--strategy", "scratch", "--out", str(tmp / "run"), *TINY]
    pre = ["pretrain", "--out", str(tmp / "run"), *TINY]
    return {
        "missing path": (["pretrain", "--data", f"npz:{tmp}/nope.npz", "--out", str(tmp / "run")], "not found"),
        "truncated npz": (pre + ["--data", f"npz:{tmp}/trunc.npz"], "trunc.npz"),
        "truncated idx": (pre + ["--data", f"idx:{idx_dir}"], "train-images-idx3-ubyte"),
        "mismatched lengths": (pre + ["--data", _npz(tmp / "mm.npz", labels=np.zeros(39, int))], "39"),
        "negative labels": (pre + ["--data", _npz(tmp / "neg.npz", labels=np.arange(40) % 4 - 1)], "label"),
        "infinite regression target": (pre + ["--data", _npz(tmp / "inf.npz", labels=np.r_[np.arange(39) / 3, np.inf])],
                                       "missing or infinite"),
        "non-numeric csv column read as numbers": (pre + ["--data", f"csv:{tmp}/bad.csv?numeric=b"], "oops"),
        "per_class too big": (fine + ["--data", "digits", "--labels", "per_class=500"], "per_class"),
        "budget too big": (fine + ["--data", "digits", "--labels", "count=99999"], "count=99999"),
        "bad budget": (fine + ["--data", "digits", "--labels", "lots"], "lots"),
        "unknown key": (pre + ["--data", "digits", "epoch=3"], "did you mean 'epochs'"),
        "wrong type": (pre + ["--data", "digits", "batch_size=big"], "batch_size"),
        "out of range": (pre + ["--data", "digits", "lr=-0.1"], "lr"),
        "unknown objective": (pre + ["--data", "digits", "--objective", "autoencodr"], "did you mean 'autoencoder'"),
        "unknown encoder": (pre + ["--data", "digits", "--encoder", "transformr"], "encoder"),
        "unknown encoder option": (pre + ["--data", "digits", "encoder_args.widht=3"], "did you mean 'width'"),
        "bad encoder option": (pre + ["--data", "digits", "encoder_args.norm=layer"], "norm"),
        "unknown strategy": (fine + ["--data", "digits", "--strategy", "ful"], "did you mean 'full'"),
        "unknown source": (pre + ["--data", "fashion_mnist"], "did you mean 'fashion-mnist'"),
        "image encoder on a table": (pre + ["--data", _npz(tmp / "tab.npz"), "--encoder", "cnn"], "cnn"),
        "a Hugging Face model as --from": (fine + ["--from", "hf:/models/minilm"],
                                           "use --encoder hf:/models/minilm"),
        "full without --from": (fine + ["--data", "digits", "--strategy", "full"], "--from"),
        "corrupt checkpoint": (fine + ["--data", "digits", "--strategy", "full", "--from", str(tmp / "notckpt")],
                               "encoder.safetensors"),
        "missing model": (["evaluate", "--model", str(tmp / "nothing"), "--data", "digits"], "model.safetensors"),
        "missing config file": (pre + ["--config", str(tmp / "none.yaml")], "none.yaml"),
    }


def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys):
    # In-process through the CLI's own entry point (a subprocess per case would cost a torch import each);
    # an uncaught exception here would fail the test just as a traceback would.
    failures = []
    for name, (args, fragment) in bad_inputs(tmp_path).items():
        code = main(args)
        stderr = capsys.readouterr().err
        lines = stderr.strip().splitlines()
        ok = (code == 2 and len(lines) == 1 and lines[0].startswith("warmstart: error:")
              and fragment in lines[0] and not (tmp_path / "run").exists())
        if not ok:
            failures.append(f"{name}: rc={code} stderr={stderr.strip()[-300:]!r}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("args", [["pretrain", "--data", "npz:/no/such.npz", "--out", "x"],
                                  ["finetune", "--data", "digits", "--labels", "per_class=999", "--out", "x",
                                   "--strategy", "scratch"]])
def test_bad_input_in_a_real_process(cli, tmp_path, args):
    result = cli(*args, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


def test_existing_run_directory_is_not_overwritten(cli, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "precious.txt").write_text("keep")
    result = cli("pretrain", "--data", "digits", "--out", str(tmp_path / "run"), *TINY)
    assert result.returncode == 2 and "--resume" in result.stderr
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["precious.txt"]


def test_print_config_shows_resolved_settings(cli):
    result = cli("pretrain", "--objective", "denoising", "--print-config", "epochs=3")
    assert result.returncode == 0
    assert "objective: denoising" in result.stdout and "epochs: 3" in result.stdout
