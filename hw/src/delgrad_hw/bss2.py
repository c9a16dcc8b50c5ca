"""BrainScaleS-2 facts (``docs/hardware.md``): resources, weight and delay quantisation, placement.

Everything here is pure bookkeeping shared by the emulator (:mod:`delgrad_hw.emulator`) and the
chip-in-the-loop trainer (:mod:`delgrad_hw.training`), which needs the quantised parameters the chip
ran to evaluate the gradients of the ideal model. The grid of a chip's resources is the core's
(:func:`core_grid`, :class:`delgrad_rs.hardware.Grid`).

Units: model time units of one neuron time constant (``tau_us`` = 6 us on BSS-2).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from delgrad_rs.hardware import Grid

from .chip import BadRequest, ChipConfig

__all__ = [
    "BSS2",
    "Bss2Resources",
    "Placement",
    "PlacementError",
    "core_grid",
    "place",
    "quantise_config",
    "quantise_delays",
    "quantise_weights",
]

FloatArray = npt.NDArray[np.float64]


class PlacementError(BadRequest):
    """A network does not fit on the chip; the message names the resource that ran out."""


@dataclass(frozen=True)
class Bss2Resources:
    """Resources and conversion constants of one BrainScaleS-2 chip.

    Attributes
    ----------
    neurons_per_hemisphere : int
        Neuron circuits per hemisphere (256); network neurons use hemisphere 0.
    rows_per_hemisphere : int
        Synapse rows per hemisphere (256); a signed input uses an excitatory and an inhibitory row.
    delay_units : int
        Delay units (128), each built from two neuron circuits of hemisphere 1.
    weight_scale : float
        Hardware weight = round(weight_scale * w) (30).
    weight_max : int
        Largest 6-bit weight magnitude (63).
    delay_offset_us, delay_step_us : float
        Delay of setting n: ``n * delay_step_us + delay_offset_us`` (2 us, 0.125 us).
    delay_min_setting, delay_max_setting : int
        Range of the setting n (50 .. 250, i.e. 8.25 .. 33.25 us).
    tau_us : float
        One model time unit in microseconds (tau_m = tau_s = 6 us).
    """

    neurons_per_hemisphere: int = 256
    rows_per_hemisphere: int = 256
    delay_units: int = 128
    weight_scale: float = 30.0
    weight_max: int = 63
    delay_offset_us: float = 2.0
    delay_step_us: float = 0.125
    delay_min_setting: int = 50
    delay_max_setting: int = 250
    tau_us: float = 6.0

    @property
    def delay_step(self) -> float:
        """Delay grid step in model units (0.125 us / 6 us = 1/48)."""
        return self.delay_step_us / self.tau_us

    @property
    def delay_range(self) -> tuple[float, float]:
        """Smallest and largest delay in model units (1.375 .. 5.5417)."""
        return core_grid(self).delay_range


#: The reference chip.
BSS2 = Bss2Resources()


@functools.lru_cache(maxsize=8)
def core_grid(r: Bss2Resources = BSS2) -> Grid:
    """Return the weight and delay grid of chips with resources ``r`` in the core.

    Parameters
    ----------
    r : Bss2Resources
        Chip constants.

    Returns
    -------
    delgrad_rs.hardware.Grid
        The grid (``Trainer.quantised_network`` and ``Trainer.emulated_epoch`` quantise on it).
    """
    return Grid(
        weight_scale=r.weight_scale, weight_max=float(r.weight_max), delay_offset=r.delay_offset_us,
        delay_step=r.delay_step_us, delay_min=float(r.delay_min_setting), delay_max=float(r.delay_max_setting),
        time_unit=r.tau_us,
    )  # fmt: skip


def quantise_weights(w: npt.ArrayLike, res: Bss2Resources = BSS2) -> FloatArray:
    """Hardware weights in model units: ``clip(round(30 w), -63, 63) / 30`` (the core's grid).

    Rounding is half to even; the result is exactly representable as ``k / 30`` for an integer ``k``
    in ``[-63, 63]``.

    Parameters
    ----------
    w : array_like
        Finite float weights.
    res : Bss2Resources
        Chip constants.

    Returns
    -------
    numpy.ndarray
        Quantised weights (float64, same shape).

    Raises
    ------
    delgrad_rs.InvalidValueError
        A weight is not finite.
    """
    return core_grid(res).weights(w)


def delay_settings(d: npt.ArrayLike, res: Bss2Resources = BSS2) -> npt.NDArray[np.int64]:
    """Delay-unit settings n (integers in ``[50, 250]``) nearest to delays ``d`` (model units).

    Parameters
    ----------
    d : array_like
        Finite delays in model units.
    res : Bss2Resources
        Chip constants.

    Returns
    -------
    numpy.ndarray of int64
        ``clip(round((d tau_us - 2 us) / 0.125 us), 50, 250)`` (the core's grid).

    Raises
    ------
    delgrad_rs.InvalidValueError
        A delay is not finite.
    """
    return core_grid(res).delay_settings(d).astype(np.int64)


def quantise_delays(d: npt.ArrayLike, res: Bss2Resources = BSS2) -> FloatArray:
    """Delays on the delay-unit grid in model units: ``(n * 0.125 us + 2 us) / 6 us`` (the core's grid).

    Parameters
    ----------
    d : array_like
        Finite delays in model units.
    res : Bss2Resources
        Chip constants.

    Returns
    -------
    numpy.ndarray
        Quantised delays (float64, same shape), inside :attr:`Bss2Resources.delay_range`.

    Raises
    ------
    delgrad_rs.InvalidValueError
        A delay is not finite.
    """
    return core_grid(res).delays(d)


def quantise_config(config: ChipConfig, res: Bss2Resources = BSS2) -> ChipConfig:
    """Return the configuration a BSS-2 chip actually runs: quantised weights and delays.

    Parameters
    ----------
    config : ChipConfig
        Float configuration.
    res : Bss2Resources
        Chip constants.

    Returns
    -------
    ChipConfig
        Weights quantised with :func:`quantise_weights`, every present delay with
        :func:`quantise_delays`; neuron parameters unchanged.
    """

    def q(lst: list[FloatArray | None] | None) -> list[FloatArray | None]:
        if lst is None:
            return [None] * config.n_layers
        return [None if d is None else quantise_delays(d, res) for d in lst]

    # A valid configuration quantises to a valid one (same shapes, finite values, delays in range):
    # no second round of the ChipConfig checks.
    return ChipConfig.unchecked(
        weights=[quantise_weights(w, res) for w in config.weights],
        axonal_delays=q(config.axonal_delays),
        synaptic_delays=q(config.synaptic_delays),
        dendritic_delays=q(config.dendritic_delays),
        theta=config.theta,
        tau_m=config.tau_m,
        tau_s=config.tau_s,
        input_repeat=config.input_repeat,
    )


@dataclass(frozen=True)
class Placement:
    """Where a network lives on the chip.

    Attributes
    ----------
    circuits : list of numpy.ndarray
        Per layer, the neuron circuit (hemisphere 0) of every neuron.
    exc_rows, inh_rows : list of numpy.ndarray
        Per layer, the excitatory and inhibitory synapse row of every input channel.
    delay_units : int
        Delay units used (one per axonal delay group).
    rows : int
        Synapse rows used.
    """

    circuits: list[npt.NDArray[np.int64]]
    exc_rows: list[npt.NDArray[np.int64]]
    inh_rows: list[npt.NDArray[np.int64]]
    delay_units: int
    rows: int


def place(config: ChipConfig, res: Bss2Resources = BSS2, future_hardware: bool = False) -> Placement:
    """Place a network: neurons on hemisphere 0, two rows per input channel, a delay unit per delay.

    Network neurons take consecutive circuits of hemisphere 0 in layer order; every source of spikes
    (input channel of the first layer, neuron of a hidden layer) drives an excitatory and an inhibitory
    synapse row of hemisphere 0; every axonal delay group uses one delay unit (two circuits of
    hemisphere 1). Synaptic and dendritic delays do not exist on BSS-2; with ``future_hardware`` they
    are assumed to come with their own per-synapse / per-neuron delay elements.

    Parameters
    ----------
    config : ChipConfig
        The network.
    res : Bss2Resources
        Chip resources.
    future_hardware : bool
        Allow synaptic and dendritic delays.

    Returns
    -------
    Placement
        The placement.

    Raises
    ------
    PlacementError
        Naming the resource that ran out (neuron circuits, synapse rows, delay units) or the delay kind
        the chip lacks.
    """
    for name, lst in (("synaptic", config.synaptic_delays), ("dendritic", config.dendritic_delays)):
        if not future_hardware and lst is not None and any(d is not None for d in lst):
            raise PlacementError(
                f"{name}_delays: BrainScaleS-2 has only axonal (per-neuron) delays; "
                "pass future_hardware=True to emulate per-synapse/per-neuron delay elements"
            )
    n_neurons = sum(config.layer_sizes)
    if n_neurons > res.neurons_per_hemisphere:
        raise PlacementError(
            f"neuron circuits: the network has {n_neurons} neurons but a hemisphere has "
            f"{res.neurons_per_hemisphere} neuron circuits"
        )
    channels = [int(w.shape[1]) for w in config.weights]
    rows = 2 * sum(channels)
    if rows > res.rows_per_hemisphere:
        raise PlacementError(
            f"synapse rows: {sum(channels)} signed inputs need {rows} synapse rows (excitatory + inhibitory) "
            f"but a hemisphere has {res.rows_per_hemisphere}"
        )
    axo = config.axonal_delays or [None] * config.n_layers
    units = sum(int(d.size) for d in axo if d is not None)
    if units > res.delay_units:
        raise PlacementError(f"delay units: the network needs {units} axonal delays but the chip has {res.delay_units}")
    circuits, exc, inh = [], [], []
    c = r = 0
    for size, n_in in zip(config.layer_sizes, channels, strict=True):
        circuits.append(np.arange(c, c + size, dtype=np.int64))
        exc.append(np.arange(r, r + 2 * n_in, 2, dtype=np.int64))
        inh.append(np.arange(r + 1, r + 2 * n_in, 2, dtype=np.int64))
        c += size
        r += 2 * n_in
    return Placement(circuits, exc, inh, units, rows)
