"""High-precision reference of the DelGrad model, written for the conformance tests.

It shares no code with the core and uses none of its closed forms: it evaluates the potential as
the plain sum over inputs, finds the first threshold crossing by bracketing and root finding, and
computes gradients by the implicit function theorem, all in ``mpmath`` at ``DPS`` decimal digits.
The model (``docs/model.md``): presynaptic first-spike times t_i (None = silent), arrivals
a_ki = t_i + d_ki with d_ki = d_syn[k][i] + d_axo[i] + d_den[k], potential
u_k(t) = sum_i w_ki kappa(t - a_ki) with

    kappa(s) = (exp(-s/tau_m) - exp(-s/tau_s)) / (1/tau_s - 1/tau_m)    (tau_m != tau_s)
    kappa(s) = s exp(-s/tau)                                           (tau_m == tau_s == tau)
    kappa(s) = 0                                                       (s <= 0)

and output t_k = the first t with u_k(t) = theta_k (+inf when u_k never reaches theta_k).

**First crossing.** Between consecutive arrivals the active inputs are fixed and u' is
P e^{-t/tau_m} - Q e^{-t/tau_s} (or e^{-t/tau} times a linear function), which changes sign at
most once: u has at most one critical point per interval. The scan visits the intervals in time
order and samples each at ``SAMPLES`` + 1 points (u and u'); a bracket [t_j, t_{j+1}] holds the
crossing if u(t_{j+1}) >= theta, or if u' falls from > 0 to < 0 inside it and the maximum, found by
bisection on u', reaches theta (a near-tangential crossing, decided at full precision). The
crossing itself is then refined by safeguarded Newton (bisection fallback) on u - theta. After the
last arrival the scan ends at a time T past the kernel's peak with sum_i |w_i| kappa(T - a_i) <
theta: kappa decreases after its peak, so u stays below theta from there on.

**Gradients.** Differentiating u_k(t_k) = theta_k with slope rho_k = sum_i w_ki kappa'(t_k - a_ki):
dt_k/dw_ki = -kappa(t_k - a_ki) / rho_k and dt_k/da_ki = w_ki kappa'(t_k - a_ki) / rho_k; the
delays and the layer below take dt_k/da_ki (dL/dd_syn[k][i] = delta_k dt_k/da_ki,
dL/dd_axo[i] = sum_k, dL/dd_den[k] = sum_i, dL/dt_i = sum_k delta_k dt_k/da_ki). Silent neurons
pass no error. :func:`finite_difference_check` compares all of them with central differences of
the loss computed by the forward pass at the same precision.
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
import operator
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mpmath import mp, mpf

# Working precision (decimal digits): roots and gradients are exact far beyond float64.
DPS = 40
# Samples per inter-arrival interval (the bracketing needs only one critical point per interval).
SAMPLES = 8
# Step of the central finite differences (the loss is exact to ~1e-38 at DPS = 40).
FD_STEP = mpf("1e-15")

INF = mp.inf


@dataclass(frozen=True)
class Kernel:
    """The PSP kernel kappa(s) and its slope, in units where C_m = 1."""

    tau_m: mpf
    tau_s: mpf
    equal: bool
    rate_m: mpf  # 1/tau_m
    rate_s: mpf  # 1/tau_s
    scale: mpf  # 1 / (1/tau_s - 1/tau_m), unused when equal

    @classmethod
    def of(cls, tau_m: float, tau_s: float) -> Kernel:
        """Kernel of the time constants ``tau_m``, ``tau_s`` (the equal limit when they are equal)."""
        if not (tau_m > 0 and tau_s > 0):
            raise ValueError(f"time constants must be > 0, got tau_m={tau_m}, tau_s={tau_s}")
        with mp.workdps(DPS):
            m, s = mpf(tau_m), mpf(tau_s)
            equal = tau_m == tau_s
            return cls(m, s, equal, 1 / m, 1 / s, mpf(0) if equal else 1 / (1 / s - 1 / m))

    def both(self, s: mpf) -> tuple[mpf, mpf]:
        """kappa(s) and kappa'(s) (right derivative at s = 0, where kappa'(0+) = 1)."""
        if s < 0:
            return mpf(0), mpf(0)
        if self.equal:
            e = mp.exp(-s * self.rate_m)
            return s * e, (1 - s * self.rate_m) * e
        em, es = mp.exp(-s * self.rate_m), mp.exp(-s * self.rate_s)
        return (em - es) * self.scale, (es * self.rate_s - em * self.rate_m) * self.scale

    def peak(self) -> mpf:
        """The s > 0 where kappa peaks (kappa increases before, decreases after)."""
        if self.equal:
            return self.tau_m
        return mp.log(self.tau_m / self.tau_s) / (1 / self.tau_s - 1 / self.tau_m)


Arrival = tuple[mpf, mpf]  # (arrival time a, weight w)


def _potential(kernel: Kernel, active: list[Arrival], t: mpf) -> tuple[mpf, mpf]:
    """u(t) and u'(t) of the inputs in ``active`` (all with a <= t)."""
    u, du = mpf(0), mpf(0)
    for a, w in active:
        k, dk = kernel.both(t - a)
        u += w * k
        du += w * dk
    return u, du


