"""The chip driver wire protocol: versioned, length-prefixed msgpack messages.

Frame
-----
``4-byte big-endian payload length`` + ``msgpack map {"v": PROTOCOL_VERSION, "type": str, "id": int,
"body": map}``. ``id`` is the client's sequence number; a reply carries the id of its request.

Message set (client -> server, server reply)
--------------------------------------------
========================================================  ==============================================
``HELLO {}``                                              ``INFO {protocol_version, chip_id,
                                                          calibration_id, limits}``
``AUTH {token}``                                          ``SESSION {session_id}``
``CONFIGURE {config}``                                    ``CONFIGURED {config_hash, written_entries}``
``SUBMIT {config_hash, inputs, record, [chip_id],         ``RESULT {status, message, times, layers,
[deadline_s]}``                                           health, timing, chip_id, config_hash}``
``STATUS {}``                                             ``STATUS_REPLY {queue_length, clients,
                                                          uptime_s, chip_id, work_units, reinits}``
``BYE {}``                                                ``BYE {}`` (then the server closes)
any malformed / unauthorised request                      ``ERROR {status, message}``
========================================================  ==============================================

``status`` is one of ``OK | TIMEOUT | LINK_ERROR | CHIP_MISMATCH | BAD_REQUEST | UNAUTHORIZED`` (and
``CHIP_ERROR`` for an unexpected backend failure). Arrays travel as ``{"dtype": "<f8" | "<i8", "shape":
[...], "data": bytes}``. ``record`` is ``{"layers": null | [int, ...]}`` (which layers' times to
return; null = all).

Every function here is pure: it either returns a value or raises :class:`ProtocolError`.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any, Final

import msgpack
import numpy as np
import numpy.typing as npt

from .chip import (
    PROTOCOL_VERSION,
    STATUSES,
    ChipConfig,
    ChipInfo,
    Health,
    RunResult,
    Timing,
)

__all__ = [
    "CLIENT_TYPES",
    "HEADER",
    "MAX_FRAME_LIMIT",
    "MESSAGE_TYPES",
    "MIN_FRAME_LIMIT",
    "PROTOCOL_VERSION",
    "SERVER_TYPES",
    "Limits",
    "Message",
    "ProtocolError",
    "ResultBody",
    "SubmitRequest",
    "check_int",
    "decode_array",
    "decode_config",
    "decode_health",
    "decode_info",
    "decode_message",
    "decode_result",
    "decode_submit",
    "decode_timing",
    "encode_array",
    "encode_config",
    "encode_frame",
    "encode_health",
    "encode_info",
    "encode_message",
    "encode_result",
    "encode_submit",
    "encode_timing",
    "frame_length",
]

HEADER: Final[int] = 4
CLIENT_TYPES: Final[frozenset[str]] = frozenset({"HELLO", "AUTH", "CONFIGURE", "SUBMIT", "STATUS", "BYE"})
SERVER_TYPES: Final[frozenset[str]] = frozenset(
    {"INFO", "SESSION", "CONFIGURED", "RESULT", "STATUS_REPLY", "BYE", "ERROR"}
)
MESSAGE_TYPES: Final[frozenset[str]] = CLIENT_TYPES | SERVER_TYPES
_DTYPES: Final[dict[str, np.dtype[Any]]] = {"<f8": np.dtype("<f8"), "<i8": np.dtype("<i8")}
_MAX_NDIM: Final[int] = 4
_MAX_ID: Final[int] = 2**63 - 1

FloatArray = npt.NDArray[np.float64]


class ProtocolError(Exception):
    """A message could not be encoded or decoded.

    Parameters
    ----------
    status : str
        Status for the ERROR reply (usually ``"BAD_REQUEST"``).
    message : str
        What was wrong.
    msg_id : int
        Id of the offending request if it could be read, else 0.
    fatal : bool
        Whether the stream is no longer readable (the connection must be closed).
    """

    def __init__(self, status: str, message: str, msg_id: int = 0, fatal: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.msg_id = msg_id
        self.fatal = fatal


def _bad(message: str, msg_id: int = 0) -> ProtocolError:
    return ProtocolError("BAD_REQUEST", message, msg_id)


#: Smallest frame limit a :class:`Limits` accepts (every reply must fit).
MIN_FRAME_LIMIT: Final[int] = 512
#: Largest frame limit: 1 GiB, well inside the 4-byte length header's 4 GiB.
MAX_FRAME_LIMIT: Final[int] = 1 << 30


@dataclass(frozen=True)
class Limits:
    """Size limits enforced when decoding.

    Attributes
    ----------
    max_frame_bytes : int
        Largest accepted payload (default 16 MiB).
    max_array_elements : int
        Largest accepted array (elements).
    max_layers : int
        Largest accepted number of layers in a configuration.
    max_batch : int
        Largest accepted batch in SUBMIT.
    """

    max_frame_bytes: int = 16 * 1024 * 1024
    max_array_elements: int = 1 << 20
    max_layers: int = 16
    max_batch: int = 100_000

    def __post_init__(self) -> None:
        for name, low, high in (
            ("max_frame_bytes", MIN_FRAME_LIMIT, MAX_FRAME_LIMIT),
            ("max_array_elements", 1, MAX_FRAME_LIMIT),
            ("max_layers", 1, 1 << 16),
            ("max_batch", 1, MAX_FRAME_LIMIT),
        ):
            check_int(name, getattr(self, name), low, high)


def check_int(name: str, value: object, low: int, high: int | None = None) -> None:
    """Raise ValueError naming ``name`` unless ``value`` is an int (not a bool) in ``[low, high]``.

    Parameters
    ----------
    name : str
        The option, for the message.
    value : object
        The value to check.
    low : int
        Smallest value allowed.
    high : int, optional
        Largest value allowed (None: no upper bound).

    Raises
    ------
    ValueError
        If the value is not such an integer.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        expected = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
        raise ValueError(f"{name}: expected {expected}, got {value!r}")


