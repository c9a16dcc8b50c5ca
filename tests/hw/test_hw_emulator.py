"""The emulated BrainScaleS-2 chip: quantisation, placement, noise statistics, reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pytest
from delgrad_hw.bss2 import (
    BSS2,
    Bss2Resources,
    PlacementError,
    delay_settings,
    place,
    quantise_config,
    quantise_delays,
    quantise_weights,
)
from delgrad_hw.chip import BadRequest, Chip, ChipConfig, ReportsWrites, config_hash
from delgrad_hw.emulator import EmulatedChip

import delgrad_rs

IDEAL = {
    "theta_offset_mean": 0.0,
    "theta_offset_std": 0.0,
    "theta_batch_std": 0.0,
    "jitter_std": 0.0,
    "timestamp_ns": 0.0,
    "slot": math.inf,
}


def hw_config(seed: int = 0, delays: bool = True, hidden: int = 30) -> ChipConfig:
    """A hardware-aware 20(=4x5)-hidden-3 configuration with firing outputs."""
    rng = np.random.default_rng(seed)
    axo = [2.0 + 1.5 / (1 + np.exp(-rng.normal(0, 0.5, 4))), 2.0 + 1.5 / (1 + np.exp(-rng.normal(0, 0.5, hidden)))]
    return ChipConfig(
        weights=[rng.normal(1.0, 0.12, (hidden, 20)), rng.normal(0.6, 0.4, (3, hidden))],
        axonal_delays=axo if delays else None,
        theta=2.6,
        tau_m=1.0,
        tau_s=1.0,
        input_repeat=5,
    )


def yy_inputs(n: int, seed: int = 0) -> np.ndarray:
    x, _ = delgrad_rs.yin_yang("test")
    return np.asarray(delgrad_rs.encode_times(x[seed : seed + n]))


def test_implements_the_chip_protocol() -> None:
    chip = EmulatedChip("c", 0)
    assert isinstance(chip, Chip)
    assert isinstance(chip, ReportsWrites)
    info = chip.info()
    assert info.chip_id == "c" and info.limits["max_neurons"] == 256 and info.limits["max_inputs"] == 128


def test_weight_quantisation_is_exact() -> None:
    w = np.array([0.5, 1.0 / 30, 0.049, 0.051, -0.7, 2.1, 2.2, -5.0, 1.0 / 60, 3.0 / 60, 0.0])
    q = quantise_weights(w)
    k = np.array([15, 1, 1, 2, -21, 63, 63, -63, 0, 2, 0])  # 1/60 -> 0.5 -> 0, 3/60 -> 1.5 -> 2 (half to even)
    np.testing.assert_array_equal(q, k / 30.0)
    rng = np.random.default_rng(1)
    w = rng.normal(0, 1.5, 10_000)
    q = quantise_weights(w)
    assert np.all(np.abs(q) <= 2.1)
    np.testing.assert_array_equal(q, np.round(q * 30) / 30)  # the float nearest k / 30
    inside = np.abs(w) < 2.1
    assert np.all(np.abs(q - w)[inside] <= 1 / 60 + 1e-15)
    # the chip runs exactly these weights
    cfg = hw_config(2)
    chip = EmulatedChip("q", 0)
    chip.configure(cfg)
    assert chip.config is not None
    for a, b in zip(chip.config.weights, cfg.weights, strict=True):
        np.testing.assert_array_equal(a, quantise_weights(b))


def test_delays_land_on_the_grid_inside_the_range() -> None:
    rng = np.random.default_rng(3)
    d = np.concatenate([rng.uniform(0, 7, 5000), [0.0, 1.375, 5.5417, 100.0]])
    q = quantise_delays(d)
    lo, hi = BSS2.delay_range
    assert lo == pytest.approx(8.25 / 6) and hi == pytest.approx(33.25 / 6)
    assert np.all(q >= lo - 1e-12) and np.all(q <= hi + 1e-12)
    steps = (q * 6.0 - 2.0) / 0.125  # settings n: integers in [50, 250]
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-9)
    assert steps.min() >= 50 - 1e-9 and steps.max() <= 250 + 1e-9
    np.testing.assert_array_equal(delay_settings(d), np.round(steps).astype(np.int64))
    inside = (d >= lo) & (d <= hi)
    assert np.all(np.abs(q - d)[inside] <= BSS2.delay_step / 2 + 1e-12)
    cfg = hw_config(4)
    chip = EmulatedChip("d", 0)
    chip.configure(cfg)
    assert chip.config is not None and chip.config.axonal_delays is not None and cfg.axonal_delays is not None
    for a, b in zip(chip.config.axonal_delays, cfg.axonal_delays, strict=True):
        assert a is not None and b is not None
        np.testing.assert_array_equal(a, quantise_delays(b))


def test_synaptic_delays_need_future_hardware() -> None:
    cfg = hw_config(5)
    syn = ChipConfig(
        weights=cfg.weights,
        synaptic_delays=[np.full((30, 20), 2.5), None],
        theta=2.6,
        tau_m=1.0,
        tau_s=1.0,
        input_repeat=5,
    )
    with pytest.raises(PlacementError, match="synaptic_delays"):
        EmulatedChip("s", 0).configure(syn)
    chip = EmulatedChip("s", 0, future_hardware=True)
    chip.configure(syn)
    assert chip.config is not None and chip.config.synaptic_delays is not None
    d = chip.config.synaptic_delays[0]
    assert d is not None
    np.testing.assert_array_equal(d, quantise_delays(np.full((30, 20), 2.5)))
    assert chip.run(yy_inputs(4)).times[1].shape == (4, 3)


def test_placement_errors_name_the_resource() -> None:
    chip = EmulatedChip("p", 0)
    with pytest.raises(PlacementError, match="neuron circuits"):
        chip.configure(hw_config(hidden=300))
    wide = ChipConfig(weights=[np.ones((5, 130)), np.ones((3, 5))], theta=2.6, tau_m=1.0, tau_s=1.0)
    with pytest.raises(PlacementError, match="synapse rows"):
        chip.configure(wide)
    small = Bss2Resources(delay_units=10)
    with pytest.raises(PlacementError, match="delay units"):
        place(hw_config(), small)
    p = place(hw_config())
    assert p.delay_units == 4 + 30 and p.rows == 2 * (20 + 30)
    np.testing.assert_array_equal(p.circuits[1], np.arange(30, 33))
    assert isinstance(PlacementError("x"), BadRequest)
    with pytest.raises(BadRequest, match="tau_m"):
        chip.configure(ChipConfig(weights=[np.ones((3, 4))], theta=1.0, tau_m=2.0, tau_s=1.0))


def test_configure_hash_and_written_entries() -> None:
    chip = EmulatedChip("h", 0)
    cfg = hw_config(6)
    h = chip.configure(cfg)
    assert chip.last_written_entries == 30 * 20 + 3 * 30 + 4 + 30 + 4
    assert chip.configure(hw_config(6)) == h and chip.last_written_entries == 0
    # a change below the weight resolution writes nothing and keeps the hash
    cfg.weights[0][0, 0] = quantise_weights(cfg.weights[0][0, 0]) + 0.001
    assert chip.configure(cfg) == h and chip.last_written_entries == 0
    cfg.weights[1][2, 3] += 0.5
    assert chip.configure(cfg) != h and chip.last_written_entries == 1
    assert chip.configure(cfg) == config_hash(quantise_config(cfg))
    assert EmulatedChip("other", 1).configure(cfg) == chip.configure(cfg)  # the hash depends on content only


def test_run_validates_inputs() -> None:
    chip = EmulatedChip("r", 0)
    with pytest.raises(BadRequest, match="configure"):
        chip.run(yy_inputs(2))
    chip.configure(hw_config())
    for bad in (np.ones((2, 5)), np.ones(4), np.array([[0.1, np.nan, 1, 1]]), np.array([[-0.1, 1, 1, 1]])):
        with pytest.raises(BadRequest, match="inputs"):
            chip.run(bad)
    res = chip.run(np.array([[0.5, np.inf, 1.0, 1.0]]))
    assert [t.shape for t in res.times] == [(1, 30), (1, 3)]


@pytest.mark.parametrize("kwargs", [{"jitter": 0.1}, {"jitter_std": -1.0}, {"event_loss": 2.0}, {"timestamp_ns": -1}])
def test_bad_noise_parameters_are_named(kwargs: dict[str, float]) -> None:
    key = next(iter(kwargs))
    with pytest.raises(ValueError, match=key):
        EmulatedChip("n", 0, **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [{"threads": 10**6}, {"threads": -1}, {"threads": "2"}, {"threads": 2.0}, {"max_batch": 0}, {"max_batch": True}],
)
def test_bad_settings_are_named_when_the_chip_is_made(kwargs: dict[str, object]) -> None:
    key = next(iter(kwargs))
    with pytest.raises(ValueError, match=key):
        EmulatedChip("n", 0, **kwargs)  # type: ignore[arg-type]


def test_without_noise_the_chip_computes_the_quantised_ideal_model() -> None:
    cfg = hw_config(7)
    chip = EmulatedChip("ideal", 0, **IDEAL)
    chip.configure(cfg)
    x = yy_inputs(50)
    res = chip.run(x)
    q = quantise_config(cfg)
    assert q.axonal_delays is not None
    net = delgrad_rs.Network.from_params(
        [
            {"w": q.weights[0], "theta": 2.6, "tau_m": 1.0, "tau_s": 1.0, "d_axo": q.axonal_delays[0], "delay_group": 5},
            {"w": q.weights[1], "theta": 2.6, "tau_m": 1.0, "tau_s": 1.0, "d_axo": q.axonal_delays[1]},
        ]
    )
    copies = net.forward(np.repeat(x, 5, axis=1))
    # The 5 copies of an input arrive together and the chip sums their currents: exactly the ideal
    # model with one input per group whose weight is the copies' sum (in input order), which equals
    # the model with the copies up to the rounding of those sums.
    w0 = q.weights[0]
    summed = w0[:, 0::5].copy()
    for c in range(1, 5):
        summed += w0[:, c::5]
    merged = delgrad_rs.Network.from_params(
        [
            {"w": summed, "theta": 2.6, "tau_m": 1.0, "tau_s": 1.0, "d_axo": q.axonal_delays[0]},
            {"w": q.weights[1], "theta": 2.6, "tau_m": 1.0, "tau_s": 1.0, "d_axo": q.axonal_delays[1]},
        ]
    )
    want = merged.forward(x)
    for a, b, c in zip(res.times, want, copies, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, rtol=1e-12)
    assert res.health.dropped_events == 0 and not res.health.stall


def test_same_chip_id_and_seed_give_the_same_results() -> None:
    cfg, x = hw_config(8), yy_inputs(40)

    def runs(chip_id: str, seed: int) -> list[np.ndarray]:
        chip = EmulatedChip(chip_id, seed)
        chip.configure(cfg)
        return [chip.run(x).times[1] for _ in range(3)]

    a, b = runs("A", 1), runs("A", 1)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], a[1])  # temporal noise differs from run to run
    assert not np.array_equal(a[0], runs("A", 2)[0])
    assert not np.array_equal(a[0], runs("B", 1)[0])
    # the fixed pattern belongs to the chip id, not to the seed
    p1, p2, p3 = EmulatedChip("A", 1), EmulatedChip("A", 9), EmulatedChip("B", 1)
    for p in (p1, p2, p3):
        p.configure(cfg)
    off = [p.layer_pattern()[0]["theta_offset"] for p in (p1, p2, p3)]  # type: ignore[index]
    np.testing.assert_array_equal(off[0], off[1])
    assert not np.array_equal(off[0], off[2])


def test_noise_scale_multiplies_every_noise_parameter() -> None:
    cfg, x = hw_config(9), yy_inputs(40)
    given = {"tau_m_mismatch": 0.02, "event_loss": 0.01}

    def times(chip: EmulatedChip) -> list[np.ndarray]:
        chip.configure(cfg)
        return [t for _ in range(2) for t in chip.run(x).times]

    scaled = EmulatedChip("s", 1, noise_scale=2.5, **given)
    explicit = EmulatedChip(
        "s",
        1,
        theta_offset_mean=0.13 * 2.5,
        theta_offset_std=0.08 * 2.5,
        theta_batch_std=0.04 * 2.5,
        jitter_std=0.01 * 2.5,
        **{k: v * 2.5 for k, v in given.items()},
    )
    assert scaled.pattern_params == explicit.pattern_params and scaled.noise_params == explicit.noise_params
    for a, b in zip(times(scaled), times(explicit), strict=True):
        np.testing.assert_array_equal(a, b)
    # 0 is the noiseless chip (quantisation and the 8 ns clock stay)
    silent = EmulatedChip("s", 1, noise_scale=0.0, **given)
    assert silent.noise_params["time_step"] == EmulatedChip("s", 1).noise_params["time_step"]
    for a, b in zip(times(silent), times(EmulatedChip("s", 1, **{**IDEAL, "timestamp_ns": 8.0, "slot": 30.0})), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("scale", [-1.0, math.nan, math.inf, "2", True])
def test_bad_noise_scale_is_named(scale: object) -> None:
    with pytest.raises(ValueError, match="noise_scale"):
        EmulatedChip("n", 0, noise_scale=scale)  # type: ignore[arg-type]


def _measured_thetas(chip: EmulatedChip, runs: int, batch: int = 4) -> np.ndarray:
    """Per run and neuron, the threshold seen by a neuron driven by one input at 0 with weight 2
    (exactly representable; the chip clips at 2.1): u(t) = w t e^{-t} = theta at the spike time t (tau = 1, no delay)."""
    n = 200
    chip.configure(ChipConfig(weights=[np.full((n, 1), 2.0)], theta=0.2, tau_m=1.0, tau_s=1.0))
    out = []
    for _ in range(runs):
        t = chip.run(np.zeros((batch, 1))).times[0]
        assert np.all(t == t[0])  # the threshold noise is redrawn per run, not per sample
        out.append(2.0 * t[0] * np.exp(-t[0]))
    return np.array(out)


def test_offsets_and_threshold_noise_have_the_configured_distribution() -> None:
    chip = EmulatedChip("stats", 3, timestamp_ns=0.0, jitter_std=0.0)
    th = _measured_thetas(chip, runs=300)  # [runs, neurons]
    offsets = th.mean(axis=0) - 0.2
    assert abs(offsets.mean() - 0.13) < 0.02
    assert abs(offsets.std(ddof=1) - 0.08) < 0.015
    pattern = chip.layer_pattern()
    assert pattern is not None
    np.testing.assert_allclose(offsets, pattern[0]["theta_offset"], atol=0.04 * 4 / math.sqrt(300))
    noise = th - th.mean(axis=0)
    assert abs(noise.std(ddof=1) - 0.04) < 0.002
    # a chip without fixed pattern and batch noise measures the nominal threshold
    flat = _measured_thetas(EmulatedChip("flat", 0, **IDEAL), runs=3)
    np.testing.assert_allclose(flat, 0.2, atol=1e-12)


def test_timestamps_on_the_8ns_grid_and_health_counters() -> None:
    chip = EmulatedChip("grid", 0, event_loss=0.05, stall_prob=0.5)
    chip.configure(hw_config(9))
    x = yy_inputs(200)
    dropped, stalls = 0, 0
    for _ in range(20):
        res = chip.run(x)
        dropped += res.health.dropped_events
        stalls += res.health.stall
        for t in res.times:
            f = t[np.isfinite(t)] / (8e-3 / 6)
            np.testing.assert_allclose(f, np.round(f), atol=1e-6)
        if res.health.stall:
            assert np.isinf(res.times[1][-1]).all()
    assert 3 <= stalls <= 17
    assert dropped > 0
