"""Experiment server: authentication, fairness, reinit, deadlines, robustness (all on 127.0.0.1)."""

from __future__ import annotations

import contextlib
import itertools
import random
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import msgpack
import numpy as np
import pytest
from delgrad_hw.auth import AuthLimiter
from delgrad_hw.chip import ChipTimeout, Unauthorized
from delgrad_hw.client import RemoteChip
from delgrad_hw.protocol import (
    PROTOCOL_VERSION,
    Limits,
    Message,
    SubmitRequest,
    decode_result,
    encode_config,
    encode_frame,
    encode_message,
    encode_submit,
)
from delgrad_hw.server import ExperimentServer
from hw_support import TOKEN, RawClient
from hw_toychip import ToyChip, assert_times_equal, make_config, make_inputs, toy_forward

pytestmark = pytest.mark.timeout(60)

MakeServer = Callable[..., ExperimentServer]
MakeRaw = Callable[[int], RawClient]


def authed(raw: RawClient) -> RawClient:
    reply = raw.call("AUTH", {"token": TOKEN})
    assert reply.type == "SESSION", reply
    return raw


def test_hello_info_auth_status_bye(make_server: MakeServer, raw_client: MakeRaw) -> None:
    srv = make_server(ToyChip("toy-hello"))
    assert srv.host == "127.0.0.1" and srv.port > 0
    c = raw_client(srv.port)
    info = c.call("HELLO")
    assert info.type == "INFO"
    assert info.body["protocol_version"] == PROTOCOL_VERSION
    assert info.body["chip_id"] == "toy-hello" and info.body["calibration_id"] == "toy-cal-1"
    assert info.body["limits"]["max_batch"] == 1000 and info.body["limits"]["max_neurons"] == 512
    session = c.call("AUTH", {"token": TOKEN})
    assert session.type == "SESSION" and isinstance(session.body["session_id"], str)
    st = c.call("STATUS")
    assert st.type == "STATUS_REPLY"
    assert st.body["clients"] == 1 and st.body["queue_length"] == 0 and st.body["uptime_s"] >= 0
    assert c.call("BYE").type == "BYE"
    assert c.is_closed()


def test_server_accepts_factory(make_server: MakeServer) -> None:
    srv = make_server(lambda: ToyChip("from-factory"))
    assert srv.info is not None and srv.info.chip_id == "from-factory"
    srv2 = make_server(ToyChip)
    assert srv2.info is not None and srv2.info.chip_id == "toy-0"


def test_server_requires_token() -> None:
    with pytest.raises(ValueError, match="token"):
        ExperimentServer(ToyChip(), token="")


def test_unauthorized_has_no_effect(make_server: MakeServer, raw_client: MakeRaw) -> None:
    chip = ToyChip()
    srv = make_server(chip, max_auth_failures=3)
    c = raw_client(srv.port)
    cfg = make_config(1)
    for mtype, body in (
        ("CONFIGURE", {"config": encode_config(cfg)}),
        ("SUBMIT", encode_submit(SubmitRequest("h", make_inputs(0)))),
        ("STATUS", {}),
    ):
        reply = c.call(mtype, body)
        assert reply.type == "ERROR" and reply.body["status"] == "UNAUTHORIZED", reply
    for _ in range(3):
        reply = c.call("AUTH", {"token": "wrong"})
        assert reply.type == "ERROR" and reply.body["status"] == "UNAUTHORIZED"
    assert c.is_closed()  # too many wrong tokens
    assert chip.configure_calls == 0 and chip.run_calls == 0
    with pytest.raises(Unauthorized):
        RemoteChip(srv.address, token="nope", retries=0).configure(cfg)
    assert chip.configure_calls == 0
    # a right token on another connection works
    with RemoteChip(srv.address, token=TOKEN) as rc:
        rc.configure(cfg)
        assert_times_equal(rc.run(make_inputs(0)).times, toy_forward(cfg, make_inputs(0)))
    assert srv.stats["internal_errors"] == 0


