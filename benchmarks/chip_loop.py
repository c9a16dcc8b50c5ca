"""End-to-end time of chip-in-the-loop training on the emulated BrainScaleS-2 chip.

Trains ``examples/configs/hwaware_WA.toml`` (300 epochs unless ``--epochs``) with
``delgrad_rs.training.fit`` on the in-process emulator, as ``delgrad train ... --backend emulator``
does but without a run directory, and prints one JSON object per training:
``{"name", "epochs", "threads", "concurrent", "seconds", "test_accuracy"}``. ``seconds`` is the
wall time of ``fit`` (interpreter start and imports excluded). With ``--concurrent N`` it starts N
such trainings at once, each in its own process (e.g. two 2-thread trainings on 2 cores: what
oversubscription costs).

Usage: ``python benchmarks/chip_loop.py [--epochs E] [--threads T] [--concurrent N]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

CONFIG = Path(__file__).resolve().parent.parent / "examples" / "configs" / "hwaware_WA.toml"


def train(epochs: int, threads: int) -> dict[str, float]:
    """Train once in this process; return the wall time of ``fit`` and the test accuracy."""
    import polars as pl

    from delgrad_rs.config import load_config
    from delgrad_rs.training import fit, make_backend

    cfg = load_config(CONFIG)
    cfg.training.epochs, cfg.training.threads = epochs, threads
    backend = make_backend("emulator", cfg)
    start = time.perf_counter()
    df = fit(cfg, quiet=True, backend=backend)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "test_accuracy": float(df.filter(pl.col("split") == "test")["accuracy"][0])}


def main() -> None:
    """Run the training(s) and print the JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300, help="epochs (default 300)")
    parser.add_argument("--threads", type=int, default=2, help="core threads per training (default 2)")
    parser.add_argument("--concurrent", type=int, default=1, help="trainings at once, one process each")
    args = parser.parse_args()
    for name, value in (("epochs", args.epochs), ("threads", args.threads), ("concurrent", args.concurrent)):
        if value < 1:
            parser.error(f"--{name}: expected an integer >= 1, got {value}")
    if args.concurrent == 1:
        results = [train(args.epochs, args.threads)]
    else:
        cmd = [sys.executable, __file__, "--epochs", str(args.epochs), "--threads", str(args.threads)]
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(args.concurrent)]
        outputs = [p.communicate()[0] for p in procs]
        if any(p.returncode != 0 for p in procs):
            sys.exit("a training failed")
        results = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    for r in results:
        line = {"name": "chip_loop_hwaware_WA", "epochs": args.epochs, "threads": args.threads}
        line |= {"concurrent": args.concurrent, "seconds": round(r["seconds"], 3)}
        line["test_accuracy"] = r["test_accuracy"]
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
