"""A deterministic test double of a chip (lives only in the tests).

The toy forward pass is a simple closed form, not the real neuron model: per layer, with arrivals
a_ki = t_i + d_axo[group(i)] + d_syn[k, i] + d_den[k] and weights quantised to steps of 1/30,
t_k = min_{i: w_ki > 0} a_ki + theta / sum_{i: w_ki > 0, a_ki finite} w_ki, or +inf if that sum is 0.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import numpy.typing as npt
from delgrad_hw.chip import (
    PROTOCOL_VERSION,
    ChipConfig,
    ChipInfo,
    Health,
    RunResult,
    Timing,
    config_hash,
    count_changed_entries,
    expand_inputs,
)

FloatArray = npt.NDArray[np.float64]


def quantise(config: ChipConfig) -> ChipConfig:
    """Round weights to multiples of 1/30 (clipped to +-2.1), as the hardware does."""
    return ChipConfig(
        weights=[np.clip(np.round(w * 30.0), -63, 63) / 30.0 for w in config.weights],
        axonal_delays=config.axonal_delays,
        synaptic_delays=config.synaptic_delays,
        dendritic_delays=config.dendritic_delays,
        theta=config.theta,
        tau_m=config.tau_m,
        tau_s=config.tau_s,
        input_repeat=config.input_repeat,
    )


def toy_forward(config: ChipConfig, inputs: FloatArray) -> list[FloatArray]:
    """Reference toy forward pass on the quantised configuration."""
    q = quantise(config)
    x = expand_inputs(np.asarray(inputs, dtype=np.float64), q.input_repeat)
    out: list[FloatArray] = []
    for layer, w in enumerate(q.weights):
        n_out, n_in = w.shape
        a = np.broadcast_to(x[:, None, :], (x.shape[0], n_out, n_in)).copy()
        assert q.axonal_delays is not None and q.synaptic_delays is not None and q.dendritic_delays is not None
        axo = q.axonal_delays[layer]
        if axo is not None:
            rep = q.input_repeat if layer == 0 else 1
            a = a + np.repeat(axo, rep)[None, None, :]
        syn = q.synaptic_delays[layer]
        if syn is not None:
            a = a + syn[None, :, :]
        den = q.dendritic_delays[layer]
        if den is not None:
            a = a + den[None, :, None]
        pos = (w > 0)[None, :, :] & np.isfinite(a)
        s = np.where(pos, w[None, :, :], 0.0).sum(axis=2)
        first = np.where(pos, a, np.inf).min(axis=2)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(s > 0, first + q.theta / np.where(s > 0, s, 1.0), np.inf)
        out.append(t.astype(np.float64))
        x = t
    return out


def make_config(seed: int, sizes: tuple[int, ...] = (4, 5, 3), repeat: int = 1, delays: bool = True) -> ChipConfig:
    """Random configuration with positive-leaning weights."""
    rng = np.random.default_rng(seed)
    weights = [
        rng.normal(0.8, 0.6, size=(sizes[i + 1], sizes[i] * (repeat if i == 0 else 1))) for i in range(len(sizes) - 1)
    ]
    axo = [rng.uniform(0, 1, size=sizes[i]) for i in range(len(sizes) - 1)] if delays else None
    return ChipConfig(weights=weights, axonal_delays=axo, theta=1.0, tau_m=2.0, tau_s=1.0, input_repeat=repeat)


def make_inputs(seed: int, batch: int = 6, n_in: int = 4) -> FloatArray:
    """Random input times with some silent inputs."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.15, 2.0, size=(batch, n_in))
    x[rng.random(size=x.shape) < 0.1] = np.inf
    return x


class ToyChip:
    """Deterministic chip double implementing the ``Chip`` protocol.

    Parameters
    ----------
    chip_id : str
        Identifier reported by ``info()``.
    seed : int
        Accepted for CLI compatibility (the toy chip is noiseless).
    delay_s : float
        Sleep inside every ``run`` (to exercise deadlines and fairness).
    """

    def __init__(self, chip_id: str = "toy-0", seed: int = 0, delay_s: float = 0.0) -> None:
        self.chip_id = chip_id
        self.seed = seed
        self.delay_s = delay_s
        self.config: ChipConfig | None = None
        self.hash: str | None = None
        self.log: list[tuple[str, str]] = []
        self.configure_calls = 0
        self.run_calls = 0
        self.overlaps = 0
        self._busy = threading.Lock()
        self.last_written_entries = 0

    def info(self) -> ChipInfo:
        return ChipInfo(
            PROTOCOL_VERSION, self.chip_id, "toy-cal-1", {"max_neurons": 512, "max_inputs": 256, "max_batch": 1000}
        )

    def _enter(self) -> None:
        if not self._busy.acquire(blocking=False):
            self.overlaps += 1
            self._busy.acquire()

    def configure(self, config: ChipConfig) -> str:
        self._enter()
        try:
            q = quantise(config)
            self.last_written_entries = count_changed_entries(self.config, q)
            self.config = q
            self.hash = config_hash(q)
            self.configure_calls += 1
            self.log.append(("configure", self.hash))
            return self.hash
        finally:
            self._busy.release()

    def run(self, inputs: FloatArray) -> RunResult:
        self._enter()
        try:
            if self.config is None or self.hash is None:
                raise ValueError("not configured")
            inputs = np.asarray(inputs, dtype=np.float64)
            if inputs.ndim != 2 or inputs.shape[1] != self.config.n_inputs:
                raise ValueError(f"inputs: expected [batch, {self.config.n_inputs}]")
            t0 = time.perf_counter()
            if self.delay_s:
                time.sleep(self.delay_s)
            times = toy_forward(self.config, inputs)
            self.run_calls += 1
            self.log.append(("run", self.hash))
            return RunResult(
                times=times,
                health=Health(),
                timing=Timing(execute_s=time.perf_counter() - t0),
                chip_id=self.chip_id,
                config_hash=self.hash,
            )
        finally:
            self._busy.release()


def assert_times_equal(got: list[Any], want: list[FloatArray]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
