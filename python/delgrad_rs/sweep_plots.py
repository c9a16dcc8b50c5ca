"""Figures of a sweep directory: the parameter-efficiency figure of the DelGrad paper."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from delgrad_rs.plots import _plt
from delgrad_rs.sweep import SweepError, load_results, median_table

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
# median_table's column prefix and the axis text of each choice of network
CHECKPOINTS = {"last": ("test", "after the last epoch"), "best": ("best", "best-validation checkpoint")}


def plot_sweep(sweep_dir: str | Path, checkpoint: str = "last") -> list[Path]:
    """Draw median test error (min/max whiskers) against hidden neurons and trainable parameters.

    One line per condition. Written to ``<sweep_dir>/parameter_efficiency.png``.

    Parameters
    ----------
    sweep_dir : str or Path
        A sweep directory (with ``results.parquet``).
    checkpoint : {"last", "best"}
        Whose test error: the network after the last epoch (default, as the reference code
        reports) or each run's best-validation checkpoint.

    Returns
    -------
    list of Path
        The files written.

    """
    if checkpoint not in CHECKPOINTS:
        raise SweepError(f"option checkpoint: expected one of {', '.join(CHECKPOINTS)}, got {checkpoint!r}")
    col, which = CHECKPOINTS[checkpoint]
    plt = _plt()
    root = Path(sweep_dir)
    table = median_table(load_results(root)).filter(pl.col("runs") > 0)
    if table.height == 0:
        raise SweepError(f"sweep directory {root}: no finished cell to plot yet")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    for i, cond in enumerate(table["condition"].unique(maintain_order=True)):
        d = table.filter(pl.col("condition") == cond).sort("hidden")
        err = 100.0 * (1.0 - d[f"{col}_median"].to_numpy())
        lo = err - 100.0 * (1.0 - d[f"{col}_max"].to_numpy())
        hi = 100.0 * (1.0 - d[f"{col}_min"].to_numpy()) - err
        label = str(d["label"][0])
        style: dict[str, Any] = {"marker": MARKERS[i % len(MARKERS)], "capsize": 3, "lw": 1.5, "ms": 5}
        for ax, x in ((axes[0], d["hidden"].to_numpy()), (axes[1], d["n_params"].to_numpy())):
            ax.errorbar(x, err, yerr=[lo, hi], label=label, color=f"C{i}", **style)
    lo_runs, hi_runs = int(table["runs"].min()), int(table["runs"].max())  # type: ignore[arg-type]
    n = f"{lo_runs}" if lo_runs == hi_runs else f"{lo_runs}-{hi_runs}"
    axes[0].set(xlabel="hidden neurons", ylabel=f"test error [%], {which} (median, min/max)", yscale="log")
    axes[1].set(xlabel="trainable parameters (weights + delays)", xscale="log")
    axes[0].set_title(f"test error vs hidden size ({n} seeds per point)")
    axes[1].set_title("test error vs trainable parameters")
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(title="condition")
    _percent_ticks(axes[0])
    _plain_log_ticks(axes[1])
    fig.tight_layout()
    path = root / "parameter_efficiency.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]


def _percent_ticks(ax: Any) -> None:
    from matplotlib.ticker import FuncFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "235" else ""))


def _plain_log_ticks(ax: Any) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
