"""A process forked after the core's threads started (``multiprocessing`` on Linux) still works."""

from __future__ import annotations

import io
import os
import pickle
import select
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from delgrad_rs.network import Network

pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or sys.platform != "linux", reason="needs fork and /proc")


def _in_forked_child(job: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Run ``job`` in a forked child and return its result; fail if the child hangs."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        code = 0
        try:
            out = pickle.dumps(("ok", job()))
        except BaseException as e:  # everything goes back to the parent
            out, code = pickle.dumps(("error", repr(e))), 1
        with os.fdopen(write, "wb") as f:
            f.write(out)
        os._exit(code)
    os.close(write)
    buf = io.BytesIO()
    deadline = time.monotonic() + timeout
    with os.fdopen(read, "rb") as f:
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([f], [], [], max(left, 0.0))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail(f"the forked child hung for {timeout} s")
            chunk = os.read(f.fileno(), 1 << 16)
            if not chunk:
                break
            buf.write(chunk)
    os.waitpid(pid, 0)
    status, value = pickle.loads(buf.getvalue())
    assert status == "ok", value
    return value


def _thread_names() -> list[str]:
    return [(p / "comm").read_text().strip() for p in Path("/proc/self/task").iterdir()]


def test_a_forked_child_computes_with_its_own_threads() -> None:
    net = Network.create([4, 30, 3], delays="synaptic", seed=3, threads=2)
    x = np.random.default_rng(0).uniform(0.0, 2.0, (150, 4))
    y = np.arange(150) % 3
    want = net.forward(x)  # the parent's helper thread is running now
    want_loss, want_grads = net.loss_and_grad(x, y)

    def job() -> tuple[list[np.ndarray], float, Any, list[str]]:
        times = net.forward(x)
        loss, grads = net.loss_and_grad(x, y)
        return times, loss, grads, _thread_names()

    times, loss, grads, names = _in_forked_child(job)
    for got, exp in zip(times, want, strict=True):
        np.testing.assert_array_equal(got, exp)
    assert loss == want_loss
    np.testing.assert_array_equal(grads["input"], want_grads["input"])
    for got_layer, exp_layer in zip(grads["layers"], want_grads["layers"], strict=True):
        for key, exp in exp_layer.items():
            np.testing.assert_array_equal(got_layer[key], exp, err_msg=key)
    # The child started a helper of its own (the parent's does not exist in it).
    assert any(n.startswith("delgrad-") for n in names), names


def test_a_grandchild_and_a_trainer_work_too() -> None:
    net = Network.create([4, 30, 3], seed=1, threads=2)
    trainer = net.trainer()
    x = np.random.default_rng(1).uniform(0.0, 2.0, (64, 4))
    y = np.arange(64) % 3
    want = net.forward(x)[-1]

    def grandchild() -> float:
        return float(np.nan_to_num(net.forward(x)[-1], posinf=0.0).sum())

    def child() -> tuple[float, float, dict[str, Any]]:
        here = float(np.nan_to_num(net.forward(x)[-1], posinf=0.0).sum())
        below = _in_forked_child(grandchild)
        return here, below, net.train_step(x, y, trainer)

    here, below, report = _in_forked_child(child)
    assert here == below == float(np.nan_to_num(want, posinf=0.0).sum())
    assert np.isfinite(report["loss"])


def test_a_long_call_in_a_forked_child_runs_on_a_call_thread_of_its_own() -> None:
    # Long enough that the main thread hands it to the process's call thread (samples x
    # synapses at least 2**20): the parent's call thread does not exist in the child.
    net = Network.create([4, 300, 3], delays="synaptic", seed=4, threads=1)
    x = np.random.default_rng(4).uniform(0.0, 2.0, (1000, 4))
    want = net.forward(x)
    assert "delgrad-call" in _thread_names()

    def job() -> tuple[list[np.ndarray], list[str]]:
        first = net.forward(x)
        np.testing.assert_array_equal(first[-1], net.forward(x)[-1])  # the thread is reused
        return first, _thread_names()

    times, names = _in_forked_child(job)
    for got, exp in zip(times, want, strict=True):
        np.testing.assert_array_equal(got, exp)
    assert names.count("delgrad-call") == 1, names
