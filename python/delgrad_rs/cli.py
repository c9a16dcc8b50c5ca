"""The ``delgrad`` command-line tool: ``train``, ``eval``, ``sweep``, ``plot`` and ``report``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from delgrad_rs._core import DelgradError

if TYPE_CHECKING:
    from delgrad_rs.config import Config
    from delgrad_rs.training import Backend


def _train(args: argparse.Namespace) -> int:
    from delgrad_rs.config import load_config
    from delgrad_rs.training import fit

    cfg = load_config(args.config)
    out = Path(args.out) if args.out else Path("runs") / cfg.name
    backend = _backend(args, cfg, seed=args.seed)
    df = fit(cfg, out=out, epochs=args.epochs, seed=args.seed, threads=args.threads, quiet=args.quiet, backend=backend)
    test = df.filter(df["split"] == "test")
    if test.height:
        print(f"{cfg.name}: test accuracy {test['accuracy'][0]:.4f} (run directory {out})")
    elif args.epochs == 0:
        print(f"{cfg.name}: 0 epochs: the initial network is in {out / 'checkpoints' / 'last.npz'}")
    else:
        print(f"{cfg.name}: stopped early (run directory {out})")
    return 0


def _backend(args: argparse.Namespace, cfg: Config, seed: int | None) -> Backend | None:
    """Return the backend of ``--backend`` (None = software), built by the factory registered under its name."""
    from delgrad_rs.training import make_backend

    spec = getattr(args, "backend", "software") or "software"
    if spec == "software":
        return None
    if seed is not None:
        cfg.seed = int(seed)
    # The backend (an in-process emulator) runs on the threads the run asks for.
    if getattr(args, "threads", None) is not None:
        cfg.training.threads = int(args.threads)
    return make_backend(spec, cfg, token_file=args.token_file)


def _run_backend(args: argparse.Namespace) -> Backend | None:
    """Return the backend of ``--backend`` for an existing run directory (None = software)."""
    if args.backend == "software":
        return None
    from delgrad_rs.config import load_config

    return _backend(args, load_config(Path(args.run) / "config.toml"), seed=None)


def _eval(args: argparse.Namespace) -> int:
    from delgrad_rs.training import evaluate_run

    df = evaluate_run(args.run, args.checkpoint, backend=_run_backend(args))
    for row in df.iter_rows(named=True):
        print(f"{row['split']:<11} loss {row['loss']:.5f}  accuracy {row['accuracy']:.4f}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from delgrad_rs.sweep import is_sweep_dir

    if is_sweep_dir(args.run):
        if args.backend != "software":
            raise DelgradError(f"--backend {args.backend}: a sweep directory is plotted from its results, not run")
        return _plot_sweep(args)
    from delgrad_rs.plots import plot_run
    from delgrad_rs.training import recorded_backend

    backend = _run_backend(args)
    trained_on = recorded_backend(args.run)
    trained_on = trained_on.get("backend") if isinstance(trained_on, dict) else None
    if backend is None and trained_on not in (None, "software"):
        print(
            f"note: {args.run} was trained on the {trained_on} backend; the spike-time figures show the ideal "
            f"model (plot them on the chip with --backend)",
            file=sys.stderr,
        )
    for p in plot_run(args.run, args.checkpoint, backend=backend):
        print(p)
    return 0


def _plot_sweep(args: argparse.Namespace) -> int:
    from delgrad_rs.sweep import format_table, load_results, median_table
    from delgrad_rs.sweep_plots import plot_sweep

    print(format_table(median_table(load_results(args.run))))
    for p in plot_sweep(args.run):
        print(p)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from delgrad_rs.sweep import format_table, load_sweep, median_table, run_sweep

    sweep = load_sweep(args.sweep)
    out = Path(args.out) if args.out else Path("runs") / "sweeps" / sweep.name
    df = run_sweep(
        sweep,
        out=out,
        engine=args.engine,
        workers=args.workers,
        address=args.address,
        quiet=args.quiet,
        retry_failed=args.retry_failed,
    )
    failed = df.filter(df["status"] != "ok").height
    print(format_table(median_table(df)))
    print(f"{sweep.name}: {df.height} cells ({failed} failed); results in {out / 'results.parquet'}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from delgrad_rs.report import plot_report, report

    root = Path(args.sweep_dir)
    rep = report(root)
    text = rep.markdown()
    out = Path(args.out) if args.out else root / "report.md"
    out.write_text(text, encoding="utf-8")
    print(text, end="")
    print(out)
    try:
        print(plot_report(rep, Path(args.figure) if args.figure else root / "report.png"))
    except ImportError as e:  # matplotlib is the optional extra `plot`; the table does not need it
        print(f"note: no figure: {e}", file=sys.stderr)
    return 0


def _backend_help(what: str) -> str:
    """Return the help of ``--backend``: what it selects and the backends installed."""
    from delgrad_rs.training import backend_names

    names = backend_names()
    more = "" if len(names) > 1 else " (install delgrad-hw for emulator and remote://HOST:PORT)"
    return f"{what}: {', '.join(names)}{more}; NAME://ADDRESS selects the backend NAME (e.g. remote://HOST:PORT)"


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``delgrad`` tool."""
    parser = argparse.ArgumentParser(prog="delgrad", description="Train and inspect DelGrad spiking networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train on Yin-Yang from a TOML config", description="Train from a TOML config.")
    p.add_argument("config", help="TOML configuration (see examples/configs)")
    p.add_argument("--epochs", type=int, default=None, help="override training.epochs")
    p.add_argument("--seed", type=int, default=None, help="override seed")
    p.add_argument("--out", default=None, help="run directory (default runs/<name>); resumes if it has a checkpoint")
    p.add_argument("--threads", type=int, default=None, help="worker threads (0 = all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--backend", default="software", help=_backend_help("where forward passes run (default software)"))
    p.add_argument(
        "--token-file", default=None, help="token of the remote server (default: the environment DELGRAD_HW_TOKEN)"
    )
    p.set_defaults(func=_train)
    p = sub.add_parser("eval", help="evaluate a run on every split", description="Evaluate a run directory.")
    p.add_argument("run", help="run directory")
    p.add_argument("--checkpoint", default="best", help="best, last or a checkpoint file name (default best)")
    p.add_argument("--backend", default="software", help=_backend_help("where forward passes run (default software)"))
    p.add_argument("--token-file", default=None, help="token of the remote server (default: DELGRAD_HW_TOKEN)")
    p.set_defaults(func=_eval)
    p = sub.add_parser(
        "sweep",
        help="train a grid of conditions x hidden sizes x seeds",
        description="Run or continue a sweep (see examples/sweeps); finished cells are not rerun.",
    )
    p.add_argument("sweep", help="TOML sweep file (see examples/sweeps)")
    p.add_argument("--engine", choices=("local", "ray"), default="local", help="local process pool or Ray tasks")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local instance)")
    p.add_argument("--workers", type=int, default=None, help="parallel cells (default: usable cores)")
    p.add_argument("--out", default=None, help="sweep directory (default runs/sweeps/<name>)")
    p.add_argument("--retry-failed", action="store_true", help="rerun cells recorded as failed")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_sweep)
    p = sub.add_parser(
        "plot",
        help="write the figures (PNG) of a run or a sweep directory",
        description="Plot a run directory, or a sweep directory (parameter-efficiency figure and table of medians).",
    )
    p.add_argument("run", help="run or sweep directory")
    p.add_argument("--checkpoint", default="best", help="best, last or a checkpoint file name (default best)")
    p.add_argument("--backend", default="software", help=_backend_help("where spike times are computed"))
    p.add_argument("--token-file", default=None, help="token of the remote server (default: DELGRAD_HW_TOKEN)")
    p.set_defaults(func=_plot)
    p = sub.add_parser(
        "report",
        help="test the comparisons a sweep file declares over seeds",
        description="Paired differences over seeds, bootstrap CI, Wilcoxon p-value and a verdict per "
        "[[comparisons]] table of the sweep file and hidden size; a markdown table and a figure.",
    )
    p.add_argument("sweep_dir", help="sweep directory (results.parquet and sweep.toml)")
    p.add_argument("--out", default=None, help="markdown file (default SWEEP_DIR/report.md)")
    p.add_argument("--figure", default=None, help="PNG file (default SWEEP_DIR/report.png)")
    p.set_defaults(func=_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the tool; returns the exit code (1 for errors, 130 after Ctrl-C)."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (DelgradError, ValueError, OSError, RuntimeError) as e:  # RuntimeError: chip errors of a backend
        print(f"delgrad: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
