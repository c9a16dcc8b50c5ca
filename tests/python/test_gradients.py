import numpy as np
import pytest

from delgrad_rs import Network, loss_and_grad


def loss_of(net: Network, x: np.ndarray, y: np.ndarray) -> float:
    out = net.forward(x)[-1]
    return float(loss_and_grad(out, y, "mse")["loss"])


@pytest.mark.parametrize("tau", [(2.0, 1.0), (1.0, 1.0), (1.7, 0.6)])
def test_backward_matches_finite_differences(tau: tuple[float, float]) -> None:
    net = Network.create(
        [3, 5, 3], tau_m=tau[0], tau_s=tau[1], weight_mean=1.5, weight_std=0.5, delays="all", seed=3, threads=1
    )
    rng = np.random.RandomState(0)
    x = rng.uniform(0.1, 1.0, size=(4, 3))
    y = np.array([0, 1, 2, 1])
    out = net.forward(x)[-1]
    assert np.isfinite(out).all(), "pick a seed where every output spikes"
    loss, grads = net.loss_and_grad(x, y)
    assert loss == pytest.approx(loss_of(net, x, y))
    base = net.params
    h = 1e-6
    checked = 0
    for li, layer in enumerate(base):
        for key in ("w", "d_syn", "d_axo", "d_den"):
            arr = np.asarray(layer[key])
            for idx in [tuple(rng.randint(0, s) for s in arr.shape) for _ in range(4)]:
                vals = []
                for sign in (1, -1):
                    p = [dict(lay) for lay in base]
                    a = arr.copy()
                    a[idx] += sign * h
                    p[li][key] = a
                    net.params = p
                    vals.append(loss_of(net, x, y))
                net.params = base
                fd = (vals[0] - vals[1]) / (2 * h)
                an = grads["layers"][li][key][idx]
                assert an == pytest.approx(fd, rel=1e-4, abs=1e-7), (li, key, idx)
                checked += 1
    # inputs: dL/dt_in per sample
    for b in range(x.shape[0]):
        for i in range(x.shape[1]):
            xp, xm = x.copy(), x.copy()
            xp[b, i] += h
            xm[b, i] -= h
            fd = (loss_of(net, xp, y) - loss_of(net, xm, y)) / (2 * h)
            assert grads["input"][b, i] == pytest.approx(fd, rel=1e-4, abs=1e-7)
    assert checked == 2 * 4 * 4


def test_float32_int_and_noncontiguous_inputs_agree() -> None:
    net = Network.create([4, 6, 3], seed=1, threads=1)
    x = np.asfortranarray(np.random.RandomState(2).uniform(0.15, 2.0, size=(5, 4)))
    ref = net.forward(np.ascontiguousarray(x))
    got = net.forward(x)
    for a, b in zip(ref, got, strict=True):
        np.testing.assert_array_equal(a, b)
    big = np.zeros((5, 8))
    big[:, ::2] = x
    for a, b in zip(ref, net.forward(big[:, ::2]), strict=True):
        np.testing.assert_array_equal(a, b)
    x32 = x.astype(np.float32)
    for a, b in zip(net.forward(x32.astype(np.float64)), net.forward(x32), strict=True):
        np.testing.assert_array_equal(a, b)
    xi = np.ones((2, 4), dtype=np.int32)
    assert net.forward(xi)[-1].dtype == np.float64
