"""Pure encode/decode tests of the wire protocol."""

from __future__ import annotations

import struct

import msgpack
import numpy as np
import pytest
from delgrad_hw.chip import PROTOCOL_VERSION, ChipInfo, Health, RunResult, Timing
from delgrad_hw.protocol import (
    CLIENT_TYPES,
    Limits,
    Message,
    ProtocolError,
    SubmitRequest,
    decode_array,
    decode_config,
    decode_info,
    decode_message,
    decode_result,
    decode_submit,
    encode_array,
    encode_config,
    encode_frame,
    encode_info,
    encode_message,
    encode_result,
    encode_submit,
    frame_length,
)
from hw_toychip import make_config, make_inputs
from hypothesis import given, settings
from hypothesis import strategies as st


def roundtrip(msg: Message) -> Message:
    frame = encode_frame(msg)
    n = frame_length(frame[:4])
    assert n == len(frame) - 4
    return decode_message(frame[4:])


def test_envelope_roundtrip() -> None:
    msg = Message("HELLO", 7, {})
    back = roundtrip(msg)
    assert back == msg
    assert back.v == PROTOCOL_VERSION


def test_frame_is_big_endian_length_prefixed_msgpack() -> None:
    frame = encode_frame(Message("STATUS", 3, {}))
    (n,) = struct.unpack(">I", frame[:4])
    obj = msgpack.unpackb(frame[4:], raw=False)
    assert n == len(frame) - 4
    assert obj == {"v": PROTOCOL_VERSION, "type": "STATUS", "id": 3, "body": {}}


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.float32, np.int32, np.bool_])
def test_array_roundtrip(dtype: type) -> None:
    a = (np.arange(24).reshape(2, 3, 4) % 5).astype(dtype)
    enc = encode_array(a)
    assert enc["dtype"] in ("<f8", "<i8")
    back = decode_array(msgpack.unpackb(msgpack.packb(enc, use_bin_type=True), raw=False))
    np.testing.assert_array_equal(back, a)
    assert back.flags.writeable


def test_array_inf_and_empty() -> None:
    a = np.array([[np.inf, 1.0], [-0.5, np.inf]])
    np.testing.assert_array_equal(decode_array(encode_array(a)), a)
    assert decode_array(encode_array(np.zeros((0, 3)))).shape == (0, 3)


@pytest.mark.parametrize(
    "obj",
    [
        None,
        [],
        {"dtype": "<f8", "shape": [2]},
        {"dtype": "|O", "shape": [1], "data": b"\0" * 8},
        {"dtype": "<c16", "shape": [1], "data": b"\0" * 16},
        {"dtype": ">f8", "shape": [1], "data": b"\0" * 8},
        {"dtype": "<f8", "shape": [3], "data": b"\0" * 16},
        {"dtype": "<f8", "shape": [-1], "data": b""},
        {"dtype": "<f8", "shape": [True], "data": b"\0" * 8},
        {"dtype": "<f8", "shape": "3", "data": b"\0" * 24},
        {"dtype": "<f8", "shape": [1, 1, 1, 1, 1], "data": b"\0" * 8},
        {"dtype": "<f8", "shape": [1 << 30, 1 << 30], "data": b""},
        {"dtype": "<f8", "shape": [1], "data": "abcdefgh"},
        {"dtype": "<f8", "shape": [1], "data": b"\0" * 8, "extra": 1},
    ],
)
def test_bad_arrays_rejected(obj: object) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_array(obj, Limits(max_array_elements=1000))
    assert info.value.status == "BAD_REQUEST"


def test_array_size_limit() -> None:
    with pytest.raises(ProtocolError, match="shape"):
        decode_array(encode_array(np.zeros(1001)), Limits(max_array_elements=1000))
    with pytest.raises(ProtocolError, match="exceed"):
        decode_array(encode_array(np.zeros((40, 40))), Limits(max_array_elements=1000))


