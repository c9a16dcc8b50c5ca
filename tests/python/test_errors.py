import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import delgrad_rs
from delgrad_rs import DelgradError, InvalidValueError, Network, OptionError, ShapeError, _core

NET = Network.create([4, 5, 3], delays="synaptic", seed=0, threads=1)


def test_exception_hierarchy() -> None:
    assert issubclass(ShapeError, DelgradError) and issubclass(ShapeError, ValueError)
    assert issubclass(InvalidValueError, ValueError) and issubclass(OptionError, ValueError)
    assert issubclass(delgrad_rs.DivergedError, RuntimeError) and issubclass(DelgradError, RuntimeError)


@pytest.mark.parametrize(
    ("x", "exc", "fragment"),
    [
        (np.zeros((2, 5)), ShapeError, "x"),
        (np.zeros(4), ShapeError, "x"),
        (np.zeros((1, 2, 4)), ShapeError, "x"),
        (np.full((2, 4), np.nan), InvalidValueError, "x"),
        (np.full((2, 4), -np.inf), InvalidValueError, "x"),
        (np.zeros((2, 4), dtype=complex), TypeError, "x"),
        (np.array([["a", "b", "c", "d"]]), TypeError, "x"),
        (np.zeros((2, 4), dtype=bool), TypeError, "x"),
        ("nonsense", TypeError, "x"),
    ],
)
def test_forward_rejects_bad_input(x: object, exc: type[Exception], fragment: str) -> None:
    with pytest.raises(exc, match=fragment):
        NET.core.forward(x)


def test_silent_inputs_are_allowed() -> None:
    out = NET.forward(np.full((2, 4), np.inf))
    assert np.isinf(out[-1]).all()


def test_bad_parameters_are_named() -> None:
    p = NET.params
    p[0]["d_syn"] = -np.ones_like(p[0]["d_syn"])
    with pytest.raises(InvalidValueError, match=r"layers\[0\]\.d_syn"):
        NET.core.set_params(p)
    p = NET.params
    p[1]["w"] = np.zeros((3, 7))
    with pytest.raises(ShapeError, match=r"layers\[1\]"):
        NET.core.set_params(p)
    p = NET.params
    p[0]["bogus"] = 1
    with pytest.raises(OptionError, match=r"layers\[0\]\.bogus"):
        NET.core.set_params(p)
    p = NET.params
    p[0]["tau_m"] = -1.0
    with pytest.raises(InvalidValueError, match="tau_m"):
        NET.core.set_params(p)


def test_unknown_options() -> None:
    with pytest.raises(OptionError, match="method"):
        NET.core.forward(np.ones((1, 4)), method="magic")
    with pytest.raises(OptionError, match="loss"):
        delgrad_rs.loss_and_grad(np.ones((1, 3)), [0], "hinge")  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="delays"):
        Network.create([4, 3], delays="sideways")
    with pytest.raises(OptionError, match="delay_param"):
        _core.Trainer(NET.core, delay_param="tanh")  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match="split"):
        delgrad_rs.yin_yang("holdout")
    with pytest.raises(InvalidValueError, match="labels"):
        delgrad_rs.loss_and_grad(np.ones((1, 3)), [-1])
    with pytest.raises(TypeError, match="labels"):
        delgrad_rs.loss_and_grad(np.ones((1, 3)), [0.5])
    with pytest.raises(InvalidValueError, match="labels"):
        delgrad_rs.loss_and_grad(np.ones((1, 3)), [3])


garbage_arrays = hnp.arrays(
    dtype=st.sampled_from([np.float64, np.float32, np.int64, np.int8, np.uint16, np.complex128, np.bool_]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
    elements=None,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=garbage_arrays)
def test_forward_never_crashes(x: np.ndarray) -> None:
    try:
        out = NET.core.forward(x)
    except (TypeError, DelgradError) as e:
        assert "x" in str(e)
        return
    assert x.ndim == 2 and x.shape[1] == 4
    assert all(o.shape == (x.shape[0], n) for o, n in zip(out, (5, 3), strict=True))
    assert all(not np.isnan(o).any() for o in out)


@settings(max_examples=100, deadline=None)
@given(
    t=hnp.arrays(np.float64, st.tuples(st.integers(0, 4), st.just(3))),
    labels=hnp.arrays(np.int64, st.integers(0, 4), elements=st.integers(-2, 4)),
)
def test_loss_never_crashes(t: np.ndarray, labels: np.ndarray) -> None:
    try:
        r = delgrad_rs.loss_and_grad(t, labels)
    except DelgradError as e:
        assert any(k in str(e) for k in ("labels", "out_times", "output times"))
        return
    assert np.isfinite(r["per_sample"]).all() or np.isinf(t).any()
    assert not np.isnan(r["dl_dt"]).any()


@settings(max_examples=60, deadline=None)
@given(
    garbage=st.one_of(
        st.none(),
        st.integers(),
        st.text(max_size=3),
        st.lists(st.floats(), max_size=3),
        st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    )
)
def test_network_constructor_rejects_garbage(garbage: object) -> None:
    with pytest.raises((TypeError, DelgradError)):
        _core.Network([garbage])  # type: ignore[list-item]


def test_gil_is_released_during_compute() -> None:
    # One long core call on a worker thread: while it runs, this thread keeps running Python (with
    # the GIL held it would be blocked until the call returns).
    x = delgrad_rs.encode_times(np.tile(delgrad_rs.yin_yang("train")[0], (8, 1)))
    net = Network.create([4, 200, 3], seed=0, threads=1)
    entered = threading.Event()

    def work() -> None:
        entered.set()
        net.core.forward(x)

    th = threading.Thread(target=work)
    th.start()
    entered.wait()
    spins = 0
    t0 = time.perf_counter()
    while th.is_alive():
        spins += 1
        time.sleep(0)
    elapsed = time.perf_counter() - t0
    th.join()
    assert elapsed > 0.05, elapsed  # the call is long enough to tell
    assert spins > 1000, (spins, elapsed)