def test_configure_reports_written_entries(make_server: MakeServer) -> None:
    srv = make_server(ToyChip())
    with RemoteChip(srv.address, token=TOKEN) as rc:
        cfg = make_config(2)
        h = rc.configure(cfg)
        assert rc.last_written_entries > 0
        assert rc.configure(make_config(2)) == h
        assert rc.last_written_entries == 0
        cfg2 = make_config(2)
        cfg2.weights[1][0, 0] += 1.0
        assert rc.configure(cfg2) != h
        assert rc.last_written_entries == 1
        res = rc.run(make_inputs(1))
        assert res.config_hash == rc.config_hash and res.chip_id == "toy-0"
        assert res.health.dropped_events == 0 and res.timing.execute_s >= 0


def test_submit_errors_are_bad_request(make_server: MakeServer, raw_client: MakeRaw) -> None:
    srv = make_server(ToyChip())
    c = authed(raw_client(srv.port))
    r = decode_result(c.call("SUBMIT", encode_submit(SubmitRequest("h", make_inputs(0)))).body)
    assert r.status == "BAD_REQUEST" and "CONFIGURE" in r.message
    h = c.call("CONFIGURE", {"config": encode_config(make_config(1))}).body["config_hash"]
    r = decode_result(c.call("SUBMIT", encode_submit(SubmitRequest("other", make_inputs(0)))).body)
    assert r.status == "BAD_REQUEST"
    r = decode_result(c.call("SUBMIT", encode_submit(SubmitRequest(h, make_inputs(0, n_in=3)))).body)
    assert r.status == "BAD_REQUEST" and "columns" in r.message
    r = decode_result(c.call("SUBMIT", encode_submit(SubmitRequest(h, make_inputs(0), chip_id="elsewhere"))).body)
    assert r.status == "CHIP_MISMATCH"
    r = decode_result(c.call("SUBMIT", encode_submit(SubmitRequest(h, make_inputs(0), layers=[1]))).body)
    assert r.status == "OK" and r.result is not None and len(r.result.times) == 1
    np.testing.assert_array_equal(r.result.times[0], toy_forward(make_config(1), make_inputs(0))[1])
    too_big = make_config(1, sizes=(4, 600, 3))
    reply = c.call("CONFIGURE", {"config": encode_config(too_big)})
    assert reply.type == "ERROR" and reply.body["status"] == "BAD_REQUEST" and "neurons" in reply.body["message"]


def test_deadline_gives_timeout(make_server: MakeServer) -> None:
    chip = ToyChip(delay_s=0.6)
    srv = make_server(chip, deadline_s=0.15)
    cfg = make_config(3)
    with RemoteChip(srv.address, token=TOKEN) as rc:
        rc.configure(cfg)
        t0 = time.monotonic()
        with pytest.raises(ChipTimeout):
            rc.run(make_inputs(0))
        assert time.monotonic() - t0 < 0.5  # answered at the deadline, not when the chip returned
        chip.delay_s = 0.0
        assert_times_equal(rc.run(make_inputs(1)).times, toy_forward(cfg, make_inputs(1)))
    assert srv.stats["timeouts"] == 1
    # a client may ask for a shorter deadline than the server's
    chip.delay_s = 0.3
    srv2 = make_server(chip, deadline_s=10.0)
    with RemoteChip(srv2.address, token=TOKEN, deadline_s=0.05) as rc2:
        rc2.configure(cfg)
        with pytest.raises(ChipTimeout):
            rc2.run(make_inputs(0))
    assert chip.overlaps == 0


def _collect(c: RawClient, n: int) -> list[Message]:
    return [c.recv() for _ in range(n)]


