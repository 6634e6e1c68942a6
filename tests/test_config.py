"""Settings: defaults in one place, YAML < flags < key=value, validated with helpful one-line errors."""
from __future__ import annotations

import pytest

from warmstart.config import FinetuneConfig, PretrainConfig, build_config, parse_overrides
from warmstart.errors import UserError


def test_overrides_parse_yaml_values_and_dotted_keys():
    assert parse_overrides(["epochs=5", "lr=3e-4", "encoder_args.norm=group", "data_dir="]) == {
        "epochs": 5, "lr": 3e-4, "encoder_args": {"norm": "group"}, "data_dir": ""}


def test_precedence_file_then_flags_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 7\nobjective: denoising\nlr: 0.01\n")
    config = build_config(PretrainConfig, file=path, flags={"objective": "autoencoder", "encoder": None},
                          overrides=["lr=0.5"])
    assert (config.epochs, config.objective, config.lr, config.encoder) == (7, "autoencoder", 0.5, "mlp")


@pytest.mark.parametrize("overrides, message", [
    (["epoch=5"], "unknown setting 'epoch' (did you mean 'epochs'?)"),
    (["epochs=abc"], "setting epochs='abc'"),
    (["lr=-1"], "greater than 0"),
    (["warmup=1.5"], "setting warmup=1.5"),
    (["epochs"], "not key=value"),
])
def test_bad_settings_are_one_clear_line(overrides, message):
    with pytest.raises(UserError) as err:
        build_config(FinetuneConfig, overrides=overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_yaml_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("epochs: [1,\n")
    with pytest.raises(UserError, match="not valid YAML"):
        build_config(PretrainConfig, file=path)
    with pytest.raises(UserError, match="not found"):
        build_config(PretrainConfig, file=tmp_path / "missing.yaml")
