"""Config and sweep files that cannot be read, parsed or trusted give errors naming the file or key."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from delgrad_rs.config import ConfigError, load_config
from delgrad_rs.sweep import SweepError, load_sweep

CONFIGS = Path(__file__).resolve().parents[2] / "examples" / "configs"


@pytest.mark.parametrize("loader", [load_config, load_sweep])
def test_unreadable_files_name_the_file(tmp_path: Path, loader: object) -> None:
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\x00\x01\xff\xfe binary")
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    folder = tmp_path / "a_folder.toml"
    folder.mkdir()
    cases = ((binary, "not a text file"), (deep, "nested too deeply"), (folder, "cannot read it|no such file"))
    for path, what in cases:
        with pytest.raises(ConfigError, match=what) as info:
            loader(path)  # type: ignore[operator]
        assert str(path) in str(info.value)
        assert loader is load_config or isinstance(info.value, SweepError)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_name_the_key(tmp_path: Path, value: str) -> None:
    text = (CONFIGS / "H30_W.toml").read_text()
    assert "t_early = 0.15" in text
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("t_early = 0.15", f"t_early = {value}"))
    with pytest.raises(ConfigError, match=r"option data\.t_early: expected a finite number"):
        load_config(bad)
    assert not math.isfinite(float(value))
