"""The chip's weight and delay grid on hand-computed cases, the trainer's quantised network, configurations and hashes."""

from __future__ import annotations

import numpy as np
import pytest
from delgrad_hw.bss2 import BSS2, core_grid, delay_settings, quantise_config, quantise_delays, quantise_weights
from delgrad_hw.chip import ChipConfig, config_hash, count_changed_entries
from delgrad_hw.emulator import EmulatedChip
from delgrad_hw.training import ChipBackend, chip_config_from_params
from hw_support import small_cfg

from delgrad_rs import InvalidValueError, ShapeError, Trainer, encode_times, yin_yang
from delgrad_rs.hardware import CoreNetwork, Grid, changed_entries
from delgrad_rs.training import build_network, build_trainer


def test_weights_round_half_to_even_and_clip() -> None:
    # 30 w is exact for these w: 7.5 -> 8, 22.5 -> 22, -7.5 -> -8, 1.875 -> 2, 75 -> 63, -90 -> -63
    w = np.array([[0.25, 0.75, -0.25], [0.0625, 2.5, -3.0]])
    want = np.array([[8, 22, -8], [2, 63, -63]]) / 30.0
    np.testing.assert_array_equal(quantise_weights(w), want)
    assert quantise_weights(w).shape == (2, 3)
    assert np.signbit(quantise_weights(-0.01)) and quantise_weights(-0.01) == 0.0  # -0.3 rounds to -0
    assert quantise_weights(0.51) == 0.5 and quantise_weights([4]).tolist() == [2.1]


def test_delays_snap_to_the_setting_grid_and_clip() -> None:
    # 6 d = 135/16 and 141/16 are exact: (6 d - 2) / 0.125 = 51.5 -> 52 and 54.5 -> 54 (half to even);
    # d = 3 is setting 128 exactly; 0 and 99 clip to the settings 50 and 250
    d = np.array([45 / 32, 47 / 32, 3.0, 0.0, 99.0])
    n = [52, 54, 128, 50, 250]
    np.testing.assert_array_equal(delay_settings(d), n)
    np.testing.assert_array_equal(quantise_delays(d), [(k * 0.125 + 2.0) / 6.0 for k in n])
    assert quantise_delays(d.reshape(5, 1)).shape == (5, 1)
    assert BSS2.delay_range == (8.25 / 6.0, 33.25 / 6.0)


def test_non_finite_weights_and_delays_are_errors() -> None:
    with pytest.raises(InvalidValueError, match="w: expected finite values, got NaN at flat index 1"):
        quantise_weights([1.0, np.nan])
    for bad in (np.inf, -np.inf, np.nan):
        with pytest.raises(InvalidValueError, match="d: .*finite"):
            quantise_delays(np.array([[1.0], [bad]]))
    with pytest.raises(TypeError, match="w: expected"):
        quantise_weights(["a"])


def test_changed_entries_count_differing_entries_of_equal_shapes() -> None:
    old = np.array([[0.0, 1.0], [2.0, np.nan]])
    assert changed_entries(old, [[-0.0, 1.0], [2.5, np.nan]]) == 2  # -0 equals 0, NaN differs from NaN
    assert changed_entries(old[0], old[0].copy()) == 0
    with pytest.raises(ShapeError, match="new"):
        changed_entries(old, old.reshape(4))


def _trained(steps: int) -> tuple[Trainer, ChipConfig]:
    """A trainer of the hwaware_WA network after a few steps, and the chip configuration it started from."""
    cfg = small_cfg(epochs=1)
    trainer = build_trainer(cfg, build_network(cfg, threads=1), threads=1)
    start = chip_config_from_params(trainer.network().params(), 5)
    x = np.repeat(np.asarray(encode_times(yin_yang("train")[0][:40])), 5, axis=1)
    y = yin_yang("train")[1][:40]
    for _ in range(steps):
        trainer.step_from_times(x, trainer.network().forward(x), y, 0)
    return trainer, start


