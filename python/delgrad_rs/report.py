"""Statistics over seeds: the comparisons a sweep file declares, tested on a sweep directory.

For each ``[[comparisons]]`` table of the sweep (see :mod:`delgrad_rs.sweep`) and each hidden size
it pairs, the cells of conditions ``a`` and ``b`` with the same seed (both ``status == "ok"``) give
the paired differences ``d = b - a`` of the comparison's metric. Reported: n, the median and mean of
``d``, the 95 % bootstrap confidence interval of the mean (:func:`scipy.stats.bootstrap` resampling
the differences, BCa, percentile where BCa is degenerate, fixed seed) and the two-sided Wilcoxon
signed-rank p-value (:func:`scipy.stats.wilcoxon`, ``zero_method="zsplit"``: zero differences stay
in the sample and split their ranks between the signs, so ties never make a difference look
significant). The verdict:

- ``holds``: the confidence interval excludes 0 on the side of the claim and p < 0.05;
- ``reversed``: the confidence interval excludes 0 on the other side and p < 0.05;
- ``n too small``: fewer than 2 paired seeds;
- ``not shown``: otherwise.
"""

from __future__ import annotations

import math
import tomllib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import polars as pl
from numpy.typing import NDArray
from scipy import stats

from delgrad_rs.sweep import METRICS, Comparison, SweepError, comparisons_from_dict, load_results

CONFIDENCE = 0.95
ALPHA = 0.05
N_RESAMPLES = 9999
BOOTSTRAP_SEED = 0
ZERO_METHOD: Final = "zsplit"
MIN_PAIRS = 2
TABLE_SCHEMA: dict[str, Any] = {
    "comparison": pl.String,
    "a": pl.String,
    "b": pl.String,
    "claim": pl.String,
    "metric": pl.String,
    "hidden_a": pl.Int64,
    "hidden_b": pl.Int64,
    "n": pl.Int64,
    "seeds": pl.List(pl.Int64),
    "median_diff": pl.Float64,
    "mean_diff": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "ci_method": pl.String,
    "p_value": pl.Float64,
    "verdict": pl.String,
    "pairing": pl.String,
}


def bootstrap_ci(
    values: NDArray[np.float64], statistic: Literal["mean", "median"] = "mean"
) -> tuple[float, float, str]:
    """Return the 95 % bootstrap confidence interval of a statistic of one sample.

    Parameters
    ----------
    values : numpy.ndarray
        The sample (paired differences, or one condition's accuracies over seeds); at least 2 values.
    statistic : {"mean", "median"}
        The statistic whose interval is computed.

    Returns
    -------
    tuple of (float, float, str)
        Lower and upper bound and the method: ``BCa``, or ``percentile`` where BCa is degenerate
        (e.g. all values equal, when its acceleration is 0 / 0).

    """
    func = np.mean if statistic == "mean" else np.median
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            # BCa on a degenerate sample warns (0 / 0 in its acceleration) and returns NaN
            warnings.simplefilter("error", RuntimeWarning)
            warnings.simplefilter("error", stats.DegenerateDataWarning)
            try:
                res = stats.bootstrap(
                    (values,),
                    func,
                    n_resamples=N_RESAMPLES,
                    confidence_level=CONFIDENCE,
                    method=method,
                    rng=np.random.default_rng(BOOTSTRAP_SEED),
                )
            except (RuntimeWarning, stats.DegenerateDataWarning):
                continue
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(low) and math.isfinite(high):
            # the percentile interval of identical values can come out as [v + ulp, v]
            return min(low, high), max(low, high), method
    raise SweepError(f"bootstrap of {values.tolist()}: no finite confidence interval")  # pragma: no cover


def wilcoxon_p(diffs: NDArray[np.float64]) -> float:
    """Return the two-sided Wilcoxon signed-rank p-value of paired differences (zero_method ``zsplit``)."""
    return float(stats.wilcoxon(diffs, zero_method=ZERO_METHOD).pvalue)


def verdict(sign: int, n: int, ci: tuple[float, float] | None, p: float | None) -> str:
    """Return the verdict of a comparison (see the module docstring).

    Parameters
    ----------
    sign : int
        1 for the claim ``b > a``, -1 for ``b < a``.
    n : int
        Number of paired seeds.
    ci : tuple of float or None
        Confidence interval of the mean difference ``b - a``.
    p : float or None
        Wilcoxon p-value.

    Returns
    -------
    str
        ``holds``, ``reversed``, ``not shown`` or ``n too small``.

    """
    if n < MIN_PAIRS or ci is None or p is None:
        return "n too small"
    low, high = sign * ci[0], sign * ci[1]
    if p < ALPHA and min(low, high) > 0:
        return "holds"
    if p < ALPHA and max(low, high) < 0:
        return "reversed"
    return "not shown"


