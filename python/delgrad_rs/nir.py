"""Export to and import from NIR, the Neuromorphic Intermediate Representation (the ``nir`` package).

Install the optional dependency with ``pip install "delgrad_rs[nir]"``. A layer maps to the chain

    [Delay axonal] -> [Linear fan-out -> Delay synaptic] -> Linear weights -> [Delay dendritic] -> CubaLIF

(bracketed nodes only for the delay kinds the layer has) with ``tau_mem = tau_m``, ``tau_syn = tau_s``,
``r = tau_m``, ``w_in = tau_s``, ``v_leak = 0`` and ``v_threshold = theta``: exactly the model's
current-based kernel. Per-synapse delays fan every input out to one channel per (neuron, input)
pair, delay each channel, and sum the channels of a neuron with its weights. The graph's metadata
states that each neuron emits its first spike only. The derivation is in ``docs/model.md``
(*Exporting to NIR*).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

import numpy as np
from numpy.typing import NDArray

from delgrad_rs._core import DelgradError
from delgrad_rs._core import __version__ as _version
from delgrad_rs.network import Network

try:
    import nir
except ImportError as err:
    raise ImportError('delgrad_rs.nir needs the optional package nir: pip install "delgrad_rs[nir]"') from err

__all__ = ["READING", "NirError", "from_nir", "load_nir", "save_nir", "to_nir"]

READING = "time_to_first_spike"
"""The ``reading`` the graph's metadata declares: each neuron emits its first spike only."""

_MODEL = "delgrad_rs current-based LIF, first-spike times"
_READING_TEXT = (
    "each CubaLIF neuron emits its first threshold crossing only and is silent afterwards; "
    "v_reset never acts on a spike that counts"
)
_Array = NDArray[np.float64]


class NirError(DelgradError, ValueError):
    """A NIR graph cannot be represented by a delgrad_rs network; the message names the node."""


def _regime(tau_m: float, tau_s: float) -> str:
    # The label of the solver regime the core selects by the same exact comparisons (docs/model.md).
    if tau_m == tau_s:
        return "equal (tau_m = tau_s, Lambert W0)"
    if tau_m == 2.0 * tau_s:
        return "double (tau_m = 2 tau_s, quadratic)"
    return "general"


def _expand(values: _Array, group: int) -> _Array:
    """Per-input delays from per-group delays (``group`` consecutive inputs share one)."""
    return np.repeat(np.asarray(values, dtype=np.float64), group, axis=-1)


