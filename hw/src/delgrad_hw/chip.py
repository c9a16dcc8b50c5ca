"""The chip interface every backend implements (emulator, remote chip, test doubles).

A *chip* runs the forward pass of a layered spiking network in time-to-first-spike coding. The host
configures it with a :class:`ChipConfig` (model units: weights, delays, neuron parameters), runs batches
of input spike times on it and gets back the first-spike times of every layer together with health
counters and timing (:class:`RunResult`).

Conventions
-----------
* Times are float64 in model units; ``+inf`` means "no spike".
* ``weights[l]`` has shape ``[n_out, n_in]`` (one row per postsynaptic neuron).
* Input duplication: with ``input_repeat = r`` the first layer sees every one of the ``n_groups``
  network inputs ``r`` times; ``weights[0]`` then has ``n_groups * r`` columns and column ``j`` belongs
  to input group ``j // r`` (the copies of one input are adjacent, see :func:`expand_inputs`).
  ``run`` takes inputs of shape ``[batch, n_groups]``.
* ``axonal_delays[l]`` holds one delay per input *group* of layer ``l`` (``n_groups`` for the first
  layer, ``n_in`` for the others), shared by the copies of a duplicated input.
* ``synaptic_delays[l]`` has the shape of ``weights[l]``; ``dendritic_delays[l]`` has shape ``[n_out]``.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from delgrad_rs.hardware import changed_entries

__all__ = [
    "PROTOCOL_VERSION",
    "STATUSES",
    "BadRequest",
    "Chip",
    "ChipConfig",
    "ChipError",
    "ChipInfo",
    "ChipMismatch",
    "ChipTimeout",
    "Health",
    "LinkError",
    "ReportsWrites",
    "RunResult",
    "Timing",
    "Unauthorized",
    "config_entries",
    "config_hash",
    "count_changed_entries",
    "error_for_status",
    "expand_inputs",
]

#: Version of the chip interface and of the wire protocol (:mod:`delgrad_hw.protocol`).
PROTOCOL_VERSION: Final[int] = 1

#: Status strings carried in RESULT and ERROR messages.
STATUSES: Final[tuple[str, ...]] = (
    "OK",
    "TIMEOUT",
    "LINK_ERROR",
    "CHIP_MISMATCH",
    "BAD_REQUEST",
    "UNAUTHORIZED",
    "CHIP_ERROR",
)

FloatArray = npt.NDArray[np.float64]


# --------------------------------------------------------------------------------------------------
# Exceptions
# --------------------------------------------------------------------------------------------------
class ChipError(RuntimeError):
    """Base class of every chip failure.

    Parameters
    ----------
    message : str
        Human-readable description.
    status : str, optional
        Protocol status string; defaults to the class attribute ``status``.

    Attributes
    ----------
    status : str
        One of :data:`STATUSES` (``"CHIP_ERROR"`` for a generic failure).
    """

    status: str = "CHIP_ERROR"

    def __init__(self, message: str = "", status: str | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class ChipTimeout(ChipError):
    """A work unit exceeded its deadline, or the chip (server) did not answer in time."""

    status = "TIMEOUT"


class LinkError(ChipError):
    """The link to the chip failed (connection lost and not recovered, FPGA link errors)."""

    status = "LINK_ERROR"


class ChipMismatch(ChipError):
    """The work would run on a different chip than the one the experiment started on."""

    status = "CHIP_MISMATCH"


class BadRequest(ChipError, ValueError):
    """The request was malformed or does not fit the chip (shapes, limits, unknown configuration)."""

    status = "BAD_REQUEST"


class Unauthorized(ChipError, PermissionError):
    """The client did not authenticate, or the token was wrong."""

    status = "UNAUTHORIZED"


_STATUS_TO_ERROR: dict[str, type[ChipError]] = {
    "TIMEOUT": ChipTimeout,
    "LINK_ERROR": LinkError,
    "CHIP_MISMATCH": ChipMismatch,
    "BAD_REQUEST": BadRequest,
    "UNAUTHORIZED": Unauthorized,
    "CHIP_ERROR": ChipError,
}


def error_for_status(status: str, message: str) -> ChipError:
    """Build the exception that corresponds to a protocol status.

    Parameters
    ----------
    status : str
        A status from :data:`STATUSES` other than ``"OK"``; unknown statuses give a plain
        :class:`ChipError`.
    message : str
        Message of the exception.

    Returns
    -------
    ChipError
        An instance of the matching subclass, with ``status`` set.
    """
    cls = _STATUS_TO_ERROR.get(status, ChipError)
    return cls(message, status=status if status in _STATUS_TO_ERROR else "CHIP_ERROR")


# --------------------------------------------------------------------------------------------------
# Plain data
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChipInfo:
    """Identity and limits of a chip.

    Attributes
    ----------
    protocol_version : int
        Interface/protocol version the chip speaks (:data:`PROTOCOL_VERSION`).
    chip_id : str
        Identifier of the physical (or emulated) chip; training must not change chips silently.
    calibration_id : str
        Identifier of the calibration loaded on the chip.
    limits : dict of str to int
        Resource limits, e.g. ``max_neurons``, ``max_inputs``, ``max_batch``.
    """

    protocol_version: int
    chip_id: str
    calibration_id: str
    limits: dict[str, int] = field(default_factory=dict)


@dataclass
class Health:
    """Health counters of one run.

    Attributes
    ----------
    dropped_events : int
        Spike events lost on the link.
    retries : int
        Runs repeated because of a failed sanity check.
    stall : bool
        Whether the FPGA stalled (events ended before the last sample slot).
    link_errors : int
        Link errors counted during the run.
    """

    dropped_events: int = 0
    retries: int = 0
    stall: bool = False
    link_errors: int = 0


@dataclass
class Timing:
    """Wall-clock durations (seconds) of the phases of one run.

    Attributes
    ----------
    encode_s : float
        Encoding the input spike train (and decoding the recorded events).
    commit_s : float
        Writing configuration to the chip (including a reinit by the server).
    execute_s : float
        Executing the experiment.
    """

    encode_s: float = 0.0
    commit_s: float = 0.0
    execute_s: float = 0.0


@dataclass
class RunResult:
    """Result of :meth:`Chip.run`.

    Attributes
    ----------
    times : list of numpy.ndarray
        First-spike times of every layer, ``[batch, n_l]`` float64, ``+inf`` for silent neurons.
    health : Health
        Health counters.
    timing : Timing
        Phase durations.
    chip_id : str
        Chip that produced the result.
    config_hash : str
        Hash of the configuration the result was produced with.
    """

    times: list[FloatArray]
    health: Health
    timing: Timing
    chip_id: str
    config_hash: str


def _as_float_array(value: object, name: str, ndim: int) -> FloatArray:
    try:
        arr = np.array(value, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: cannot convert to a float64 array ({exc})") from None
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError(f"{name}: contains NaN")
    return arr


def _check_int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_scalar(value: object, name: str, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise ValueError(f"{name}: expected a real number, got {type(value).__name__}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name}: must be finite, got {out}")
    if positive and out <= 0.0:
        raise ValueError(f"{name}: must be > 0, got {out}")
    return out


@dataclass
class ChipConfig:
    """Configuration of a layered network on a chip (model units).

    Parameters
    ----------
    weights : list of numpy.ndarray
        One ``[n_out, n_in]`` float64 matrix per layer; consecutive layers must chain
        (``weights[l].shape[1] == weights[l - 1].shape[0]``).
    axonal_delays : list of (numpy.ndarray or None), optional
        Per layer, ``None`` or one delay per input group (see the module docstring). ``None`` (the
        whole list) means no axonal delays anywhere.
    synaptic_delays : list of (numpy.ndarray or None), optional
        Per layer, ``None`` or an array shaped like ``weights[l]``.
    dendritic_delays : list of (numpy.ndarray or None), optional
        Per layer, ``None`` or an array of shape ``[n_out]``.
    theta : float
        Firing threshold (> 0).
    tau_m : float
        Membrane time constant (> 0).
    tau_s : float
        Synaptic time constant (> 0).
    input_repeat : int
        Input duplication factor of the first layer (>= 1).

    Raises
    ------
    ValueError
        If a shape does not fit, a value is NaN, a delay is negative or infinite, or a scalar is out of
        range; the message names the offending field.

    Notes
    -----
    All arrays are copied to float64 in ``__post_init__``; the per-layer delay lists are normalised to
    lists of length ``n_layers``.
    """

    weights: list[FloatArray]
    axonal_delays: list[FloatArray | None] | None = None
    synaptic_delays: list[FloatArray | None] | None = None
    dendritic_delays: list[FloatArray | None] | None = None
    theta: float = 1.0
    tau_m: float = 1.0
    tau_s: float = 1.0
    input_repeat: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.weights, list | tuple) or len(self.weights) == 0:
            raise ValueError("weights: expected a non-empty list of [n_out, n_in] arrays")
        if isinstance(self.input_repeat, bool) or not isinstance(self.input_repeat, int | np.integer):
            raise ValueError(f"input_repeat: expected an int, got {type(self.input_repeat).__name__}")
        self.input_repeat = int(self.input_repeat)
        if self.input_repeat < 1:
            raise ValueError(f"input_repeat: must be >= 1, got {self.input_repeat}")
        self.theta = _check_scalar(self.theta, "theta", positive=True)
        self.tau_m = _check_scalar(self.tau_m, "tau_m", positive=True)
        self.tau_s = _check_scalar(self.tau_s, "tau_s", positive=True)

        self.weights = weights = _checked_weights(self.weights, self.input_repeat)
        groups = [self.n_groups(layer) for layer in range(len(weights))]
        self.axonal_delays = _checked_delays("axonal_delays", self.axonal_delays, [(g,) for g in groups])
        self.synaptic_delays = _checked_delays("synaptic_delays", self.synaptic_delays, [w.shape for w in weights])
        neurons = [(w.shape[0],) for w in weights]
        self.dendritic_delays = _checked_delays("dendritic_delays", self.dendritic_delays, neurons)

    @classmethod
    def unchecked(
        cls,
        weights: list[FloatArray],
        axonal_delays: list[FloatArray | None],
        synaptic_delays: list[FloatArray | None],
        dendritic_delays: list[FloatArray | None],
        theta: float,
        tau_m: float,
        tau_s: float,
        input_repeat: int,
    ) -> ChipConfig:
        """Build a configuration from already valid parts, without the checks and copies of ``__post_init__``.

        For hot paths whose inputs are valid by construction (e.g. :func:`delgrad_hw.bss2.quantise_config`
        of a valid configuration, or parameters that passed the checks once and only changed values).
        The arrays are used as given (not copied).

        Parameters
        ----------
        weights : list of numpy.ndarray
            Float64 ``[n_out, n_in]`` matrices that chain.
        axonal_delays, synaptic_delays, dendritic_delays : list of (numpy.ndarray or None)
            Normalised per-layer lists (length ``n_layers``) of float64 arrays of the documented shapes.
        theta, tau_m, tau_s : float
            Finite positive neuron parameters.
        input_repeat : int
            Input duplication (>= 1, divides the first layer's columns).

        Returns
        -------
        ChipConfig
            The configuration (not validated: invalid parts give undefined results).
        """
        obj = object.__new__(cls)
        obj.__dict__.update(
            weights=weights,
            axonal_delays=axonal_delays,
            synaptic_delays=synaptic_delays,
            dendritic_delays=dendritic_delays,
            theta=theta,
            tau_m=tau_m,
            tau_s=tau_s,
            input_repeat=input_repeat,
        )
        return obj

    @property
    def n_layers(self) -> int:
        """Number of layers."""
        return len(self.weights)

    @property
    def n_inputs(self) -> int:
        """Number of network inputs (input groups of the first layer) that :meth:`Chip.run` expects."""
        return int(self.weights[0].shape[1]) // self.input_repeat

    @property
    def layer_sizes(self) -> list[int]:
        """Number of neurons of every layer."""
        return [w.shape[0] for w in self.weights]

    def n_groups(self, layer: int) -> int:
        """Return the number of input groups (axonal delays) of ``layer``.

        Parameters
        ----------
        layer : int
            Layer index.

        Returns
        -------
        int
            ``n_inputs`` for the first layer, the previous layer's size otherwise.
        """
        return self.n_inputs if layer == 0 else self.weights[layer].shape[1]


def _checked_weights(value: list[FloatArray], input_repeat: int) -> list[FloatArray]:
    """Return the weight matrices as float64 arrays after checking that they are finite, non-empty and chain."""
    weights: list[FloatArray] = []
    for layer, w in enumerate(value):
        arr = _as_float_array(w, f"weights[{layer}]", 2)
        if not np.isfinite(arr).all():
            raise ValueError(f"weights[{layer}]: contains inf")
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise ValueError(f"weights[{layer}]: empty shape {arr.shape}")
        if layer > 0 and arr.shape[1] != weights[-1].shape[0]:
            raise ValueError(
                f"weights[{layer}]: has {arr.shape[1]} inputs but layer {layer - 1} has {weights[-1].shape[0]} neurons"
            )
        weights.append(arr)
    if weights[0].shape[1] % input_repeat != 0:
        raise ValueError(
            f"weights[0]: {weights[0].shape[1]} input columns is not a multiple of input_repeat={input_repeat}"
        )
    return weights


def _checked_delays(
    name: str, value: list[FloatArray | None] | None, shapes: Sequence[tuple[int, ...]]
) -> list[FloatArray | None]:
    """Return one delay kind per layer (None: absent) as float64 arrays of the given shapes, finite and >= 0."""
    if value is None:
        return [None] * len(shapes)
    if not isinstance(value, list | tuple) or len(value) != len(shapes):
        raise ValueError(f"{name}: expected None or a list of {len(shapes)} entries (one per layer)")
    out: list[FloatArray | None] = []
    for layer, (d, expected) in enumerate(zip(value, shapes, strict=True)):
        if d is None:
            out.append(None)
            continue
        arr = _as_float_array(d, f"{name}[{layer}]", len(expected))
        if arr.shape != expected:
            raise ValueError(f"{name}[{layer}]: expected shape {expected}, got {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{name}[{layer}]: contains inf")
        if (arr < 0).any():
            raise ValueError(f"{name}[{layer}]: delays must be >= 0")
        out.append(arr)
    return out


@runtime_checkable
class Chip(Protocol):
    """The interface every chip backend implements."""

    def info(self) -> ChipInfo:
        """Return the chip's identity and limits.

        Returns
        -------
        ChipInfo
            Protocol version, chip id, calibration id and limits.
        """
        ...

    def configure(self, config: ChipConfig) -> str:
        """Write a configuration to the chip.

        Only entries that changed since the last configuration are written; backends that count them
        expose the count as ``last_written_entries`` (see :class:`ReportsWrites`).

        Parameters
        ----------
        config : ChipConfig
            Network configuration in model units (the backend quantises it).

        Returns
        -------
        str
            Stable hash of the quantised configuration (hex string).
        """
        ...

    def run(self, inputs: FloatArray) -> RunResult:
        """Run a batch.

        Parameters
        ----------
        inputs : numpy.ndarray
            ``[batch, n_inputs]`` float64 input spike times in model units, ``+inf`` for no spike.

        Returns
        -------
        RunResult
            First-spike times of every layer, health, timing, chip id and configuration hash.
        """
        ...


@runtime_checkable
class ReportsWrites(Protocol):
    """Optional extension of :class:`Chip`: how many entries the last ``configure`` wrote."""

    @property
    def last_written_entries(self) -> int:
        """Number of entries written by the most recent ``configure`` call."""
        ...


# --------------------------------------------------------------------------------------------------
# Helpers for backends
# --------------------------------------------------------------------------------------------------
def expand_inputs(inputs: FloatArray, input_repeat: int) -> FloatArray:
    """Duplicate every input column ``input_repeat`` times (copies adjacent).

    Parameters
    ----------
    inputs : numpy.ndarray
        ``[batch, n_groups]`` input times.
    input_repeat : int
        Duplication factor.

    Returns
    -------
    numpy.ndarray
        ``[batch, n_groups * input_repeat]``; column ``j`` is input group ``j // input_repeat``.
    """
    return np.repeat(np.asarray(inputs, dtype=np.float64), input_repeat, axis=1)


def config_entries(config: ChipConfig) -> dict[str, FloatArray]:
    """Flatten a configuration into named float64 arrays (the "entries" a chip writes).

    Parameters
    ----------
    config : ChipConfig
        Configuration (typically already quantised by the backend).

    Returns
    -------
    dict of str to numpy.ndarray
        Keys ``"w0"``, ``"axo0"``, ``"syn0"``, ``"den0"``, ... (absent delays are omitted) and
        ``"neuron"`` = ``[theta, tau_m, tau_s, input_repeat]``.
    """
    out: dict[str, FloatArray] = {}
    for layer, w in enumerate(config.weights):
        out[f"w{layer}"] = w
        for prefix, lst in (
            ("axo", config.axonal_delays),
            ("syn", config.synaptic_delays),
            ("den", config.dendritic_delays),
        ):
            d = lst[layer] if lst is not None else None
            if d is not None:
                out[f"{prefix}{layer}"] = d
    out["neuron"] = np.array([config.theta, config.tau_m, config.tau_s, float(config.input_repeat)])
    return out


def config_hash(config: ChipConfig) -> str:
    """Stable SHA-256 hash of a configuration's content.

    Backends call it on the *quantised* configuration. The canonical bytes are, per entry of
    :func:`config_entries` in key order: the key, the shape and the little-endian float64 data.

    Parameters
    ----------
    config : ChipConfig
        Configuration.

    Returns
    -------
    str
        64 hex digits.
    """
    parts = [b"delgrad-hw-config-v1"]
    for key, arr in sorted(config_entries(config).items()):
        a = np.ascontiguousarray(arr, dtype="<f8")
        parts.append(key.encode())
        parts.append(struct.pack(f"<I{a.ndim}Q", a.ndim, *a.shape))
        # -0.0 and 0.0 must hash alike
        parts.append((a + 0.0).tobytes())
    h = hashlib.sha256(b"".join(parts))
    return h.hexdigest()


def count_changed_entries(old: ChipConfig | None, new: ChipConfig) -> int:
    """Count the scalar entries of ``new`` that differ from ``old`` (all of them if ``old`` is None).

    An entry whose array changed shape, or that is absent in ``old``, counts in full; arrays of the
    same shape count the entries that differ (the core's :func:`delgrad_rs.hardware.changed_entries`).

    Parameters
    ----------
    old : ChipConfig or None
        Configuration currently on the chip.
    new : ChipConfig
        Configuration to write.

    Returns
    -------
    int
        Number of scalar entries that must be written.
    """
    if old is None:
        return int(sum(a.size for a in config_entries(new).values()))
    n = 0
    for old_l, new_l in (
        (old.weights, new.weights),
        (old.axonal_delays, new.axonal_delays),
        (old.synaptic_delays, new.synaptic_delays),
        (old.dendritic_delays, new.dendritic_delays),
    ):
        old_l = old_l or []
        for layer, b in enumerate(new_l or []):
            if b is None:
                continue
            a = old_l[layer] if layer < len(old_l) else None
            if a is None or a.shape != b.shape:
                n += b.size
            else:
                n += changed_entries(a, b)
    old_n = (old.theta, old.tau_m, old.tau_s, float(old.input_repeat))
    new_n = (new.theta, new.tau_m, new.tau_s, float(new.input_repeat))
    return n + sum(a != b for a, b in zip(old_n, new_n, strict=True))
