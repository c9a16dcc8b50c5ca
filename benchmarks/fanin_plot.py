"""Log-log plot of the per-sample cost against the fan-in, from the throughput bench's JSON lines.

Reads the JSON lines of ``cargo bench --bench throughput`` on stdin, keeps the fan-in sweep
(``latency_{n}x64x10_{kind}_tau2to1``, one line per fan-in ``n`` and kind ``w`` or ``syn``), fits
``log(us_per_sample) = a + k log(n)`` by least squares per kind, writes the plot, and prints one
JSON object per kind: ``{"kind", "fan_in", "us_per_sample", "exponent", "exponent_top3"}`` (the
last the fit over the three largest fan-ins only, where fixed per-sample costs no longer count).

Usage: ``cargo bench --bench throughput -- latency_ | python benchmarks/fanin_plot.py [--out PNG]``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

SWEEP = re.compile(r"^latency_(\d+)x64x10_(\w+?)_tau2to1$")
OUT = Path(__file__).resolve().parent.parent / "docs" / "img" / "fanin.png"
LABELS = {"w": "weights only", "syn": "with synaptic delays"}


def read_sweep(lines: list[str]) -> dict[str, list[tuple[int, float]]]:
    """Group the fan-in sweep's rows by kind.

    Parameters
    ----------
    lines : list of str
        JSON lines of the throughput bench (other lines and rows are skipped).

    Returns
    -------
    dict of str to list of (int, float)
        Per kind, ``(fan_in, us_per_sample)`` sorted by fan-in.

    """
    sweep: dict[str, list[tuple[int, float]]] = {}
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        row = json.loads(line)
        match = SWEEP.match(row["name"])
        if match is None:
            continue
        n, kind = int(match.group(1)), match.group(2)
        sweep.setdefault(kind, []).append((n, float(row["us_per_sample"])))
    return {kind: sorted(points) for kind, points in sweep.items()}


def exponent(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares fit of ``log(cost) = a + k log(n)``.

    Parameters
    ----------
    points : list of (int, float)
        ``(fan_in, us_per_sample)``, at least two distinct fan-ins.

    Returns
    -------
    tuple of float
        The exponent ``k`` and the intercept ``a``.

    """
    n = np.log([p[0] for p in points])
    cost = np.log([p[1] for p in points])
    k, a = np.polyfit(n, cost, 1)
    return float(k), float(a)


def main() -> None:
    """Read the bench's lines from stdin, write the plot, print the fitted exponents."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="PNG to write")
    args = parser.parse_args()
    sweep = read_sweep(sys.stdin.readlines())
    if not sweep or any(len({n for n, _ in points}) < 2 for points in sweep.values()):
        sys.exit("fanin_plot.py: expected the fan-in sweep's rows (latency_{n}x64x10_*) at two fan-ins or more")
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    for kind, points in sweep.items():
        k, a = exponent(points)
        n = np.array([p[0] for p in points], dtype=float)
        cost = np.array([p[1] for p in points])
        label = f"{LABELS.get(kind, kind)}: slope {k:.2f}"
        (line,) = ax.plot(n, cost, "o", label=label)
        ax.plot(n, np.exp(a) * n**k, "-", color=line.get_color(), alpha=0.6)
        print(
            json.dumps(
                {
                    "kind": kind,
                    "fan_in": n.astype(int).tolist(),
                    "us_per_sample": cost.tolist(),
                    "exponent": round(k, 3),
                    "exponent_top3": round(exponent(points[-3:])[0], 3),
                }
            )
        )
    # A line of slope 1 through the first kind's smallest fan-in, for reference.
    (n0, cost0), n1 = sweep[next(iter(sweep))][0], max(n for points in sweep.values() for n, _ in points)
    ax.plot([n0, n1], [cost0, cost0 * n1 / n0], ":", color="grey", label="slope 1 (linear)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("fan-in n (inputs into 64 hidden neurons)")
    ax.set_ylabel("forward + backward, µs per sample")
    ax.set_title("Cost per sample against fan-in (n-64-10, 1 thread, batch 150)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)


if __name__ == "__main__":
    main()