def test_the_trainer_quantises_and_counts_as_the_chip_config_does() -> None:
    trainer, start = _trained(3)
    chip = EmulatedChip("grid", 0)
    chip.configure(start)
    like = chip.network
    assert like is not None
    net, written = trainer.quantised_network(like, core_grid(BSS2))
    shadow = chip_config_from_params(trainer.network().params(), 5)
    q = quantise_config(shadow)
    for a, p in zip(q.weights, net.params(), strict=True):
        np.testing.assert_array_equal(a, p["w"])
    for a, p in zip(q.axonal_delays or [], net.params(), strict=True):
        np.testing.assert_array_equal(a, p["d_axo"])
    assert written == count_changed_entries(quantise_config(start), q) > 0


def test_the_core_grid_checks_its_arguments() -> None:
    trainer, _ = _trained(0)
    like = trainer.network()
    grid = {"weight_scale": 30.0, "weight_max": 63.0, "delay_offset": 2.0, "delay_step": 0.125}
    grid |= {"delay_min": 50.0, "delay_max": 250.0, "time_unit": 6.0}
    net, written = trainer.quantised_network(like, Grid(**grid))
    assert written > 0 and net.sizes == like.sizes
    for key, bad in (("weight_scale", 0.0), ("delay_min", 300.0), ("time_unit", float("nan"))):
        with pytest.raises(ValueError, match=f"grid.{key}"):
            Grid(**(grid | {key: bad}))
    with pytest.raises(TypeError, match="unexpected keyword"):
        Grid(**grid, scale=1.0)
    with pytest.raises(TypeError):
        trainer.quantised_network(like, grid)  # type: ignore[arg-type]  # a dict is not a Grid


def test_unchecked_config_equals_the_checked_one() -> None:
    p = build_network(small_cfg(), threads=1).params
    c = chip_config_from_params(p, 5)
    q = quantise_config(c)
    again = ChipConfig(
        weights=q.weights, axonal_delays=q.axonal_delays, synaptic_delays=q.synaptic_delays,
        dendritic_delays=q.dendritic_delays, theta=q.theta, tau_m=q.tau_m, tau_s=q.tau_s, input_repeat=q.input_repeat,
    )  # fmt: skip
    assert config_hash(again) == config_hash(q) and again.n_inputs == q.n_inputs == 4
    b = ChipBackend(EmulatedChip("s", 0), input_repeat=5)
    assert config_hash(b._shadow_config(p)) == config_hash(c) == config_hash(b._shadow_config(p))


def test_write_defers_the_hash_and_configure_returns_it() -> None:
    c = chip_config_from_params(build_network(small_cfg(epochs=1), threads=1).params, 5)
    chip = EmulatedChip("hash-chip", 0)
    chip.write(c)
    assert chip.last_written_entries > 0
    res = chip.run(np.zeros((2, 4)))
    assert res.config_hash == config_hash(quantise_config(c)) == chip.configure(c)
    assert chip.last_written_entries == 0


def test_core_network_accepts_any_float_layout() -> None:
    net = CoreNetwork([{"w": np.array([[1.0, 2.0, 0.5], [0.3, 1.5, 2.5]])}], threads=1)
    x = np.array([[0.1, 0.2, 0.3], [0.3, 0.1, 0.2]])
    want = net.forward(x)[0]
    for variant in (np.asfortranarray(x), x.astype(">f8"), x.tolist()):
        np.testing.assert_array_equal(net.forward(variant)[0], want)
    np.testing.assert_array_equal(net.forward(np.repeat(x, 2, axis=1)[:, ::2])[0], want)  # strided view
    layers = [{"w": np.ones((2, 3)), "theta": np.float64(1.5), "tau_m": 2.0, "tau_s": 1}]
    assert CoreNetwork(layers).params()[0]["theta"].tolist() == [1.5, 1.5]
