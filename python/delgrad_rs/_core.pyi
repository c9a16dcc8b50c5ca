"""Type stubs of the compiled extension ``delgrad_rs._core`` (PyO3 bindings of the Rust core).

Every function converts array arguments with ``numpy.asarray`` (float or integer dtypes, any
memory layout; other dtypes raise ``TypeError``), releases the GIL while the core computes and
returns owned float64 (or int64) arrays. Errors of the core raise the exception classes below;
their messages name the offending argument.
"""

from collections.abc import Sequence
from typing import Any, Final, Literal, TypedDict, final

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "DelgradError",
    "ShapeError",
    "InvalidValueError",
    "OptionError",
    "DivergedError",
    "AllocationError",
    "__version__",
    "T_EARLY",
    "T_LATE",
    "Network",
    "Trainer",
    "Grid",
    "changed_entries",
    "init_network",
    "yin_yang",
    "encode_times",
    "loss_and_grad",
    "default_threads",
    "hardware_forward",
    "chip_pattern",
    "hardware_noise_defaults",
    "default_bump_limits",
    "epoch_totals",
]

__version__: Final[str]
T_EARLY: Final[float]
T_LATE: Final[float]

class DelgradError(RuntimeError):
    """Base class of every error raised by delgrad_rs."""

class ShapeError(DelgradError, ValueError):
    """An array has the wrong shape or number of dimensions."""

class InvalidValueError(DelgradError, ValueError):
    """A value is outside its domain (NaN, -inf, negative delay, ...)."""

class OptionError(DelgradError, ValueError):
    """An option or key is unknown or inconsistent."""

class DivergedError(DelgradError, RuntimeError):
    """Training produced non-finite parameters, gradients or losses."""

class AllocationError(DelgradError, MemoryError):
    """A size (of a layer, a batch, a chip) needs more memory than can be had; names the argument."""

_Method = Literal["auto", "bracket"]
_LossKind = Literal["mse", "ce", "cross_entropy"]
_TieRule = Literal["wrong", "first"]
_GradientSlope = Literal["measured", "nominal"]
_GradientWeights = Literal["quantised", "float"]
_DelayParamKind = Literal["sigmoid", "clip"]

class _LayerGrad(TypedDict):
    w: NDArray[np.float64]
    theta: NDArray[np.float64]
    d_syn: NDArray[np.float64]
    d_axo: NDArray[np.float64]
    d_den: NDArray[np.float64]

class _BackwardResult(TypedDict):
    layers: list[_LayerGrad]
    input: NDArray[np.float64]
    invalid: list[int]
    clipped: list[int]

class _StepResult(TypedDict):
    loss: float
    correct: int
    batch: int
    accuracy: float
    silent_samples: int
    silent_fraction: list[float]
    bumped: int | None
    invalid: list[int]
    clipped: list[int]

class _EpochResult(TypedDict):
    loss: float
    accuracy: float
    samples: int
    bumps: int
    silent_fraction: list[float]

class _EvalResult(TypedDict):
    loss: float
    accuracy: float
    correct: int
    samples: int
    silent_samples: int
    silent_fraction: list[float]
    output_times: NDArray[np.float64]

class _LossResult(TypedDict):
    loss: float
    per_sample: NDArray[np.float64]
    dl_dt: NDArray[np.float64]
    predicted: NDArray[np.int64]
    correct: int
    silent: int

@final
class Network:
    """A feed-forward network of first-spike-time LIF layers.

    Parameters
    ----------
    layers : list of dict
        One dict per layer with ``w`` ``[n_out, n_in]`` (required), ``theta`` (number or
        ``[n_out]``, default 1), ``tau_m`` (default 2), ``tau_s`` (default 1), ``d_syn``
        ``[n_out, n_in / delay_group]``, ``d_axo`` ``[n_in / delay_group]``, ``d_den`` ``[n_out]``
        (absent or None: no delay of that kind) and ``delay_group`` (default 1).
    threads : int or None
        Worker threads of this object's executor; None or 0 uses every core.

    Several Python threads may use a network at once: a call computes with the parameters it
    started with; :meth:`set_params` replaces them for later calls. Ctrl-C during a long call
    raises ``KeyboardInterrupt``.
    """

    def __new__(cls, layers: list[dict[str, Any]], *, threads: int | None = None) -> Network: ...
    @property
    def sizes(self) -> list[int]:
        """Layer sizes ``[n_in, n_1, ..., n_L]``."""
    @property
    def threads(self) -> int:
        """Worker threads of the executor."""
    def __len__(self) -> int: ...
    def forward(self, x: ArrayLike, threads: int | None = None, method: _Method = "auto") -> list[NDArray[np.float64]]:
        """First-spike times of every layer, ``[batch, n_l]`` each, +inf for silent neurons.

        ``threads`` applies to this call only (None: the network's threads).
        """
    def backward(
        self,
        x: ArrayLike,
        times: Sequence[ArrayLike],
        dl_dout: ArrayLike,
        max_dw_norm: float | None = None,
        check_given_times: bool = False,
        method: _Method = "auto",
    ) -> _BackwardResult:
        """Exact gradients at the given spike times (summed over the batch) and dL/dt of the inputs."""
    def params(self) -> list[dict[str, Any]]:
        """Per-layer parameters as dicts of numpy arrays (absent delay kinds are None)."""
    def set_params(self, layers: list[dict[str, Any]]) -> None:
        """Replaces every parameter (same dict schema as the constructor)."""
    def copy(self) -> Network:
        """An independent copy sharing the executor."""

