"""The host recipe of chip-in-the-loop training ([hardware] gradient_weights, gradient_slope,
clamp_float_weights, chip_per_run, eval_batch): checked keys, each option against a case computed
here, the two roads (the core's epoch, any chip driven from Python) alike, the reference configs."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from delgrad_hw.bss2 import BSS2, core_grid
from delgrad_hw.chip import ChipConfig, RunResult
from delgrad_hw.emulator import EmulatedChip
from delgrad_hw.training import ChipBackend, chip_config_from_params
from hw_support import CONFIGS, small_cfg

from delgrad_rs import Network, Trainer
from delgrad_rs.config import REFERENCE_RECIPE, ConfigError, config_from_dict, load_config
from delgrad_rs.training import build_network, build_trainer, make_backend, split_inputs


class _Proxy:
    """An emulator behind the generic chip interface (not an EmulatedChip: driven step by step from Python)."""

    def __init__(self, inner: EmulatedChip) -> None:
        self.inner = inner

    def info(self) -> Any:
        return self.inner.info()

    def configure(self, config: ChipConfig) -> str:
        return self.inner.configure(config)

    def run(self, inputs: Any) -> RunResult:
        return self.inner.run(inputs)


def _firing(cfg: Any) -> Network:
    """The configuration's network with output weights large enough that every output fires."""
    net = build_network(cfg, threads=1)
    p = net.params
    p[1]["w"] = 0.6 + 2.0 * p[1]["w"]
    net.params = p
    return net


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two ``Trainer.state()`` snapshots are equal (every array bit for bit)."""
    ta, tb = a["tensors"], b["tensors"]
    arrays = all(np.array_equal(u[k], v[k]) for u, v in zip(ta, tb, strict=True) for k in ("values", "m", "v"))
    return arrays and (a["bump"], a["last_bumped"]) == (b["bump"], b["last_bumped"])


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("gradient_weights", "chip", "expected one of 'quantised', 'float', got 'chip'"),
        ("gradient_slope", "ideal", "expected one of 'measured', 'nominal', got 'ideal'"),
        ("chip_per_run", "each", "expected one of 'shared', 'new', got 'each'"),
        ("clamp_float_weights", "yes", "expected true or false, got str 'yes'"),
        ("clamp_float_weights", 1, "expected true or false, got int 1"),
    ],
)
def test_recipe_keys_are_checked(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=f"option hardware\\.{key}: {message}"):
        config_from_dict({"hardware": {key: value}})


def test_the_defaults_are_todays_recipe_and_the_bindings_check_names() -> None:
    h = config_from_dict({}).hardware
    assert (h.gradient_weights, h.gradient_slope, h.clamp_float_weights, h.chip_per_run, h.eval_batch) == (
        "quantised",
        "measured",
        False,
        "shared",
        1000,
    )
    with pytest.raises(ValueError, match="gradient_weights: expected 'quantised' or 'float'"):
        ChipBackend(EmulatedChip("c", 0), gradient_weights="floating")
    with pytest.raises(ValueError, match="clamp_float_weights"):
        ChipBackend(EmulatedChip("c", 0), clamp_float_weights=1)  # type: ignore[arg-type]
    net = Network.create([1, 1], threads=1)
    with pytest.raises(ValueError, match="gradient_slope: unknown gradient slope"):
        Trainer(net.core, gradient_slope="ideal")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["hwaware_W", "hwaware_WA"])
def test_the_reference_configs_are_the_examples_with_the_reference_recipe(name: str) -> None:
    base = tomllib.loads((CONFIGS / f"{name}.toml").read_text())
    ref = tomllib.loads((CONFIGS / f"{name}_reference.toml").read_text())
    assert ref["name"] == f"{name}_reference" and ref["hardware"] == base["hardware"] | REFERENCE_RECIPE
    assert {k: v for k, v in ref.items() if k not in ("name", "hardware")} == {
        k: v for k, v in base.items() if k not in ("name", "hardware")
    }
    cfg = load_config(CONFIGS / f"{name}_reference.toml")
    assert cfg.loss.tie_rule == "first" and cfg.hardware.clamp_float_weights is True


def test_the_nominal_slope_reaches_the_trainer() -> None:
    # One neuron, one input at 0 (w = 3, theta = 0.2, tau_m = tau_s = 1) and a given spike time
    # t = 1.6 past the potential's peak (t = 1): the measured slope w e^{-t} (1 - t) is negative,
    # so the gradient is invalid; the nominal one, w e^{-t} - theta, is positive (by hand).
    t, w, theta = 1.6, 3.0, 0.2
    assert w * np.exp(-t) * (1 - t) < 0 < w * np.exp(-t) - theta
    x = np.zeros((1, 1))
    times = [np.array([[t]])]
    for slope, invalid in (("measured", 1), ("nominal", 0)):
        cfg = config_from_dict(
            {
                "network": {"hidden": [], "tau_m": 1.0, "tau_s": 1.0, "theta": theta},
                "hardware": {"gradient_slope": slope},
                "training": {"bump": 0.0, "bump_limits": [1.0]},
            }
        )
        net = Network.create([1, 1], tau_m=1.0, tau_s=1.0, theta=theta, weight_mean=w, weight_std=0.0, threads=1)
        r = build_trainer(cfg, net, threads=1).step_from_times(x, times, np.array([0]), 0)
        assert r["invalid"] == [invalid]


def test_clamping_keeps_the_float_weights_in_the_chips_range() -> None:
    # Learning rates 0 and no bumps: the steps leave the weights as they are, so that after an
    # epoch the float weights are the initial ones clipped to +-63/30 (numpy), on both roads.
    cfg = small_cfg("hwaware_W", epochs=1)
    cfg.optimizer.lr_weights = cfg.optimizer.lr_delays = 0.0
    cfg.training.bump = 0.0
    net = build_network(cfg, threads=1)
    p = net.params
    p[0]["w"][:3, 0] = [3.0, -2.5, 2.2]
    net.params = p
    limit = core_grid(BSS2).weight_limit
    assert limit == 63 / 30
    x, y = split_inputs(cfg, "train")
    x, y = x[:80], y[:80]
    for make in (lambda: EmulatedChip("train-chip", 0), lambda: _Proxy(EmulatedChip("train-chip", 0))):
        for clamp in (False, True):
            trainer = build_trainer(cfg, net, threads=1)
            b = ChipBackend(make(), input_repeat=5, clamp_float_weights=clamp)
            b.train_epoch(trainer, x, y, np.arange(80), 40, 0)
            for got, want in zip(trainer.network().params(), p, strict=True):
                w = np.clip(want["w"], -limit, limit) if clamp else want["w"]
                assert np.array_equal(got["w"], w)


def test_float_gradients_equal_a_step_at_the_float_network_on_both_roads() -> None:
    # The core's epoch with gradient_weights = "float" equals, batch by batch, a run of the chip
    # followed by Trainer.step_from_times at the float network (at=None); the generic road gives
    # the same; and the quantised gradient gives another result.
    cfg = small_cfg("hwaware_WA", epochs=1)
    x, y = split_inputs(cfg, "train")
    x, y = x[:120], y[:120]
    net = _firing(cfg)

    def epoch(chip: Any, weights: str) -> tuple[dict[str, Any], dict[str, Any]]:
        trainer = build_trainer(cfg, net, threads=1)
        b = ChipBackend(chip, input_repeat=5, gradient_weights=weights)
        r = b.train_epoch(trainer, x, y, np.arange(120), 40, 0)
        return r, trainer.state()

    core = epoch(EmulatedChip("train-chip", 3), "float")
    assert core[0]["bumps"] == 0  # every batch took a gradient step
    generic = epoch(_Proxy(EmulatedChip("train-chip", 3)), "float")
    assert generic[0] == core[0] and _same(generic[1], core[1])
    assert not _same(epoch(EmulatedChip("train-chip", 3), "quantised")[1], core[1])
    trainer = build_trainer(cfg, net, threads=1)
    chip = EmulatedChip("train-chip", 3)
    for s in range(0, 120, 40):
        chip.configure(chip_config_from_params(trainer.network().params(), 5))
        res = chip.run(np.ascontiguousarray(x[s : s + 40, ::5]))
        trainer.step_from_times(x[s : s + 40], res.times, y[s : s + 40], 0)
    assert _same(trainer.state(), core[1])


def test_a_new_chip_per_run_is_derived_from_the_chip_and_the_seed() -> None:
    cfg = small_cfg("hwaware_W", epochs=1)
    assert make_backend("emulator", cfg).describe()["chip_id"] == "train-chip"
    cfg.hardware.chip_per_run = "new"
    ids = {}
    patterns = {}
    for seed in (0, 1):
        cfg.seed = seed
        backend = make_backend("emulator", cfg)
        assert isinstance(backend, ChipBackend) and isinstance(backend.chip, EmulatedChip)
        ids[seed] = backend.describe()["chip_id"]
        patterns[seed] = backend.chip._pattern["theta_offset"]
    assert ids == {0: "train-chip/seed-0", 1: "train-chip/seed-1"}
    assert not np.array_equal(patterns[0], patterns[1])
    with pytest.raises(ValueError, match="hardware.chip_per_run: a remote chip is the server's"):
        make_backend("remote://127.0.0.1:1", cfg)


def test_each_evaluation_batch_draws_its_own_noise() -> None:
    # eval_batch 200: five runs for 1000 samples (the counter advances by 5); the same samples in
    # one run of 1000 see one draw: the output times differ.
    cfg = small_cfg("hwaware_W", epochs=1)
    trainer = build_trainer(cfg, _firing(cfg))
    xt, yt = split_inputs(cfg, "test")
    out = {}
    for batch in (200, 1000):
        chip = EmulatedChip("train-chip", 0)
        r = ChipBackend(chip, input_repeat=5, eval_batch=batch).evaluate(trainer, xt, yt)
        out[batch] = (chip.runs, r["output_times"])
    assert out[200][0] == 5 and out[1000][0] == 1
    assert np.isfinite(out[1000][1]).all()
    # samples 200..999: later runs (other draws) in batches of 200, the first run in one of 1000
    assert not np.array_equal(out[200][1][200:], out[1000][1][200:])