def test_config_roundtrip() -> None:
    cfg = make_config(5, repeat=5)
    cfg.synaptic_delays = [np.full(w.shape, 0.25) for w in cfg.weights]
    cfg.dendritic_delays = [None, np.array([0.1, 0.2, 0.3])]
    cfg.__post_init__()
    back = decode_config(msgpack.unpackb(msgpack.packb(encode_config(cfg), use_bin_type=True), raw=False))
    assert back.input_repeat == 5 and back.theta == cfg.theta and back.tau_m == 2.0 and back.tau_s == 1.0
    for a, b in zip(cfg.weights, back.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert back.dendritic_delays is not None and back.dendritic_delays[0] is None
    np.testing.assert_array_equal(back.dendritic_delays[1], [0.1, 0.2, 0.3])  # type: ignore[arg-type]


def test_config_without_delays_roundtrip() -> None:
    cfg = make_config(6, delays=False)
    enc = encode_config(cfg)
    assert enc["axonal_delays"] is None
    back = decode_config(enc)
    assert back.axonal_delays == [None, None]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c.pop("weights"),
        lambda c: c.update(weights=[]),
        lambda c: c.update(theta="1"),
        lambda c: c.update(theta=float("nan")),
        lambda c: c.update(tau_m=-2.0),
        lambda c: c.update(input_repeat=1.5),
        lambda c: c.update(input_repeat=True),
        lambda c: c.update(axonal_delays=[None]),
        lambda c: c.update(extra=1),
        lambda c: c["weights"].append(encode_array(np.ones((2, 2)))),
        lambda c: c.update(weights=[encode_array(np.array([[np.nan]]))]),
        lambda c: c.update(weights=[encode_array(np.ones((2, 2), dtype=np.int64))]),
    ],
)
def test_bad_configs_rejected(mutate: object) -> None:
    enc = encode_config(make_config(7))
    mutate(enc)  # type: ignore[operator]
    with pytest.raises(ProtocolError) as info:
        decode_config(enc, msg_id=9)
    assert info.value.msg_id == 9


def test_submit_roundtrip_and_validation() -> None:
    x = make_inputs(1)
    req = SubmitRequest("abc", x, [0, 1], "chip", 2.5)
    back = decode_submit(encode_submit(req))
    np.testing.assert_array_equal(back.inputs, x)
    assert (back.config_hash, back.layers, back.chip_id, back.deadline_s) == ("abc", [0, 1], "chip", 2.5)
    plain = decode_submit(encode_submit(SubmitRequest("h", x)))
    assert plain.layers is None and plain.chip_id is None and plain.deadline_s is None
    for bad in (np.full((2, 2), np.nan), np.full((2, 2), -np.inf), np.zeros((0, 2)), np.zeros(3)):
        with pytest.raises(ProtocolError):
            decode_submit({"config_hash": "h", "inputs": encode_array(bad)})
    with pytest.raises(ProtocolError, match="batch"):
        decode_submit({"config_hash": "h", "inputs": encode_array(np.zeros((11, 2)))}, Limits(max_batch=10))
    for body in (
        {"inputs": encode_array(x)},
        {"config_hash": 1, "inputs": encode_array(x)},
        {"config_hash": "h", "inputs": encode_array(x), "record": {"layers": [-1]}},
        {"config_hash": "h", "inputs": encode_array(x), "record": {"spikes": True}},
        {"config_hash": "h", "inputs": encode_array(x), "deadline_s": -1},
        {"config_hash": "h", "inputs": encode_array(x), "bogus": 1},
    ):
        with pytest.raises(ProtocolError):
            decode_submit(body)


