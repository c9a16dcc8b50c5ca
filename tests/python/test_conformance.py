import math
from typing import Any

from delgrad_rs.conformance import run_case


def flat(x: Any) -> list[Any]:
    if isinstance(x, list):
        return [v for item in x for v in flat(item)]
    return [x]


def close(got: float | None, want: float | None, rel: float, abs_: float) -> bool:
    if got is None or want is None:
        return got is None and want is None
    return abs(got - want) <= abs_ + rel * abs(want)


def test_all_shared_vectors(vectors: list[dict[str, Any]]) -> None:
    assert len(vectors) == 240
    fails: list[str] = []
    for i, case in enumerate(vectors):
        got, exp = run_case(case), case["expected"]
        for a, b in zip(flat(got["spike_times"]), flat(exp["spike_times"]), strict=True):
            if not close(a, b, 0.0, 1e-9):
                fails.append(f"case {i}: spike time {a} != {b}")
        if not close(got["loss"], exp["loss"], 1e-6, 1e-12):
            fails.append(f"case {i}: loss {got['loss']} != {exp['loss']}")
        pairs = [("grad_input", got["grad_input"], exp["grad_input"])]
        for layer, (g, e) in enumerate(zip(got["grad"], exp["grad"], strict=True)):
            pairs += [(f"grad[{layer}].{k}", g[k], e[k]) for k in ("w", "d_syn", "d_axo", "d_den")]
        for name, g, e in pairs:
            gv, ev = flat(g), flat(e)
            assert len(gv) == len(ev), f"case {i}: {name} size"
            scale = max([abs(v) for v in ev] + [1e-3])
            for a, b in zip(gv, ev, strict=True):
                if not close(a, b, 1e-6, 1e-9 * scale):
                    fails.append(f"case {i}: {name} {a} != {b}")
                    break
    assert not fails, "\n".join(fails[:30])


def test_run_case_uses_none_for_silence(vectors: list[dict[str, Any]]) -> None:
    silent = [c for c in vectors if c["expected"]["loss"] is None]
    assert silent
    out = run_case(silent[0])
    assert out["loss"] is None
    grads = [v for g in out["grad"] for k in ("w", "d_syn", "d_axo", "d_den") for v in flat(g[k])]
    assert all(v == 0.0 for v in grads + flat(out["grad_input"]))
    assert any(v is None for v in flat(out["spike_times"]))
    assert all(v is None or math.isfinite(v) for v in flat(out["spike_times"]))
