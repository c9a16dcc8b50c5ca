"""Figures of a run (matplotlib, the ``plot`` extra).

Learning curves, output spike times per class and the decision map (Yin-Yang runs), and weight and delay
histograms; the sweep figure is in :mod:`delgrad_rs.sweep_plots`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from delgrad_rs.datasets import CLASS_NAMES, encode, yin_yang
from delgrad_rs.training import Backend, SoftwareBackend, repeat_inputs, split_inputs

COLORS = ("#1f77b4", "#d62728", "#2ca02c")


def _plt() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'delgrad_rs[plot]'") from e
    return plt


def plot_run(run: str | Path, which: str = "best", backend: Backend | None = None) -> list[Path]:
    """Write the figures of a run directory as PNGs into it.

    Parameters
    ----------
    run : str or Path
        The run directory (with ``metrics.parquet`` and ``checkpoints/``).
    which : str
        Checkpoint to plot (``best`` or ``last``).
    backend : Backend or None
        Where the output spike times and the decision map are computed (None: the ideal model in
        software). A network trained chip-in-the-loop is adapted to its chip: plot it on the chip.

    Returns
    -------
    list of Path
        The files written.

    """
    from delgrad_rs.training import load_run

    plt = _plt()
    run = Path(run)
    cfg, net, trainer = load_run(run, which)
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        path = run / name
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    # learning curves
    df = pl.read_parquet(run / "metrics.parquet")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for split, style in (("train", "-"), ("validation", "--")):
        d = df.filter(pl.col("split") == split)
        axes[0].plot(d["epoch"], d["loss"], style, label=split)
        axes[1].plot(d["epoch"], 100 * d["accuracy"], style, label=split)
    test = df.filter(pl.col("split") == "test")
    if test.height:
        axes[1].axhline(
            100 * test["accuracy"][0], color="k", lw=0.8, ls=":", label=f"test {100 * test['accuracy'][0]:.1f} %"
        )
    axes[0].set(xlabel="epoch", ylabel="loss", yscale="log", title=f"{cfg.name}: loss")
    axes[1].set(xlabel="epoch", ylabel="accuracy [%]", title=f"{cfg.name}: accuracy", ylim=(30, 100))
    for ax in axes:
        ax.legend()
        ax.grid(alpha=0.3)
    save(fig, "learning_curves.png")
    if cfg.data.dataset == "yin_yang":
        runner: Backend = backend if backend is not None else SoftwareBackend()
        _plot_yin_yang(cfg, lambda t: output_times(runner, trainer, t), _where(runner), save)
    _plot_parameters(net, save)
    return written


def output_times(backend: Backend, trainer: Any, t: NDArray[np.float64]) -> NDArray[np.float64]:
    """Output spike times ``[n, n_out]`` of the trainer's network for input times ``t`` on ``backend``.

    Parameters
    ----------
    backend : Backend
        Where the forward pass runs.
    trainer : delgrad_rs.Trainer
        Holds the network.
    t : numpy.ndarray
        Input times ``[n, n_in]`` (as the network takes them: copies included).

    Returns
    -------
    numpy.ndarray
        First-spike times of the output layer, +inf where silent.

    """
    # The labels only enter the loss, which is not used here.
    r = backend.evaluate(trainer, t, np.zeros(len(t), dtype=np.int64))
    return np.asarray(r["output_times"], dtype=np.float64)


def _where(backend: Backend) -> str:
    """``software``, or the backend and chip that the figures were measured on."""
    d = backend.describe()
    chip = d.get("chip_id")
    return f"{d.get('backend', 'software')}{f' chip {chip}' if chip else ''}"


def _plot_yin_yang(cfg: Any, forward: Any, where: str, save: Any) -> None:
    """Output spike times per class and the decision map (Yin-Yang runs only), from ``forward``."""
    plt = _plt()
    x, y = yin_yang("test")
    t, _ = split_inputs(cfg, "test")
    out = forward(t)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
    finite = out[np.isfinite(out)]
    bins = np.linspace(finite.min(), finite.max(), 40) if finite.size else 10
    for c, ax in enumerate(axes):
        for k in range(out.shape[1]):
            v = out[y == c, k]
            ax.hist(v[np.isfinite(v)], bins=bins, alpha=0.55, color=COLORS[k], label=f"output {CLASS_NAMES[k]}")
        ax.set(title=f"samples of class {CLASS_NAMES[c]} ({where})", xlabel="output spike time")
    axes[0].set_ylabel("count")
    axes[0].legend()
    save(fig, "output_spike_times.png")

    # decision map over the input square
    n = 120
    g = np.linspace(0.0, 1.0, n)
    gx, gy = np.meshgrid(g, g)
    pts = np.stack([gx.ravel(), gy.ravel(), 1 - gx.ravel(), 1 - gy.ravel()], axis=1)
    grid_times = encode(pts, cfg.data.t_early, cfg.data.t_late)
    if cfg.data.bias_times:
        bias = np.broadcast_to(np.asarray(cfg.data.bias_times, dtype=np.float64), (len(pts), len(cfg.data.bias_times)))
        grid_times = np.concatenate([grid_times, bias], axis=1)
    o = forward(repeat_inputs(grid_times, cfg.hardware.input_repeat))
    pred = np.where(np.isfinite(o).any(axis=1), np.argmin(o, axis=1), -1).reshape(n, n)
    fig, ax = plt.subplots(figsize=(5.2, 5))
    from matplotlib.colors import ListedColormap

    cmap = ListedColormap(["#bbbbbb", "#a6c8e8", "#f0a8a8", "#a8dca8"])
    ax.imshow(pred + 1, origin="lower", extent=(0, 1, 0, 1), cmap=cmap, vmin=0, vmax=3, interpolation="nearest")
    for c in range(3):
        m = y == c
        ax.scatter(x[m, 0], x[m, 1], s=6, color=COLORS[c], label=CLASS_NAMES[c])
    ax.set(xlabel="x", ylabel="y", title=f"{cfg.name} on {where}: decision map (grey: no output spike)")
    ax.legend(loc="upper right", fontsize=8)
    save(fig, "decision_map.png")


def _plot_parameters(net: Any, save: Any) -> None:
    """Weight and delay histograms per layer."""
    plt = _plt()
    params = net.params
    kinds = [k for k in ("w", "d_syn", "d_axo", "d_den") if any(p.get(k) is not None for p in params)]
    fig, axes = plt.subplots(len(kinds), len(params), figsize=(4.5 * len(params), 3 * len(kinds)), squeeze=False)
    for r, kind in enumerate(kinds):
        for li, p in enumerate(params):
            ax = axes[r][li]
            v = p.get(kind)
            if v is None:
                ax.set_axis_off()
                continue
            ax.hist(np.ravel(v), bins=30, color="#555555")
            label = "weights" if kind == "w" else f"delays {kind}"
            ax.set(title=f"layer {li}: {label}", xlabel=label, ylabel="count")
    save(fig, "parameters.png")