@final
class Grid:
    """A chip's weight and delay grid (``delgrad_hw.bss2`` calls it; BSS-2: 30, 63, 2.0, 0.125, 50, 250, 6.0).

    Weights ``clip(round_half_even(weight_scale w), -weight_max, weight_max) / weight_scale``;
    delays ``(n delay_step + delay_offset) / time_unit`` with ``n = clip(round_half_even((d
    time_unit - delay_offset) / delay_step), delay_min, delay_max)``. Every value must be finite;
    scales, step and unit > 0, ``weight_max`` >= 0, ``delay_min`` <= ``delay_max`` (ValueError
    naming ``grid.<argument>`` otherwise).
    """

    def __new__(
        cls,
        *,
        weight_scale: float,
        weight_max: float,
        delay_offset: float,
        delay_step: float,
        delay_min: float,
        delay_max: float,
        time_unit: float,
    ) -> Grid: ...
    def weights(self, w: ArrayLike) -> NDArray[np.float64]:
        """The weights ``w`` (any shape) on the grid; InvalidValueError naming ``w`` if one is not finite."""

    def delays(self, d: ArrayLike) -> NDArray[np.float64]:
        """The delays ``d`` (model units, any shape) on the grid; InvalidValueError naming ``d`` if not finite."""

    def delay_settings(self, d: ArrayLike) -> NDArray[np.float64]:
        """The settings ``n`` (integral floats) of the delays ``d``; InvalidValueError naming ``d`` if not finite."""

    @property
    def delay_range(self) -> tuple[float, float]:
        """The smallest and the largest delay on the grid (model units)."""

    @property
    def weight_limit(self) -> float:
        """The largest weight magnitude on the grid, ``weight_max / weight_scale`` (BSS-2: 63/30 = 2.1)."""

def changed_entries(old: ArrayLike, new: ArrayLike) -> int:
    """The number of entries in which ``old`` and ``new`` differ (what a chip holding ``old`` rewrites for ``new``).

    ShapeError naming ``new`` if the shapes differ.
    """

