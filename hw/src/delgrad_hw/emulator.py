"""An emulated BrainScaleS-2 chip behind the :class:`~delgrad_hw.chip.Chip` interface.

:class:`EmulatedChip` places a network on the chip's resources (:func:`delgrad_hw.bss2.place`),
quantises weights and delays (:func:`delgrad_hw.bss2.quantise_config`) and runs batches through the
noisy forward pass of the Rust core (:func:`delgrad_rs.hardware.hardware_forward`; the model is
described in ``docs/hardware.md``). Every imperfection of the model is a keyword argument with the
reference value as default (the temporal-noise names and defaults are the core's,
:func:`delgrad_rs.hardware.hardware_noise_defaults`):

========================  ===========  ==========================================================
argument                  default      effect (model units; 1 unit = ``tau_us`` = 6 us)
========================  ===========  ==========================================================
theta_offset_mean/std     0.13 / 0.08  fixed-pattern threshold offset per neuron circuit (per chip id)
tau_m_mismatch            0            relative std of tau_m per circuit (per chip id)
tau_s_mismatch            0            relative std of tau_s per circuit (per chip id)
gain_mismatch             0            relative std of the gain of every synapse row (per chip id)
theta_batch_std           0.04         threshold noise per run (batch) and neuron
theta_sample_std          0            threshold noise per sample and neuron
jitter_std                0.01         jitter of every delayed spike arrival (60 ns)
output_jitter_std         0            jitter of every output spike
timestamp_ns              8            FPGA clock period (input playback and timestamps); 0 = exact
slot                      30           sample slot; spikes at or after it are not of this sample
event_loss                0            probability that an input or recorded event is lost
stall_prob                0            probability that a run stalls (``Health.stall``)
future_hardware           False        allow synaptic / dendritic delays (not on BSS-2)
noise_scale               1            factor on every noise parameter above (threshold offsets and
                                       noise, mismatches, jitters, event loss); 0 = a noiseless chip
                                       that still quantises and keeps the 8 ns clock
========================  ===========  ==========================================================

The fixed pattern is drawn once from the chip id (two emulators with the same ``chip_id`` are the
same chip); the temporal noise of run number r is keyed by (chip id, ``seed``, r), so the same chip id
and seed give the same results, and a ``configure`` does not consume randomness.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from typing import TYPE_CHECKING, Any, TypedDict, cast

import numpy as np
import numpy.typing as npt
from delgrad_rs.hardware import CoreNetwork, Trainer, chip_pattern, hardware_forward, hardware_noise_defaults

from .bss2 import BSS2, Bss2Resources, Placement, core_grid, place, quantise_config
from .chip import (
    PROTOCOL_VERSION,
    BadRequest,
    ChipConfig,
    ChipInfo,
    Health,
    RunResult,
    Timing,
    _check_int,
    config_hash,
    count_changed_entries,
)

if TYPE_CHECKING:
    from delgrad_rs.hardware import StepResult

__all__ = ["EmulatedChip", "EpochSteps", "stable_seed"]


class EpochSteps(TypedDict):
    """What :meth:`EmulatedChip.train_epoch` did: the steps' results and the chip's health."""

    steps: list[StepResult]
    retries: int
    dropped_events: int
    stalled: bool


def _structure(config: ChipConfig) -> tuple[Any, ...]:
    """Return the shapes and delay kinds of a configuration (what its placement depends on)."""

    def shapes(lst: list[FloatArray | None] | None) -> tuple[tuple[int, ...] | None, ...]:
        return () if lst is None else tuple(None if d is None else d.shape for d in lst)

    return (
        tuple(w.shape for w in config.weights),
        config.input_repeat,
        shapes(config.axonal_delays),
        shapes(config.synaptic_delays),
        shapes(config.dendritic_delays),
    )


FloatArray = npt.NDArray[np.float64]


def _arrays(pattern: list[dict[str, FloatArray]] | None) -> list[dict[str, npt.ArrayLike]] | None:
    """Return a placed pattern typed as the core takes it (dicts of array-likes; the same objects)."""
    return cast("list[dict[str, npt.ArrayLike]] | None", pattern)


def stable_seed(*parts: object) -> int:
    """Return a 64-bit seed from the SHA-256 of ``parts`` (stable across processes and platforms).

    Parameters
    ----------
    *parts : object
        Values whose ``str`` forms are hashed (joined by NUL bytes).

    Returns
    -------
    int
        An integer in ``[0, 2**64)``.
    """
    h = hashlib.sha256("\0".join(str(p) for p in parts).encode())
    return int.from_bytes(h.digest()[:8], "little")


#: The fixed-pattern arguments of the core's chip_pattern.
_PATTERN_KEYS = ("theta_offset_mean", "theta_offset_std", "tau_m_mismatch", "tau_s_mismatch", "gain_mismatch")
#: The temporal parameters that are not noise (``noise_scale`` leaves them alone).
_NOT_NOISE = ("time_step", "slot", "stall_prob")


def _noise_parameters(
    noise: dict[str, float], resources: Bss2Resources, scale: float = 1.0
) -> tuple[dict[str, float], dict[str, float]]:
    """Split the noise keyword arguments into the fixed pattern's and the temporal noise's, with defaults.

    The temporal-noise names and defaults are the core's (:func:`delgrad_rs.hardware.hardware_noise_defaults`);
    its ``time_step`` comes from ``timestamp_ns``. Every noise parameter is multiplied by ``scale``.
    A ValueError names an unknown or non-numeric parameter.
    """
    pattern: dict[str, float] = {"theta_offset_mean": 0.13, "theta_offset_std": 0.08}
    temporal: dict[str, float] = dict(hardware_noise_defaults())
    noise_keys = tuple(k for k in temporal if k != "time_step")
    timestamp_ns = 8.0
    for key, value in noise.items():
        if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
            raise ValueError(f"{key}: expected a number, got {type(value).__name__}")
        if key in _PATTERN_KEYS:
            pattern[key] = float(value)
        elif key in noise_keys:
            temporal[key] = float(value)
        elif key == "timestamp_ns":
            timestamp_ns = float(value)
        else:
            known = ", ".join((*_PATTERN_KEYS, *noise_keys, "timestamp_ns"))
            raise ValueError(f"{key}: unknown noise parameter; expected one of {known}")
    if not (math.isfinite(timestamp_ns) and timestamp_ns >= 0):
        raise ValueError(f"timestamp_ns: expected a finite number >= 0, got {timestamp_ns}")
    if isinstance(scale, bool) or not isinstance(scale, int | float | np.floating | np.integer):
        raise ValueError(f"noise_scale: expected a number >= 0, got {type(scale).__name__}")
    if not (math.isfinite(scale) and scale >= 0):
        raise ValueError(f"noise_scale: expected a finite number >= 0, got {scale}")
    if scale != 1:
        pattern = {k: v * scale for k, v in pattern.items()}
        temporal = {k: v if k in _NOT_NOISE else v * scale for k, v in temporal.items()}
    temporal["time_step"] = timestamp_ns * 1e-3 / resources.tau_us
    return pattern, temporal


class EmulatedChip:
    """A BrainScaleS-2 chip emulated in the Rust core (see the module docstring for the parameters).

    Parameters
    ----------
    chip_id : str
        Identity of the chip; it selects the fixed pattern.
    seed : int
        Seed of the temporal noise.
    future_hardware : bool
        Allow synaptic and dendritic delays.
    resources : Bss2Resources
        Chip resources and conversion constants.
    threads : int or None
        Worker threads of the forward pass (None: every core).
    max_batch : int
        Largest batch of one run.
    noise_scale : float
        Factor on every noise parameter (defaults and those given); 0 turns the noise off.
    **noise : float
        The noise parameters of the module docstring.

    Raises
    ------
    ValueError
        For an unknown or invalid noise parameter (naming it).
    """

    def __init__(
        self,
        chip_id: str = "bss2-emu-0",
        seed: int = 0,
        *,
        future_hardware: bool = False,
        resources: Bss2Resources = BSS2,
        threads: int | None = None,
        max_batch: int = 100_000,
        noise_scale: float = 1.0,
        **noise: float,
    ) -> None:
        if not isinstance(chip_id, str) or not chip_id:
            raise ValueError(f"chip_id: expected a non-empty string, got {chip_id!r}")
        seed = _check_int(seed, "seed", 0)
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int | np.integer)):
            raise ValueError(f"threads: expected None or an integer >= 0, got {threads!r}")
        max_batch = _check_int(max_batch, "max_batch", 1)
        pattern, temporal = _noise_parameters(noise, resources, noise_scale)
        self.chip_id = chip_id
        self.seed = seed
        self.future_hardware = bool(future_hardware)
        self.resources = resources
        self.max_batch = max_batch
        self.noise_params = dict(temporal)
        self.pattern_params = dict(pattern)
        self._threads = threads
        try:
            self._pattern = chip_pattern(
                resources.neurons_per_hemisphere,
                resources.rows_per_hemisphere,
                seed=stable_seed("delgrad-hw-pattern", chip_id),
                **pattern,
            )
            hardware_forward(  # validates the temporal parameters and threads once, here
                CoreNetwork([{"w": [[1.0]]}], threads=threads), np.zeros((0, 1)), noise=temporal
            )
        except MemoryError as exc:  # the core's AllocationError, naming chip_pattern's argument
            arg, _, rest = str(exc).partition(": ")
            names = {"circuits": "neurons_per_hemisphere", "rows": "rows_per_hemisphere"}
            raise ValueError(f"resources.{names.get(arg, arg)}: {rest}") from None
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        self._noise_seed = stable_seed("delgrad-hw-noise", chip_id, self.seed)
        self.calibration_id = "emu-cal-" + hashlib.sha256(repr(sorted(pattern.items())).encode()).hexdigest()[:12]
        self._lock = threading.Lock()
        self._config: ChipConfig | None = None
        self._hash: str | None = None
        # After train_epoch the network is ahead of _config (rebuilt from it when asked for).
        self._stale = False
        self._net: CoreNetwork | None = None
        self._layer_pattern: list[dict[str, FloatArray]] | None = None
        self._placement: Placement | None = None
        # caches of configure(): placement and placed pattern per network structure, and a core
        # network whose executor (thread pool) the next configurations share
        self._placed: tuple[tuple[Any, ...], Placement] | None = None
        self._placed_pattern: tuple[tuple[Any, ...], list[dict[str, FloatArray]]] | None = None
        self._net_template: CoreNetwork | None = None
        self.last_written_entries = 0
        #: Runs executed so far (the counter of the temporal noise).
        self.runs = 0

    # ----------------------------------------------------------------------------------------------
    def info(self) -> ChipInfo:
        """Return the chip's identity and limits.

        Returns
        -------
        ChipInfo
            ``max_neurons`` (one hemisphere), ``max_inputs`` (signed inputs per hemisphere),
            ``max_batch``, ``delay_units``, ``synapse_rows``.
        """
        r = self.resources
        return ChipInfo(
            PROTOCOL_VERSION,
            self.chip_id,
            self.calibration_id,
            {
                "max_neurons": r.neurons_per_hemisphere,
                "max_inputs": r.rows_per_hemisphere // 2,
                "max_batch": self.max_batch,
                "delay_units": r.delay_units,
                "synapse_rows": r.rows_per_hemisphere,
            },
        )

    def configure(self, config: ChipConfig) -> str:
        """Place, quantise and write a configuration (only changed entries count as written).

        Parameters
        ----------
        config : ChipConfig
            The network in model units (tau_m must equal tau_s: the chip is calibrated that way).

        Returns
        -------
        str
            Hash of the quantised configuration.

        Raises
        ------
        BadRequest
            For tau_m != tau_s; :class:`~delgrad_hw.bss2.PlacementError` when the network does not fit.
        """
        with self._lock:
            self._write(config)
            return self._current_hash()

    def write(self, config: ChipConfig) -> None:
        """Configure like :meth:`configure` without computing the hash (for in-process training loops).

        The hash of the configuration is computed when something asks for it (``configure``,
        ``run``).

        Parameters
        ----------
        config : ChipConfig
            The network in model units.

        Raises
        ------
        BadRequest
            As :meth:`configure`.
        """
        with self._lock:
            self._write(config)

    def _write(self, config: ChipConfig) -> None:
        """Place, quantise and write ``config`` (the caller holds the lock)."""
        if not isinstance(config, ChipConfig):
            raise BadRequest(f"config: expected a ChipConfig, got {type(config).__name__}")
        if config.tau_m != config.tau_s:
            raise BadRequest(
                f"tau_m, tau_s: the chip is calibrated to tau_m = tau_s; got tau_m={config.tau_m}, tau_s={config.tau_s}"
            )
        key = _structure(config)
        if self._placed is not None and self._placed[0] == key:
            placement = self._placed[1]
        else:
            placement = place(config, self.resources, self.future_hardware)
            self._placed = (key, placement)
        q = quantise_config(config, self.resources)
        net = self._chip_network(q)
        pkey = (key, q.tau_m, q.tau_s)
        if self._placed_pattern is not None and self._placed_pattern[0] == pkey:
            layer_pattern = self._placed_pattern[1]
        else:
            layer_pattern = self._place_pattern(q, placement)
            self._placed_pattern = (pkey, layer_pattern)
        self.last_written_entries = count_changed_entries(self._quantised_config(), q)
        self._config, self._hash, self._stale = q, None, False
        self._net, self._layer_pattern, self._placement = net, layer_pattern, placement

    def _trainer_layout(self) -> tuple[ChipConfig, CoreNetwork]:
        """Return the configuration and network on the chip, which :meth:`train_epoch` rewrites.

        The caller holds the lock. A BadRequest before ``configure`` and for per-channel synaptic
        delays of duplicated inputs (the chip holds one per channel, a trainer one per input group).
        """
        cfg, net = self._config, self._net
        if cfg is None or net is None:
            raise BadRequest("train_epoch() before configure()")
        syn = cfg.synaptic_delays
        if cfg.input_repeat > 1 and syn is not None and syn[0] is not None:
            raise BadRequest("train_epoch(): not for synaptic delays of duplicated inputs")
        return cfg, net

    def _quantised_config(self) -> ChipConfig | None:
        """Return the quantised configuration on the chip (rebuilt from the network after train_epoch)."""
        if self._stale:
            old = self._config
            assert old is not None and self._net is not None
            params = self._net.params()
            # train_epoch kept the layout of the configuration (no synaptic delays of duplicated
            # inputs): the network's arrays are the configuration's
            self._config = ChipConfig.unchecked(
                weights=[p["w"] for p in params],
                axonal_delays=[p["d_axo"] for p in params],
                synaptic_delays=[p["d_syn"] for p in params],
                dendritic_delays=[p["d_den"] for p in params],
                theta=old.theta,
                tau_m=old.tau_m,
                tau_s=old.tau_s,
                input_repeat=old.input_repeat,
            )
            self._stale = False
        return self._config

    def _current_hash(self) -> str:
        """Return the hash of the configuration on the chip (computed once; the caller holds the lock)."""
        cfg = self._quantised_config()
        if cfg is None:
            raise BadRequest("run() before configure()")
        if self._hash is None:
            self._hash = config_hash(cfg)
        return self._hash

    def run(self, inputs: FloatArray) -> RunResult:
        """Run one batch as one spike train.

        Parameters
        ----------
        inputs : numpy.ndarray
            ``[batch, n_inputs]`` input spike times (model units, >= 0 within the slot; +inf = none).

        Returns
        -------
        RunResult
            Recorded first-spike times of every layer (+inf: none recorded), health (dropped events,
            stall flag) and timing.

        Raises
        ------
        BadRequest
            Before ``configure`` or for inputs of the wrong shape or with NaN / negative times.
        """
        t0 = time.perf_counter()
        try:
            x = np.array(inputs, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"inputs: cannot convert to float64 ({exc})") from None
        with self._lock:
            h = self._current_hash()
            cfg, net, pattern = self._config, self._net, self._layer_pattern
            assert cfg is not None and net is not None
            self._check_inputs(x, cfg)
            counter = self.runs
            self.runs += 1
        t1 = time.perf_counter()
        out = hardware_forward(
            net, x, repeat=cfg.input_repeat, pattern=_arrays(pattern), noise=self.noise_params, seed=self._noise_seed,
            counter=counter,
        )  # fmt: skip
        t2 = time.perf_counter()
        health = Health(dropped_events=int(out["dropped_events"]), stall=out["stalled_from"] is not None)
        return RunResult(
            times=[np.asarray(t, dtype=np.float64) for t in out["times"]],
            health=health,
            timing=Timing(encode_s=t1 - t0, execute_s=t2 - t1),
            chip_id=self.chip_id,
            config_hash=h,
        )

    def _check_inputs(self, x: FloatArray, cfg: ChipConfig) -> None:
        if x.ndim != 2 or x.shape[1] != cfg.n_inputs:
            raise BadRequest(f"inputs: expected shape [batch, {cfg.n_inputs}], got {list(x.shape)}")
        if x.shape[0] > self.max_batch:
            raise BadRequest(f"inputs: batch {x.shape[0]} exceeds max_batch {self.max_batch}")
        if not (x >= 0).all():  # NaN or negative
            raise BadRequest("inputs: spike times must be >= 0 or +inf (no NaN, no negative times)")

    def train_epoch(
        self,
        trainer: Trainer,
        inputs: FloatArray,
        x: FloatArray,
        y: npt.NDArray[Any],
        batch: int,
        epoch: int,
        max_retries: int = 5,
        *,
        gradient_weights: str = "quantised",
        clamp_float_weights: bool = False,
    ) -> EpochSteps:
        """Train the steps of an epoch chip-in-the-loop in one core call (``Trainer.emulated_epoch``).

        For each mini-batch of ``batch`` consecutive rows the core writes the trainer's weights
        and delays, quantised on the chip's grid, runs the batch with the chip's noise (the next
        run counter), repeats a stalled run up to ``max_retries`` times and takes the step at the
        recorded times, with the gradients of the ideal model at the quantised parameters: the
        procedure of :class:`~delgrad_hw.training.ChipBackend`, without Python between the steps.

        Parameters
        ----------
        trainer : delgrad_rs.Trainer
            The trainer; the chip must hold a configuration of its network's layout and neuron
            parameters (e.g. written by :meth:`configure` of its shadow configuration).
        inputs : numpy.ndarray
            ``[n, n_inputs]`` input spike times sent to the chip (the epoch's samples in order).
        x : numpy.ndarray
            The trainer's inputs of those samples (``[n, n_inputs * input_repeat]``).
        y : numpy.ndarray
            Labels.
        batch : int
            Batch size.
        epoch : int
            Epoch (learning-rate schedule).
        max_retries : int, optional
            Repeats of a stalled run before the epoch stops at that batch.
        gradient_weights : {"quantised", "float"}, optional
            The parameters of the gradient: the quantised ones the chip ran, or the trainer's float ones.
        clamp_float_weights : bool, optional
            Clamp the trainer's float weights to the grid's weight range after every step.

        Returns
        -------
        dict
            ``steps`` (every step's result), ``retries``, ``dropped_events`` and ``stalled`` (the
            last batch stalled on every attempt; no step was taken for it).

        Raises
        ------
        BadRequest
            Before ``configure``, for inputs of the wrong shape or with NaN / negative times, or
            when the trainer's network has another layout or other neuron parameters.
        """
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise BadRequest(f"max_retries: expected an integer >= 0, got {max_retries!r}")
        x_chip = np.asarray(inputs, dtype=np.float64)
        with self._lock:
            cfg, net = self._trainer_layout()
            self._check_inputs(x_chip, cfg)
            try:
                out = trainer.emulated_epoch(
                    net, x_chip, x, y, batch, epoch, core_grid(self.resources), repeat=cfg.input_repeat,
                    pattern=_arrays(self._layer_pattern), noise=self.noise_params, seed=self._noise_seed,
                    counter=self.runs, max_retries=max_retries, gradient_weights=gradient_weights,  # type: ignore[arg-type]
                    clamp_float_weights=clamp_float_weights,
                )  # fmt: skip
            except ValueError as exc:
                raise BadRequest(f"trainer: {exc}") from None
            self.runs += int(out["runs"])
            if out["writes"]:
                # the network on the chip is the last one written; its configuration is rebuilt when asked for
                self._net, self.last_written_entries = out["chip"], int(out["written"])
                self._hash, self._stale = None, True
        return {
            "steps": out["steps"],
            "retries": int(out["retries"]),
            "dropped_events": int(out["dropped_events"]),
            "stalled": bool(out["stalled"]),
        }

    # ----------------------------------------------------------------------------------------------
    @property
    def placement(self) -> Placement | None:
        """The placement of the current configuration."""
        return self._placement

    @property
    def config(self) -> ChipConfig | None:
        """The quantised configuration on the chip."""
        with self._lock:
            return self._quantised_config()

    @property
    def network(self) -> CoreNetwork | None:
        """The ideal model of the configuration on the chip (a :class:`delgrad_rs.hardware.CoreNetwork`).

        Quantised weights and delays, the nominal threshold and time constants; the fixed pattern
        and the temporal noise are applied per run. None before ``configure``. The chip runs this
        object: read it, do not change it (``set_params``).
        """
        return self._net

    def layer_pattern(self) -> list[dict[str, FloatArray]] | None:
        """Return the fixed pattern of the placed network (per layer: offsets, time constants, row gains)."""
        return self._layer_pattern

    def _chip_network(self, q: ChipConfig) -> CoreNetwork:
        """Return the ideal model of a quantised configuration in the chip's layout (a copy of one template)."""
        layers = []
        assert q.axonal_delays is not None and q.synaptic_delays is not None and q.dendritic_delays is not None
        for layer, w in enumerate(q.weights):
            d: dict[str, Any] = {"w": w, "theta": q.theta, "tau_m": q.tau_m, "tau_s": q.tau_s}
            axo, syn, den = q.axonal_delays[layer], q.synaptic_delays[layer], q.dendritic_delays[layer]
            rep = q.input_repeat if layer == 0 else 1
            if rep > 1 and syn is not None:
                # per-channel synaptic delays: no sharing, axonal delays expanded to the channels
                axo = None if axo is None else np.repeat(axo, rep)
            elif rep > 1:
                d["delay_group"] = rep
            if axo is not None:
                d["d_axo"] = axo
            if syn is not None:
                d["d_syn"] = syn
            if den is not None:
                d["d_den"] = den
            layers.append(d)
        try:
            if self._net_template is None:
                self._net_template = CoreNetwork(layers, threads=self._threads)
                return self._net_template
            # a copy shares the template's executor: no new thread pool per configuration
            net = self._net_template.copy()
            net.set_params(layers)
            return net
        except ValueError as exc:
            raise BadRequest(f"config: {exc}") from None

    def _place_pattern(self, q: ChipConfig, p: Placement) -> list[dict[str, FloatArray]]:
        pat = self._pattern
        return [
            {
                "theta_offset": pat["theta_offset"][c],
                "tau_m": q.tau_m * pat["tau_m_factor"][c],
                "tau_s": q.tau_s * pat["tau_s_factor"][c],
                "gain_exc": pat["row_gain"][e],
                "gain_inh": pat["row_gain"][i],
            }
            for c, e, i in zip(p.circuits, p.exc_rows, p.inh_rows, strict=True)
        ]
