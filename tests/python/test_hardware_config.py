"""The [hardware] config section, per-layer weight init, input duplication and the software backend hook
(delgrad_rs alone: none of this imports delgrad_hw)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from delgrad_rs import OptionError
from delgrad_rs.config import ConfigError, config_from_dict, load_config
from delgrad_rs.training import SoftwareBackend, build_network, fit, repeat_inputs

CONFIGS = Path(__file__).resolve().parents[2] / "examples" / "configs"


def test_hardware_section_defaults_round_trip_and_errors() -> None:
    cfg = load_config(CONFIGS / "hwaware_WA.toml")
    assert cfg.hardware.input_repeat == 5 and cfg.network.delay_group == 5
    again = config_from_dict(cfg.to_dict())
    assert again == cfg
    assert config_from_dict({}).hardware.input_repeat == 1
    for data, key in [
        ({"hardware": {"input_repeat": 0}}, "hardware.input_repeat"),
        ({"hardware": {"chip_id": ""}}, "hardware.chip_id"),
        ({"hardware": {"max_retries": -1}}, "hardware.max_retries"),
        ({"hardware": {"eval_batch": 0}}, "hardware.eval_batch"),
        ({"hardware": {"chip": "x"}}, "hardware.chip"),
        ({"network": {"delay_group": 3}, "hardware": {"input_repeat": 5}}, "network.delay_group"),
        ({"network": {"layer_weight_mean": [1.0, 2.0, 3.0]}}, "network.layer_weight_mean"),
        ({"network": {"layer_weight_std": [1.0, -2.0]}}, "network.layer_weight_std"),
    ]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            config_from_dict(data)


def test_input_duplication_and_per_layer_init() -> None:
    cfg = load_config(CONFIGS / "hwaware_W.toml")
    net = build_network(cfg, threads=1)
    assert net.sizes == [20, 30, 3]
    w0, w1 = net.params[0]["w"], net.params[1]["w"]
    assert abs(w0.std() - 0.12) < 0.02 and abs(w1.std() - 0.15) < 0.05
    t = np.array([[0.1, 0.2, 0.3, 0.4]])
    np.testing.assert_array_equal(repeat_inputs(t, 3)[0], [0.1] * 3 + [0.2] * 3 + [0.3] * 3 + [0.4] * 3)
    assert repeat_inputs(t, 1) is t


def test_software_backend_is_the_default_and_delgrad_hw_stays_unimported(tmp_path: Path) -> None:
    cfg = load_config(CONFIGS / "hwaware_W.toml")
    cfg.training.epochs, cfg.training.threads = 1, 1
    a = fit(cfg, quiet=True)
    b = fit(cfg, quiet=True, backend=SoftwareBackend(), out=tmp_path / "run")
    assert a.drop("wall_time").equals(b.drop("wall_time"))
    assert (tmp_path / "run" / "backend.json").read_text().strip() == '{"backend": "software"}'
    assert a.filter(pl.col("split") == "test").height == 1
    code = (
        "import sys, delgrad_rs, delgrad_rs.training, delgrad_rs.cli, delgrad_rs.plots; "
        "sys.exit(int(any(m.startswith('delgrad_hw') for m in sys.modules)))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


class _EntryPoint:
    """An entry point of the backend group whose factory records what it was asked for."""

    def __init__(self, name: str, calls: list[tuple[str, object]]) -> None:
        self.name = name
        self.calls = calls

    def load(self) -> object:
        def factory(spec: str, cfg: object, *, token_file: object = None) -> SoftwareBackend:
            self.calls.append((spec, token_file))
            return SoftwareBackend()

        return factory


def test_backends_come_from_the_entry_point_group(monkeypatch: pytest.MonkeyPatch) -> None:
    from delgrad_rs.training import BACKEND_GROUP, backend, backend_names, make_backend

    cfg = load_config(CONFIGS / "hwaware_W.toml")
    calls: list[tuple[str, object]] = []
    groups: list[str] = []

    def registered(*, group: str) -> list[_EntryPoint]:
        groups.append(group)
        return [_EntryPoint("remote", calls), _EntryPoint("emulator", calls)]

    monkeypatch.setattr(backend, "entry_points", registered)
    assert backend_names() == ["software", "emulator", "remote"] and set(groups) == {BACKEND_GROUP}
    assert isinstance(make_backend("software", cfg), SoftwareBackend) and calls == []
    make_backend("remote://10.0.0.1:7000", cfg, token_file="t")  # the scheme selects the entry point
    make_backend("emulator", cfg)
    assert calls == [("remote://10.0.0.1:7000", "t"), ("emulator", None)]
    with pytest.raises(OptionError, match="unknown backend 'quantum'; expected one of software, emulator, remote"):
        make_backend("quantum", cfg)
    monkeypatch.setattr(backend, "entry_points", lambda *, group: [])
    with pytest.raises(OptionError, match=r"expected one of software \(install delgrad-hw"):
        make_backend("emulator", cfg)