def test_fair_round_robin_and_reinit(make_server: MakeServer, raw_client: MakeRaw) -> None:
    chip = ToyChip(delay_s=0.01)
    srv = make_server(chip)
    cfg_a, cfg_b = make_config(10), make_config(11)
    a, b = authed(raw_client(srv.port)), authed(raw_client(srv.port))
    ha = a.call("CONFIGURE", {"config": encode_config(cfg_a)}).body["config_hash"]
    n_a, n_b = 40, 5
    inputs_a = [make_inputs(100 + i) for i in range(n_a)]
    inputs_b = [make_inputs(200 + i) for i in range(n_b)]
    for x in inputs_a:  # a long pipelined queue
        a.send("SUBMIT", encode_submit(SubmitRequest(ha, x)))
    time.sleep(0.05)
    hb_msg = b.call("CONFIGURE", {"config": encode_config(cfg_b)})
    assert hb_msg.type == "CONFIGURED"
    hb = hb_msg.body["config_hash"]
    assert hb != ha
    frames_b = [b.frame("SUBMIT", encode_submit(SubmitRequest(hb, x))) for x in inputs_b]
    ids_b = [i for i, _ in frames_b]
    b.send_raw(b"".join(f for _, f in frames_b))  # B's queue arrives at once
    replies_b = _collect(b, n_b)
    replies_a = _collect(a, n_a)
    # B's results belong to B's configuration, A's to A's (reinit applied on every switch)
    for msg, x, i in zip(replies_b, inputs_b, ids_b, strict=True):
        assert msg.id == i
        r = decode_result(msg.body)
        assert r.status == "OK" and r.result is not None and r.result.config_hash == hb
        assert_times_equal(r.result.times, toy_forward(cfg_b, x))
    for msg, x in zip(replies_a, inputs_a, strict=True):
        r = decode_result(msg.body)
        assert r.status == "OK" and r.result is not None and r.result.config_hash == ha
        assert_times_equal(r.result.times, toy_forward(cfg_a, x))
    # fairness: B's units were interleaved with A's queue, not run after it
    runs = [h for kind, h in chip.log if kind == "run"]
    b_pos = [i for i, h in enumerate(runs) if h == hb]
    assert len(b_pos) == n_b
    assert b_pos[-1] < n_a  # all of B finished before A's queue was drained
    gaps = [q - p for p, q in itertools.pairwise(b_pos)]
    assert max(gaps) <= 2, (b_pos, gaps)  # alternating
    assert srv.stats["reinits"] >= 2 * n_b - 1
    assert chip.overlaps == 0


def test_two_remote_clients_interleaving(make_server: MakeServer) -> None:
    chip = ToyChip()
    srv = make_server(chip)
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        try:
            cfg = make_config(seed)
            with RemoteChip(srv.address, token=TOKEN) as rc:
                rc.configure(cfg)
                for i in range(40):
                    x = make_inputs(seed * 1000 + i)
                    res = rc.run(x)
                    assert_times_equal(res.times, toy_forward(cfg, x))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in (21, 22, 23)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert srv.stats["work_units"] == 120
    assert chip.overlaps == 0


