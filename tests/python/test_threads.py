"""Worker threads: one pool per thread count in a process, safe to use from several threads."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

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
