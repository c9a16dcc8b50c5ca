"""The chip's weight and delay grid: the reference formula, the core's grid, configurations and their hashes."""

from __future__ import annotations

import numpy as np
import pytest
from delgrad_hw.bss2 import BSS2, core_grid, quantise_config, quantise_delays, quantise_weights
from delgrad_hw.chip import ChipConfig, config_hash, count_changed_entries
from delgrad_hw.emulator import EmulatedChip
from delgrad_hw.training import ChipBackend, chip_config_from_params
from hw_support import small_cfg

from delgrad_rs import Trainer, encode_times, yin_yang
from delgrad_rs.hardware import CoreNetwork, Grid
from delgrad_rs.training import build_network, build_trainer


def test_quantisation_is_the_reference_formula() -> None:
    rng = np.random.default_rng(5)
    for _ in range(50):
        w = rng.normal(0, 1.5, (30, 20))
        w[0, :6] = (np.arange(6) - 2.5) / 30  # exact halves round to even
        d = rng.uniform(0, 7, 40)
        ref_w = np.clip(np.round(w * 30.0), -63, 63) / 30.0
        n = np.clip(np.round((d * 6.0 - 2.0) / 0.125), 50, 250).astype(np.int64)
        ref_d = (n * 0.125 + 2.0) / 6.0
        np.testing.assert_array_equal(quantise_weights(w), ref_w)
        np.testing.assert_array_equal(np.signbit(quantise_weights(w)), np.signbit(ref_w))
        np.testing.assert_array_equal(quantise_delays(d), ref_d)
    assert quantise_weights(0.51) == 0.5 and quantise_delays(np.array([0.0, 99.0])).tolist() == list(BSS2.delay_range)


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


def test_the_core_grid_quantises_and_counts_as_the_chip_does() -> None:
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
