"""Chip-in-the-loop training of hardware-aware configurations over several seeds on the emulator.

Prints the test accuracy per seed and the median per configuration. ``--set SECTION.KEY=VALUE``
overrides configuration values (e.g. ``--set optimizer.lr_delays=0.01``) for experiments.

    python examples/hwaware_seeds.py --configs hwaware_W hwaware_WA --seeds 5 --jobs 2
"""

from __future__ import annotations

import argparse
import ast
import statistics
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def train(task: tuple[str, int, int | None, list[str], str | None]) -> float:
    """Train one configuration with one seed on the emulated chip; return the test accuracy."""
    import polars as pl

    from delgrad_rs.config import config_from_dict, load_config
    from delgrad_rs.training import fit, make_backend

    name, seed, epochs, overrides, out = task
    data: dict[str, Any] = load_config(HERE / "configs" / f"{name}.toml").to_dict()
    for item in overrides:
        key, _, value = item.partition("=")
        section, _, field = key.partition(".")
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = value
        data[section][field] = parsed
    cfg = config_from_dict(data)
    cfg.seed, cfg.training.threads = seed, 1
    if epochs is not None:
        cfg.training.epochs = epochs
    run = None if out is None else Path(out) / f"{name}_s{seed}"
    df = fit(cfg, out=run, quiet=True, backend=make_backend("emulator", cfg))
    return float(df.filter(pl.col("split") == "test")["accuracy"][0])


def main() -> None:
    """Run the seeds and print the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["hwaware_W", "hwaware_WA"], help="names in examples/configs")
    p.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1")
    p.add_argument("--epochs", type=int, default=None, help="override training.epochs")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="SECTION.KEY=VALUE override")
    p.add_argument("--out", default=None, help="directory for the run directories (default: none written)")
    p.add_argument("--jobs", type=int, default=1, help="parallel trainings (one thread each)")
    a = p.parse_args()
    tasks = [(n, s, a.epochs, list(a.overrides), a.out) for n in a.configs for s in range(a.seeds)]
    with ProcessPoolExecutor(max_workers=a.jobs) as pool:
        accs = list(pool.map(train, tasks))
    print(f"test accuracy [%] on the emulated BrainScaleS-2 chip; overrides: {a.overrides or 'none'}")
    for n in a.configs:
        v = [100 * acc for (name, *_), acc in zip(tasks, accs, strict=True) if name == n]
        print(f"{n:<14} median {statistics.median(v):5.1f}   seeds: {' '.join(f'{x:.1f}' for x in v)}")


if __name__ == "__main__":
    main()
