"""Values at the ends of the accepted range (docs/model.md, "Range of values").

The default method and ``method="bracket"`` agree on every accepted input, from subnormal to huge
weights; values outside the range are errors naming the argument; a backward pass whose gradients
would not be finite is an error naming the sample and the layer.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from delgrad_rs import InvalidValueError, Network

# The bounds of docs/model.md, "Range of values".
MAX = 1e100
MIN = 1e-100


def one_neuron(w: list[float], tau_m: float = 2.0, tau_s: float = 1.0, theta: float = 1.0) -> Network:
    """A single neuron with the given weights (one input each)."""
    layer = {"w": np.array([w], dtype=float), "theta": theta, "tau_m": tau_m, "tau_s": tau_s}
    return Network.from_params([layer], threads=1)


def spike(net: Network, x: list[float], method: str) -> float:
    """The neuron's spike time for input times ``x``."""
    return float(net.forward(np.array([x]), method=method)[-1][0, 0])  # type: ignore[arg-type]


def agree(a: float, b: float, scale: float) -> bool:
    """Both silent, or both spiking within 1e-9 of the scale the times are resolved on."""
    if np.isinf(a) or np.isinf(b):
        return bool(a == b)
    return abs(a - b) <= 1e-9 * scale


def test_subnormal_weight_is_silent_in_both_methods() -> None:
    # The closed form saw its squared sums underflow and reported a spike at 5.545.
    net = one_neuron([5e-324], tau_m=8.0, tau_s=4.0)
    assert spike(net, [0.0], "auto") == np.inf
    assert spike(net, [0.0], "bracket") == np.inf


def test_largest_weight_spikes_at_theta_over_w_in_both_methods() -> None:
    # u = w kappa(s) ~ w s reaches theta = 1 at s ~ 1e-100 (the bracketing method said 4.3e-61).
    net = one_neuron([MAX])
    for method in ("auto", "bracket"):
        assert spike(net, [0.0], method) == pytest.approx(1e-100, rel=1e-12)


@pytest.mark.parametrize(
    ("layer", "fragment"),
    [
        ({"w": [[1e198]]}, r"layers\[0\]\.w: .*1e100"),
        ({"w": [[-1.5e100]]}, r"layers\[0\]\.w"),
        ({"theta": 1e101}, r"layers\[0\]\.theta"),
        ({"theta": 1e-101}, r"layers\[0\]\.theta"),
        ({"tau_m": 1e101}, "tau_m"),
        ({"tau_s": 1e-101}, "tau_s"),
        ({"tau_m": 1e9, "tau_s": 1.0}, r"tau_s.*tau_m / tau_s"),
    ],
)
def test_values_outside_the_range_are_named(layer: dict[str, object], fragment: str) -> None:
    params: dict[str, object] = {"w": [[1.0]], "theta": 1.0, "tau_m": 2.0, "tau_s": 1.0, **layer}
    params["w"] = np.array(params["w"], dtype=float)
    with pytest.raises(InvalidValueError, match=fragment):
        Network.from_params([params], threads=1)


subnormal = st.integers(min_value=1, max_value=(1 << 52) - 1).map(lambda b: float(np.uint64(b).view(np.float64)))
magnitude = st.floats(min_value=-300.0, max_value=100.0).map(lambda e: min(10.0**e, MAX))
ordinary = st.floats(min_value=0.1, max_value=3.0)
weights = st.lists(
    st.tuples(st.one_of(subnormal, magnitude, ordinary), st.booleans()).map(lambda p: -p[0] if p[1] else p[0]),
    min_size=1,
    max_size=3,
)
times = st.one_of(st.floats(0.0, 3.0), st.floats(-1e300, 1e300))


@settings(max_examples=300, deadline=None)
@given(
    w=weights,
    regime=st.sampled_from([1.0, 2.0, 1.7, 0.6]),
    tau_s=st.one_of(st.floats(0.3, 3.0), st.sampled_from([1e-90, 1e90])),
    theta_exp=st.floats(-100.0, 100.0),
    x=st.lists(times, min_size=3, max_size=3),
)
def test_subnormal_and_huge_weights_agree_with_bracketing(
    w: list[float], regime: float, tau_s: float, theta_exp: float, x: list[float]
) -> None:
    tau_m = regime * tau_s
    theta = min(max(10.0**theta_exp, MIN), MAX)
    net = one_neuron(w, tau_m=tau_m, tau_s=tau_s, theta=theta)
    inputs = x[: len(w)]
    a, b = spike(net, inputs, "auto"), spike(net, inputs, "bracket")
    finite = [abs(v) for v in [*inputs, a, b] if np.isfinite(v)]
    closed = regime in (1.0, 2.0)
    scale = max(finite, default=0.0) + (tau_m if closed else 0.0)
    assert agree(a, b, scale), (tau_m, tau_s, theta, w, inputs, a, b)


def test_non_finite_gradients_name_the_sample_and_layer() -> None:
    # tau_m = tau_s = 1, one input at 0: the slope at t is e^-t (1 - t), almost 0 just before the
    # peak; with a huge loss gradient, dL/dtheta = dl / slope overflows for sample 1 only.
    net = one_neuron([1.0], tau_m=1.0, tau_s=1.0, theta=0.3)
    x = np.zeros((3, 1))
    times = [np.array([[0.5], [0.999], [0.5]])]
    with pytest.raises(InvalidValueError, match=r"sample 1: the gradients of layers\[0\] are not finite"):
        net.core.backward(x, times, np.array([[1.0], [1e308], [1.0]]))
    # Each sample finite, their sum over the batch not.
    with pytest.raises(InvalidValueError, match=r"layers\[0\]\.theta: the gradient summed over the batch"):
        net.core.backward(np.zeros((2, 1)), [np.array([[0.5], [0.5]])], np.array([[5e307], [5e307]]))
    # Ordinary gradients are returned as before.
    grads = net.core.backward(x, [np.array([[0.5], [0.7], [0.9]])], np.array([[1.0], [-2.0], [0.5]]))
    assert all(np.isfinite(np.asarray(v)).all() for v in grads["layers"][0].values())


def test_backward_with_huge_times_never_returns_nan() -> None:
    # Huge but finite times (inputs and given hidden and output times up to 1e308) and loss
    # gradients: finite gradients or an error naming the sample, never NaN or inf.
    net = Network.from_params(
        [
            {"w": np.array([[2.12], [2.43e32]]), "theta": 1.0, "tau_m": 2.0, "tau_s": 1.0},
            {"w": np.array([[2.4e35, 2.6e-83]]), "theta": 1.0, "tau_m": 2.0, "tau_s": 1.0},
        ],
        threads=1,
    )
    errors = 0
    for x, h0, h1, out, dl in itertools.product(
        [0.5, 1e308, -1e308, 1e-300], [0.9, 1e-152, 1e308], [0.9, 1e-152, -1e308], [0.96, 1e308, 2.0], [1.0, 1e300]
    ):
        try:
            grads = net.core.backward(np.array([[x]]), [np.array([[h0, h1]]), np.array([[out]])], np.array([[dl]]))
        except InvalidValueError as e:
            assert "sample 0" in str(e) or "summed over the batch" in str(e), e
            errors += 1
            continue
        assert np.isfinite(grads["input"]).all()
        assert all(np.isfinite(np.asarray(v)).all() for layer in grads["layers"] for v in layer.values())
    assert errors > 0