@dataclass
class Message:
    """One protocol message.

    Attributes
    ----------
    type : str
        Message type (one of :data:`MESSAGE_TYPES`).
    id : int
        Sequence number (0 <= id < 2**63).
    body : dict
        Type-specific content (msgpack-able values only).
    v : int
        Protocol version.
    """

    type: str
    id: int
    body: dict[str, Any] = field(default_factory=dict)
    v: int = PROTOCOL_VERSION


# --------------------------------------------------------------------------------------------------
# Frames and envelopes
# --------------------------------------------------------------------------------------------------
def encode_message(msg: Message) -> bytes:
    """Serialise a message to its msgpack payload (without the length prefix).

    Parameters
    ----------
    msg : Message
        The message.

    Returns
    -------
    bytes
        msgpack payload.
    """
    packed: bytes = msgpack.packb({"v": msg.v, "type": msg.type, "id": msg.id, "body": msg.body}, use_bin_type=True)
    return packed


def encode_frame(msg: Message, max_frame_bytes: int = Limits.max_frame_bytes) -> bytes:
    """Serialise a message to a complete frame (length prefix + payload).

    Parameters
    ----------
    msg : Message
        The message.
    max_frame_bytes : int
        Refuse payloads larger than this.

    Returns
    -------
    bytes
        The frame.

    Raises
    ------
    ProtocolError
        If the payload is larger than ``max_frame_bytes``.
    """
    payload = encode_message(msg)
    if len(payload) > max_frame_bytes:
        raise _bad(f"message of {len(payload)} bytes exceeds the frame limit of {max_frame_bytes}", msg.id)
    return struct.pack(">I", len(payload)) + payload


def frame_length(header: bytes, max_frame_bytes: int = Limits.max_frame_bytes) -> int:
    """Read the payload length from a 4-byte frame header.

    Parameters
    ----------
    header : bytes
        Exactly 4 bytes.
    max_frame_bytes : int
        Largest accepted payload.

    Returns
    -------
    int
        Payload length.

    Raises
    ------
    ProtocolError
        ``fatal=True`` if the header is short or the length exceeds the limit (the stream cannot be
        resynchronised).
    """
    if len(header) != HEADER:
        raise ProtocolError("BAD_REQUEST", "truncated frame header", fatal=True)
    (n,) = struct.unpack(">I", header)
    if n > max_frame_bytes:
        raise ProtocolError("BAD_REQUEST", f"frame of {n} bytes exceeds the limit of {max_frame_bytes}", fatal=True)
    return int(n)


def _reject_ext(code: int, data: bytes) -> object:
    raise ValueError(f"msgpack extension type {code} is not allowed")