def paired_differences(
    results: pl.DataFrame, comp: Comparison, hidden_a: int, hidden_b: int
) -> tuple[list[int], NDArray[np.float64]]:
    """Return the seeds present in both conditions (successful cells only) and the differences b - a.

    Parameters
    ----------
    results : polars.DataFrame
        A sweep's results table.
    comp : Comparison
        The comparison.
    hidden_a, hidden_b : int
        Hidden sizes of ``a`` and ``b``.

    Returns
    -------
    tuple of (list of int, numpy.ndarray)
        Sorted seeds and the differences of ``comp.metric`` for them.

    """
    ok = results.filter((pl.col("status") == "ok") & pl.col(comp.metric).is_not_null())

    def side(cond: str, hidden: int, name: str) -> pl.DataFrame:
        rows = ok.filter((pl.col("condition") == cond) & (pl.col("hidden") == hidden))
        return rows.select("seed", pl.col(comp.metric).alias(name))

    both = side(comp.a, hidden_a, "_a").join(side(comp.b, hidden_b, "_b"), on="seed").sort("seed")
    return both["seed"].to_list(), (both["_b"] - both["_a"]).to_numpy().astype(np.float64)


def pairing(root: Path, comp: Comparison, hidden_a: int, hidden_b: int, seed: int | None) -> str:
    """Say what "same seed" pairs for one comparison at one hidden size, from the cells' configurations.

    The seed sets the initial parameters and, as ``seed + 1``, the batch order. The initial weights
    are identical only where the parameter shapes and the random draws agree; this is checked by
    building both cells' initial networks.
    """
    if hidden_a != hidden_b:
        return f"seeds only: hidden sizes differ ({hidden_a} vs {hidden_b}), so the initial weights do too"
    if seed is None:
        return "no paired seed"
    from delgrad_rs.config import load_config
    from delgrad_rs.training import build_network

    paths = [root / "cells" / c / f"H{hidden_a}" / f"seed{seed}" / "config.toml" for c in (comp.a, comp.b)]
    if not all(p.is_file() for p in paths):
        return "not checked: the sweep directory has no cell configurations"
    ca, cb = (load_config(p) for p in paths)
    wa, wb = ([layer["w"] for layer in build_network(c, threads=1).params] for c in (ca, cb))
    same_w = len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb, strict=True))
    same_order = ca.data == cb.data and ca.training.batch_size == cb.training.batch_size
    weights = "same initial weights" if same_w else "different initial weights (initialisation or delay kinds differ)"
    order = "same batch order" if same_order else "different batch order (other data or batch size)"
    return f"{weights}, {order}"


