"""Run one conformance case (the schema of ``tests/conformance/cases.json``) through the core."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from delgrad_rs import _core


def _num(v: object, arg: str) -> float:
    """Return one entry: a number, or None for +inf; anything else is a TypeError naming ``arg``."""
    if v is None:
        return math.inf
    if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
        raise TypeError(f"{arg}: expected numbers (None = +inf), got {type(v).__name__} {v!r}")
    return float(v)


def _arr(v: Any, arg: str) -> np.ndarray:
    """Return a rectangular array of numbers (None = +inf); a ragged one is a ShapeError naming ``arg``."""
    try:
        a = np.array(v, dtype=object)
    except ValueError:  # numpy refuses some ragged nestings outright
        a = None
    if a is None or any(isinstance(e, list | tuple | np.ndarray) for e in a.flat):
        raise _core.ShapeError(f"{arg}: expected a rectangular array of numbers, got ragged lists")
    return np.vectorize(lambda e: _num(e, arg), otypes=[np.float64])(a) if a.size else a.astype(np.float64)


def _float(v: object, arg: str) -> float:
    """Return the number ``arg`` (not None)."""
    if v is None:
        raise TypeError(f"{arg}: expected a number, got None")
    return _num(v, arg)


def _out(a: np.ndarray) -> Any:
    """Nested lists with None for +inf (the vectors' JSON convention)."""
    return [_out(r) for r in a] if a.ndim > 1 else [None if math.isinf(v) else float(v) for v in a]


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    """Compute spike times, loss and exact gradients of one conformance case.

    Parameters
    ----------
    case : dict
        ``neuron`` (``tau_m``, ``tau_s``), ``layers`` (any number; ``w``, ``theta`` as number or
        list, ``d_syn``, ``d_axo``, ``d_den``), ``input`` (one sample, None = silent), ``label``
        and ``loss`` (``kind`` ``mse`` with ``delta`` or ``ce`` with ``xi``, ``alpha``, ``beta``).

    Returns
    -------
    dict
        ``spike_times`` (per layer, None = +inf), ``loss`` (None when an output is silent, then
        every gradient is zero), ``grad`` (per layer ``w``, ``d_syn``, ``d_axo``, ``d_den``) and
        ``grad_input``, in the schema of the vectors.

    """
    neuron = case["neuron"]
    layers = []
    for i, layer in enumerate(case["layers"]):
        d: dict[str, Any] = {
            "w": _arr(layer["w"], f"layers[{i}].w"),
            "tau_m": _float(neuron["tau_m"], "neuron.tau_m"),
            "tau_s": _float(neuron["tau_s"], "neuron.tau_s"),
        }
        if "theta" in layer:
            d["theta"] = _arr(layer["theta"], f"layers[{i}].theta")
        for key in ("d_syn", "d_axo", "d_den"):
            if layer.get(key) is not None:
                d[key] = _arr(layer[key], f"layers[{i}].{key}")
        layers.append(d)
    net = _core.Network(layers, threads=1)
    x = _arr(case["input"], "input").reshape(1, -1)
    label = case["label"]
    if isinstance(label, bool) or not isinstance(label, int | np.integer):
        raise TypeError(f"label: expected an integer >= 0, got {type(label).__name__} {label!r}")
    times = net.forward(x)
    loss_spec = dict(case["loss"])
    kind = loss_spec.pop("kind")
    report = _core.loss_and_grad(times[-1], np.array([label]), kind, strict=True, **loss_spec)
    grads = net.backward(x, times, report["dl_dt"])
    silent = report["silent"] > 0
    return {
        "spike_times": [_out(t[0]) for t in times],
        "loss": None if silent else float(report["loss"]),
        "grad": [{key: _out(np.asarray(g[key])) for key in ("w", "d_syn", "d_axo", "d_den")} for g in grads["layers"]],
        "grad_input": _out(grads["input"][0]),
    }