def _tol(t: mpf) -> mpf:
    return mpf(10) ** (5 - DPS) * max(mpf(1), abs(t))


def _bisect_slope(kernel: Kernel, active: list[Arrival], lo: mpf, hi: mpf) -> mpf:
    """The maximum of u in [lo, hi], where u' > 0 at lo and u' < 0 at hi."""
    while hi - lo > _tol(hi):
        mid = (lo + hi) / 2
        if _potential(kernel, active, mid)[1] > 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _root(kernel: Kernel, active: list[Arrival], theta: mpf, lo: mpf, hi: mpf) -> mpf:
    """The crossing u = theta in [lo, hi], given u(lo) < theta <= u(hi) and one crossing there."""
    t = (lo + hi) / 2
    for _ in range(10 * DPS):
        u, du = _potential(kernel, active, t)
        if u < theta:
            lo = t
        else:
            hi = t
        step = (u - theta) / du if du > 0 else None
        if step is not None and lo < t - step < hi:
            t -= step
            if abs(step) <= _tol(t):
                return t
        else:
            t = (lo + hi) / 2
        if hi - lo <= _tol(hi):
            return (lo + hi) / 2
    raise ArithmeticError("root finding did not converge")


def _tail_end(kernel: Kernel, arrivals: list[Arrival], theta: mpf) -> mpf:
    """A time T after which u < theta for sure (see the module notes)."""
    last = arrivals[-1][0]
    span = kernel.peak()
    while sum(abs(w) * kernel.both(last + span - a)[0] for a, w in arrivals) >= theta:
        span *= 2
    return last + span


def _interval_crossing(kernel: Kernel, active: list[Arrival], theta: mpf, lo: mpf, hi: mpf) -> mpf | None:
    """The first crossing in [lo, hi] (u(lo) < theta), or None."""
    grid = [lo + (hi - lo) * j / SAMPLES for j in range(SAMPLES + 1)]
    prev = _potential(kernel, active, grid[0])
    for left, right in itertools.pairwise(grid):
        cur = _potential(kernel, active, right)
        if cur[0] >= theta:
            return _root(kernel, active, theta, left, right)
        if prev[1] > 0 > cur[1]:
            top = _bisect_slope(kernel, active, left, right)
            if _potential(kernel, active, top)[0] >= theta:
                return _root(kernel, active, theta, left, top)
        prev = cur
    return None


def first_spike(kernel: Kernel, arrivals: list[Arrival], theta: mpf) -> mpf:
    """The first t with sum_i w_i kappa(t - a_i) = theta (theta > 0), or +inf."""
    if not theta > 0:
        raise ValueError(f"the reference needs theta > 0, got {theta}")
    arrivals = sorted(arrivals, key=lambda aw: aw[0])
    starts = sorted({a for a, _ in arrivals})
    for n, lo in enumerate(starts):
        active = [aw for aw in arrivals if aw[0] <= lo]
        hi = starts[n + 1] if n + 1 < len(starts) else _tail_end(kernel, arrivals, theta)
        t = _interval_crossing(kernel, active, theta, lo, hi)
        if t is not None:
            return t
    return INF


def peak_potential(kernel: Kernel, arrivals: list[Arrival], until: mpf | None = None) -> mpf:
    """Largest u(t) over t (over t <= ``until`` if given), for building near-tangential cases."""
    arrivals = sorted(arrivals, key=lambda aw: aw[0])
    starts = sorted({a for a, _ in arrivals})
    tail = starts[-1] + 40 * max(kernel.tau_m, kernel.tau_s)
    best = mpf(0)
    for n, lo in enumerate(starts):
        hi = starts[n + 1] if n + 1 < len(starts) else tail
        if until is not None:
            if lo >= until:
                break
            hi = min(hi, until)
        active = [aw for aw in arrivals if aw[0] <= lo]
        grid = [lo + (hi - lo) * j / SAMPLES for j in range(SAMPLES + 1)]
        best = max([best] + [_potential(kernel, active, t)[0] for t in grid])
        for left, right in itertools.pairwise(grid):
            if _potential(kernel, active, left)[1] > 0 > _potential(kernel, active, right)[1]:
                best = max(best, _potential(kernel, active, _bisect_slope(kernel, active, left, right))[0])
    return best


