"""Conformance: the core against the repository's own cases (and the external vectors where
present), and the high-precision reference that made the cases against the core and itself."""

import itertools
import math
from collections import Counter
from typing import Any

import generate
import pytest
import reference
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import external_vectors
from delgrad_rs.conformance import run_case


def flat(x: Any) -> list[Any]:
    if isinstance(x, list):
        return [v for item in x for v in flat(item)]
    return [x]


def close(got: float | None, want: float | None, rel: float, abs_: float) -> bool:
    if got is None or want is None:
        return got is None and want is None
    return abs(got - want) <= abs_ + rel * abs(want)


def mismatches(i: int, case: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """Differences beyond the tolerances (spike times 1e-9 absolute, loss and gradients 1e-6 relative)."""
    exp, label = case["expected"], f"case {i} ({case.get('name', '')})"
    fails = []
    for a, b in zip(flat(got["spike_times"]), flat(exp["spike_times"]), strict=True):
        if not close(a, b, 0.0, 1e-9):
            fails.append(f"{label}: spike time {a} != {b}")
    if not close(got["loss"], exp["loss"], 1e-6, 1e-12):
        fails.append(f"{label}: loss {got['loss']} != {exp['loss']}")
    pairs = [("grad_input", got["grad_input"], exp["grad_input"])]
    for layer, (g, e) in enumerate(zip(got["grad"], exp["grad"], strict=True)):
        pairs += [(f"grad[{layer}].{k}", g[k], e[k]) for k in ("w", "d_syn", "d_axo", "d_den")]
    for name, g, e in pairs:
        gv, ev = flat(g), flat(e)
        if len(gv) != len(ev):
            fails.append(f"{label}: {name} has {len(gv)} values, expected {len(ev)}")
            continue
        scale = max([abs(v) for v in ev] + [1e-3])
        for a, b in zip(gv, ev, strict=True):
            if not close(a, b, 1e-6, 1e-9 * scale):
                fails.append(f"{label}: {name} {a} != {b}")
                break
    return fails


def check_all(cases: list[dict[str, Any]]) -> None:
    fails = [f for i, case in enumerate(cases) for f in mismatches(i, case, run_case(case))]
    assert not fails, "\n".join(fails[:30])


def test_own_cases(own_cases: list[dict[str, Any]]) -> None:
    assert len(own_cases) == len(generate.build_all())
    check_all(own_cases)


def test_external_vectors() -> None:
    vectors = external_vectors()
    assert len(vectors) == 240
    check_all(vectors)


def test_own_cases_cover_the_model(own_cases: list[dict[str, Any]]) -> None:
    taus = Counter((c["neuron"]["tau_m"], c["neuron"]["tau_s"]) for c in own_cases)
    assert {(1.0, 1.0), (2.0, 1.0), (1.7, 1.0)} <= set(taus)
    kinds = Counter(k for c in own_cases for k in c["delay_kinds"])
    assert min(kinds[k] for k in ("synaptic", "axonal", "dendritic")) >= 5
    assert {c["loss"]["kind"] for c in own_cases} == {"mse", "ce"}
    assert max(len(c["layers"]) for c in own_cases) >= 4
    assert any(c["expected"]["loss"] is None for c in own_cases)
    assert any(v is None for c in own_cases for v in c["input"])
    hidden = [v for c in own_cases if c["expected"]["loss"] is not None for v in flat(c["expected"]["spike_times"])]
    assert None in hidden


def test_run_case_uses_none_for_silence(own_cases: list[dict[str, Any]]) -> None:
    silent = [c for c in own_cases if c["expected"]["loss"] is None]
    assert silent
    out = run_case(silent[0])
    assert out["loss"] is None
    grads = [v for g in out["grad"] for k in ("w", "d_syn", "d_axo", "d_den") for v in flat(g[k])]
    assert all(v == 0.0 for v in grads + flat(out["grad_input"]))
    assert any(v is None for v in flat(out["spike_times"]))
    assert all(v is None or math.isfinite(v) for v in flat(out["spike_times"]))


# Cheap cases, one per kind of builder: the checked-in file must be what the generator makes.
REGENERATED = [
    "regime/double/axonal/mse",
    "silent/equal/output-ce",
    "arrivals/general/equal",
    "tangent/general/miss-then-cross",
    "delays/general/huge",
    "tau/synapse-slower-1-1.7",
]


@pytest.mark.parametrize("name", REGENERATED)
def test_checked_in_cases_equal_a_fresh_generation(own_cases: list[dict[str, Any]], name: str) -> None:
    (stored,) = [c for c in own_cases if c["name"] == name]
    assert generate.make(name, check=False)[0] == stored


def test_generator_checks_gradients_by_finite_differences() -> None:
    case, dev = generate.make("tangent/double/gap-1e-03")
    assert dev < 1e-9
    sol = reference.solve(case)
    sol.grad[0]["w"][0][1] *= 1 + 1e-6
    with pytest.raises(AssertionError, match=r"grad\[0\]\.w\[0\]\[1\]"):
        reference.finite_difference_check(case, sol)


def _conditioned(case: dict[str, Any], sol: reference.Solution) -> bool:
    """Whether every crossing is clear of the tangent (slope >= 1e-3) and every silent neuron
    stays clear of its threshold (peak <= theta - 1e-6): where float64 can decide the answer."""
    with reference.mp.workdps(reference.DPS):
        kernel = reference.Kernel.of(case["neuron"]["tau_m"], case["neuron"]["tau_s"])
        t_in = [reference.INF if v is None else reference.mpf(v) for v in case["input"]]
        for layer, t_out in zip(case["layers"], sol.spike_times, strict=True):
            theta = layer["theta"]
            for k, tk in enumerate(t_out):
                arrivals = [
                    (reference._arrival(layer, t_in, k, i), reference.mpf(w))
                    for i, w in enumerate(layer["w"][k])
                    if t_in[i] != reference.INF
                ]
                if tk != reference.INF:
                    rho = sum(w * kernel.both(tk - a)[1] for a, w in arrivals)
                    if rho < 1e-3:
                        return False
                elif arrivals and reference.peak_potential(kernel, arrivals) > theta - 1e-6:
                    return False
            t_in = t_out
    return True


weight = st.floats(-1.0, 3.0)
delay = st.floats(0.0, 1.0)


@settings(
    max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.filter_too_much]
)
@given(st.data())
def test_reference_agrees_with_the_core_on_random_nets(data: st.DataObject) -> None:
    tau = data.draw(st.sampled_from(list(generate.REGIMES.values())), label="tau")
    sizes = data.draw(st.sampled_from([(2, 2), (3, 2), (2, 3, 2)]), label="sizes")
    kinds = tuple(data.draw(st.sets(st.sampled_from(generate.KINDS)), label="kinds"))
    layers = []
    for n_in, n_out in itertools.pairwise(sizes):

        def d(n: int, kind: str) -> list[float]:
            return data.draw(st.lists(delay if kind in kinds else st.just(0.0), min_size=n, max_size=n))

        layers.append(
            {
                "w": [data.draw(st.lists(weight, min_size=n_in, max_size=n_in)) for _ in range(n_out)],
                "d_syn": [d(n_in, "synaptic") for _ in range(n_out)],
                "d_axo": d(n_in, "axonal"),
                "d_den": d(n_out, "dendritic"),
                "theta": data.draw(st.floats(0.3, 1.5)),
            }
        )
    x = data.draw(st.lists(st.one_of(st.none(), st.floats(0.0, 2.0)), min_size=sizes[0], max_size=sizes[0]))
    loss = data.draw(st.sampled_from([generate.MSE, generate.CE]))
    case = generate.case(tau, layers, kinds, x, data.draw(st.integers(0, sizes[-1] - 1)), loss)
    sol = reference.solve(case)
    assume(_conditioned(case, sol))
    case["expected"] = reference.expected(sol)
    assert not mismatches(0, case, run_case(case))
