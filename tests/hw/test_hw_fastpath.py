"""The fast chip-in-the-loop path on the in-process emulator gives exactly the generic Chip path's results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from delgrad_hw.bss2 import BSS2, quantise_config, quantise_delays, quantise_weights
from delgrad_hw.chip import BadRequest, ChipConfig, RunResult, config_hash
from delgrad_hw.emulator import EmulatedChip
from delgrad_hw.training import ChipBackend, StallError, chip_config_from_params
from hw_support import CONFIGS, backend_for, metrics, small_cfg

from delgrad_rs import _core
from delgrad_rs.config import load_config
from delgrad_rs.training import build_network, build_trainer, fit


class _Generic:
    """An emulator seen only through the Chip protocol (ChipBackend takes its generic path)."""

    def __init__(self, chip: EmulatedChip) -> None:
        self.inner = chip
        self.last_written_entries = 0

    def info(self) -> Any:
        return self.inner.info()

    def configure(self, config: ChipConfig) -> str:
        h = self.inner.configure(config)
        self.last_written_entries = self.inner.last_written_entries
        return h

    def run(self, inputs: Any) -> RunResult:
        return self.inner.run(inputs)


def _batch(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    x, y = _core.yin_yang("train")
    return np.repeat(np.asarray(_core.encode_times(x[:n])), 5, axis=1), y[:n]


class _Recording(EmulatedChip):
    """An emulator that records the entries written before every run (and whether write_trainer wrote them)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.written: list[int] = []
        self.trainer_writes = 0

    def write_trainer(self, trainer: Any) -> None:
        super().write_trainer(trainer)
        self.trainer_writes += 1

    def run(self, inputs: Any) -> RunResult:
        self.written.append(self.last_written_entries)
        return super().run(inputs)

    def run_and_step(self, *args: Any, **kwargs: Any) -> Any:
        self.written.append(self.last_written_entries)
        return super().run_and_step(*args, **kwargs)


@pytest.mark.parametrize("name", ["hwaware_WA", "hwaware_W"])
def test_fast_and_generic_paths_train_identically(name: str) -> None:
    cfg = small_cfg(name, epochs=2)
    noise = {"stall_prob": 0.2, "event_loss": 0.002, "theta_sample_std": 0.01}
    fast_chip = _Recording("train-chip", 3, **noise)
    fast = fit(cfg, quiet=True, backend=backend_for(fast_chip, cfg, epochs_in_core=False))
    slow_chip = _Recording("train-chip", 3, **noise)
    slow = fit(cfg, quiet=True, backend=backend_for(_Generic(slow_chip), cfg))
    assert metrics(fast).equals(metrics(slow))
    assert fast_chip.written == slow_chip.written and max(fast_chip.written) > 0  # the same writes, step by step
    # the chip's network has the trainer's layout: after the first write of an epoch (and after each
    # evaluation), the core quantises and writes
    assert fast_chip.trainer_writes == 2 * (125 - 1) and slow_chip.trainer_writes == 0
    assert sum(fast["retries"].to_list()) > 0 and sum(fast["dropped_events"].to_list()) > 0
    assert fast_chip.runs == slow_chip.runs
    assert fast_chip.last_written_entries == slow_chip.last_written_entries
    assert fast_chip.configure(fast_chip.config) == slow_chip.configure(slow_chip.config)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["hwaware_WA", "hwaware_W"])
def test_epochs_in_one_core_call_train_as_step_by_step(name: str) -> None:
    cfg = small_cfg(name, epochs=3)
    noise = {"stall_prob": 0.2, "event_loss": 0.002, "theta_sample_std": 0.01}
    runs = {}
    for in_core in (True, False):
        chip = _Recording("train-chip", 3, **noise)
        backend = backend_for(chip, cfg, epochs_in_core=in_core)
        runs[in_core] = (fit(cfg, quiet=True, backend=backend), chip, backend)
    (a, chip_a, back_a), (b, chip_b, back_b) = runs[True], runs[False]
    assert metrics(a).equals(metrics(b))
    assert sum(a["retries"].to_list()) > 0 and sum(a["dropped_events"].to_list()) > 0
    # Epoch 0 went step by step (before it the chip holds no configuration), the next two in the
    # core (the chip then holds the trainer's layout): no Python write or step there.
    assert chip_a.trainer_writes == 125 - 1 and chip_b.trainer_writes == 3 * (125 - 1)
    assert chip_a.runs == chip_b.runs and chip_a.generation == chip_b.generation
    assert chip_a.last_written_entries == chip_b.last_written_entries
    assert (back_a.retries, back_a.dropped_events) == (back_b.retries, back_b.dropped_events)
    assert chip_a.configure(chip_a.config) == chip_b.configure(chip_b.config)  # type: ignore[arg-type]