def test_info_and_result_roundtrip() -> None:
    info = ChipInfo(PROTOCOL_VERSION, "chip-7", "cal-3", {"max_batch": 10})
    assert decode_info(encode_info(info)) == info
    res = RunResult(
        times=[np.array([[1.0, np.inf]]), np.array([[2.0]])],
        health=Health(dropped_events=2, retries=1, stall=True, link_errors=3),
        timing=Timing(0.1, 0.2, 0.3),
        chip_id="chip-7",
        config_hash="h",
    )
    body = msgpack.unpackb(msgpack.packb(encode_result("OK", res), use_bin_type=True), raw=False)
    back = decode_result(body)
    assert back.status == "OK" and back.result is not None
    assert back.result.health == res.health and back.result.timing == res.timing
    np.testing.assert_array_equal(back.result.times[0], res.times[0])
    only_last = decode_result(encode_result("OK", res, layers=[1]))
    assert only_last.layers == [1] and only_last.result is not None and len(only_last.result.times) == 1
    err = decode_result(encode_result("TIMEOUT", message="late"))
    assert (err.status, err.message, err.result) == ("TIMEOUT", "late", None)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"", "empty"),
        (b"\xc1", "malformed"),
        (msgpack.packb([1, 2]), "not a map"),
        (msgpack.packb({"v": 1, "type": "HELLO", "id": 1}), "exactly the keys"),
        (msgpack.packb({"v": 99, "type": "HELLO", "id": 1, "body": {}}), "version"),
        (msgpack.packb({"v": "1", "type": "HELLO", "id": 1, "body": {}}), "version"),
        (msgpack.packb({"v": 1, "type": "HELLO", "id": -1, "body": {}}), "id"),
        (msgpack.packb({"v": 1, "type": "HELLO", "id": True, "body": {}}), "id"),
        (msgpack.packb({"v": 1, "type": "NOPE", "id": 1, "body": {}}), "unknown message type"),
        (msgpack.packb({"v": 1, "type": 5, "id": 1, "body": {}}), "type"),
        (msgpack.packb({"v": 1, "type": "HELLO", "id": 1, "body": []}), "body"),
        (msgpack.packb({"v": 1, "type": "HELLO", "id": 1, "body": {}}) + b"\x00", "malformed"),
        (msgpack.packb({1: 1}), "malformed"),
        (msgpack.packb({"v": 1, "type": "HELLO", "id": 1, "body": msgpack.ExtType(5, b"x")}), "malformed"),
    ],
)
def test_bad_envelopes(payload: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match) as info:
        decode_message(payload, allowed_types=CLIENT_TYPES)
    assert not info.value.fatal


def test_server_types_refused_by_server_side_decoder() -> None:
    payload = encode_message(Message("RESULT", 1, {}))
    with pytest.raises(ProtocolError, match="unknown message type"):
        decode_message(payload, allowed_types=CLIENT_TYPES)


def test_wrong_version_keeps_id() -> None:
    with pytest.raises(ProtocolError) as info:
        decode_message(msgpack.packb({"v": 2, "type": "HELLO", "id": 42, "body": {}}))
    assert info.value.msg_id == 42


def test_frame_limits() -> None:
    with pytest.raises(ProtocolError) as info:
        frame_length(struct.pack(">I", 1000), max_frame_bytes=999)
    assert info.value.fatal
    with pytest.raises(ProtocolError):
        frame_length(b"\0\0")
    with pytest.raises(ProtocolError, match="exceeds"):
        encode_frame(Message("SUBMIT", 1, {"x": b"\0" * 2000}), max_frame_bytes=1000)
    with pytest.raises(ProtocolError):
        decode_message(encode_message(Message("HELLO", 1, {"x": b"\0" * 2000})), Limits(max_frame_bytes=1000))


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(max_size=300))
def test_decode_message_never_raises_anything_else(data: bytes) -> None:
    try:
        decode_message(data, allowed_types=CLIENT_TYPES)
    except ProtocolError:
        pass


_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10), st.binary(max_size=40))
_tree = st.recursive(
    _leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, database=None)
@given(_tree, _tree)
def test_body_decoders_only_raise_protocol_error(config_obj: object, body: object) -> None:
    for fn in (
        lambda: decode_config(config_obj),
        lambda: decode_submit(body if isinstance(body, dict) else {"inputs": body}),
        lambda: decode_array(config_obj),
        lambda: decode_result(body if isinstance(body, dict) else {"status": body}),
        lambda: decode_info(body if isinstance(body, dict) else {}),
    ):
        try:
            fn()
        except ProtocolError:
            pass


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=3),
    st.sampled_from(["<f8", "<i8"]),
    st.binary(max_size=64),
)
def test_array_shape_data_consistency(shape: list[int], dtype: str, data: bytes) -> None:
    obj = {"dtype": dtype, "shape": shape, "data": data}
    size = int(np.prod(shape))
    if len(data) == size * 8:
        assert decode_array(obj).shape == tuple(shape)
    else:
        with pytest.raises(ProtocolError):
            decode_array(obj)