def decode_message(payload: bytes, limits: Limits = Limits(), allowed_types: frozenset[str] = MESSAGE_TYPES) -> Message:
    """Parse and validate a message envelope.

    Parameters
    ----------
    payload : bytes
        msgpack payload (frame without the length prefix).
    limits : Limits
        Size limits.
    allowed_types : frozenset of str
        Message types accepted (e.g. :data:`CLIENT_TYPES` on the server).

    Returns
    -------
    Message
        The message; its body is a dict with str keys but otherwise unchecked.

    Raises
    ------
    ProtocolError
        On malformed msgpack, a wrong envelope, a wrong version or an unknown type (``msg_id`` is set
        when the id could be read).
    """
    if len(payload) > limits.max_frame_bytes:
        raise _bad(f"frame of {len(payload)} bytes exceeds the limit of {limits.max_frame_bytes}")
    if len(payload) == 0:
        raise _bad("empty frame")
    try:
        obj = msgpack.unpackb(
            payload,
            raw=False,
            use_list=True,
            strict_map_key=True,
            ext_hook=_reject_ext,
            max_bin_len=limits.max_frame_bytes,
            max_str_len=limits.max_frame_bytes,
            max_array_len=limits.max_array_elements,
            max_map_len=4096,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises a variety of exception types on garbage
        raise _bad(f"malformed msgpack payload: {type(exc).__name__}: {exc}") from None
    if not isinstance(obj, dict):
        raise _bad("message is not a map")
    raw_id = obj.get("id")
    id_ok = isinstance(raw_id, int) and not isinstance(raw_id, bool) and 0 <= raw_id <= _MAX_ID
    msg_id = int(raw_id) if id_ok else 0  # type: ignore[arg-type]
    if set(obj) != {"v", "type", "id", "body"}:
        raise _bad("message must have exactly the keys v, type, id, body", msg_id)
    v = obj["v"]
    if not isinstance(v, int) or isinstance(v, bool):
        raise _bad("message version 'v' must be an int", msg_id)
    if v != PROTOCOL_VERSION:
        raise _bad(f"unsupported protocol version {v} (this side speaks {PROTOCOL_VERSION})", msg_id)
    if not id_ok:
        raise _bad("message 'id' must be an int in [0, 2**63)", msg_id)
    mtype = obj["type"]
    if not isinstance(mtype, str):
        raise _bad("message 'type' must be a string", msg_id)
    if mtype not in allowed_types:
        raise _bad(f"unknown message type {mtype[:40]!r}", msg_id)
    body = obj["body"]
    if not isinstance(body, dict):
        raise _bad("message 'body' must be a map", msg_id)
    return Message(type=mtype, id=msg_id, body=body, v=v)


# --------------------------------------------------------------------------------------------------
# Arrays
# --------------------------------------------------------------------------------------------------
def encode_array(arr: npt.ArrayLike) -> dict[str, Any]:
    """Encode a float64 or int64 array.

    Parameters
    ----------
    arr : array_like
        Float arrays are sent as ``<f8``, integer/bool arrays as ``<i8``.

    Returns
    -------
    dict
        ``{"dtype", "shape", "data"}``.

    Raises
    ------
    ProtocolError
        For other dtypes (object, complex, strings).
    """
    a = np.asarray(arr)
    if a.dtype.kind == "f":
        a = np.ascontiguousarray(a, dtype="<f8")
    elif a.dtype.kind in "iub":
        a = np.ascontiguousarray(a, dtype="<i8")
    else:
        raise _bad(f"cannot encode arrays of dtype {a.dtype}")
    return {"dtype": a.dtype.str, "shape": list(a.shape), "data": a.tobytes()}


def decode_array(
    obj: object, limits: Limits = Limits(), name: str = "array", dtype: str | None = None, ndim: int | None = None
) -> npt.NDArray[Any]:
    """Decode and validate an encoded array.

    Parameters
    ----------
    obj : object
        Decoded msgpack value.
    limits : Limits
        Size limits (``max_array_elements``).
    name : str
        Field name for error messages.
    dtype : {"<f8", "<i8"}, optional
        Required dtype.
    ndim : int, optional
        Required number of dimensions.

    Returns
    -------
    numpy.ndarray
        A writable copy.

    Raises
    ------
    ProtocolError
        If the dtype is not float64/int64 (or not ``dtype``), the shape is invalid or does not match the
        data size, or the array is too large.
    """
    if not isinstance(obj, dict) or set(obj) != {"dtype", "shape", "data"}:
        raise _bad(f"{name}: an array must be a map with keys dtype, shape, data")
    dt = obj["dtype"]
    if not isinstance(dt, str) or dt not in _DTYPES:
        raise _bad(f"{name}: dtype must be one of {sorted(_DTYPES)}")
    if dtype is not None and dt != dtype:
        raise _bad(f"{name}: dtype must be {dtype}, got {dt}")
    shape = obj["shape"]
    if not isinstance(shape, list) or len(shape) > _MAX_NDIM:
        raise _bad(f"{name}: shape must be a list of at most {_MAX_NDIM} ints")
    if ndim is not None and len(shape) != ndim:
        raise _bad(f"{name}: expected {ndim} dimensions, got {len(shape)}")
    size = 1
    for s in shape:
        if not isinstance(s, int) or isinstance(s, bool) or s < 0 or s > limits.max_array_elements:
            raise _bad(f"{name}: invalid shape {shape!r}"[:200])
        size *= s
    if size > limits.max_array_elements:
        raise _bad(f"{name}: {size} elements exceed the limit of {limits.max_array_elements}")
    data = obj["data"]
    if not isinstance(data, bytes):
        raise _bad(f"{name}: data must be binary")
    np_dtype = _DTYPES[dt]
    if len(data) != size * np_dtype.itemsize:
        raise _bad(f"{name}: {len(data)} data bytes do not match shape {shape} of {dt}")
    return np.frombuffer(data, dtype=np_dtype).reshape(shape).copy()


def _float_array(obj: object, limits: Limits, name: str, ndim: int) -> FloatArray:
    arr: FloatArray = decode_array(obj, limits, name, dtype="<f8", ndim=ndim).astype(np.float64)
    return arr


def _get(body: dict[str, Any], key: str, kind: type | tuple[type, ...], msg_id: int, optional: bool = False) -> Any:
    if key not in body:
        if optional:
            return None
        raise _bad(f"missing field {key!r}", msg_id)
    value = body[key]
    if value is None and optional:
        return None
    if isinstance(value, bool) and kind is not bool:
        raise _bad(f"field {key!r} has the wrong type", msg_id)
    if not isinstance(value, kind):
        raise _bad(f"field {key!r} has the wrong type", msg_id)
    return value


def _real(body: dict[str, Any], key: str, msg_id: int) -> float:
    value = _get(body, key, (int, float), msg_id)
    out = float(value)
    if not math.isfinite(out):
        raise _bad(f"field {key!r} must be finite", msg_id)
    return out


# --------------------------------------------------------------------------------------------------
# Bodies
# --------------------------------------------------------------------------------------------------
def encode_info(info: ChipInfo) -> dict[str, Any]:
    """Encode a :class:`~delgrad_hw.chip.ChipInfo` as an INFO body.

    Parameters
    ----------
    info : ChipInfo
        Chip identity.

    Returns
    -------
    dict
        INFO body.
    """
    return {
        "protocol_version": info.protocol_version,
        "chip_id": info.chip_id,
        "calibration_id": info.calibration_id,
        "limits": {str(k): int(v) for k, v in info.limits.items()},
    }


def decode_info(body: dict[str, Any]) -> ChipInfo:
    """Decode an INFO body.

    Parameters
    ----------
    body : dict
        INFO body.

    Returns
    -------
    ChipInfo
        Chip identity.

    Raises
    ------
    ProtocolError
        On missing or mistyped fields.
    """
    pv = _get(body, "protocol_version", int, 0)
    chip_id = _get(body, "chip_id", str, 0)
    cal = _get(body, "calibration_id", str, 0)
    limits = _get(body, "limits", dict, 0)
    out: dict[str, int] = {}
    for k, v in limits.items():
        if not isinstance(k, str) or not isinstance(v, int) or isinstance(v, bool):
            raise _bad("INFO limits must map str to int")
        out[k] = v
    return ChipInfo(protocol_version=pv, chip_id=chip_id, calibration_id=cal, limits=out)


def _encode_layers(layers: list[FloatArray | None] | None) -> list[Any] | None:
    if layers is None or all(d is None for d in layers):
        return None
    return [None if d is None else encode_array(d) for d in layers]


def encode_config(config: ChipConfig) -> dict[str, Any]:
    """Encode a :class:`~delgrad_hw.chip.ChipConfig` (the ``config`` field of CONFIGURE).

    Parameters
    ----------
    config : ChipConfig
        Configuration.

    Returns
    -------
    dict
        ``{"weights", "axonal_delays", "synaptic_delays", "dendritic_delays", "theta", "tau_m",
        "tau_s", "input_repeat"}``.
    """
    return {
        "weights": [encode_array(w) for w in config.weights],
        "axonal_delays": _encode_layers(config.axonal_delays),
        "synaptic_delays": _encode_layers(config.synaptic_delays),
        "dendritic_delays": _encode_layers(config.dendritic_delays),
        "theta": float(config.theta),
        "tau_m": float(config.tau_m),
        "tau_s": float(config.tau_s),
        "input_repeat": int(config.input_repeat),
    }


def decode_config(obj: object, limits: Limits = Limits(), msg_id: int = 0) -> ChipConfig:
    """Decode and validate a configuration.

    Parameters
    ----------
    obj : object
        The ``config`` field of a CONFIGURE body.
    limits : Limits
        Size limits.
    msg_id : int
        Request id for error reporting.

    Returns
    -------
    ChipConfig
        Validated configuration.

    Raises
    ------
    ProtocolError
        On any malformed field, or when :class:`~delgrad_hw.chip.ChipConfig` validation fails.
    """
    if not isinstance(obj, dict):
        raise _bad("config must be a map", msg_id)
    unknown = set(obj) - _CONFIG_FIELDS
    if unknown:
        raise _bad(f"config has unknown fields {sorted(map(str, unknown))[:5]}", msg_id)
    try:
        weights = _config_weights(obj, limits, msg_id)
        return ChipConfig(
            weights=weights,
            axonal_delays=_layer_arrays(obj, "axonal_delays", len(weights), 1, limits, msg_id),
            synaptic_delays=_layer_arrays(obj, "synaptic_delays", len(weights), 2, limits, msg_id),
            dendritic_delays=_layer_arrays(obj, "dendritic_delays", len(weights), 1, limits, msg_id),
            theta=_real(obj, "theta", msg_id),
            tau_m=_real(obj, "tau_m", msg_id),
            tau_s=_real(obj, "tau_s", msg_id),
            input_repeat=_get(obj, "input_repeat", int, msg_id),
        )
    except ProtocolError as exc:
        exc.msg_id = msg_id
        raise
    except ValueError as exc:
        raise _bad(f"invalid config: {exc}", msg_id) from None


_CONFIG_FIELDS = frozenset(
    {
        "weights",
        "axonal_delays",
        "synaptic_delays",
        "dendritic_delays",
        "theta",
        "tau_m",
        "tau_s",
        "input_repeat",
    }
)


def _config_weights(obj: dict[str, Any], limits: Limits, msg_id: int) -> list[FloatArray]:
    """Decode the config's weight matrices, one per layer, within the layer and element limits."""
    raw = _get(obj, "weights", list, msg_id)
    if not 1 <= len(raw) <= limits.max_layers:
        raise _bad(f"config.weights must have 1..{limits.max_layers} layers", msg_id)
    weights = [_float_array(w, limits, f"weights[{i}]", 2) for i, w in enumerate(raw)]
    total = sum(w.size for w in weights)
    if total > limits.max_array_elements:
        raise _bad(f"config has {total} weights, more than {limits.max_array_elements}", msg_id)
    return weights


def _layer_arrays(
    obj: dict[str, Any], key: str, n_layers: int, ndim: int, limits: Limits, msg_id: int
) -> list[FloatArray | None] | None:
    """Decode an optional per-layer list of ``ndim``-dimensional arrays (None entries allowed)."""
    raw = _get(obj, key, list, msg_id, optional=True)
    if raw is None:
        return None
    if len(raw) != n_layers:
        raise _bad(f"config.{key} must have one entry per layer", msg_id)
    return [None if d is None else _float_array(d, limits, f"{key}[{i}]", ndim) for i, d in enumerate(raw)]


@dataclass
class SubmitRequest:
    """Decoded SUBMIT body.

    Attributes
    ----------
    config_hash : str
        Hash returned by CONFIGURED for the configuration to run with.
    inputs : numpy.ndarray
        ``[batch, n_inputs]`` float64 input spike times.
    layers : list of int or None
        Layers whose times to return (None = all).
    chip_id : str or None
        If given, the chip the client expects (CHIP_MISMATCH otherwise).
    deadline_s : float or None
        Client deadline for this work unit (the server uses the smaller of its own and this).
    """

    config_hash: str
    inputs: FloatArray
    layers: list[int] | None = None
    chip_id: str | None = None
    deadline_s: float | None = None


def encode_submit(req: SubmitRequest) -> dict[str, Any]:
    """Encode a SUBMIT body.

    Parameters
    ----------
    req : SubmitRequest
        Request.

    Returns
    -------
    dict
        SUBMIT body.
    """
    body: dict[str, Any] = {
        "config_hash": req.config_hash,
        "inputs": encode_array(np.asarray(req.inputs, dtype=np.float64)),
        "record": {"layers": req.layers},
    }
    if req.chip_id is not None:
        body["chip_id"] = req.chip_id
    if req.deadline_s is not None:
        body["deadline_s"] = float(req.deadline_s)
    return body


def decode_submit(body: dict[str, Any], limits: Limits = Limits(), msg_id: int = 0) -> SubmitRequest:
    """Decode and validate a SUBMIT body.

    Parameters
    ----------
    body : dict
        SUBMIT body.
    limits : Limits
        Size limits.
    msg_id : int
        Request id for error reporting.

    Returns
    -------
    SubmitRequest
        The request; inputs are 2-D float64 without NaN or -inf, batch <= ``max_batch``.

    Raises
    ------
    ProtocolError
        On any malformed field.
    """
    unknown = set(body) - {"config_hash", "inputs", "record", "chip_id", "deadline_s"}
    if unknown:
        raise _bad(f"SUBMIT has unknown fields {sorted(map(str, unknown))[:5]}", msg_id)
    config_hash = _get(body, "config_hash", str, msg_id)
    if len(config_hash) > 128:
        raise _bad("config_hash too long", msg_id)
    try:
        inputs = _float_array(body.get("inputs"), limits, "inputs", 2)
    except ProtocolError as exc:
        exc.msg_id = msg_id
        raise
    if inputs.shape[0] == 0 or inputs.shape[1] == 0:
        raise _bad(f"inputs: empty shape {inputs.shape}", msg_id)
    if inputs.shape[0] > limits.max_batch:
        raise _bad(f"inputs: batch {inputs.shape[0]} exceeds the limit of {limits.max_batch}", msg_id)
    if np.isnan(inputs).any() or np.isneginf(inputs).any():
        raise _bad("inputs: contain NaN or -inf", msg_id)
    record = _get(body, "record", dict, msg_id, optional=True) or {}
    if set(record) - {"layers"}:
        raise _bad("record: only the key 'layers' is supported", msg_id)
    layers_raw = record.get("layers")
    layers: list[int] | None = None
    if layers_raw is not None:
        if not isinstance(layers_raw, list) or len(layers_raw) > limits.max_layers:
            raise _bad("record.layers must be null or a short list of ints", msg_id)
        layers = []
        for x in layers_raw:
            if not isinstance(x, int) or isinstance(x, bool) or not 0 <= x < limits.max_layers:
                raise _bad("record.layers must contain valid layer indices", msg_id)
            layers.append(x)
    chip_id = _get(body, "chip_id", str, msg_id, optional=True)
    deadline = _get(body, "deadline_s", (int, float), msg_id, optional=True)
    deadline_s: float | None = None
    if deadline is not None:
        deadline_s = float(deadline)
        if not math.isfinite(deadline_s) or deadline_s <= 0:
            raise _bad("deadline_s must be a positive finite number", msg_id)
    return SubmitRequest(config_hash, inputs, layers, chip_id, deadline_s)


def encode_health(h: Health) -> dict[str, Any]:
    """Encode :class:`~delgrad_hw.chip.Health`.

    Parameters
    ----------
    h : Health
        Health counters.

    Returns
    -------
    dict
        Plain map.
    """
    return {
        "dropped_events": int(h.dropped_events),
        "retries": int(h.retries),
        "stall": bool(h.stall),
        "link_errors": int(h.link_errors),
    }


def decode_health(obj: object) -> Health:
    """Decode :class:`~delgrad_hw.chip.Health`.

    Parameters
    ----------
    obj : object
        Encoded health map.

    Returns
    -------
    Health
        Health counters.

    Raises
    ------
    ProtocolError
        On missing or mistyped fields.
    """
    if not isinstance(obj, dict):
        raise _bad("health must be a map")
    return Health(
        dropped_events=_get(obj, "dropped_events", int, 0),
        retries=_get(obj, "retries", int, 0),
        stall=_get(obj, "stall", bool, 0),
        link_errors=_get(obj, "link_errors", int, 0),
    )


def encode_timing(t: Timing) -> dict[str, Any]:
    """Encode :class:`~delgrad_hw.chip.Timing`.

    Parameters
    ----------
    t : Timing
        Durations.

    Returns
    -------
    dict
        Plain map.
    """
    return {"encode_s": float(t.encode_s), "commit_s": float(t.commit_s), "execute_s": float(t.execute_s)}


def decode_timing(obj: object) -> Timing:
    """Decode :class:`~delgrad_hw.chip.Timing`.

    Parameters
    ----------
    obj : object
        Encoded timing map.

    Returns
    -------
    Timing
        Durations.

    Raises
    ------
    ProtocolError
        On missing or mistyped fields.
    """
    if not isinstance(obj, dict):
        raise _bad("timing must be a map")
    return Timing(
        encode_s=_real(obj, "encode_s", 0), commit_s=_real(obj, "commit_s", 0), execute_s=_real(obj, "execute_s", 0)
    )


@dataclass
class ResultBody:
    """Decoded RESULT body.

    Attributes
    ----------
    status : str
        One of :data:`~delgrad_hw.chip.STATUSES`.
    message : str
        Error description (empty when OK).
    result : RunResult or None
        The result when ``status == "OK"``.
    layers : list of int or None
        Layer indices of ``result.times`` (None = all layers).
    """

    status: str
    message: str = ""
    result: RunResult | None = None
    layers: list[int] | None = None


def encode_result(
    status: str, result: RunResult | None = None, message: str = "", layers: list[int] | None = None
) -> dict[str, Any]:
    """Encode a RESULT body.

    Parameters
    ----------
    status : str
        Status string.
    result : RunResult, optional
        The run result (required when ``status == "OK"``).
    message : str
        Error description.
    layers : list of int, optional
        Restrict the returned times to these layers.

    Returns
    -------
    dict
        RESULT body.
    """
    body: dict[str, Any] = {"status": status, "message": message}
    if result is not None:
        idx = list(range(len(result.times))) if layers is None else layers
        body.update(
            times=[encode_array(result.times[i]) for i in idx],
            layers=layers,
            health=encode_health(result.health),
            timing=encode_timing(result.timing),
            chip_id=result.chip_id,
            config_hash=result.config_hash,
        )
    return body


def decode_result(body: dict[str, Any], limits: Limits = Limits()) -> ResultBody:
    """Decode a RESULT body.

    Parameters
    ----------
    body : dict
        RESULT body.
    limits : Limits
        Size limits.

    Returns
    -------
    ResultBody
        Status, message and (when OK) the :class:`~delgrad_hw.chip.RunResult`.

    Raises
    ------
    ProtocolError
        On missing or mistyped fields.
    """
    status = _get(body, "status", str, 0)
    if status not in STATUSES:
        raise _bad(f"unknown status {status[:40]!r}")
    message = _get(body, "message", str, 0, optional=True) or ""
    if status != "OK":
        return ResultBody(status=status, message=message)
    times_raw = _get(body, "times", list, 0)
    times = [_float_array(t, limits, f"times[{i}]", 2) for i, t in enumerate(times_raw)]
    layers_raw = _get(body, "layers", list, 0, optional=True)
    layers = None if layers_raw is None else [int(x) for x in layers_raw]
    result = RunResult(
        times=times,
        health=decode_health(body.get("health")),
        timing=decode_timing(body.get("timing")),
        chip_id=_get(body, "chip_id", str, 0),
        config_hash=_get(body, "config_hash", str, 0),
    )
    return ResultBody(status=status, message=message, result=result, layers=layers)
