"""Run one conformance case (the schema of ``tests/conformance/cases.json``) through the core."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from delgrad_rs import _core


def _num(v: float | None) -> float:
    return math.inf if v is None else float(v)


def _arr(v: Any) -> np.ndarray:
    a = np.asarray(v, dtype=object)
    return np.vectorize(_num, otypes=[np.float64])(a) if a.size else a.astype(np.float64)


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
    for layer in case["layers"]:
        d: dict[str, Any] = {
            "w": _arr(layer["w"]),
            "tau_m": float(neuron["tau_m"]),
            "tau_s": float(neuron["tau_s"]),
        }
        if "theta" in layer:
            d["theta"] = _arr(layer["theta"])
        for key in ("d_syn", "d_axo", "d_den"):
            if layer.get(key) is not None:
                d[key] = _arr(layer[key])
        layers.append(d)
    net = _core.Network(layers, threads=1)
    x = _arr(case["input"]).reshape(1, -1)
    times = net.forward(x)
    loss_spec = dict(case["loss"])
    kind = loss_spec.pop("kind")
    report = _core.loss_and_grad(times[-1], np.array([int(case["label"])]), kind, strict=True, **loss_spec)
    grads = net.backward(x, times, report["dl_dt"])
    silent = report["silent"] > 0
    return {
        "spike_times": [_out(t[0]) for t in times],
        "loss": None if silent else float(report["loss"]),
        "grad": [{key: _out(np.asarray(g[key])) for key in ("w", "d_syn", "d_axo", "d_den")} for g in grads["layers"]],
        "grad_input": _out(grads["input"][0]),
    }