def test_an_epoch_in_the_core_stops_at_a_batch_that_always_stalls() -> None:
    cfg = small_cfg(epochs=1)
    x, y = _batch(120)
    groups = np.ascontiguousarray(x[:, ::5])
    trainer = build_trainer(cfg, build_network(cfg, threads=1), threads=1)
    chip = EmulatedChip("stalls", 1, stall_prob=1.0)
    with pytest.raises(BadRequest, match="before configure"):
        chip.train_epoch(trainer, groups, x, y, 40, 0)
    chip.configure(chip_config_from_params(trainer.network().params(), 5))
    before = trainer.state()
    out = chip.train_epoch(trainer, groups, x, y, 40, 0, max_retries=2)
    assert out["stalled"] and out["steps"] == [] and out["retries"] == 2
    assert chip.runs == 3  # the first batch, three times
    for p, q in zip(before["tensors"], trainer.state()["tensors"], strict=True):
        np.testing.assert_array_equal(p["values"], q["values"])  # no step was taken
    with pytest.raises(BadRequest, match="inputs"):
        chip.train_epoch(trainer, groups[:, :3], x, y, 40, 0)
    with pytest.raises(BadRequest, match="x"):
        chip.train_epoch(trainer, groups, x[:80], y, 40, 0)
    with pytest.raises(BadRequest, match="batch_size"):
        chip.train_epoch(trainer, groups, x, y, 0, 0)
    with pytest.raises(BadRequest, match="max_retries"):
        chip.train_epoch(trainer, groups, x, y, 40, 0, max_retries=-1)
    with pytest.raises(BadRequest, match="labels"):
        chip.train_epoch(trainer, groups, x, np.full_like(y, 7), 40, 0)
    assert chip.runs == 3  # none of the bad calls ran anything


def test_fast_path_matches_step_from_times_on_one_batch() -> None:
    cfg = small_cfg(epochs=1)
    x, y = _batch()
    groups = np.ascontiguousarray(x[:, ::5])
    a, b = (build_trainer(cfg, build_network(cfg, threads=1), threads=1) for _ in range(2))
    chip = EmulatedChip("one-batch", 1)
    chip.configure(chip_config_from_params(a.network().params(), 5))
    health, fused = chip.run_and_step(groups, a, x, y, 0)
    runs = chip.runs
    res = _run_at(chip, groups, runs - 1)
    r = b.step_from_times(x, res["times"], y, 0, at=chip.network)
    assert fused is not None and not health.stall
    assert fused == r
    for p, q in zip(a.state()["tensors"], b.state()["tensors"], strict=True):
        np.testing.assert_array_equal(p["values"], q["values"])


def _run_at(chip: EmulatedChip, groups: np.ndarray, counter: int) -> Any:
    return _core.hardware_forward(
        chip.network, groups, repeat=5, pattern=chip.layer_pattern(), noise=chip.noise_params,
        seed=chip._noise_seed, counter=counter,
    )  # fmt: skip


def test_emulated_step_reports_stalls_and_bad_input() -> None:
    cfg = small_cfg(epochs=1)
    x, y = _batch()
    trainer = build_trainer(cfg, build_network(cfg, threads=1), threads=1)
    before = trainer.state()["tensors"][0]["values"].copy()
    chip = EmulatedChip("stall-always", 0, stall_prob=1.0)
    with pytest.raises(BadRequest, match="before configure"):
        chip.run_and_step(x[:, ::5], trainer, x, y, 0)
    chip.write(chip_config_from_params(trainer.network().params(), 5))
    health, r = chip.run_and_step(np.ascontiguousarray(x[:, ::5]), trainer, x, y, 0)
    assert health.stall and r is None
    np.testing.assert_array_equal(trainer.state()["tensors"][0]["values"], before)  # no step
    with pytest.raises(StallError, match="3 attempts"):
        ChipBackend(chip, input_repeat=5, max_retries=2).train_epoch(trainer, x, y, np.arange(40), 40, 0)
    with pytest.raises(BadRequest, match="inputs: expected shape"):
        chip.run_and_step(x, trainer, x, y, 0)
    net = chip.network
    with pytest.raises(ValueError, match="x"):  # one row of x per input row
        trainer.emulated_step(net, x[:, ::5], x[:10], y, 0, repeat=5)
    with pytest.raises(ValueError, match="repeat"):
        trainer.emulated_step(net, x[:, ::5], x, y, 0, repeat=-1)
    with pytest.raises(ValueError, match="noise"):
        trainer.emulated_step(net, x[:, ::5], x, y, 0, repeat=5, noise={"bogus": 1.0})