# --- networks ---------------------------------------------------------------------------------


def _mp(v: float | None) -> mpf:
    return INF if v is None else mpf(v)


def _thetas(layer: dict[str, Any]) -> list[mpf]:
    theta = layer["theta"]
    n_out = len(layer["w"])
    return [mpf(v) for v in theta] if isinstance(theta, list) else [mpf(theta)] * n_out


def _arrival(layer: dict[str, Any], t_in: list[mpf], k: int, i: int) -> mpf:
    return t_in[i] + mpf(layer["d_syn"][k][i]) + mpf(layer["d_axo"][i]) + mpf(layer["d_den"][k])


def forward(case: dict[str, Any]) -> list[list[mpf]]:
    """Spike times of every layer (mpf, +inf = silent) for the case's single input sample."""
    kernel = Kernel.of(case["neuron"]["tau_m"], case["neuron"]["tau_s"])
    t_in = [_mp(v) for v in case["input"]]
    times = []
    for layer in case["layers"]:
        out = []
        for k, (row, theta) in enumerate(zip(layer["w"], _thetas(layer), strict=True)):
            arrivals = [(_arrival(layer, t_in, k, i), mpf(w)) for i, w in enumerate(row) if t_in[i] != INF]
            out.append(first_spike(kernel, arrivals, theta) if arrivals else INF)
        times.append(out)
        t_in = out
    return times


def loss_and_grad(spec: dict[str, Any], t: list[mpf], label: int) -> tuple[mpf | None, list[mpf]]:
    """Per-sample loss and dL/dt; (None, zeros) when an output neuron is silent.

    ``mse``: L = 1/2 sum_{k != c} (t_k - t_c - delta)^2; ``ce``: L = logsumexp(-t/xi) + t_c/xi +
    alpha (exp(t_c/beta) - 1).
    """
    if any(v == INF for v in t):
        return None, [mpf(0)] * len(t)
    tc = t[label]
    if spec["kind"] == "mse":
        delta = mpf(spec["delta"])
        err = [tk - tc - delta for tk in t]
        grad = [e if k != label else mpf(0) for k, e in enumerate(err)]
        grad[label] = -sum(grad)
        return sum(e * e for k, e in enumerate(err) if k != label) / 2, grad
    if spec["kind"] == "ce":
        xi, alpha, beta = mpf(spec["xi"]), mpf(spec["alpha"]), mpf(spec["beta"])
        z = [mp.exp(-tk / xi) for tk in t]
        total = mp.fsum(z)
        grad = [-zk / total / xi for zk in z]
        grad[label] += 1 / xi + alpha * mp.exp(tc / beta) / beta
        return mp.log(total) + tc / xi + alpha * (mp.exp(tc / beta) - 1), grad
    raise ValueError(f"unknown loss kind {spec['kind']!r}")


def backward(case: dict[str, Any], times: list[list[mpf]], dl_dt: list[mpf]) -> dict[str, Any]:
    """Gradients of the loss by the implicit function theorem, in the schema's layout (mpf)."""
    kernel = Kernel.of(case["neuron"]["tau_m"], case["neuron"]["tau_s"])
    inputs = [[_mp(v) for v in case["input"]], *times[:-1]]
    delta = list(dl_dt)
    grads: list[dict[str, Any]] = []
    for layer, t_in, t_out in reversed(list(zip(case["layers"], inputs, times, strict=True))):
        n_out, n_in = len(layer["w"]), len(t_in)
        g_w = [[mpf(0)] * n_in for _ in range(n_out)]
        g_syn = [[mpf(0)] * n_in for _ in range(n_out)]
        g_axo, g_den, below = [mpf(0)] * n_in, [mpf(0)] * n_out, [mpf(0)] * n_in
        for k, tk in enumerate(t_out):
            if tk == INF:
                continue
            live = [i for i in range(n_in) if t_in[i] != INF]
            parts = {i: kernel.both(tk - _arrival(layer, t_in, k, i)) for i in live}
            rho = mp.fsum(mpf(layer["w"][k][i]) * parts[i][1] for i in live)
            if not rho > 0:
                raise ArithmeticError(f"slope {rho} <= 0 at a first crossing")
            dt_da_sum = mpf(0)
            for i in live:
                dt_dw = -parts[i][0] / rho
                dt_da = mpf(layer["w"][k][i]) * parts[i][1] / rho
                dt_da_sum += dt_da
                g_w[k][i] = delta[k] * dt_dw
                g_syn[k][i] = delta[k] * dt_da
                g_axo[i] += delta[k] * dt_da
                g_den[k] += delta[k] * dt_da
                below[i] += delta[k] * dt_da
            # Moving every arrival moves the crossing by as much: sum_i dt_k/da_ki = 1.
            if abs(dt_da_sum - 1) > _tol(mpf(1)) * 1e6:
                raise ArithmeticError(f"sum_i dt/da = {dt_da_sum}, expected 1")
        grads.append({"w": g_w, "d_syn": g_syn, "d_axo": g_axo, "d_den": g_den})
        delta = below
    grads.reverse()
    return {"grad": grads, "grad_input": delta}


