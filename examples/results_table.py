"""Regenerate the sweep results of docs/results.md (markdown) from a sweep directory.

Usage::

    python examples/results_table.py runs/sweeps/paper                    # print the markdown
    python examples/results_table.py runs/sweeps/paper --readme           # replace it in docs/results.md
    python examples/results_table.py runs/sweeps/paper --readme FILE.md   # replace it in FILE.md
    python examples/results_table.py runs/sweeps/paper --checkpoint best  # best-validation checkpoints

With ``--readme`` the text between ``<!-- sweep-results:begin -->`` and ``<!-- sweep-results:end -->``
is replaced. Accuracies are medians over seeds of the test accuracy of the network after the last
epoch, as the reference code reports (min-max in parentheses); ``--checkpoint best`` shows each run's
best-validation checkpoint instead. The comparison with the reference code's single runs shows both.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path

import polars as pl

from delgrad_rs.sweep import load_results, median_table
from delgrad_rs.sweep_plots import CHECKPOINTS

# Published single-run test accuracies of the reference code after epoch 300 (docs/results.md),
# keyed by (condition of examples/sweeps/paper.toml, hidden size).
REFERENCE = {
    ("W", 30): ("H30_W", 96.7),
    ("WA", 30): ("H30_WA", 97.5),
    ("WS", 30): ("H30_WS", 98.2),
    ("WS", 5): ("H5_WS", 95.4),
}
BEGIN, END = "<!-- sweep-results:begin -->", "<!-- sweep-results:end -->"
# The document whose results block `--readme` without a file name replaces.
RESULTS_DOC = Path(__file__).resolve().parent.parent / "docs" / "results.md"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def sweep_wall_time(root: Path) -> tuple[float, int, list[str]]:
    """Return the summed wall time of the invocations in ``history.jsonl``, their count and engines."""
    path = root / "history.jsonl"
    if not path.is_file():
        return 0.0, 0, []
    entries = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    engines = sorted({f"{e['engine']} ({e['workers']} workers)" for e in entries})
    return sum(float(e["wall_time"]) for e in entries), len(entries), engines


def markdown(root: Path, command: str, baseline: str = "W", checkpoint: str = "last") -> str:
    """Return the markdown results section of a sweep directory.

    Parameters
    ----------
    root : Path
        The sweep directory.
    command : str
        The command that produced it (shown in the text).
    baseline : str
        The weights-only condition for the parameter-efficiency check.
    checkpoint : {"last", "best"}
        Whose test accuracy the tables show: after the last epoch or at the best-validation checkpoint.

    Returns
    -------
    str
        Markdown text.

    """
    col, which = CHECKPOINTS[checkpoint]
    results = load_results(root)
    table = median_table(results)
    conds = table.select("condition", "label").unique(maintain_order=True).rows()
    hidden = sorted(set(table["hidden"].to_list()))
    ok = results.filter(pl.col("status") == "ok")
    seeds = ok.group_by("condition", "hidden").len()["len"]
    epochs = sorted(set(results["epochs"].drop_nulls().to_list()))
    wall, invocations, engines = sweep_wall_time(root)
    n_failed = results.height - ok.height
    out = [f"`{command}`: {results.height} trainings ({len(conds)} conditions x {len(hidden)} hidden sizes x "]
    out[-1] += f"{seeds.max() if len(seeds) else 0} seeds, {'/'.join(map(str, epochs))} epochs each"
    if wall:
        inv = "" if invocations == 1 else f" over {invocations} invocations"
        out[-1] += f") in {wall / 60:.1f} min of wall time{inv} with the {', '.join(engines)} engine"
    else:
        out[-1] += ")"
    out[-1] += f"; {n_failed} failed." if n_failed else "; none failed."
    cpu = results["cpu_time"].drop_nulls().sum() if "cpu_time" in results.columns else 0.0
    workers = max((int(e.split("(")[1].split()[0]) for e in engines if "(" in e and "None" not in e), default=0)
    if cpu and workers:
        out[-1] += (
            f" The cells' CPU time adds up to {cpu / 60:.1f} min, i.e. {cpu / 60 / workers:.1f} min on "
            f"{workers} otherwise idle cores; the difference to the wall time is other load on the machine."
        )
    out.append("")
    out.append(
        f"Median test accuracy [%] over seeds, {which} (min-max), trainable parameters (weights + delays) in brackets:"
    )
    out.append("")
    out.append("| hidden | " + " | ".join(label for _, label in conds) + " |")
    out.append("|---:|" + "---|" * len(conds))
    cell = {(r["condition"], r["hidden"]): r for r in table.iter_rows(named=True)}
    for h in hidden:
        parts = []
        for c, _ in conds:
            r = cell.get((c, h))
            if r is None or not r["runs"]:
                parts.append("-")
            else:
                parts.append(
                    f"{_pct(r[f'{col}_median'])} ({_pct(r[f'{col}_min'])}-{_pct(r[f'{col}_max'])}) [{r['n_params']}]"
                )
        out.append(f"| {h} | " + " | ".join(parts) + " |")
    refs = [(k, v) for k, v in REFERENCE.items() if k in cell and cell[k]["runs"]]
    if refs:
        out += ["", "Against the reference code's single runs (test accuracy after epoch 300):", ""]
        out.append("| run | reference | median, last epoch | median, best-validation checkpoint |")
        out.append("|---|---:|---:|---:|")
        for (c, h), (name, ref) in refs:
            r = cell[(c, h)]
            out.append(f"| {name} | {ref:.1f} | {_pct(r['test_median'])} | {_pct(r['best_median'])} |")
    checks = []
    for c, label in conds:
        if c == baseline:
            continue
        for h in hidden:
            if h % 2 == 0 and (c, h // 2) in cell and (baseline, h) in cell:
                a, b = cell[(c, h // 2)][f"{col}_median"], cell[(baseline, h)][f"{col}_median"]
                if a is not None and b is not None:
                    verdict = "yes" if a >= b else "no"
                    checks.append(f"| {label} | {h // 2} vs {h} | {_pct(a)} | {_pct(b)} | {verdict} |")
    if checks:
        held = sum(line.endswith("yes |") for line in checks)
        out += [
            "",
            f"Parameter efficiency: delays at half the hidden size vs weights only at full size "
            f"(medians, {which}); holds in {held} of {len(checks)} comparisons "
            "(medians only; `delgrad report` tests it over seeds):",
            "",
            "| delays | hidden (delays vs weights only) | with delays | weights only | delays >= weights only |",
            "|---|---|---:|---:|---|",
            *checks,
        ]
    return "\n".join(out) + "\n"


def splice(path: Path, begin: str, end: str, text: str) -> None:
    """Replace the text between the markers ``begin`` and ``end`` of the file ``path`` by ``text``.

    Raises
    ------
    ValueError
        When the file lacks either marker.

    """
    doc = path.read_text(encoding="utf-8")
    if begin not in doc or end not in doc:
        raise ValueError(f"{path} has no {begin} ... {end} markers")
    head, rest = doc.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{text}{end}{tail}", encoding="utf-8")


def sweep_name(root: Path) -> str:
    """Return the sweep's name from its copied ``sweep.toml`` (else the directory's name).

    Parameters
    ----------
    root : Path
        The sweep directory.

    Returns
    -------
    str
        The name of the sweep file in ``examples/sweeps``.

    """
    try:
        with open(root / "sweep.toml", "rb") as f:
            return str(tomllib.load(f).get("name", root.name))
    except (OSError, tomllib.TOMLDecodeError):
        return root.name


def main() -> int:
    """Print or splice the results section; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dir", help="sweep directory (with results.parquet)")
    parser.add_argument(
        "--readme",
        nargs="?",
        const=str(RESULTS_DOC),
        default=None,
        metavar="FILE",
        help=f"replace the text between {BEGIN} and {END} in FILE (default: docs/results.md)",
    )
    parser.add_argument("--command", default=None, help="command shown in the text (default: from sweep.toml)")
    parser.add_argument("--baseline", default="W", help="weights-only condition (default W)")
    parser.add_argument(
        "--checkpoint",
        choices=tuple(CHECKPOINTS),
        default="last",
        help="test accuracy after the last epoch (default) or at the best-validation checkpoint",
    )
    args = parser.parse_args()
    root = Path(args.sweep_dir)
    command = args.command or f"delgrad sweep examples/sweeps/{sweep_name(root)}.toml --workers 2"
    try:
        text = markdown(root, command, args.baseline, args.checkpoint)
    except (OSError, ValueError) as e:
        print(f"results_table: error: {e}", file=sys.stderr)
        return 1
    if args.readme is None:
        print(text, end="")
        return 0
    readme = Path(args.readme)
    try:
        splice(readme, BEGIN, END, text)
    except ValueError as e:
        print(f"results_table: error: {e}", file=sys.stderr)
        return 1
    print(f"updated {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
