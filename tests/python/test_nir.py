"""NIR export and import: exact round trips, the exported graph's own dynamics, rejections."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import nir
import numpy as np
import pytest

from delgrad_rs import Network
from delgrad_rs.nir import READING, NirError, from_nir, load_nir, save_nir, to_nir

KINDS = {
    "none": (),
    "synaptic": ("d_syn",),
    "axonal": ("d_axo",),
    "dendritic": ("d_den",),
    "all": ("d_syn", "d_axo", "d_den"),
}
TAUS = {"double": (2.0, 1.0), "equal": (1.0, 1.0), "general": (1.7, 0.6)}


def make_network(kinds: tuple[str, ...], tau_m: float, tau_s: float, sizes: tuple[int, ...] = (6, 5, 4, 3)) -> Network:
    """Random parameters with the given delay kinds on every layer; the first layer groups inputs in pairs."""
    rng = np.random.default_rng(7)
    layers: list[dict[str, Any]] = []
    for index, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        group = 2 if index == 0 else 1
        layer: dict[str, Any] = {
            "w": rng.normal(1.2 * tau_s / tau_m + 0.6, 1.0, (n_out, n_in)),
            "theta": rng.uniform(0.6, 1.0, n_out),
            "tau_m": tau_m,
            "tau_s": tau_s,
            "delay_group": group,
        }
        shapes = {"d_syn": (n_out, n_in // group), "d_axo": (n_in // group,), "d_den": (n_out,)}
        for kind in kinds:
            layer[kind] = rng.uniform(0.0, 0.6, shapes[kind])
        layers.append(layer)
    return Network.from_params(layers, threads=1)


def inputs(n_in: int, batch: int = 16) -> np.ndarray:
    return np.random.default_rng(3).uniform(0.15, 2.0, (batch, n_in))


def bits(a: Any) -> bytes:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float64)).tobytes()


def assert_same_network(a: Network, b: Network) -> None:
    assert a.sizes == b.sizes
    for pa, pb in zip(a.params, b.params, strict=True):
        assert pa.keys() == pb.keys()
        for key in pa:
            if pa[key] is None:
                assert pb[key] is None, key
            else:
                assert bits(pa[key]) == bits(pb[key]), key


def round_trip(graph: Any, tmp_path: Path) -> Any:
    path = tmp_path / "network.nir"
    nir.write(path, graph)
    return nir.read(path)


@pytest.mark.parametrize("regime", sorted(TAUS))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_round_trip_is_bit_exact(kind: str, regime: str, tmp_path: Path) -> None:
    net = make_network(KINDS[kind], *TAUS[regime])
    back = from_nir(round_trip(to_nir(net), tmp_path))
    assert_same_network(net, back)
    x = inputs(net.sizes[0])
    ours, theirs = net.forward(x), back.forward(x)
    assert any(np.isfinite(t).any() for t in ours[-1:])
    for t_a, t_b in zip(ours, theirs, strict=True):
        assert bits(t_a) == bits(t_b)


def test_synapse_of_weight_zero_keeps_its_spike_times(tmp_path: Path) -> None:
    # A synapse of weight exactly 0 has no channel in the graph: its delay comes back as 0.
    net = make_network(KINDS["synaptic"], 2.0, 1.0, sizes=(4, 3, 2))
    layers = net.params
    layers[1]["w"][0, 1] = 0.0
    net.params = layers
    back = from_nir(round_trip(to_nir(net), tmp_path))
    d_syn = back.params[1]["d_syn"]
    assert d_syn[0, 1] == 0.0
    d_syn[0, 1] = layers[1]["d_syn"][0, 1]
    assert bits(d_syn) == bits(layers[1]["d_syn"])
    x = inputs(4)
    for t_a, t_b in zip(net.forward(x), back.forward(x), strict=True):
        # The synapse's arrival may split the scan at another time: equal up to rounding.
        np.testing.assert_allclose(t_b, t_a, rtol=1e-12, atol=1e-12)


def test_graph_layout_and_mapping() -> None:
    net = make_network(KINDS["all"], 2.0, 1.0, sizes=(4, 3, 2))
    graph = to_nir(net)
    parts = ("axonal", "fanout", "synaptic", "weights", "dendritic", "neurons")
    chain = [
        "input",
        *[f"layer{index}_{part}" for index in range(2) for part in parts],
        "output",
    ]
    assert graph.edges == list(itertools.pairwise(chain))
    p = net.params[0]
    n_out, n_in = p["w"].shape
    axo = graph.nodes["layer0_axonal"].delay
    assert bits(axo) == bits(np.repeat(p["d_axo"], 2))
    fan = graph.nodes["layer0_fanout"].weight
    syn = graph.nodes["layer0_synaptic"].delay
    block = graph.nodes["layer0_weights"].weight
    for k in range(n_out):
        for i in range(n_in):
            j = k * n_in + i
            assert fan[j, i] == 1.0 and fan[j].sum() == 1.0
            assert syn[j] == p["d_syn"][k, i // 2]
            assert block[k, j] == p["w"][k, i] and np.count_nonzero(block[:, j]) == 1
    assert bits(graph.nodes["layer0_dendritic"].delay) == bits(p["d_den"])
    lif = graph.nodes["layer0_neurons"]
    assert bits(lif.tau_mem) == bits(np.full(n_out, 2.0)) and bits(lif.tau_syn) == bits(np.full(n_out, 1.0))
    assert bits(lif.r * lif.w_in) == bits(lif.tau_mem * lif.tau_syn)
    assert not lif.v_leak.any() and bits(lif.v_threshold) == bits(p["theta"])
    assert lif.metadata["delay_group"] == 2 and lif.metadata["regime"].startswith("double")


def test_metadata_and_file_helpers(tmp_path: Path) -> None:
    net = make_network(KINDS["all"], 1.0, 1.0)
    path = tmp_path / "net.nir"
    save_nir(net, path, t_early=0.15, t_late=2.0)
    graph = nir.read(path)
    assert graph.metadata["reading"] == READING == "time_to_first_spike"
    assert "first" in graph.metadata["reading_description"]
    assert graph.metadata["model"].startswith("delgrad_rs")
    assert float(graph.metadata["input_encoding"]["t_early"]) == 0.15
    assert float(graph.metadata["input_encoding"]["t_late"]) == 2.0
    assert graph.nodes["layer1_neurons"].metadata["regime"].startswith("equal")
    assert "input_encoding" not in to_nir(net).metadata
    assert_same_network(net, load_nir(path))


def test_importing_delgrad_rs_does_not_import_nir() -> None:
    code = "import sys, delgrad_rs; assert 'nir' not in sys.modules, 'nir imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_nir_names_the_extra() -> None:
    code = "import sys; sys.modules['nir'] = None; import delgrad_rs.nir"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert run.returncode != 0
    assert 'ImportError: delgrad_rs.nir needs the optional package nir: pip install "delgrad_rs[nir]"' in run.stderr


# -- The exported graph's own equations, stepped in time -------------------------------------------------------------

Events = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # sample, time, channel, amount


def simulate(graph: Any, x: np.ndarray, dt: float, t_end: float) -> dict[str, np.ndarray]:
    """First-spike times of every CubaLIF node of a chain graph, by forward Euler with step dt.

    Signals are weighted spike events: Delay shifts them, Linear maps them; a CubaLIF integrates
    tau_syn I' = -I + w_in S, tau_mem v' = (v_leak - v) + r I on a grid of step dt, an event of
    amount q landing at the step after it as a jump q w_in / tau_syn of I, and emits its first
    crossing of v_threshold only (the graph's declared reading).
    """
    succ = dict(graph.edges)
    batch = x.shape[0]
    b, i = np.nonzero(np.isfinite(x))
    events: Events = (b, x[b, i], i, np.ones(b.size))
    name, out = succ["input"], {}
    n_steps = int(np.ceil(t_end / dt))
    while name != "output":
        node = graph.nodes[name]
        b, t, ch, q = events
        if isinstance(node, nir.Delay):
            events = (b, t + node.delay[ch], ch, q)
        elif isinstance(node, nir.Linear):
            w = node.weight[:, ch]  # [n_out, n_events]
            k, e = np.nonzero(w)
            events = (b[e], t[e], k, q[e] * w[k, e])
        else:
            assert isinstance(node, nir.CubaLIF)
            n = node.tau_mem.size
            jumps = np.zeros((n_steps + 1, batch, n))
            steps = np.minimum(np.ceil(t / dt).astype(np.int64), n_steps)
            np.add.at(jumps, (steps, b, ch), q * (node.w_in / node.tau_syn)[ch])
            decay, rate = 1.0 - dt / node.tau_syn, dt / node.tau_mem
            current, v = np.zeros((batch, n)), np.zeros((batch, n))
            trace = np.empty((n_steps, batch, n))
            for s in range(n_steps):
                current += jumps[s]
                v += rate * (node.v_leak - v + node.r * current)
                current *= decay
                trace[s] = v
            # Only the first crossing counts: it is the neuron's one output spike.
            above = trace > node.v_threshold
            first = np.where(above.any(axis=0), (np.argmax(above, axis=0) + 1) * dt, np.inf)
            out[name] = first
            b, k = np.nonzero(np.isfinite(first))
            events = (b, first[b, k], k, np.ones(b.size))
        name = succ[name]
    return out


def test_time_stepped_graph_reproduces_first_spike_times() -> None:
    net = make_network(KINDS["all"], 2.0, 1.0, sizes=(4, 5, 3))
    x = inputs(4, batch=6)
    exact = net.forward(x)
    finite = np.concatenate([t[np.isfinite(t)] for t in exact])
    assert finite.size > 10
    dt = 1e-4
    sim = simulate(to_nir(net), x, dt, t_end=float(finite.max()) + 1.0)
    for index, t_exact in enumerate(exact):
        t_sim = sim[f"layer{index}_neurons"]
        assert np.array_equal(np.isfinite(t_exact), np.isfinite(t_sim)), index
        assert np.isfinite(t_exact).sum() > 3
        spiking = np.isfinite(t_exact)
        err = np.abs(t_sim[spiking] - t_exact[spiking])
        assert err.max() <= 10 * dt, (index, err.max())


# -- Graphs from elsewhere -------------------------------------------------------------------------------------------


def test_other_r_and_w_in_fold_into_the_weights() -> None:
    rng = np.random.default_rng(1)
    w = rng.normal(1.5, 0.5, (3, 4))
    r, w_in = np.array([1.0, 2.0, 0.5]), np.array([1.0, 0.25, 3.0])
    tau_m, tau_s = 1.7, 0.6
    graph = nir.NIRGraph.from_list(
        nir.Affine(weight=w, bias=np.zeros(3)),
        nir.CubaLIF(
            tau_mem=np.full(3, tau_m),
            tau_syn=np.full(3, tau_s),
            r=r,
            w_in=w_in,
            v_leak=np.zeros(3),
            v_threshold=np.full(3, 0.5),
            v_reset=np.full(3, -0.3),
        ),
    )
    net = from_nir(graph)
    expected = Network.from_params(
        [{"w": w * (r * w_in / (tau_m * tau_s))[:, None], "theta": 0.5, "tau_m": tau_m, "tau_s": tau_s}]
    )
    assert_same_network(net, expected)
    x = inputs(4)
    assert np.isfinite(net.forward(x)[-1]).any()


def lif_params(n: int, **changes: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "tau_mem": np.full(n, 2.0),
        "tau_syn": np.full(n, 1.0),
        "r": np.full(n, 2.0),
        "w_in": np.full(n, 1.0),
        "v_leak": np.zeros(n),
        "v_threshold": np.ones(n),
    }
    params.update(changes)
    return params


def exported(kinds: tuple[str, ...] = KINDS["all"]) -> Any:
    return to_nir(make_network(kinds, 2.0, 1.0, sizes=(4, 3, 2)))


def replaced(graph: Any, name: str, node: Any) -> Any:
    nodes = dict(graph.nodes)
    nodes[name] = node
    return nir.NIRGraph(nodes=nodes, edges=list(graph.edges), metadata=graph.metadata, type_check=False)


def recurrent() -> Any:
    g = exported(())
    nodes = {**g.nodes, "recurrent": nir.Linear(weight=np.eye(3))}
    edges = [*g.edges, ("layer0_neurons", "recurrent"), ("recurrent", "layer0_neurons")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def skip() -> Any:
    g = exported(())
    nodes = {**g.nodes, "skip": nir.Linear(weight=np.ones((2, 4)))}
    return nir.NIRGraph(nodes=nodes, edges=[*g.edges, ("input", "skip"), ("skip", "layer1_neurons")], type_check=False)


def trailing_delay() -> Any:
    g = exported(())
    nodes = {**g.nodes, "late": nir.Delay(delay=np.ones(2))}
    edges = [e for e in g.edges if e[1] != "output"] + [("layer1_neurons", "late"), ("late", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def crossed_channels() -> Any:
    g = exported(("d_syn",))
    fan = g.nodes["layer0_fanout"].weight.copy()
    fan[2] = 0.0
    fan[2, 0] = 1.0  # channel (0, 2) now carries input 0 to neuron 0, with the delay of synapse (0, 2)
    return replaced(g, "layer0_fanout", nir.Linear(weight=fan))


def ungrouped() -> Any:
    g = to_nir(make_network(("d_axo",), 2.0, 1.0, sizes=(4, 4, 2)))  # layer 1: one delay per input
    lif = g.nodes["layer1_neurons"]
    lif.metadata = {**lif.metadata, "delay_group": 2}
    return g


def bad_group() -> Any:
    g = exported(("d_axo",))
    lif = g.nodes["layer0_neurons"]
    lif.metadata = {**lif.metadata, "delay_group": 1.5}
    return g


def with_lif(**changes: Any) -> Any:
    return replaced(exported(()), "layer0_neurons", nir.CubaLIF(**lif_params(3, **changes)))


def wrong_output() -> Any:
    return replaced(exported(()), "output", nir.Output(output_type=np.array([5])))


REJECTED = {
    "output_shape": (wrong_output, "output", "differs from the last layer"),
    "recurrent": (recurrent, "layer0_neurons", "recurrent edge"),
    "branch": (skip, "input", "2 outgoing edges"),
    "lif": (
        lambda: replaced(
            exported(()),
            "layer0_neurons",
            nir.LIF(tau=np.full(3, 2.0), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3)),
        ),
        "layer0_neurons",
        "unsupported node type",
    ),
    "if": (
        lambda: replaced(exported(()), "layer0_neurons", nir.IF(r=np.ones(3), v_threshold=np.ones(3))),
        "layer0_neurons",
        "unsupported node type",
    ),
    "cuba_li": (
        lambda: replaced(
            exported(()),
            "layer0_neurons",
            nir.CubaLI(tau_mem=np.full(3, 2.0), tau_syn=np.ones(3), r=np.ones(3), v_leak=np.zeros(3)),
        ),
        "layer0_neurons",
        "unsupported node type",
    ),
    "v_leak": (lambda: with_lif(v_leak=np.full(3, 0.1)), "layer0_neurons", "v_leak must be 0"),
    "tau_mem": (lambda: with_lif(tau_mem=np.array([2.0, 2.0, 3.0])), "layer0_neurons", "tau_mem differs"),
    "tau_syn": (lambda: with_lif(tau_syn=np.array([1.0, 0.5, 1.0])), "layer0_neurons", "tau_syn differs"),
    "r": (lambda: with_lif(r=np.array([2.0, np.inf, 2.0])), "layer0_neurons", "r must be finite"),
    "bias": (
        lambda: replaced(exported(()), "layer0_weights", nir.Affine(weight=np.ones((3, 4)), bias=np.ones(3))),
        "layer0_weights",
        "non-zero bias",
    ),
    "trailing_delay": (trailing_delay, "late", "follows the last CubaLIF"),
    "two_delays_per_synapse": (crossed_channels, "layer0_synaptic", "different delays"),
    "delay_group": (ungrouped, "layer1_axonal", "differ within a delay group"),
    "bad_group": (bad_group, "layer0_neurons", "delay_group must be an integer"),
    "negative_delay": (
        lambda: replaced(exported(), "layer0_dendritic", nir.Delay(delay=np.array([0.1, -1.0, 0.2]))),
        "layer0_dendritic",
        "d_den",
    ),
}


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_unrepresentable_graphs_are_rejected_naming_the_node(case: str) -> None:
    build, node, reason = REJECTED[case]
    with pytest.raises(NirError, match=reason) as info:
        from_nir(build())
    assert repr(node) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_wrong_argument_types() -> None:
    with pytest.raises(TypeError, match=r"graph: expected a nir\.NIRGraph"):
        from_nir({"nodes": {}})
    with pytest.raises(TypeError, match=r"network: expected a delgrad_rs\.Network"):
        to_nir([1, 2])  # type: ignore[arg-type]
