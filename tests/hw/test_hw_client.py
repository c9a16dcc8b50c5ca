"""Remote client: tokens, addresses, reconnects across server restarts, chip pinning (127.0.0.1 only)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from delgrad_hw.chip import BadRequest, Chip, ChipMismatch, LinkError, Unauthorized
from delgrad_hw.client import TOKEN_ENV, RemoteChip, parse_address
from delgrad_hw.server import ExperimentServer
from hw_support import TOKEN, free_port
from hw_toychip import ToyChip, assert_times_equal, make_config, make_inputs, toy_forward

pytestmark = pytest.mark.timeout(60)

MakeServer = Callable[..., ExperimentServer]


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:5000", ("127.0.0.1", 5000)),
        ("remote://127.0.0.1:5001", ("127.0.0.1", 5001)),
        ("remote://localhost:5002/", ("localhost", 5002)),
        ("[::1]:5003", ("::1", 5003)),
    ],
)
def test_parse_address(address: str, expected: tuple[str, int]) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize("address", ["127.0.0.1", "remote://:80", "host:port", "h:0", "h:70000", ""])
def test_parse_address_errors(address: str) -> None:
    with pytest.raises(ValueError, match="address"):
        parse_address(address)


def test_token_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_server: MakeServer) -> None:
    srv = make_server(ToyChip())
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(Unauthorized, match=TOKEN_ENV):
        RemoteChip(srv.address)
    f = tmp_path / "token"
    f.write_text(TOKEN + "\n")
    f.chmod(0o600)
    with RemoteChip(srv.address, token_file=f) as rc:
        assert rc.info().chip_id == "toy-0"
        assert rc.session_id is not None
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with RemoteChip(f"remote://{srv.address}") as rc:
        assert isinstance(rc, Chip)
        rc.configure(make_config(1))
        assert rc.run(make_inputs(1)).chip_id == "toy-0"


def test_run_requires_configure_and_2d(make_server: MakeServer) -> None:
    srv = make_server(ToyChip())
    with RemoteChip(srv.address, token=TOKEN) as rc:
        with pytest.raises(BadRequest, match="configure"):
            rc.run(make_inputs(0))
        rc.configure(make_config(1))
        with pytest.raises(BadRequest, match="2-D"):
            rc.run(np.zeros(4))
        with pytest.raises(BadRequest, match="columns"):
            rc.run(np.zeros((2, 5)))
        with pytest.raises(TypeError):
            rc.configure("not a config")  # type: ignore[arg-type]


def test_unreachable_server_gives_link_error() -> None:
    rc = RemoteChip(f"127.0.0.1:{free_port()}", token=TOKEN, retries=2, backoff=0.01, connect_timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(LinkError, match="retries"):
        rc.info()
    assert time.monotonic() - t0 < 5
    rc.close()


def test_reply_timeout_gives_chip_timeout(make_server: MakeServer) -> None:
    chip = ToyChip(delay_s=0.5)
    srv = make_server(chip, deadline_s=30)
    with RemoteChip(srv.address, token=TOKEN, timeout=0.1, retries=0) as rc:
        rc.configure(make_config(1))
        from delgrad_hw.chip import ChipTimeout

        with pytest.raises(ChipTimeout, match="no reply"):
            rc.run(make_inputs(0))


def _restart_loop(
    make_server: MakeServer, new_chip_id: str
) -> tuple[list[np.ndarray], RemoteChip, BaseException | None]:
    port = free_port()
    srv = make_server(ToyChip("toy-A"), port=port)
    cfg = make_config(40)
    rc = RemoteChip(f"remote://127.0.0.1:{port}", token=TOKEN, retries=12, backoff=0.02, max_backoff=0.3, timeout=5)
    rc.configure(cfg)
    restart_at = threading.Event()
    restarted: list[ExperimentServer] = []

    def restarter() -> None:
        restart_at.wait(10)
        srv.stop()
        time.sleep(0.3)
        restarted.append(make_server(ToyChip(new_chip_id), port=port))

    th = threading.Thread(target=restarter)
    th.start()
    results: list[np.ndarray] = []
    error: BaseException | None = None
    try:
        for i in range(60):
            if i == 15:
                restart_at.set()
            if i > 15:
                time.sleep(0.005)  # keep the loop running while the server goes down and up
            x = make_inputs(500 + i)
            res = rc.run(x)
            assert_times_equal(res.times, toy_forward(cfg, x))
            results.append(res.times[-1])
    except ChipMismatch as exc:
        error = exc
    finally:
        restart_at.set()
        th.join(10)
    assert restarted, "server was not restarted"
    return results, rc, error


def test_server_restart_is_survived(make_server: MakeServer) -> None:
    results, rc, error = _restart_loop(make_server, "toy-A")
    assert error is None
    assert len(results) == 60  # no lost work unit
    assert rc.reconnects >= 1
    assert rc.chip_id == "toy-A"
    rc.close()


def test_chip_change_after_restart_raises(make_server: MakeServer) -> None:
    results, rc, error = _restart_loop(make_server, "toy-B")
    assert isinstance(error, ChipMismatch)
    assert "toy-B" in str(error) and "toy-A" in str(error)
    assert 15 <= len(results) < 60
    with pytest.raises(ChipMismatch):  # stays refused
        rc.run(make_inputs(0))
    rc.close()


def test_reconfigure_after_restart_uses_new_server_state(make_server: MakeServer) -> None:
    port = free_port()
    chip1 = ToyChip("same")
    srv = make_server(chip1, port=port)
    cfg = make_config(41)
    with RemoteChip(f"127.0.0.1:{port}", token=TOKEN, retries=8, backoff=0.02) as rc:
        rc.configure(cfg)
        rc.run(make_inputs(1))
        srv.stop()
        chip2 = ToyChip("same")
        make_server(chip2, port=port)
        x = make_inputs(2)
        assert_times_equal(rc.run(x).times, toy_forward(cfg, x))
        assert chip2.configure_calls == 1  # the client re-sent its configuration
