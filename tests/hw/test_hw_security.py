"""Server hardening: pre-auth limits, idle timeouts, back-pressure, AUTH rate limits, tokens, options.

Every server here listens on 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import os
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from delgrad_hw.auth import (
    MIN_TOKEN_BITS,
    AuthLimiter,
    InsecureTokenFileWarning,
    check_token_strength,
    new_token,
    read_token_file,
    token_bits,
)
from delgrad_hw.cli import main
from delgrad_hw.client import RemoteChip
from delgrad_hw.protocol import Limits, Message, SubmitRequest, encode_config, encode_frame, encode_submit
from delgrad_hw.server import ExperimentServer
from hw_support import TOKEN, RawClient
from hw_toychip import ToyChip, assert_times_equal, make_config, make_inputs, toy_forward

pytestmark = pytest.mark.timeout(120)

HERE = Path(__file__).resolve().parent
MakeServer = Callable[..., ExperimentServer]
MakeRaw = Callable[[int], RawClient]


class SlowToy(ToyChip):
    """The toy chip taking 50 ms per call: work queues up behind it (a backend for the CLI)."""

    def __init__(self, chip_id: str = "slow-toy", seed: int = 0) -> None:
        super().__init__(chip_id, seed, delay_s=0.05)


def _private_token_file(path: Path, token: str = TOKEN) -> Path:
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


# ---------------------------------------------------------------------------------------------------
# Before AUTH
# ---------------------------------------------------------------------------------------------------
def test_idle_strangers_cannot_lock_out_a_client(make_server: MakeServer) -> None:
    srv = make_server(ToyChip(), max_clients=4, max_unauthenticated=8)
    idle = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(64)]
    try:
        cfg, x = make_config(3), make_inputs(1)
        with RemoteChip(srv.address, token=TOKEN, retries=0) as rc:  # no retry needed: it gets in at once
            rc.configure(cfg)
            assert_times_equal(rc.run(x).times, toy_forward(cfg, x))
            status = rc.status()
        # the oldest strangers were turned away to make room: never more than the cap are waiting
        assert status["clients"] <= 8 + 1
        assert srv.stats["refused"] >= 64 - 8
    finally:
        for s in idle:
            s.close()


def test_auth_deadline_closes_silent_connections(make_server: MakeServer, raw_client: MakeRaw) -> None:
    srv = make_server(ToyChip(), auth_timeout_s=0.3)
    c = raw_client(srv.port)
    assert c.call("HELLO").type == "INFO"  # HELLO is allowed, but does not extend the deadline
    t0 = time.monotonic()
    reply = c.recv()
    assert reply.type == "ERROR" and reply.body["status"] == "UNAUTHORIZED"
    assert "no AUTH within 0.3 s" in reply.body["message"]
    assert c.is_closed() and time.monotonic() - t0 < 3.0
    assert srv.stats["auth_timeouts"] == 1


def test_large_frames_are_refused_before_auth(make_server: MakeServer, raw_client: MakeRaw) -> None:
    srv = make_server(ToyChip())
    parked = []
    for _ in range(10):  # announcing a 16 MiB frame and sending part of it parks nothing
        c = raw_client(srv.port)
        c.send_raw(struct.pack(">I", 16 * 1024 * 1024 - 1) + b"\0" * 1000)
        parked.append(c)
    for c in parked:
        reply = c.recv()
        assert reply.type == "ERROR" and "before AUTH" in reply.body["message"]
        assert c.is_closed()
    good = raw_client(srv.port)
    assert good.call("AUTH", {"token": TOKEN}).type == "SESSION"
    big = np.zeros((600, 4))  # 19 kB: above the pre-AUTH frame limit
    assert good.call("SUBMIT", encode_submit(SubmitRequest("h", big))).type == "RESULT"  # big frames after AUTH


def test_idle_timeout_after_auth(make_server: MakeServer, raw_client: MakeRaw) -> None:
    srv = make_server(ToyChip(), idle_timeout_s=0.3)
    c = raw_client(srv.port)
    assert c.call("AUTH", {"token": TOKEN}).type == "SESSION"
    reply = c.recv()
    assert reply.type == "ERROR" and reply.body["status"] == "TIMEOUT" and "idle" in reply.body["message"]
    assert c.is_closed()
    assert srv.stats["idle_closed"] == 1


def test_max_clients_counts_authenticated_connections(make_server: MakeServer, raw_client: MakeRaw) -> None:
    srv = make_server(ToyChip(), max_clients=1)
    first = raw_client(srv.port)
    assert first.call("AUTH", {"token": TOKEN}).type == "SESSION"
    second = raw_client(srv.port)
    assert second.call("HELLO").type == "INFO"  # may connect and ask, but not join
    reply = second.call("AUTH", {"token": TOKEN})
    assert reply.type == "ERROR" and "full" in reply.body["message"]
    assert second.is_closed()
    assert first.call("STATUS").type == "STATUS_REPLY"


# ---------------------------------------------------------------------------------------------------
# Back-pressure: a client that never reads holds a bounded amount of the server's memory
# ---------------------------------------------------------------------------------------------------
def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[str], int]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(*flags: str) -> tuple[subprocess.Popen[str], int]:
        tf = _private_token_file(tmp_path / "token")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
        cmd = [sys.executable, "-m", "delgrad_hw", "serve", "--port", "0", "--token-file", str(tf), *flags]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "serving chip" in line, line + (proc.stderr.read() if proc.stderr else "")
        return proc, int(line.strip().rsplit(":", 1)[-1])

    yield start
    for proc in procs:
        proc.kill()
        proc.communicate()  # reaps it and closes its pipes


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's RSS from /proc")
def test_memory_of_a_client_that_never_reads_is_bounded(
    serve_process: Callable[..., tuple[subprocess.Popen[str], int]],
) -> None:
    frame_limit, queued_limit = 4 * 1024 * 1024, 8 * 1024 * 1024
    proc, port = serve_process(
        "--backend", "test_hw_security:SlowToy",
        "--max-frame-bytes", str(frame_limit), "--max-queued-bytes", str(queued_limit),
    )  # fmt: skip
    c = RawClient(port, timeout=10)
    assert c.call("AUTH", {"token": TOKEN}).type == "SESSION"
    cfg = make_config(5, sizes=(256, 4, 2))
    h = c.call("CONFIGURE", {"config": encode_config(cfg)}).body["config_hash"]
    x = np.random.default_rng(0).uniform(0, 2, size=(1000, 256))  # 2 MB per SUBMIT
    c.seq += 1
    frame = encode_frame(Message("SUBMIT", c.seq, encode_submit(SubmitRequest(h, x))), frame_limit)
    assert c.call("SUBMIT", encode_submit(SubmitRequest(h, x))).type == "RESULT"  # warm up: one full round
    rss0 = _rss_bytes(proc.pid)

    sent, done = 0, threading.Event()

    def flood() -> None:
        nonlocal sent
        c.sock.settimeout(20.0)
        try:
            for _ in range(60):  # 120 MB, far more than the chip works off meanwhile
                c.sock.sendall(frame)
                sent += 1
        except OSError:
            pass
        done.set()

    t = threading.Thread(target=flood)
    t.start()
    peak = rss0
    while not done.wait(0.05):
        peak = max(peak, _rss_bytes(proc.pid))
    t.join()
    grown = peak - rss0
    # The server reads a frame only when it fits within the queue bound (back-pressure): the sender
    # is paced by the chip, and the server holds the queued requests (8 MiB), one frame being read and
    # its decoded copy, and the replies: far below the 120 MB sent at it.
    assert sent == 60
    assert grown < 48 * 1024 * 1024, f"server grew by {grown / 2**20:.0f} MiB"
    c.close()
    # the server is still there for others
    with RemoteChip(f"127.0.0.1:{port}", token=TOKEN, retries=0) as rc:
        assert rc.status()["clients"] >= 1


# ---------------------------------------------------------------------------------------------------
# AUTH failures are limited per source address
# ---------------------------------------------------------------------------------------------------
def test_auth_limiter_backs_off() -> None:
    now = [0.0]
    lim = AuthLimiter(free=2, base_s=1.0, max_s=4.0, forget_s=100.0, clock=lambda: now[0])
    assert [lim.failed("a") for _ in range(2)] == [0.0, 0.0]
    assert lim.failed("a") == 1.0 and lim.retry_in("a") == 1.0
    now[0] = 1.0
    assert lim.retry_in("a") == 0.0
    assert lim.failed("a") == 2.0 and lim.failed("a") == 4.0 and lim.failed("a") == 4.0  # capped
    assert lim.retry_in("b") == 0.0  # per address
    now[0] = 500.0  # forgotten after forget_s
    assert lim.retry_in("a") == 0.0 and lim.failed("a") == 0.0
    lim.succeeded("a")
    assert lim.retry_in("a") == 0.0
    small = AuthLimiter(free=0, max_addresses=3, clock=lambda: now[0])
    for name in "wxyz":
        small.failed(name)
    assert small.retry_in("w") == 0.0 and small.retry_in("z") > 0  # the oldest is evicted


def test_reconnecting_does_not_buy_guesses(make_server: MakeServer) -> None:
    srv = make_server(ToyChip(), auth_limiter=AuthLimiter(free=3, base_s=0.4, max_s=0.4))
    answers = []
    for _ in range(40):  # a fast guesser reconnecting after every failure
        with RawClient(srv.port) as c:
            answers.append(c.call("AUTH", {"token": new_token()}).body["message"])
    checked = [a for a in answers if a.startswith("wrong token")]
    assert len(checked) <= 3 + 2, answers  # the free failures, then about one per back-off period
    assert any("too many failed AUTH attempts from 127.0.0.1" in a for a in answers)
    with RawClient(srv.port) as c:  # even the right token waits out the lock-out ...
        reply = c.call("AUTH", {"token": TOKEN})
        assert reply.type == "ERROR" and "retry in" in reply.body["message"]
    time.sleep(0.5)
    with RawClient(srv.port) as c:  # ... and then gets in
        assert c.call("AUTH", {"token": TOKEN}).type == "SESSION"


# ---------------------------------------------------------------------------------------------------
# Tokens and token files
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("weak", ["", "x", "s3cret-token", "a" * 200, "ab" * 64, "0123456789abcdef" * 1])
def test_weak_tokens_are_refused(weak: str) -> None:
    with pytest.raises(ValueError, match="token"):
        ExperimentServer(ToyChip(), token=weak)


def test_token_strength_rule() -> None:
    assert token_bits("0" * 32) == 128 and token_bits("g" * 22) == 132 and token_bits("~" * 10) > 65
    check_token_strength(new_token())
    check_token_strength(TOKEN)
    assert token_bits(new_token()) >= 2 * MIN_TOKEN_BITS


def test_token_command_writes_a_private_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "token"
    assert main(["token", str(f)]) == 0
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    token = read_token_file(f)
    assert len(token) == 64 and int(token, 16) >= 0
    assert main(["token", str(f)]) == 2 and "exists" in capsys.readouterr().err
    f.chmod(0o644)
    assert main(["token", str(f), "--force"]) == 0
    assert stat.S_IMODE(f.stat().st_mode) == 0o600 and read_token_file(f) != token
    assert main(["token", str(tmp_path / "no" / "dir")]) == 2


def test_token_files_readable_by_others(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "token"
    f.write_text(TOKEN)
    f.chmod(0o644)
    with pytest.raises(ValueError, match="accessible to other users"):
        read_token_file(f)
    with pytest.warns(InsecureTokenFileWarning):
        assert read_token_file(f, allow_insecure=True) == TOKEN
    assert main(["serve", "--token-file", str(f), "--backend", "hw_toychip:ToyChip"]) == 2
    err = capsys.readouterr().err
    assert "--token-file" in err and "chmod 600" in err
    with pytest.warns(InsecureTokenFileWarning, match="token_file"):  # a client warns
        RemoteChip("127.0.0.1:1", token_file=f, retries=0)


def test_binary_token_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "token.bin"
    f.write_bytes(b"\xff\xfe\x00binary")
    f.chmod(0o600)
    assert main(["serve", "--token-file", str(f), "--backend", "hw_toychip:ToyChip"]) == 2
    assert "not a text file" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"token_file: .* not a text file"):
        RemoteChip("127.0.0.1:1", token_file=f, retries=0)


def test_weak_token_file_names_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _private_token_file(tmp_path / "token", "hunter2")
    assert main(["serve", "--token-file", str(f), "--backend", "hw_toychip:ToyChip"]) == 2
    assert "--token-file" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------
# serve options
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--deadline", "nan"),
        ("--deadline", "-1"),
        ("--deadline", "inf"),
        ("--max-frame-bytes", "-1"),
        ("--max-frame-bytes", "99999999999"),
        ("--max-clients", "0"),
        ("--max-unauthenticated", "0"),
        ("--auth-timeout", "0"),
        ("--idle-timeout", "nan"),
        ("--max-queued-bytes", "10"),
    ],
)
def test_serve_rejects_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str) -> None:
    f = _private_token_file(tmp_path / "token")
    assert main(["serve", "--token-file", str(f), "--backend", "hw_toychip:ToyChip", flag, value]) == 2
    assert flag in capsys.readouterr().err


def test_limits_are_checked() -> None:
    for bad in ({"max_frame_bytes": 0}, {"max_frame_bytes": 2**40}, {"max_batch": -1}, {"max_layers": True}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Limits(**bad)  # type: ignore[arg-type]
