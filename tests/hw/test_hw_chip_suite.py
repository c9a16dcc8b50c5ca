"""The Chip-protocol suite, run against every implementation: the toy double, the emulator in-process
and the emulator served by an ExperimentServer through RemoteChip."""

from __future__ import annotations

import random
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from delgrad_hw.chip import Chip, ReportsWrites, RunResult
from delgrad_hw.client import RemoteChip
from delgrad_hw.emulator import EmulatedChip
from delgrad_hw.protocol import Limits, encode_config
from delgrad_hw.server import ExperimentServer
from hw_support import TOKEN
from hw_toychip import ToyChip
from test_hw_emulator import IDEAL, hw_config, yy_inputs
from test_hw_server import _fuzz_frames, authed

MakeServer = Callable[..., ExperimentServer]


@pytest.fixture(params=["toy", "emulated", "remote-emulated"])
def chip_factory(request: pytest.FixtureRequest, make_server: MakeServer) -> Iterator[Callable[[str, int], Chip]]:
    """A factory of chips with the given (chip id, seed); chips of one id and seed are the same chip."""
    remotes: list[RemoteChip] = []

    def make(chip_id: str, seed: int) -> Chip:
        if request.param == "toy":
            return ToyChip(chip_id, seed)
        if request.param == "emulated":
            return EmulatedChip(chip_id, seed)
        srv = make_server(EmulatedChip(chip_id, seed))
        rc = RemoteChip(srv.address, token=TOKEN)
        remotes.append(rc)
        return rc

    yield make
    for rc in remotes:
        rc.close()


def test_protocol_and_info(chip_factory: Callable[[str, int], Chip]) -> None:
    chip = chip_factory("suite-a", 1)
    assert isinstance(chip, Chip) and isinstance(chip, ReportsWrites)
    info = chip.info()
    assert info.chip_id == "suite-a" and info.protocol_version == 1 and info.calibration_id
    assert info.limits["max_neurons"] >= 33 and info.limits["max_inputs"] >= 20


def test_configure_returns_a_stable_hash_and_writes_only_changes(chip_factory: Callable[[str, int], Chip]) -> None:
    chip = chip_factory("suite-b", 1)
    cfg = hw_config(11)
    h = chip.configure(cfg)
    assert isinstance(h, str) and len(h) == 64
    assert isinstance(chip, ReportsWrites) and chip.last_written_entries > 0
    assert chip.configure(hw_config(11)) == h
    assert chip.last_written_entries == 0
    cfg.weights[1][0, 0] += 0.5
    assert chip.configure(cfg) != h
    assert chip.last_written_entries == 1


def test_run_shapes_result_and_bad_inputs(chip_factory: Callable[[str, int], Chip]) -> None:
    chip = chip_factory("suite-c", 2)
    with pytest.raises(ValueError):  # BadRequest is a ValueError; the toy double raises a plain one
        chip.run(yy_inputs(3))
    h = chip.configure(hw_config(12))
    res = chip.run(yy_inputs(7))
    assert isinstance(res, RunResult)
    assert [t.shape for t in res.times] == [(7, 30), (7, 3)]
    assert all(t.dtype == np.float64 for t in res.times)
    assert res.chip_id == "suite-c" and res.config_hash == h
    assert res.health.dropped_events >= 0 and not res.health.stall
    assert np.isfinite(res.times[0]).any()
    with pytest.raises(ValueError):
        chip.run(np.ones((2, 5)))


def test_same_chip_and_seed_same_results(chip_factory: Callable[[str, int], Chip]) -> None:
    a, b = chip_factory("suite-d", 3), chip_factory("suite-d", 3)
    cfg, x = hw_config(13), yy_inputs(20)
    assert a.configure(cfg) == b.configure(cfg)
    for _ in range(2):
        for u, v in zip(a.run(x).times, b.run(x).times, strict=True):
            np.testing.assert_array_equal(u, v)


def test_remote_emulator_equals_in_process_emulator(make_server: MakeServer) -> None:
    srv = make_server(EmulatedChip("same", 5))
    local = EmulatedChip("same", 5)
    cfg, x = hw_config(14), yy_inputs(30)
    with RemoteChip(srv.address, token=TOKEN) as rc:
        assert rc.configure(cfg) == local.configure(cfg)
        for _ in range(3):
            r, l_ = rc.run(x), local.run(x)
            for u, v in zip(r.times, l_.times, strict=True):
                np.testing.assert_array_equal(u, v)
            assert r.health == l_.health


@pytest.mark.timeout(60)
def test_fuzz_leaves_the_emulator_server_serving(make_server: MakeServer, raw_client: Any) -> None:
    """Garbage, truncated, oversized and wrong-token frames while a good client keeps getting the
    results of the (temporal-noise-free) emulator."""
    srv = make_server(
        EmulatedChip("fuzz", 0, **IDEAL), limits=Limits(max_frame_bytes=64 * 1024, max_array_elements=4096)
    )
    reference = EmulatedChip("fuzz", 0, **IDEAL)
    good_cfg = hw_config(15)
    reference.configure(good_cfg)
    rng = random.Random(99)
    stop = threading.Event()
    errors: list[BaseException] = []
    good_runs = [0]

    def good_client() -> None:
        try:
            with RemoteChip(srv.address, token=TOKEN) as rc:
                rc.configure(good_cfg)
                while not stop.is_set():
                    x = yy_inputs(8, seed=good_runs[0] % 900)
                    for u, v in zip(rc.run(x).times, reference.run(x).times, strict=True):
                        np.testing.assert_array_equal(u, v)
                    good_runs[0] += 1
        except BaseException as exc:
            errors.append(exc)

    th = threading.Thread(target=good_client)
    th.start()
    try:
        c = authed(raw_client(srv.port))
        fuzz_cfg = encode_config(hw_config(16))
        valid_hash = c.call("CONFIGURE", {"config": fuzz_cfg}).body["config_hash"]
        n = 0
        t_end = time.monotonic() + 15
        while n < 1000 and time.monotonic() < t_end:
            for frame in _fuzz_frames(rng, fuzz_cfg, valid_hash):
                c.send_raw(frame)
                n += 1
                try:
                    reply = c.recv()
                except (EOFError, ConnectionError):
                    c = authed(raw_client(srv.port))
                    continue
                assert reply.type in ("ERROR", "RESULT", "CONFIGURED", "INFO", "SESSION", "STATUS_REPLY")
        for i in range(40):  # oversized frames and wrong tokens on fresh connections
            d = raw_client(srv.port)
            if i % 2:
                d.send_raw(struct.pack(">I", 64 * 1024 + 1 + rng.randrange(2**30)))
                assert d.recv().body["status"] == "BAD_REQUEST" and d.is_closed()
            else:
                assert d.call("AUTH", {"token": TOKEN + "x"}).body["status"] == "UNAUTHORIZED"
            d.close()
        assert n >= 300
    finally:
        stop.set()
        th.join(30)
    assert not errors, errors
    assert good_runs[0] > 0
    assert srv.stats["internal_errors"] == 0