def _fuzz_frames(rng: random.Random, valid_cfg: dict[str, Any], valid_hash: str) -> list[bytes]:
    """Well-delimited but bad (or odd) frames; each must get exactly one reply."""
    x = make_inputs(0)

    def env(v: Any = PROTOCOL_VERSION, t: Any = "HELLO", i: Any = 1, body: Any = None, **extra: Any) -> bytes:
        obj = {"v": v, "type": t, "id": i, "body": {} if body is None else body, **extra}
        return msgpack.packb(obj, use_bin_type=True)

    def garbage_array() -> Any:
        return rng.choice(
            [
                {"dtype": "|O", "shape": [1], "data": b"\0" * 8},
                {"dtype": "<f8", "shape": [3, 4], "data": b"\0" * 8},
                {"dtype": "<f8", "shape": [-2, 4], "data": b""},
                {"dtype": "<f8", "shape": [2**40], "data": b""},
                {"dtype": "<f4", "shape": [2], "data": b"\0" * 8},
                {"dtype": "<f8", "shape": [1, 4], "data": struct.pack("<4d", *[float("nan")] * 4)},
                {"dtype": "<i8", "shape": [1, 4], "data": b"\0" * 32},
                {"dtype": "<f8", "shape": [1, 4], "data": "text"},
                [1, 2, 3],
                "array",
                None,
                {"dtype": "<f8"},
            ]
        )

    kind = rng.randrange(12)
    if kind == 0:
        payload = rng.randbytes(rng.randrange(0, 200))
    elif kind == 1:
        payload = env(v=rng.choice([0, 2, 99, -1, "1", None, 1.0]))
    elif kind == 2:
        payload = env(t=rng.choice(["NOPE", "INFO", "RESULT", "ERROR", "", "hello", 7, None, "X" * 100]))
    elif kind == 3:
        payload = env(i=rng.choice([-1, "1", None, 2**64 - 1, 1.5, True]))
    elif kind == 4:
        payload = env(body=rng.choice([[], "body", 3, None, b"x"]))
    elif kind == 5:
        cfg = dict(valid_cfg)
        key = rng.choice(list(cfg))
        cfg[key] = (
            garbage_array() if key in ("weights",) else rng.choice([garbage_array(), -1.0, "x", [garbage_array()]])
        )
        payload = env(t="CONFIGURE", body={"config": cfg})
    elif kind == 6:
        body = {"config_hash": valid_hash, "inputs": garbage_array()}
        payload = env(t="SUBMIT", body=body)
    elif kind == 7:
        body = encode_submit(SubmitRequest(rng.choice(["", "unknown", "x" * 200]), x))
        payload = env(t="SUBMIT", body=body)
    elif kind == 8:
        good = encode_message(Message("CONFIGURE", 5, {"config": valid_cfg}))
        b = bytearray(good)
        for _ in range(rng.randrange(1, 6)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        payload = bytes(b)
    elif kind == 9:
        good = encode_message(Message("SUBMIT", 6, encode_submit(SubmitRequest(valid_hash, x))))
        payload = good[: rng.randrange(1, len(good))]  # truncated inside a well-delimited frame
    elif kind == 10:
        payload = env(extra_key=1)
    else:
        payload = env(t="CONFIGURE", body={"config": {"weights": [garbage_array()]}, "more": 1})
    return [struct.pack(">I", len(payload)) + payload]


def test_fuzz_then_well_behaved_client_still_served(make_server: MakeServer, raw_client: MakeRaw) -> None:
    chip = ToyChip()
    srv = make_server(
        chip,
        limits=Limits(max_frame_bytes=64 * 1024, max_array_elements=4096),
        max_pending=10_000,
        auth_limiter=AuthLimiter(free=10**9),  # the fuzzer's wrong tokens must not lock out the bystander
    )
    rng = random.Random(1234)
    good_cfg = make_config(30)
    stop = threading.Event()
    bystander_errors: list[BaseException] = []
    bystander_runs = [0]

    def bystander() -> None:  # a well-behaved client running during the whole fuzz
        try:
            with RemoteChip(srv.address, token=TOKEN) as rc:
                rc.configure(good_cfg)
                while not stop.is_set():
                    x = make_inputs(bystander_runs[0])
                    assert_times_equal(rc.run(x).times, toy_forward(good_cfg, x))
                    bystander_runs[0] += 1
        except BaseException as exc:
            bystander_errors.append(exc)

    th = threading.Thread(target=bystander)
    th.start()
    try:
        fuzz_cfg = make_config(31)
        c = authed(raw_client(srv.port))
        valid_hash = c.call("CONFIGURE", {"config": encode_config(fuzz_cfg)}).body["config_hash"]
        valid_cfg = encode_config(fuzz_cfg)
        n_frames = 0
        reconnects = 0
        t_end = time.monotonic() + 20
        while n_frames < 3000 and time.monotonic() < t_end:
            for frame in _fuzz_frames(rng, valid_cfg, valid_hash):
                c.send_raw(frame)
                n_frames += 1
                try:
                    reply = c.recv()
                except (EOFError, ConnectionError):
                    reconnects += 1
                    c = authed(raw_client(srv.port))
                    continue
                assert reply.type in ("ERROR", "RESULT", "CONFIGURED", "INFO", "SESSION", "STATUS_REPLY"), reply
        # unreadable frames and abuse on fresh connections
        for i in range(150):
            k = i % 6
            d = raw_client(srv.port)
            n_frames += 1
            if k == 0:  # oversized length -> ERROR and close
                d.send_raw(struct.pack(">I", 64 * 1024 + 1 + rng.randrange(2**31)))
                reply = d.recv()
                assert reply.type == "ERROR" and reply.body["status"] == "BAD_REQUEST"
                assert d.is_closed()
            elif k == 1:  # truncated frame, then hang up
                d.send_raw(struct.pack(">I", 100) + rng.randbytes(rng.randrange(0, 99)))
            elif k == 2:  # partial header
                d.send_raw(b"\x00\x00")
            elif k == 3:  # wrong token
                reply = d.call("AUTH", {"token": rng.choice(["", "x", TOKEN + "x", TOKEN[:-1]])})
                assert reply.body["status"] == "UNAUTHORIZED"
            elif k == 4:  # work without AUTH
                reply = d.call("SUBMIT", encode_submit(SubmitRequest(valid_hash, make_inputs(0))))
                assert reply.body["status"] == "UNAUTHORIZED"
            else:  # malformed AUTH body
                reply = d.call("AUTH", {"token": 123})
                assert reply.body["status"] == "BAD_REQUEST"
            d.close()
        assert n_frames >= 3000
    finally:
        stop.set()
        th.join(30)
    assert not bystander_errors, bystander_errors
    assert bystander_runs[0] > 0
    # a new well-behaved client still gets correct results
    cfg = make_config(32)
    with RemoteChip(srv.address, token=TOKEN) as rc:
        rc.configure(cfg)
        for i in range(5):
            x = make_inputs(900 + i)
            assert_times_equal(rc.run(x).times, toy_forward(cfg, x))
        st = rc.status()
    assert st["clients"] >= 1
    assert srv.stats["internal_errors"] == 0
    assert chip.overlaps == 0


def test_frames_beyond_limit_close_connection_others_unaffected(make_server: MakeServer, raw_client: MakeRaw) -> None:
    srv = make_server(ToyChip(), limits=Limits(max_frame_bytes=1024))
    good = authed(raw_client(srv.port))
    bad = raw_client(srv.port)
    bad.send_raw(encode_frame(Message("HELLO", 1, {"pad": b"\0" * 2000}), max_frame_bytes=10**6))
    reply = bad.recv()
    assert reply.type == "ERROR"
    assert bad.is_closed()
    assert good.call("STATUS").type == "STATUS_REPLY"


def test_pending_limit(make_server: MakeServer, raw_client: MakeRaw) -> None:
    chip = ToyChip(delay_s=0.05)
    srv = make_server(chip, max_pending=2)
    c = authed(raw_client(srv.port))
    h = c.call("CONFIGURE", {"config": encode_config(make_config(1))}).body["config_hash"]
    for _ in range(6):
        c.send("SUBMIT", encode_submit(SubmitRequest(h, make_inputs(0))))
    replies = _collect(c, 6)
    statuses = [r.body["status"] for r in replies]
    assert "BAD_REQUEST" in statuses and "OK" in statuses
    assert all(r.type in ("RESULT", "ERROR") for r in replies)


def test_context_manager_and_restart_flags(raw_client: MakeRaw) -> None:
    with ExperimentServer(ToyChip(), token=TOKEN) as srv:
        port = srv.port
        assert raw_client(port).call("HELLO").type == "INFO"
    with pytest.raises(OSError):
        RawClient(port, timeout=1.0)


def test_backend_failure_maps_to_status(make_server: MakeServer) -> None:
    class Broken(ToyChip):
        def run(self, inputs: Any) -> Any:
            raise RuntimeError("boom")

    srv = make_server(Broken())
    with RemoteChip(srv.address, token=TOKEN) as rc:
        rc.configure(make_config(1))
        with pytest.raises(Exception, match="boom") as info:
            rc.run(make_inputs(0))
        assert getattr(info.value, "status", None) == "CHIP_ERROR"


def test_client_that_does_not_read_is_dropped(make_server: MakeServer, raw_client: MakeRaw) -> None:
    # Dropped because its replies pile up, or because it went idle after the flood: either way the
    # server lets go of it and serves others.
    srv = make_server(ToyChip(), max_outgoing=8, idle_timeout_s=1.0)
    greedy = authed(raw_client(srv.port))
    _, hello = greedy.frame("HELLO")
    greedy.sock.settimeout(10)
    with contextlib.suppress(ConnectionError):
        for _ in range(20):  # replies pile up until the server gives up on this client
            greedy.send_raw(hello * 500)
    greedy.sock.settimeout(5.0)
    with contextlib.suppress(ConnectionResetError):
        while greedy.sock.recv(1 << 16):  # the server closes the connection (a timeout here fails the test)
            pass
    other = authed(raw_client(srv.port))
    assert other.call("STATUS").type == "STATUS_REPLY"
    assert srv.stats["internal_errors"] == 0