@dataclass
class Report:
    """The statistics of a sweep's comparisons.

    Attributes
    ----------
    name : str
        The sweep's name.
    table : polars.DataFrame
        One row per comparison and hidden size (columns of ``TABLE_SCHEMA``; accuracies as fractions).
    medians : polars.DataFrame
        Per condition and hidden size: n_params, runs, and per metric the median over seeds with
        its 95 % bootstrap confidence interval (``<metric>_median``, ``_low``, ``_high``).

    """

    name: str
    table: pl.DataFrame
    medians: pl.DataFrame

    def markdown(self) -> str:
        """Return the report as markdown: the comparisons, the medians per condition, the pairing and the rule."""
        out = [
            f"Comparisons of sweep `{self.name}`: paired differences b - a over seeds (successful cells with "
            "the same seed in both conditions), in percentage points for accuracies and shares, in steps for "
            "bumps.",
            "",
            "| comparison | claim | metric | hidden (a vs b) | n | median diff | mean diff | 95 % CI of mean "
            "| Wilcoxon p | verdict |",
            "|---|---|---|---|---:|---:|---:|---|---:|---|",
        ]
        for r in self.table.iter_rows(named=True):
            scale = METRICS[r["metric"]][1]
            ci = "-" if r["ci_low"] is None else f"[{_shown(r['ci_low'], scale)}, {_shown(r['ci_high'], scale)}]"
            if r["ci_method"] == "percentile":
                ci += " (percentile)"
            p = "-" if r["p_value"] is None else f"{r['p_value']:.3g}"
            out.append(
                f"| {r['comparison']} | {r['b']} {r['claim'][2]} {r['a']} | {r['metric']} | "
                f"{r['hidden_a']} vs {r['hidden_b']} | {r['n']} | {_shown(r['median_diff'], scale)} | "
                f"{_shown(r['mean_diff'], scale)} | {ci} | {p} | {r['verdict']} |"
            )
        out += ["", *self._medians_markdown()]
        out += ["", "Pairing by seed (the seed sets the initial parameters and the batch order):", ""]
        notes = self.table.group_by("comparison", "pairing", maintain_order=True).agg(pl.col("hidden_a"))
        for r in notes.iter_rows(named=True):
            out.append(f"- {r['comparison']} (hidden {', '.join(map(str, r['hidden_a']))}): {r['pairing']}")
        used = sorted(set(self.table["metric"].to_list()), key=list(METRICS).index)
        out += [
            "",
            "Metrics: " + "; ".join(f"`{m}` is the {METRICS[m][0]}" for m in used) + ". The confidence interval is "
            f"scipy.stats.bootstrap's ({N_RESAMPLES} resamples of the differences, BCa; percentile where BCa is "
            f"degenerate; seed {BOOTSTRAP_SEED}); p is the two-sided Wilcoxon signed-rank test "
            f'(zero_method="{ZERO_METHOD}": zero differences split their ranks between the signs). Verdict: '
            f"**holds** if the interval excludes 0 on the side of the claim and p < {ALPHA}; **reversed** if it "
            f"excludes 0 on the other side and p < {ALPHA}; **n too small** below {MIN_PAIRS} paired seeds; "
            "else **not shown**.",
        ]
        return "\n".join(out) + "\n"

    def _medians_markdown(self) -> list[str]:
        """Tabulate per condition and hidden size: median [95 % bootstrap CI] (min-max) per metric."""
        metrics = [m for m in METRICS if f"{m}_median" in self.medians.columns]
        out = [
            "Per condition: median over seeds [95 % bootstrap CI of the median] (min-max).",
            "",
            "| condition | hidden | trainable parameters | runs | " + " | ".join(metrics) + " |",
            "|---|---:|---:|---:|" + "---|" * len(metrics),
        ]
        for r in self.medians.iter_rows(named=True):
            cells = []
            for m in metrics:
                scale = METRICS[m][1]
                ci = (
                    ""
                    if r[f"{m}_low"] is None
                    else f" [{_shown(r[f'{m}_low'], scale, False)}, {_shown(r[f'{m}_high'], scale, False)}]"
                )
                span = f" ({_shown(r[f'{m}_min'], scale, False)}-{_shown(r[f'{m}_max'], scale, False)})"
                cells.append(_shown(r[f"{m}_median"], scale, False) + ci + span)
            out.append(f"| {r['label']} | {r['hidden']} | {r['n_params']} | {r['runs']} | " + " | ".join(cells) + " |")
        return out


def _shown(v: float | None, scale: float, signed: bool = True) -> str:
    """Format a value as the report shows it: times ``scale``, two decimals for percentages, one for counts."""
    if v is None:
        return "-"
    digits = 2 if scale != 1 else 1
    return f"{scale * v:+.{digits}f}" if signed else f"{scale * v:.{digits}f}"