def to_nir(network: Network, *, t_early: float | None = None, t_late: float | None = None) -> Any:
    """Export a network to a NIR graph.

    Layer ``l`` becomes the nodes ``layer{l}_axonal`` (Delay, ``[n_in]``), ``layer{l}_fanout``
    (Linear of zeros and ones, ``[n_out n_in, n_in]``: channel ``k n_in + i`` carries input i),
    ``layer{l}_synaptic`` (Delay, ``[n_out n_in]``: d_syn[k, g(i)]), ``layer{l}_weights`` (Linear,
    ``[n_out, n_in]``, or ``[n_out, n_out n_in]`` after a fan-out with w[k, i] at column
    ``k n_in + i``), ``layer{l}_dendritic`` (Delay, ``[n_out]``) and ``layer{l}_neurons``
    (CubaLIF); the Delay and fan-out nodes exist only for the delay kinds the layer has.

    Parameters
    ----------
    network : Network
        The network to export.
    t_early, t_late : float or None
        The input encoding's earliest and latest spike times, recorded in the metadata when given.

    Returns
    -------
    nir.NIRGraph
        The graph: ``input`` -> layers -> ``output``; its metadata gives the reading
        (``time_to_first_spike``), the model and the package version; each CubaLIF node's metadata
        its solver regime and ``delay_group``.

    Raises
    ------
    TypeError
        If ``network`` is not a :class:`Network`.

    """
    if not isinstance(network, Network):
        raise TypeError(f"network: expected a delgrad_rs.Network, got {type(network).__name__}")
    sizes = network.sizes
    nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array([sizes[0]]))}
    chain = ["input"]
    for index, layer in enumerate(network.params):
        w = np.asarray(layer["w"], dtype=np.float64)
        n_out, n_in = w.shape
        group = int(layer["delay_group"])
        name = f"layer{index}"
        if layer["d_axo"] is not None:
            nodes[f"{name}_axonal"] = nir.Delay(delay=_expand(layer["d_axo"], group))
            chain.append(f"{name}_axonal")
        if layer["d_syn"] is not None:
            nodes[f"{name}_fanout"] = nir.Linear(weight=np.tile(np.eye(n_in), (n_out, 1)))
            nodes[f"{name}_synaptic"] = nir.Delay(delay=_expand(layer["d_syn"], group).reshape(-1))
            block = np.zeros((n_out, n_out * n_in))
            for k in range(n_out):
                block[k, k * n_in : (k + 1) * n_in] = w[k]
            nodes[f"{name}_weights"] = nir.Linear(weight=block)
            chain += [f"{name}_fanout", f"{name}_synaptic", f"{name}_weights"]
        else:
            nodes[f"{name}_weights"] = nir.Linear(weight=w)
            chain.append(f"{name}_weights")
        if layer["d_den"] is not None:
            nodes[f"{name}_dendritic"] = nir.Delay(delay=np.asarray(layer["d_den"], dtype=np.float64))
            chain.append(f"{name}_dendritic")
        tau_m, tau_s = float(layer["tau_m"]), float(layer["tau_s"])
        ones = np.ones(n_out)
        nodes[f"{name}_neurons"] = nir.CubaLIF(
            tau_mem=tau_m * ones,
            tau_syn=tau_s * ones,
            r=tau_m * ones,
            v_leak=np.zeros(n_out),
            v_threshold=np.asarray(layer["theta"], dtype=np.float64).copy(),
            v_reset=np.zeros(n_out),
            w_in=tau_s * ones,
            metadata={"regime": _regime(tau_m, tau_s), "delay_group": group},
        )
        chain.append(f"{name}_neurons")
    nodes["output"] = nir.Output(output_type=np.array([sizes[-1]]))
    chain.append("output")
    metadata: dict[str, Any] = {
        "reading": READING,
        "reading_description": _READING_TEXT,
        "model": _MODEL,
        "producer": f"delgrad_rs {_version}",
    }
    encoding = {k: float(v) for k, v in (("t_early", t_early), ("t_late", t_late)) if v is not None}
    if encoding:
        metadata["input_encoding"] = encoding
    return nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(chain)), metadata=metadata)


@dataclass
class _Layer:
    """The nodes of one layer found in a graph, in signal order."""

    neurons: str
    axonal: str | None = None
    fanout: str | None = None
    synaptic: str | None = None
    weights: str = ""
    dendritic: str | None = None
    nodes: list[str] = field(default_factory=list)


def _node_error(name: str, node: Any, message: str) -> NirError:
    return NirError(f"NIR node {name!r} ({type(node).__name__}): {message}")


