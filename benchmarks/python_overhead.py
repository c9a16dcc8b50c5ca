"""Python overhead of a training step: wall time of the call minus the core's own time.

Runs ``Network.train_step`` (and the raw ``Trainer.step``) at batch 150 on the H30_WS
configuration with one core thread and prints one JSON object per line with the medians:
``{"name", "batch", "threads", "wall_us", "core_us", "overhead_us", "overhead_ratio"}``.
The core's time is measured inside the bindings around the core call (``core_seconds`` of the
step report), so the difference is argument conversion, result conversion and the wrapper.

Usage: ``python benchmarks/python_overhead.py [--steps N] [--threads T]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from delgrad_rs import datasets
from delgrad_rs.config import load_config
from delgrad_rs.training import build_network, build_trainer

CONFIG = Path(__file__).resolve().parent.parent / "examples" / "configs" / "H30_WS.toml"


def measure(step: Callable[[int], dict[str, Any]], steps: int) -> tuple[float, float]:
    """Median wall and core time (seconds) per call of ``step(k)`` over ``steps`` calls."""
    for k in range(20):  # warm-up
        step(k)
    wall, core = [], []
    for k in range(steps):
        start = time.perf_counter()
        report = step(k)
        wall.append(time.perf_counter() - start)
        core.append(report["core_seconds"])
    return statistics.median(wall), statistics.median(core)


def main() -> None:
    """Measure and print the JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500, help="timed steps per case (default 500)")
    parser.add_argument("--threads", type=int, default=1, help="core threads (default 1)")
    args = parser.parse_args()
    cfg = load_config(CONFIG)
    x, y = datasets.yin_yang("train")
    batch = cfg.training.batch_size
    batches = [(x[i : i + batch].copy(), y[i : i + batch].copy()) for i in range(0, len(x) - batch + 1, batch)]

    net = build_network(cfg, threads=args.threads)
    trainer = build_trainer(cfg, net, threads=args.threads)

    def raw(k: int) -> dict[str, Any]:
        xb, yb = batches[k % len(batches)]
        return dict(trainer.step(xb, yb, 0))

    def wrapped(k: int) -> dict[str, Any]:
        xb, yb = batches[k % len(batches)]
        return net.train_step(xb, yb, trainer)

    def float32(k: int) -> dict[str, Any]:
        xb, yb = batches[k % len(batches)]
        return dict(trainer.step(xb.astype(np.float32), yb, 0))

    for name, fn in [("Trainer.step", raw), ("Network.train_step", wrapped), ("Trainer.step_float32", float32)]:
        wall, core = measure(fn, args.steps)
        print(
            json.dumps(
                {
                    "name": name,
                    "batch": batch,
                    "threads": args.threads,
                    "wall_us": round(wall * 1e6, 1),
                    "core_us": round(core * 1e6, 1),
                    "overhead_us": round((wall - core) * 1e6, 1),
                    "overhead_ratio": round((wall - core) / core, 4),
                }
            )
        )


if __name__ == "__main__":
    main()
