"""The reproduction report of docs/results.md: the paper's claims 1-4 tested over seeds, in one command.

Usage::

    python examples/reproduction.py --workers 2           # run (or continue) both sweeps, print the report
    python examples/reproduction.py --workers 2 --docs    # ... and replace it in docs/results.md
    make report                                           # the same as --docs

It runs the sweeps ``examples/sweeps/paper.toml`` (claims 1, 2 and the software reference runs of
claim 4) and ``examples/sweeps/hardware.toml`` (claim 3 and the hardware-aware runs of claim 4) into
``runs/reproduction/`` (finished cells are kept: a rerun continues), tests their comparisons with
:func:`delgrad_rs.report.report`, draws the figures into ``docs/img/`` and writes the report as
markdown: to standard output, to ``runs/reproduction/report.md`` and, with ``--docs``, between
``<!-- reproduction:begin -->`` and ``<!-- reproduction:end -->`` of docs/results.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from delgrad_rs.report import condition_medians, plot_report, report
from delgrad_rs.sweep import load_results, load_sweep, run_sweep

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_table import splice, sweep_wall_time

ROOT = Path(__file__).resolve().parent.parent
SWEEPS = ("paper", "hardware")
BEGIN, END = "<!-- reproduction:begin -->", "<!-- reproduction:end -->"
METRIC = "test_accuracy_last"

# Claim 4: the reference runs, as (name, sweep, condition, hidden) of this implementation, the
# published single run [%] and the reference code rerun unchanged with its published configuration
# (torch 2.8 on CPU; torch seeds 2000, 2001, ...; accuracy after epoch 300 [%]; empty: not rerun).
REFERENCE_RUNS: tuple[tuple[str, str, str, int, float, tuple[float, ...]], ...] = (
    ("H30_W", "paper", "W", 30, 96.7, ()),
    ("H30_WA", "paper", "WA", 30, 97.5, (96.1, 95.8, 97.8, 98.2, 91.8, 96.5, 98.5, 96.8, 94.8, 97.5)),
    ("H30_WS", "paper", "WS", 30, 98.2, ()),
    ("H5_WS", "paper", "WS", 5, 95.4, (93.0, 93.9, 93.5, 95.7, 95.8, 90.0, 83.4, 95.8, 95.3)),
    ("hardware-aware W", "hardware", "W", 30, 84.9, (92.3, 88.3, 89.5)),
    ("hardware-aware WA", "hardware", "WA", 30, 92.8, (91.3, 91.5, 94.6)),
    ("hardware-aware W, reference recipe", "hardware", "W_ref", 30, 84.9, (92.3, 88.3, 89.5)),
    ("hardware-aware WA, reference recipe", "hardware", "WA_ref", 30, 92.8, (91.3, 91.5, 94.6)),
)
# The noise-strength conditions of hardware.toml: (scale, weights only, with axonal delays).
NOISE_SCALES = ((0.0, "W_s0", "WA_s0"), (1.0, "W", "WA"), (2.0, "W_s2", "WA_s2"), (3.0, "W_s3", "WA_s3"))


def run(out: Path, workers: int | None) -> float:
    """Run (or continue) both sweeps into ``out``; return the wall time of this invocation [s]."""
    t0 = time.perf_counter()
    for name in SWEEPS:
        run_sweep(load_sweep(ROOT / "examples" / "sweeps" / f"{name}.toml"), out=out / name, workers=workers)
    return time.perf_counter() - t0


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def reference_table(out: Path) -> list[str]:
    """Claim 4: the published single runs, the reference code's reruns and this implementation's seeds."""
    medians = {name: condition_medians(load_results(out / name), [METRIC]) for name in SWEEPS if (out / name).is_dir()}
    lines = [
        "| run | published (single run) | reference code rerun: seeds (median) | this implementation: "
        "median [95 % CI] (min-max), n | published run within ours |",
        "|---|---:|---|---|---|",
    ]
    for name, sweep, cond, hidden, published, reruns in REFERENCE_RUNS:
        med = medians.get(sweep)
        rows = med.filter((pl.col("condition") == cond) & (pl.col("hidden") == hidden)) if med is not None else None
        if rows is None or rows.height == 0:
            continue
        r = rows.row(0, named=True)
        ours = load_results(out / sweep).filter(
            (pl.col("condition") == cond) & (pl.col("hidden") == hidden) & (pl.col("status") == "ok")
        )[METRIC]
        below = int((100 * ours.to_numpy() < published).sum())
        rerun = f"{' '.join(f'{v:.1f}' for v in reruns)} ({np.median(reruns):.2f})" if reruns else "-"
        ci = f"[{_pct(r[f'{METRIC}_low'])}, {_pct(r[f'{METRIC}_high'])}]"
        span = f"({_pct(r[f'{METRIC}_min'])}-{_pct(r[f'{METRIC}_max'])})"
        lines.append(
            f"| {name} | {published:.1f} | {rerun} | {_pct(r[f'{METRIC}_median'])} {ci} {span}, {r['runs']} | "
            f"above {below} of {ours.len()} seeds |"
        )
    return lines


def plot_noise(out: Path, path: Path) -> Path | None:
    """Draw the hardware sweep's median accuracy (95 % CI) against the noise scale, W and WA."""
    from delgrad_rs.plots import _plt

    if not (out / "hardware").is_dir():
        return None
    med = condition_medians(load_results(out / "hardware"), [METRIC])
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, label in enumerate(("weights only", "+ axonal delays")):
        pts = []
        for scale, *conds in NOISE_SCALES:
            r = med.filter(pl.col("condition") == conds[i])
            if r.height:
                row = r.row(0, named=True)
                pts.append(
                    (
                        scale,
                        *(100 * (row[f"{METRIC}_{k}"] or row[f"{METRIC}_median"]) for k in ("median", "low", "high")),
                    )
                )
        if pts:
            s, m, lo, hi = (np.array(v) for v in zip(*pts, strict=True))
            ax.errorbar(s + 0.04 * (2 * i - 1), m, yerr=[m - lo, hi - m], marker="o", capsize=3, label=label)
    ax.set(xlabel="noise scale (1 = reference hardware model)", ylabel="test accuracy after the last epoch [%]")
    ax.set_title("emulated BrainScaleS-2, median over seeds, 95 % bootstrap CI")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def markdown(out: Path, wall: float | None, img: Path) -> str:
    """Compose the report from the sweep directories under ``out``; the figures go to ``img``."""
    parts = []
    cpu = 0.0
    for name in SWEEPS:
        res = load_results(out / name)
        sweep_wall, invocations, engines = sweep_wall_time(out / name)
        failed = res.filter(pl.col("status") != "ok").height
        sweep_cpu = float(res["cpu_time"].drop_nulls().sum())
        parts.append(
            f"- `{name}`: {res.height} trainings, {failed} failed, {sweep_wall / 60:.1f} min of wall time over "
            f"{invocations} invocation(s) ({', '.join(engines)}), {sweep_cpu / 60:.1f} min of CPU time."
        )
        cpu += sweep_cpu
    head = ["`python examples/reproduction.py --workers 2` (`make report`):", "", *parts]
    if wall is not None:
        head += ["", f"This invocation took {wall / 60:.1f} min; the cells' CPU time adds up to {cpu / 60:.1f} min."]
    plot_report(report(out / "paper"), img / "claims_paper.png")
    plot_noise(out, img / "claims_noise.png")
    body = [
        *head,
        "",
        "### Claims 1 and 2: delays at equal hidden size, and parameter efficiency",
        "",
        report(out / "paper").markdown(),
        "![claims 1 and 2](img/claims_paper.png)",
        "",
        "### Claim 3: the emulated chip",
        "",
        report(out / "hardware").markdown(),
        "![accuracy against noise strength](img/claims_noise.png)",
        "",
        "### Claim 4: the reference runs",
        "",
        *reference_table(out),
    ]
    return "\n".join(body) + "\n"


def main() -> int:
    """Run the sweeps and write the report; returns the exit code."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=None, help="parallel trainings (default: usable cores)")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "reproduction", help="directory of both sweeps")
    p.add_argument("--docs", action="store_true", help="replace the report in docs/results.md")
    p.add_argument("--no-run", action="store_true", help="report on the sweeps as they are, without training")
    p.add_argument("--img", type=Path, default=ROOT / "docs" / "img", help="directory of the figures")
    a = p.parse_args()
    wall = None if a.no_run else run(a.out, a.workers)
    text = markdown(a.out, wall, a.img)
    (a.out / "report.md").write_text(text, encoding="utf-8")
    print(text, end="")
    if a.docs:
        splice(ROOT / "docs" / "results.md", BEGIN, END, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
