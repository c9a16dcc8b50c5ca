"""Worker threads: one pool per thread count in a process, safe to use from several threads."""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from delgrad_rs import _core
from delgrad_rs.network import Network


def _core_threads() -> int:
    return sum((p / "comm").read_text().startswith("delgrad-") for p in Path("/proc/self/task").iterdir())


@pytest.mark.skipif(sys.platform != "linux", reason="counts threads in /proc")
def test_many_networks_share_one_pool() -> None:
    first = Network.create([4, 30, 3], seed=0, threads=3)
    first.forward(np.full((8, 4), 0.5))
    before = _core_threads()
    nets = [Network.create([4, 30, 3], seed=s, threads=3) for s in range(1, 30)]
    for net in nets:
        net.forward(np.full((8, 4), 0.5))
    # Thirty networks of 3 threads: the 2 helpers of the first, no more.
    assert _core_threads() == before >= 2


def test_concurrent_use_from_python_threads_matches_serial_use() -> None:
    rng = np.random.default_rng(4)
    # Networks of two shapes on one shared pool, used from four Python threads at once.
    nets = [Network.create([4, h, 3], delays="synaptic", seed=h, threads=2) for h in (30, 50)]
    xs = [rng.uniform(0.0, 2.0, (150, 4)) for _ in range(8)]
    y = np.arange(150) % 3

    def work(i: int) -> tuple[list[np.ndarray], float, np.ndarray]:
        net = nets[i % 2]
        loss, grads = net.loss_and_grad(xs[i], y)
        return net.forward(xs[i]), loss, grads["layers"][0]["w"]

    serial = [work(i) for i in range(8)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(3):
            concurrent = list(pool.map(work, range(8)))
            for (times, loss, dw), (want_times, want_loss, want_dw) in zip(concurrent, serial, strict=True):
                for got, want in zip(times, want_times, strict=True):
                    np.testing.assert_array_equal(got, want)
                assert loss == want_loss
                np.testing.assert_array_equal(dw, want_dw)


def test_one_trainer_used_from_several_threads_takes_turns() -> None:
    # Every thread takes the same step: whatever the order the threads take turns in, the
    # trainer must end where one thread taking them one after another does (a step that overlapped
    # another or was lost would not), and every read in between sees a whole step.
    net = Network.create([4, 30, 3], delays="synaptic", seed=2, threads=2)
    rng = np.random.default_rng(5)
    x, y = rng.uniform(0.0, 2.0, (60, 4)), np.arange(60) % 3
    shared, serial = (_core.Trainer(net.core, threads=2) for _ in range(2))

    def work(_: int) -> None:
        shared.step(x, y, 0)
        shared.evaluate(x, y)
        assert len(shared.state()["tensors"]) == 4
        shared.network()

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(work, range(24)))
    for _ in range(24):
        serial.step(x, y, 0)
    for got, want in zip(shared.state()["tensors"], serial.state()["tensors"], strict=True):
        for key in ("values", "m", "v"):
            np.testing.assert_array_equal(got[key], want[key])
        assert got["t"] == want["t"]


def test_set_params_waits_for_the_calls_of_other_threads() -> None:
    x = np.random.default_rng(6).uniform(0.0, 2.0, (400, 4))
    nets = [Network.create([4, 40, 3], seed=s, threads=2).core for s in (0, 1)]
    outputs = [n.forward(x)[-1] for n in nets]
    net = nets[0].copy()
    stop = threading.Event()
    seen: list[int] = []

    def read() -> None:
        while not stop.is_set():
            out = net.forward(x)[-1]
            # One network's output or the other's, never a mix or an error.
            seen.append(next(i for i, want in enumerate(outputs) if np.array_equal(out, want)))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for k in range(40):
            net.set_params(nets[(k + 1) % 2].params())
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert seen
    np.testing.assert_array_equal(net.forward(x)[-1], outputs[0])