@dataclass
class Solution:
    """Spike times, loss (None = silent output) and gradients of one case (mpf)."""

    spike_times: list[list[mpf]]
    loss: mpf | None
    grad: list[dict[str, Any]]
    grad_input: list[mpf]


def solve(case: dict[str, Any]) -> Solution:
    """Forward, loss and backward of one case at ``DPS`` digits."""
    with mp.workdps(DPS):
        times = forward(case)
        loss, dl_dt = loss_and_grad(case["loss"], times[-1], int(case["label"]))
        grads = backward(case, times, dl_dt)
    return Solution(times, loss, grads["grad"], grads["grad_input"])


def _loss_only(case: dict[str, Any]) -> mpf | None:
    times = forward(case)
    return loss_and_grad(case["loss"], times[-1], int(case["label"]))[0]


def _parameters(case: dict[str, Any], sol: Solution) -> Iterator[tuple[str, tuple[Any, ...], mpf]]:
    """(name, path of keys into the case, IFT gradient) of every parameter and finite input."""
    for n, g in enumerate(sol.grad):
        for key in ("w", "d_syn"):
            for k, row in enumerate(g[key]):
                for i, v in enumerate(row):
                    yield f"grad[{n}].{key}[{k}][{i}]", ("layers", n, key, k, i), v
        for key in ("d_axo", "d_den"):
            for j, v in enumerate(g[key]):
                yield f"grad[{n}].{key}[{j}]", ("layers", n, key, j), v
    for i, v in enumerate(sol.grad_input):
        if case["input"][i] is not None:
            yield f"grad_input[{i}]", ("input", i), v


def finite_difference_check(case: dict[str, Any], sol: Solution, rel: float = 1e-9) -> float:
    """Checks every gradient of ``sol`` against central differences of the loss; returns the
    largest deviation relative to the largest gradient. Raises AssertionError on a mismatch."""
    if sol.loss is None:
        return 0.0
    worst = 0.0
    with mp.workdps(DPS):
        scale = max([abs(v) for _, _, v in _parameters(case, sol)] + [mpf("1e-30")])
        for name, path, ift in _parameters(case, sol):
            values = []
            for sign in (1, -1):
                moved = copy.deepcopy(case)
                values_of = functools.reduce(operator.getitem, path[:-1], moved)
                values_of[path[-1]] = mpf(values_of[path[-1]]) + sign * FD_STEP
                lv = _loss_only(moved)
                if lv is None:
                    raise AssertionError(f"{name}: a step of {FD_STEP} silences an output")
                values.append(lv)
            fd = (values[0] - values[1]) / (2 * FD_STEP)
            dev = float(abs(fd - ift) / scale)
            worst = max(worst, dev)
            if dev > rel:
                raise AssertionError(f"{name}: implicit gradient {ift} vs finite difference {fd}")
    return worst


def to_float(v: mpf) -> float | None:
    """Nearest float64 of ``v``; None for +inf (the schema's silence)."""
    return None if v == INF else float(v)


def expected(sol: Solution) -> dict[str, Any]:
    """The ``expected`` block of a case: float64 values, None for +inf and a silent loss."""

    def nest(x: Any) -> Any:
        return [nest(v) for v in x] if isinstance(x, list) else to_float(x)

    out = {
        "spike_times": nest(sol.spike_times),
        "loss": None if sol.loss is None else to_float(sol.loss),
        "grad": [{key: nest(g[key]) for key in ("w", "d_syn", "d_axo", "d_den")} for g in sol.grad],
        "grad_input": nest(sol.grad_input),
    }
    finite = [v for v in _flat(out) if v is not None]
    if not all(math.isfinite(v) for v in finite):
        raise ArithmeticError("a value overflows float64")
    return out


def _flat(x: Any) -> Iterator[Any]:
    if isinstance(x, dict):
        for v in x.values():
            yield from _flat(v)
    elif isinstance(x, list):
        for v in x:
            yield from _flat(v)
    else:
        yield x