@final
class Trainer:
    """Adam training with StepLR, max_dw_norm and weight bumping (the reference recipe).

    Omitted options take the core's reference values: MSE with ``delta`` 0.2 (cross-entropy
    ``xi`` 0.2, ``alpha`` 0.005, ``beta`` 1), ``silent_loss`` 100, ``lr_weights`` 0.01,
    ``lr_delays`` 0.003, ``step_size`` 20, ``gamma`` 0.95, Adam (0.9, 0.999, 1e-8),
    ``max_dw_norm`` 0.2 (None: off), ``bump`` 5e-4, ``bump_limits`` :func:`default_bump_limits`
    (one fraction in [0, 1] per layer), the sigmoid delay parametrisation with ``delay_shift`` 0
    and ``delay_scale`` 1. ``tie_rule`` classifies a tie between the earliest output spikes in
    every accuracy the trainer reports: ``"wrong"`` (a tie is wrong) or ``"first"`` (the lowest
    tied class, as the reference code); silent outputs are wrong under both. ``gradient_slope`` is
    the slope the gradients at given (measured) times divide by: ``"measured"`` (the ideal
    potential's, at the given time) or ``"nominal"`` (the slope formula with the nominal threshold
    in place of the potential, ``rho + (u(t) - theta) / tau_m``; docs/hardware.md). An argument of
    the wrong type is a ``TypeError``, one outside its domain an ``InvalidValueError``; both name
    the argument and the expected form.

    Several Python threads may share a trainer: each call waits, with the GIL released, until the
    calls of other threads on it have finished. Ctrl-C during a long call raises
    ``KeyboardInterrupt`` and leaves the trainer as it was before the call (unless the call was
    already storing its result, in its last fraction of a millisecond).
    """

    def __new__(
        cls,
        network: Network,
        *,
        loss: _LossKind = "mse",
        delta: float = ...,
        xi: float = ...,
        alpha: float = ...,
        beta: float = ...,
        silent_loss: float = ...,
        tie_rule: _TieRule = "wrong",
        lr_weights: float = ...,
        lr_delays: float = ...,
        step_size: int = ...,
        gamma: float = ...,
        adam_beta1: float = ...,
        adam_beta2: float = ...,
        adam_eps: float = ...,
        max_dw_norm: float | None = ...,
        bump: float = ...,
        bump_limits: list[float] | None = None,
        delay_param: _DelayParamKind = "sigmoid",
        delay_shift: float = ...,
        delay_scale: float = ...,
        method: _Method = "auto",
        gradient_slope: _GradientSlope = "measured",
        threads: int | None = None,
    ) -> Trainer: ...
    @property
    def threads(self) -> int:
        """Worker threads of the executor."""
    def network(self) -> Network:
        """A copy of the network with the current parameters."""
    def learning_rates(self, epoch: int) -> tuple[float, float]:
        """Learning rates (weights, delays) in ``epoch``."""
    def step(self, x: ArrayLike, y: ArrayLike, epoch: int) -> _StepResult:
        """One step on a batch: forward, loss, backward, stabilisers, Adam."""
    def step_from_times(
        self, x: ArrayLike, times: Sequence[ArrayLike], y: ArrayLike, epoch: int, at: Network | None = None
    ) -> _StepResult:
        """One step from given (e.g. measured) spike times of every layer.

        With ``at`` (e.g. the quantised network a chip ran), the gradients of the ideal model with
        ``at``'s parameters are applied to the trainer's float parameters (straight-through).
        """
    def quantised_network(self, like: Network, grid: Grid) -> tuple[Network, int]:
        """The trainer's network with its weights and delays on ``grid``, and how many differ from ``like``.

        The count is of the weights and delays that differ from ``like``'s, which must have the same
        layout (sizes, delay kinds and groups); the new network shares ``like``'s threads.
        """
    def emulated_step(
        self,
        chip: Network,
        groups: ArrayLike,
        x: ArrayLike,
        y: ArrayLike,
        epoch: int,
        *,
        at: Network | None = None,
        repeat: int = 1,
        pattern: Sequence[dict[str, ArrayLike]] | None = None,
        noise: dict[str, float] | None = None,
        seed: int = 0,
        counter: int = 0,
    ) -> _EmulatedStep:
        """A chip-in-the-loop step on an emulated chip in one call.

        One run of :func:`hardware_forward` of ``chip`` on ``groups`` (same ``repeat``, ``pattern``,
        ``noise``, ``seed``, ``counter``), then, unless the run stalled, ``step_from_times(x,
        recorded times, y, epoch, at=at)`` (``at`` None: ``chip``). Returns the run's lost events,
        its stall sample and the step's result (None when the run stalled: no step was taken).
        """
    def emulated_epoch(
        self,
        chip: Network,
        groups: ArrayLike,
        x: ArrayLike,
        y: ArrayLike,
        batch: int,
        epoch: int,
        grid: Grid,
        *,
        repeat: int = 1,
        pattern: Sequence[dict[str, ArrayLike]] | None = None,
        noise: dict[str, float] | None = None,
        seed: int = 0,
        counter: int = 0,
        max_retries: int = 5,
        gradient_weights: _GradientWeights = "quantised",
        clamp_float_weights: bool = False,
    ) -> _EmulatedEpoch:
        """The chip-in-the-loop steps of one epoch on an emulated chip in one call.

        For each mini-batch of ``batch`` consecutive rows of ``groups`` / ``x`` / ``y`` (the epoch's
        samples in training order): ``quantised_network(chip, grid)`` becomes the network on the
        chip, then ``emulated_step`` of it (``at`` None) with the next run ``counter`` (from
        ``counter``), a stalled run repeated up to ``max_retries`` times. The same results as those
        calls one by one. Returns every step's result (``steps``), the configurations written
        (``writes``), the run counter's advance (``runs``), ``retries``, ``dropped_events``, the last
        configuration's changed entries (``written``), the network on the chip at the end (``chip``)
        and whether the last batch stalled on every attempt (``stalled``; the epoch stopped there,
        without its step). ``gradient_weights="float"`` takes each step's gradient at the trainer's
        float parameters instead of the chip's (``at`` = the trainer's network);
        ``clamp_float_weights`` calls :meth:`clamp_weights` with ``grid`` after every step.
        """
    def clamp_weights(self, grid: Grid) -> None:
        """Clamp every trained weight to ``[-grid.weight_limit, grid.weight_limit]`` (delays unchanged)."""
    def train_epoch(self, x: ArrayLike, y: ArrayLike, order: ArrayLike, batch: int, epoch: int) -> _EpochResult:
        """One epoch in mini-batches of ``batch`` in the sample order ``order``."""
    def evaluate(self, x: ArrayLike, y: ArrayLike) -> _EvalResult:
        """Loss, accuracy, silent fractions and output times on a data set."""
    def state(self) -> dict[str, Any]:
        """Trained tensors with their Adam state, the next bump and the last bumped layer."""
    def set_state(self, state: dict[str, Any]) -> None:
        """Restores a ``state()`` snapshot exactly."""