def _chain(graph: Any) -> list[str]:
    """Return the node names from the Input to the Output; reject cycles, branches and stray nodes."""
    nodes: Mapping[str, Any] = graph.nodes
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    pred: dict[str, list[str]] = {n: [] for n in nodes}
    for edge in graph.edges:
        a, b = str(edge[0]), str(edge[1])
        for end in (a, b):
            if end not in nodes:
                raise NirError(f"NIR edge ({a!r}, {b!r}) names the node {end!r}, which the graph does not have")
        succ[a].append(b)
        pred[b].append(a)
    # Recurrent edges first: they also show up as branches, but this is the reason to name.
    state: dict[str, int] = {}
    for root in nodes:
        if root in state:
            continue
        stack = [(root, iter(succ[root]))]
        state[root] = 1
        while stack:
            here, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[here] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                raise _node_error(
                    nxt, nodes[nxt], f"recurrent edge ({here!r} -> {nxt!r}); delgrad_rs networks are feed-forward"
                )
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(succ[nxt])))
    inputs = [n for n, node in nodes.items() if isinstance(node, nir.Input)]
    outputs = [n for n, node in nodes.items() if isinstance(node, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise NirError(f"NIR graph: expected one Input and one Output node, got inputs {inputs} and outputs {outputs}")
    chain = [inputs[0]]
    while chain[-1] != outputs[0]:
        here = chain[-1]
        if len(succ[here]) != 1:
            raise _node_error(
                here,
                nodes[here],
                f"has {len(succ[here])} outgoing edges; delgrad_rs reads a single chain Input -> layers -> Output",
            )
        nxt = succ[here][0]
        if len(pred[nxt]) != 1:
            raise _node_error(
                nxt,
                nodes[nxt],
                f"has {len(pred[nxt])} incoming edges; delgrad_rs reads a single chain Input -> layers -> Output",
            )
        chain.append(nxt)
    stray = sorted(set(nodes) - set(chain))
    if stray:
        raise _node_error(stray[0], nodes[stray[0]], "is not on the chain from the Input to the Output")
    return chain


_SUPPORTED = (nir.Input, nir.Output, nir.Delay, nir.Linear, nir.Affine, nir.CubaLIF)


def _layers(graph: Any, chain: list[str]) -> list[_Layer]:
    """Split the chain into layers, each ending in a CubaLIF node, and name each node's role."""
    nodes: Mapping[str, Any] = graph.nodes
    layers: list[_Layer] = []
    pending: list[str] = []
    for name in chain[1:-1]:
        node = nodes[name]
        if type(node) not in _SUPPORTED:
            raise _node_error(
                name,
                node,
                "unsupported node type; delgrad_rs reads CubaLIF neurons fed by Linear / Affine projections "
                "and Delay nodes (no LIF without synapse, IF, CubaLI, Scale, convolutions or subgraphs)",
            )
        if not isinstance(node, nir.CubaLIF):
            pending.append(name)
            continue
        layer = _Layer(neurons=name, nodes=[*pending, name])
        kinds = ["D" if isinstance(nodes[n], nir.Delay) else "L" for n in pending]
        pattern = "".join(kinds)
        # [D axonal] L [D dendritic]  or  [D axonal] L D L [D dendritic]
        start = 1 if pattern.startswith("D") and pattern[1:2] == "L" else 0
        end = len(pending) - 1 if pattern.endswith("LD") else len(pending)
        core = pattern[start:end]
        if core not in ("L", "LDL"):
            culprit = pending[-1] if pending else name
            raise _node_error(
                culprit,
                nodes[culprit],
                f"the projection into CubaLIF {name!r} is {' -> '.join(pending) or 'empty'}; expected "
                "[Delay] -> Linear -> [Delay] or [Delay] -> Linear -> Delay -> Linear -> [Delay]",
            )
        if start:
            layer.axonal = pending[0]
        if end < len(pending):
            layer.dendritic = pending[-1]
        if core == "LDL":
            layer.fanout, layer.synaptic, layer.weights = pending[start : start + 3]
        else:
            layer.weights = pending[start]
        layers.append(layer)
        pending = []
    if not layers:
        raise NirError("NIR graph: no CubaLIF node between the Input and the Output")
    if pending:
        raise _node_error(
            pending[0], nodes[pending[0]], "follows the last CubaLIF node; the network's output is its last layer"
        )
    return layers


def _array(name: str, node: Any, attr: str, ndim: int) -> _Array:
    value = np.asarray(getattr(node, attr), dtype=np.float64)
    if value.ndim != ndim:
        raise _node_error(name, node, f"{attr} must have {ndim} dimension(s), got shape {list(value.shape)}")
    if not np.all(np.isfinite(value)):
        raise _node_error(name, node, f"{attr} must be finite")
    return value


def _matrix(name: str, node: Any) -> _Array:
    w = _array(name, node, "weight", 2)
    if isinstance(node, nir.Affine) and np.any(_array(name, node, "bias", 1) != 0):
        raise _node_error(name, node, "a non-zero bias (a constant input current) is not part of the model")
    return w


def _uniform(name: str, node: Any, attr: str, n: int) -> float:
    value = _array(name, node, attr, 1)
    if value.shape != (n,):
        raise _node_error(name, node, f"{attr} must have shape [{n}], got {list(value.shape)}")
    if np.any(value != value[0]):
        raise _node_error(
            name,
            node,
            f"{attr} differs between neurons ({value.min()} to {value.max()}); the core has one per layer",
        )
    return float(value[0])


def _delay_vector(name: str, node: Any, n: int) -> _Array:
    d = _array(name, node, "delay", 1)
    if d.shape != (n,):
        raise _node_error(name, node, f"delay must have shape [{n}], got {list(d.shape)}")
    return d


def _per_synapse(graph: Any, layer: _Layer, n_in: int) -> tuple[_Array, _Array]:
    """Weights ``[n_out, n_in]`` and per-synapse delays of ``Linear A -> Delay -> Linear B``.

    Input i reaches neuron k through every channel j with A[j, i] != 0 and B[k, j] != 0, with the
    weight sum_j B[k, j] A[j, i]; all those channels must carry the same delay. A pair without such
    a channel has weight 0 and takes the delay of another input of its group (0 if none has one).
    """
    assert layer.fanout is not None and layer.synaptic is not None
    nodes = graph.nodes
    a = _matrix(layer.fanout, nodes[layer.fanout])
    b = _matrix(layer.weights, nodes[layer.weights])
    if a.shape[1] != n_in or b.shape[1] != a.shape[0]:
        raise _node_error(layer.weights, nodes[layer.weights], f"shape {list(b.shape)} does not follow {list(a.shape)}")
    d = _delay_vector(layer.synaptic, nodes[layer.synaptic], a.shape[0])
    n_out = b.shape[0]
    w = np.zeros((n_out, n_in))
    delay = np.full((n_out, n_in), np.nan)
    for j in range(a.shape[0]):
        ins = np.flatnonzero(a[j])
        outs = np.flatnonzero(b[:, j])
        if ins.size == 0 or outs.size == 0:
            continue
        seen = delay[np.ix_(outs, ins)]
        if np.any(~np.isnan(seen) & (seen != d[j])):
            raise _node_error(
                layer.synaptic,
                nodes[layer.synaptic],
                "two channels with different delays join the same (neuron, input) pair; "
                "a synapse has one delay in the model",
            )
        delay[np.ix_(outs, ins)] = d[j]
        w[np.ix_(outs, ins)] += np.outer(b[outs, j], a[j, ins])
    return w, delay


def _group_values(name: str, node: Any, values: _Array, group: int, what: str) -> _Array:
    """Per-group values from per-input ones (NaN: unknown), checking that a group shares one value."""
    if values.shape[-1] % group:
        return values  # the core names the delay_group that does not divide n_in
    shaped = values.reshape(*values.shape[:-1], -1, group)
    known = ~np.isnan(shaped)
    first = np.where(known.any(-1), np.max(np.where(known, shaped, -np.inf), axis=-1), 0.0)
    if np.any(known & (shaped != first[..., None])):
        raise _node_error(name, node, f"{what} differ within a delay group of {group} consecutive inputs")
    return np.asarray(first, dtype=np.float64)


def _delay_group(name: str, node: Any) -> int:
    value = node.metadata.get("delay_group", 1) if isinstance(node.metadata, Mapping) else 1
    group = np.asarray(value)
    if group.shape != () or not np.issubdtype(group.dtype, np.integer) or int(group) < 1:
        raise _node_error(name, node, f"metadata delay_group must be an integer >= 1, got {value!r}")
    return int(group)


def from_nir(graph: Any, *, threads: int | None = None) -> Network:
    """Import a network from a NIR graph.

    Reads the graphs :func:`to_nir` writes and, more generally, a chain ``Input -> layers ->
    Output`` whose layers are ``[Delay] -> Linear -> [Delay] -> CubaLIF`` or, with per-synapse
    delays, ``[Delay] -> Linear -> Delay -> Linear -> [Delay] -> CubaLIF`` (``Affine`` with zero bias
    counts as ``Linear``). A CubaLIF with other ``r`` or ``w_in`` than ``tau_mem`` and ``tau_syn``
    is the model's neuron with every incoming weight of neuron k scaled by
    ``r_k w_in_k / (tau_mem tau_syn)``. Every neuron is read as emitting its first spike only.

    Parameters
    ----------
    graph : nir.NIRGraph
        The graph.
    threads : int or None
        Worker threads of the new network; None uses every core.

    Returns
    -------
    Network
        The network.

    Raises
    ------
    NirError
        Naming the node, for what the model cannot represent: recurrent edges, branches, node types
        other than Input, Output, Linear, Affine, Delay and CubaLIF, a non-zero bias or ``v_leak``,
        time constants that differ within a layer, non-finite parameters, a synapse reached with
        two delays, delays that differ within a delay group, nodes after the last CubaLIF; and
        for parameters the core rejects (the message names the layer's nodes).
    TypeError
        If ``graph`` is not a ``nir.NIRGraph``.

    """
    if not isinstance(graph, nir.NIRGraph):
        raise TypeError(f"graph: expected a nir.NIRGraph, got {type(graph).__name__}")
    nodes: Mapping[str, Any] = graph.nodes
    chain = _chain(graph)
    layers = _layers(graph, chain)
    shape = np.asarray(nodes[chain[0]].input_type["input"]).reshape(-1)
    if shape.size != 1:
        raise _node_error(chain[0], nodes[chain[0]], f"expected a one-dimensional input, got shape {shape.tolist()}")
    n_in = int(shape[0])
    params: list[dict[str, Any]] = []
    for layer in layers:
        neurons = nodes[layer.neurons]
        group = _delay_group(layer.neurons, neurons)
        entry: dict[str, Any] = {"delay_group": group}
        if layer.synaptic is not None:
            w, d_syn = _per_synapse(graph, layer, n_in)
            entry["d_syn"] = _group_values(layer.synaptic, nodes[layer.synaptic], d_syn, group, "synaptic delays")
        else:
            w = _matrix(layer.weights, nodes[layer.weights])
            if w.shape[1] != n_in:
                raise _node_error(layer.weights, nodes[layer.weights], f"expects {w.shape[1]} inputs, gets {n_in}")
        if layer.axonal is not None:
            d_axo = _delay_vector(layer.axonal, nodes[layer.axonal], n_in)
            entry["d_axo"] = _group_values(layer.axonal, nodes[layer.axonal], d_axo, group, "axonal delays")
        n_out = w.shape[0]
        if layer.dendritic is not None:
            entry["d_den"] = _delay_vector(layer.dendritic, nodes[layer.dendritic], n_out)
        entry["tau_m"] = tau_m = _uniform(layer.neurons, neurons, "tau_mem", n_out)
        entry["tau_s"] = tau_s = _uniform(layer.neurons, neurons, "tau_syn", n_out)
        for attr in ("v_leak", "v_reset", "v_threshold", "r", "w_in"):
            value = _array(layer.neurons, neurons, attr, 1)
            if value.shape != (n_out,):
                raise _node_error(layer.neurons, neurons, f"{attr} must have shape [{n_out}], got {list(value.shape)}")
        if np.any(_array(layer.neurons, neurons, "v_leak", 1) != 0):
            raise _node_error(layer.neurons, neurons, "v_leak must be 0 (the model's resting potential)")
        scale = (_array(layer.neurons, neurons, "r", 1) * _array(layer.neurons, neurons, "w_in", 1)) / (tau_m * tau_s)
        entry["w"] = w * scale[:, None]
        entry["theta"] = _array(layer.neurons, neurons, "v_threshold", 1)
        params.append(entry)
        n_in = n_out
    out = np.asarray(nodes[chain[-1]].output_type["output"]).reshape(-1)
    if out.tolist() != [n_in]:
        raise _node_error(chain[-1], nodes[chain[-1]], f"shape {out.tolist()} differs from the last layer's [{n_in}]")
    try:
        return Network.from_params(params, threads=threads)
    except DelgradError as err:
        # The core names the layer (layers[i].key); name that layer's nodes too.
        found = re.search(r"layers\[(\d+)\]", str(err))
        named = [layers[int(found.group(1))]] if found and int(found.group(1)) < len(layers) else layers
        where = "; ".join(f"nodes {', '.join(repr(n) for n in layer.nodes)}" for layer in named)
        raise NirError(f"NIR graph: {err} ({where})") from err


def save_nir(
    network: Network, path: str | PathLike[str], *, t_early: float | None = None, t_late: float | None = None
) -> None:
    """Write a network to a NIR file (HDF5, ``nir.write``).

    Parameters
    ----------
    network : Network
        The network.
    path : str or path-like
        The file to write.
    t_early, t_late : float or None
        The input encoding, recorded in the metadata when given (see :func:`to_nir`).

    """
    nir.write(path, to_nir(network, t_early=t_early, t_late=t_late))


def load_nir(path: str | PathLike[str], *, threads: int | None = None) -> Network:
    """Read a network from a NIR file (``nir.read``, then :func:`from_nir`).

    Parameters
    ----------
    path : str or path-like
        The file to read.
    threads : int or None
        Worker threads of the new network; None uses every core.

    Returns
    -------
    Network
        The network.

    """
    return from_nir(nir.read(path), threads=threads)
