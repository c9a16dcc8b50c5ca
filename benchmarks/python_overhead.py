"""Python overhead of a training step: wall time of each road minus that of the bare binding call.

Runs the raw ``Trainer.step`` (one binding call), ``Network.train_step`` (the Python wrapper
around it) and ``Trainer.step`` on float32 inputs (plus their conversion) at batch 150 on the
H30_WS configuration with one core thread. Each road trains its own trainer through the same
batches, the roads timed in turn step by step so that drift of the machine hits all alike. Prints
one JSON object per line with the medians:
``{"name", "batch", "threads", "wall_us", "overhead_us", "overhead_ratio"}``, the overhead being
the road's median wall time minus that of ``Trainer.step`` (0 for ``Trainer.step`` itself).

Usage: ``python benchmarks/python_overhead.py [--steps N] [--threads T]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from delgrad_rs import datasets
from delgrad_rs.config import load_config
from delgrad_rs.training import build_network, build_trainer

CONFIG = Path(__file__).resolve().parent.parent / "examples" / "configs" / "H30_WS.toml"


def measure(roads: dict[str, Callable[[int], object]], steps: int) -> dict[str, float]:
    """Median wall time (seconds) per call of each road ``road(k)`` over ``steps`` calls, in turn."""
    for k in range(20):  # warm-up
        for road in roads.values():
            road(k)
    wall: dict[str, list[float]] = {name: [] for name in roads}
    for k in range(steps):
        for name, road in roads.items():
            start = time.perf_counter()
            road(k)
            wall[name].append(time.perf_counter() - start)
    return {name: statistics.median(w) for name, w in wall.items()}


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

    nets = [build_network(cfg, threads=args.threads) for _ in range(3)]
    raw_trainer, wrapped_trainer, float32_trainer = (build_trainer(cfg, n, threads=args.threads) for n in nets)
    net = nets[1]

    def raw(k: int) -> object:
        xb, yb = batches[k % len(batches)]
        return raw_trainer.step(xb, yb, 0)

    def wrapped(k: int) -> object:
        xb, yb = batches[k % len(batches)]
        return net.train_step(xb, yb, wrapped_trainer)

    def float32(k: int) -> object:
        xb, yb = batches[k % len(batches)]
        return float32_trainer.step(xb.astype(np.float32), yb, 0)

    wall = measure({"Trainer.step": raw, "Network.train_step": wrapped, "Trainer.step_float32": float32}, args.steps)
    base = wall["Trainer.step"]
    for name, w in wall.items():
        print(
            json.dumps(
                {
                    "name": name,
                    "batch": batch,
                    "threads": args.threads,
                    "wall_us": round(w * 1e6, 1),
                    "overhead_us": round((w - base) * 1e6, 1),
                    "overhead_ratio": round((w - base) / base, 4),
                }
            )
        )


if __name__ == "__main__":
    main()