def init_network(
    n_in: int,
    layers: list[dict[str, Any]],
    *,
    delay_param: _DelayParamKind = "sigmoid",
    delay_shift: float = ...,
    delay_scale: float = ...,
    seed: int = 0,
    threads: int | None = None,
) -> Network:
    """A randomly initialised network (numpy ``RandomState(seed)`` draws).

    ``layers`` holds one dict per layer with ``size``, ``weight_mean`` and ``weight_std``
    (required) and ``tau_m``, ``tau_s``, ``theta``, ``delay_kinds``, ``delay_group``,
    ``delay_init_mean``, ``delay_init_std`` (absent: the reference neuron, no delays, delay
    parameters N(0, 0.25), groups of 1).
    """

def yin_yang(split: str) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """The published Yin-Yang split (``train``, ``validation`` or ``test``), bit-exact."""

def encode_times(x: ArrayLike, t_early: float = ..., t_late: float = ...) -> NDArray[np.float64]:
    """Spike times ``t_early + x (t_late - t_early)``."""

def loss_and_grad(
    out_times: ArrayLike,
    labels: ArrayLike,
    loss: _LossKind = "mse",
    *,
    delta: float = ...,
    xi: float = ...,
    alpha: float = ...,
    beta: float = ...,
    silent_loss: float = ...,
    strict: bool = False,
    tie_rule: _TieRule = "wrong",
) -> _LossResult:
    """Per-sample losses and dL/dt of output spike times (silent samples: constant, zero gradient).

    ``predicted`` is the earliest output per sample (-1: silent, or a tie between the earliest
    outputs under ``tie_rule="wrong"``; ``"first"`` takes the lowest tied class).
    """

def default_threads() -> int:
    """Number of threads ``threads=None`` selects."""

def default_bump_limits(n_layers: int) -> list[float]:
    """The reference bump limits of ``n_layers`` layers (0.3 per hidden layer, 0 for the output), the
    ``Trainer``'s ``bump_limits=None``."""

def epoch_totals(steps: Sequence[_StepResult]) -> _EpochResult:
    """The totals of an epoch's step results, in order, as ``Trainer.train_epoch`` reports them: the
    sample-weighted mean loss and silent fractions, the accuracy, the samples and the bumps."""

class _HardwareRun(TypedDict):
    times: list[NDArray[np.float64]]
    dropped_events: int
    stalled_from: int | None

class _EmulatedStep(TypedDict):
    dropped_events: int
    stalled_from: int | None
    step: _StepResult | None

class _EmulatedEpoch(TypedDict):
    steps: list[_StepResult]
    writes: int
    runs: int
    retries: int
    dropped_events: int
    written: int
    stalled: bool
    chip: Network

class _ChipPattern(TypedDict):
    theta_offset: NDArray[np.float64]
    tau_m_factor: NDArray[np.float64]
    tau_s_factor: NDArray[np.float64]
    row_gain: NDArray[np.float64]

def hardware_forward(
    network: Network,
    x: ArrayLike,
    *,
    repeat: int = 1,
    pattern: Sequence[dict[str, ArrayLike]] | None = None,
    noise: dict[str, float] | None = None,
    seed: int = 0,
    counter: int = 0,
) -> _HardwareRun:
    """One run of the noisy BrainScaleS-2 forward pass (``delgrad::hardware::noisy_forward``).

    ``x`` is ``[batch, n_in / repeat]`` (each input fed ``repeat`` times); ``pattern`` is one dict
    per layer with ``theta_offset``, ``tau_m``, ``tau_s`` (``[n_out]``), ``gain_exc``, ``gain_inh``
    (``[n_in]``), missing keys meaning a perfect chip; ``noise`` overrides the keys of
    :func:`hardware_noise_defaults`; (``seed``, ``counter``) key the run's noise. Returns the
    recorded times of every layer, the number of lost events and the stall sample (or None).
    """

def chip_pattern(
    circuits: int,
    rows: int,
    *,
    seed: int,
    theta_offset_mean: float = ...,
    theta_offset_std: float = ...,
    tau_m_mismatch: float = ...,
    tau_s_mismatch: float = ...,
    gain_mismatch: float = ...,
) -> _ChipPattern:
    """The fixed pattern of a chip (per circuit: threshold offset, tau factors; per row: gain)."""

def hardware_noise_defaults() -> dict[str, float]:
    """The reference BSS-2 temporal-noise parameters in model units."""
