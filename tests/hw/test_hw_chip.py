"""Unit tests of the chip interface data types and helpers."""

from __future__ import annotations

import numpy as np
import pytest
from delgrad_hw.chip import (
    BadRequest,
    Chip,
    ChipConfig,
    ChipError,
    ChipMismatch,
    ChipTimeout,
    LinkError,
    ReportsWrites,
    Unauthorized,
    config_hash,
    count_changed_entries,
    error_for_status,
    expand_inputs,
)
from hw_toychip import ToyChip, make_config, make_inputs, toy_forward


def test_toy_chip_implements_protocol() -> None:
    chip = ToyChip()
    assert isinstance(chip, Chip)
    assert isinstance(chip, ReportsWrites)


def test_config_normalises_and_validates() -> None:
    cfg = make_config(0, repeat=5)
    assert cfg.n_layers == 2
    assert cfg.n_inputs == 4
    assert cfg.weights[0].shape == (5, 20)
    assert cfg.synaptic_delays == [None, None]
    assert cfg.layer_sizes == [5, 3]
    assert cfg.n_groups(0) == 4 and cfg.n_groups(1) == 5


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"weights": []}, "weights"),
        ({"weights": [np.ones(3)]}, "weights[0]"),
        ({"weights": [np.array([[np.nan]])]}, "weights[0]"),
        ({"weights": [np.ones((2, 3)), np.ones((1, 3))]}, "weights[1]"),
        ({"weights": [np.ones((2, 3))], "input_repeat": 2}, "weights[0]"),
        ({"weights": [np.ones((2, 3))], "input_repeat": 0}, "input_repeat"),
        ({"weights": [np.ones((2, 3))], "theta": float("nan")}, "theta"),
        ({"weights": [np.ones((2, 3))], "tau_m": -1.0}, "tau_m"),
        ({"weights": [np.ones((2, 3))], "tau_s": True}, "tau_s"),
        ({"weights": [np.ones((2, 3))], "axonal_delays": [np.ones(2)]}, "axonal_delays[0]"),
        ({"weights": [np.ones((2, 3))], "axonal_delays": [np.ones(3), None]}, "axonal_delays"),
        ({"weights": [np.ones((2, 3))], "synaptic_delays": [np.ones((3, 2))]}, "synaptic_delays[0]"),
        ({"weights": [np.ones((2, 3))], "dendritic_delays": [np.array([1.0, np.nan])]}, "dendritic_delays[0]"),
        ({"weights": [np.ones((2, 3))], "dendritic_delays": [np.array([1.0, -1.0])]}, "dendritic_delays[0]"),
    ],
)
def test_config_errors_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        ChipConfig(**kwargs)  # type: ignore[arg-type]


def test_config_hash_is_stable_and_content_based() -> None:
    a, b = make_config(1), make_config(1)
    assert config_hash(a) == config_hash(b)
    assert len(config_hash(a)) == 64
    b.weights[0][0, 0] += 1e-9
    assert config_hash(a) != config_hash(b)
    c = make_config(1)
    c.theta = 1.5
    assert config_hash(a) != config_hash(c)
    z1 = ChipConfig(weights=[np.zeros((1, 1))])
    z2 = ChipConfig(weights=[-np.zeros((1, 1))])
    assert config_hash(z1) == config_hash(z2)


def test_count_changed_entries() -> None:
    a = make_config(2)
    n_all = sum(w.size for w in a.weights) + sum(d.size for d in a.axonal_delays if d is not None) + 4  # type: ignore[union-attr]
    assert count_changed_entries(None, a) == n_all
    assert count_changed_entries(a, make_config(2)) == 0
    b = make_config(2)
    b.weights[1][0, 0] += 1.0
    b.weights[0][1, 1] += 1.0
    assert count_changed_entries(a, b) == 2


def test_toy_chip_writes_only_changes() -> None:
    chip = ToyChip()
    cfg = make_config(3)
    h1 = chip.configure(cfg)
    assert chip.last_written_entries > 0
    assert chip.configure(make_config(3)) == h1
    assert chip.last_written_entries == 0
    res = chip.run(make_inputs(0))
    for got, want in zip(res.times, toy_forward(cfg, make_inputs(0)), strict=True):
        np.testing.assert_array_equal(got, want)
    assert res.config_hash == h1


def test_expand_inputs_adjacent_copies() -> None:
    x = np.array([[1.0, 2.0]])
    np.testing.assert_array_equal(expand_inputs(x, 3), [[1, 1, 1, 2, 2, 2]])


def test_exception_hierarchy() -> None:
    assert issubclass(BadRequest, ValueError) and issubclass(BadRequest, ChipError)
    assert issubclass(Unauthorized, PermissionError) and issubclass(Unauthorized, ChipError)
    assert issubclass(ChipError, RuntimeError)
    for status, cls in [
        ("TIMEOUT", ChipTimeout),
        ("LINK_ERROR", LinkError),
        ("CHIP_MISMATCH", ChipMismatch),
        ("BAD_REQUEST", BadRequest),
        ("UNAUTHORIZED", Unauthorized),
        ("CHIP_ERROR", ChipError),
    ]:
        err = error_for_status(status, "x")
        assert type(err) is cls and err.status == status
    assert error_for_status("WHATEVER", "y").status == "CHIP_ERROR"