def test_write_defers_the_hash_and_configure_returns_it() -> None:
    cfg = small_cfg(epochs=1)
    c = chip_config_from_params(build_network(cfg, threads=1).params, 5)
    chip = EmulatedChip("hash-chip", 0)
    chip.write(c)
    assert chip.last_written_entries > 0
    res = chip.run(np.zeros((2, 4)))
    assert res.config_hash == config_hash(quantise_config(c)) == chip.configure(c)
    assert chip.last_written_entries == 0


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


def test_binding_accepts_any_float_layout() -> None:
    net = _core.Network([{"w": np.array([[1.0, 2.0, 0.5], [0.3, 1.5, 2.5]])}], threads=1)
    x = np.array([[0.1, 0.2, 0.3], [0.3, 0.1, 0.2]])
    want = net.forward(x)[0]
    for variant in (np.asfortranarray(x), x.astype(">f8"), x.tolist()):
        np.testing.assert_array_equal(net.forward(variant)[0], want)
    np.testing.assert_array_equal(net.forward(np.repeat(x, 2, axis=1)[:, ::2])[0], want)  # strided view
    layers = [{"w": np.ones((2, 3)), "theta": np.float64(1.5), "tau_m": 2.0, "tau_s": 1}]
    assert _core.Network(layers).params()[0]["theta"].tolist() == [1.5, 1.5]


def test_reference_config_fast_path_equals_generic_path(tmp_path: Path) -> None:
    cfg = load_config(CONFIGS / "hwaware_WA.toml")
    cfg.training.epochs, cfg.training.threads = 1, 1
    a = fit(cfg, out=tmp_path / "a", quiet=True, backend=backend_for(EmulatedChip("bss2-emu-0", 0), cfg))
    b = fit(cfg, out=tmp_path / "b", quiet=True, backend=backend_for(_Generic(EmulatedChip("bss2-emu-0", 0)), cfg))
    assert metrics(a).equals(metrics(b))
    assert pl.read_csv(tmp_path / "a" / "metrics.csv").height == 3


def test_write_trainer_equals_write_of_the_shadow_configuration() -> None:
    cfg = small_cfg(epochs=1)
    trainer = build_trainer(cfg, build_network(cfg, threads=1), threads=1)
    chip, ref = EmulatedChip("wt", 0), EmulatedChip("wt", 0)
    with pytest.raises(BadRequest, match="before configure"):
        chip.write_trainer(trainer)
    chip.write(chip_config_from_params(trainer.network().params(), 5))
    x, y = _batch()
    for _ in range(3):  # change the shadow parameters
        trainer.step_from_times(x, chip.network.forward(x), y, 0, at=chip.network)
    c = chip_config_from_params(trainer.network().params(), 5)
    gen, before = chip.generation, chip.config
    chip.write_trainer(trainer)
    ref.configure(before)  # type: ignore[arg-type]  # the state before, to count against
    h = ref.configure(c)
    assert chip.generation == gen + 1 and chip.last_written_entries == ref.last_written_entries > 0
    assert chip.configure(chip.config) == h and chip.last_written_entries == 0  # type: ignore[arg-type]
    q = quantise_config(c)
    for a, b in zip(chip.config.weights + chip.config.axonal_delays, q.weights + q.axonal_delays, strict=True):  # type: ignore[union-attr, operator]
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(chip.network.forward(x)[-1], ref.network.forward(x)[-1])
    other = build_trainer(small_cfg("hwaware_W"), build_network(small_cfg("hwaware_W"), threads=1), threads=1)
    with pytest.raises(BadRequest, match="layout"):
        chip.write_trainer(other)
    hot = small_cfg()
    hot.network.theta = 2.5
    with pytest.raises(BadRequest, match="neuron parameters"):
        chip.write_trainer(build_trainer(hot, build_network(hot, threads=1), threads=1))


def test_quantised_network_checks_the_grid() -> None:
    cfg = small_cfg(epochs=1)
    trainer = build_trainer(cfg, build_network(cfg, threads=1), threads=1)
    like = trainer.network()
    grid = {"weight_scale": 30.0, "weight_max": 63.0, "delay_offset": 2.0, "delay_step": 0.125}
    grid |= {"delay_min": 50.0, "delay_max": 250.0, "time_unit": 6.0}
    net, written = trainer.quantised_network(like, _core.Grid(**grid))
    assert written > 0 and net.sizes == like.sizes
    for key, bad in (("weight_scale", 0.0), ("delay_min", 300.0), ("time_unit", float("nan"))):
        with pytest.raises(ValueError, match=f"grid.{key}"):
            _core.Grid(**(grid | {key: bad}))
    with pytest.raises(TypeError, match="unexpected keyword"):
        _core.Grid(**grid, scale=1.0)
    with pytest.raises(TypeError):
        trainer.quantised_network(like, grid)  # a dict is not a Grid