def load_comparisons(sweep_dir: str | Path) -> tuple[str, list[Comparison]]:
    """Return the sweep's name and the comparisons its ``sweep.toml`` (copied by ``delgrad sweep``) declares.

    Raises
    ------
    SweepError
        Without ``sweep.toml``, for invalid comparisons (naming the key), or when it declares none.

    """
    path = Path(sweep_dir) / "sweep.toml"
    if not path.is_file():
        raise SweepError(f"sweep directory {sweep_dir}: no sweep.toml (not written by delgrad sweep?)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise SweepError(f"sweep file {path}: not valid TOML ({e})") from None
    conditions, hidden = data.get("conditions"), data.get("hidden")
    if not isinstance(conditions, dict) or not isinstance(hidden, list):
        raise SweepError(f"sweep file {path}: option conditions / hidden: missing or not a table / list")
    comps = comparisons_from_dict(data.get("comparisons", []), list(conditions), hidden, str(path))
    if not comps:
        raise SweepError(f"sweep file {path}: option comparisons: none declared ([[comparisons]] with a and b)")
    return str(data.get("name", Path(sweep_dir).name)), comps


def condition_medians(results: pl.DataFrame, metrics: list[str]) -> pl.DataFrame:
    """Return per condition and hidden size the median of each metric with its 95 % bootstrap interval."""
    ok = results.filter(pl.col("status") == "ok")
    rows: list[dict[str, Any]] = []
    for (cond, hidden), g in ok.group_by("condition", "hidden", maintain_order=True):
        row: dict[str, Any] = {
            "condition": cond,
            "label": g["label"][0],
            "hidden": hidden,
            "n_params": g["n_params"][0],
            "runs": g.height,
        }
        for m in metrics:
            v = g[m].drop_nulls().to_numpy().astype(np.float64)
            lo, hi = bootstrap_ci(v, "median")[:2] if v.size >= MIN_PAIRS else (None, None)
            row.update({f"{m}_median": float(np.median(v)) if v.size else None, f"{m}_low": lo, f"{m}_high": hi})
            row.update({f"{m}_min": float(v.min()) if v.size else None, f"{m}_max": float(v.max()) if v.size else None})
        rows.append(row)
    return pl.DataFrame(rows)  # in the order of the results table (the sweep file's)


def report(sweep_dir: str | Path) -> Report:
    """Test the comparisons a sweep declares on its results.

    Parameters
    ----------
    sweep_dir : str or Path
        A sweep directory (``results.parquet`` and ``sweep.toml``, as ``delgrad sweep`` writes them).

    Returns
    -------
    Report
        The table of comparisons and the medians per condition (see the module docstring).

    Raises
    ------
    SweepError
        For a directory that is no sweep directory, or a sweep file without (valid) comparisons.

    """
    root = Path(sweep_dir)
    results = load_results(root)
    name, comps = load_comparisons(root)
    rows: list[dict[str, Any]] = []
    for comp in comps:
        for ha, hb in comp.hidden_pairs:
            seeds, d = paired_differences(results, comp, ha, hb)
            n = len(seeds)
            ci = bootstrap_ci(d) if n >= MIN_PAIRS else None
            p = wilcoxon_p(d) if n >= MIN_PAIRS else None
            rows.append(
                {
                    "comparison": comp.label,
                    "a": comp.a,
                    "b": comp.b,
                    "claim": comp.claim,
                    "metric": comp.metric,
                    "hidden_a": ha,
                    "hidden_b": hb,
                    "n": n,
                    "seeds": seeds,
                    "median_diff": float(np.median(d)) if n else None,
                    "mean_diff": float(np.mean(d)) if n else None,
                    "ci_low": ci[0] if ci else None,
                    "ci_high": ci[1] if ci else None,
                    "ci_method": ci[2] if ci else None,
                    "p_value": p,
                    "verdict": verdict(comp.sign, n, ci[:2] if ci else None, p),
                    "pairing": pairing(root, comp, ha, hb, seeds[0] if seeds else None),
                }
            )
    metrics = sorted({c.metric for c in comps})
    return Report(name, pl.DataFrame(rows, schema=TABLE_SCHEMA), condition_medians(results, metrics))


def plot_report(rep: Report, path: str | Path) -> Path:
    """Draw each condition's median (95 % bootstrap interval) against hidden size and trainable parameters.

    One panel pair per metric the comparisons use; one line per condition.

    Parameters
    ----------
    rep : Report
        A report.
    path : str or Path
        The PNG file to write.

    Returns
    -------
    Path
        The file written.

    """
    from delgrad_rs.plots import _plt
    from delgrad_rs.sweep_plots import _plain_log_ticks

    plt = _plt()
    metrics = sorted(set(rep.table["metric"].to_list()))
    med = rep.medians
    fig, axes = plt.subplots(len(metrics), 2, figsize=(11, 4.2 * len(metrics)), squeeze=False)
    for row, m in zip(axes, metrics, strict=True):
        for i, cond in enumerate(med["condition"].unique(maintain_order=True).to_list() if med.height else []):
            d = med.filter(pl.col("condition") == cond).sort("hidden")
            scale = METRICS[m][1]
            y = scale * d[f"{m}_median"].to_numpy().astype(np.float64)
            low = scale * d[f"{m}_low"].fill_null(d[f"{m}_median"]).to_numpy().astype(np.float64)
            high = scale * d[f"{m}_high"].fill_null(d[f"{m}_median"]).to_numpy().astype(np.float64)
            for ax, x in ((row[0], d["hidden"].to_numpy()), (row[1], d["n_params"].to_numpy())):
                style: dict[str, Any] = {"color": f"C{i}", "marker": "o", "capsize": 3, "lw": 1.5, "ms": 4}
                ax.errorbar(x, y, yerr=[y - low, high - y], label=str(d["label"][0]), **style)
        row[0].set(xlabel="hidden neurons", ylabel=METRICS[m][0] + (" [%]" if METRICS[m][1] == 100 else ""))
        row[1].set(xlabel="trainable parameters (weights + delays)", xscale="log")
        row[0].set_title("median over seeds, 95 % bootstrap CI")
        for ax in row:
            ax.grid(alpha=0.3, which="both")
        row[0].legend(title="condition", fontsize=8)
        _plain_log_ticks(row[1])
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


__all__ = ["Report", "bootstrap_ci", "paired_differences", "plot_report", "report", "verdict", "wilcoxon_p"]
