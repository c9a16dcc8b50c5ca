"""The ``delgrad`` command-line tool: ``train``, ``eval`` and ``plot``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from delgrad_rs._core import DelgradError


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
    else:
        print(f"{cfg.name}: stopped early (run directory {out})")
    return 0


def _backend(args: argparse.Namespace, cfg: Any, seed: int | None) -> Any:
    """Return the training backend of ``--backend`` (None = software); imports delgrad_hw only then."""
    spec = getattr(args, "backend", "software") or "software"
    if spec == "software":
        return None
    try:
        from delgrad_hw.training import make_backend
    except ImportError as e:
        raise DelgradError(f"--backend {spec}: the hardware package delgrad-hw is not installed ({e})") from None
    if seed is not None:
        cfg.seed = int(seed)
    return make_backend(spec, cfg, token_file=args.token_file)


def _eval(args: argparse.Namespace) -> int:
    from delgrad_rs.config import load_config
    from delgrad_rs.training import evaluate_run

    backend = None
    if args.backend != "software":
        backend = _backend(args, load_config(Path(args.run) / "config.toml"), seed=None)
    df = evaluate_run(args.run, args.checkpoint, backend=backend)
    for row in df.iter_rows(named=True):
        print(f"{row['split']:<11} loss {row['loss']:.5f}  accuracy {row['accuracy']:.4f}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from delgrad_rs.plots import plot_run

    for p in plot_run(args.run, args.checkpoint):
        print(p)
    return 0


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
    p.add_argument(
        "--backend",
        default="software",
        help="where forward passes run: software (default), emulator (emulated BrainScaleS-2, "
        "chip-in-the-loop) or remote://HOST:PORT (a delgrad-hw server)",
    )
    p.add_argument(
        "--token-file", default=None, help="token of the remote server (default: the environment DELGRAD_HW_TOKEN)"
    )
    p.set_defaults(func=_train)
    p = sub.add_parser("eval", help="evaluate a run on every split", description="Evaluate a run directory.")
    p.add_argument("run", help="run directory")
    p.add_argument("--checkpoint", default="best", help="best, last or a checkpoint file name (default best)")
    p.add_argument("--backend", default="software", help="software (ideal model), emulator or remote://HOST:PORT")
    p.add_argument("--token-file", default=None, help="token of the remote server (default: DELGRAD_HW_TOKEN)")
    p.set_defaults(func=_eval)
    p = sub.add_parser("plot", help="write the run's figures (PNG)", description="Plot a run directory (PNGs).")
    p.add_argument("run", help="run directory")
    p.add_argument("--checkpoint", default="best", help="best, last or a checkpoint file name (default best)")
    p.set_defaults(func=_plot)
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
    except (DelgradError, ValueError, OSError, RuntimeError) as e:  # RuntimeError: chip errors of delgrad_hw
        print(f"delgrad: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
