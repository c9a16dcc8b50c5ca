"""Train the reference Yin-Yang conditions and print the result table (``make run``).

Usage: ``python examples/reproduce.py [CONFIG ...] [--epochs N] [--seed S]``; by default H30_W and
H30_WS of ``examples/configs`` with the reference 300 epochs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from delgrad_rs.config import load_config
from delgrad_rs.sweep import count_trainable
from delgrad_rs.training import fit

CONFIGS = Path(__file__).parent / "configs"
# Published single-run test accuracies of the reference code (docs/results.md).
REFERENCE = {"H30_W": 96.7, "H30_WA": 97.5, "H30_WS": 98.2, "H5_WS": 95.4}


def trainable_parameters(config_path: Path) -> int:
    """Count weights and trained delays of the configuration's network."""
    return count_trainable(load_config(config_path).to_dict())


def main() -> None:
    """Train each configuration and print condition, parameters, test accuracy and wall time."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("configs", nargs="*", default=["H30_W", "H30_WS"])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--out", default="runs")
    args = parser.parse_args()
    rows = []
    for name in args.configs:
        path = Path(name) if name.endswith(".toml") else CONFIGS / f"{name}.toml"
        start = time.perf_counter()
        df = fit(path, out=Path(args.out) / path.stem, epochs=args.epochs, seed=args.seed, resume=False)
        wall = time.perf_counter() - start
        test = df.filter(df["split"] == "test")
        acc = 100.0 * float(test["accuracy"][0]) if test.height else float("nan")
        rows.append((path.stem, trainable_parameters(path), acc, REFERENCE.get(path.stem), wall))
    print()
    print(f"{'condition':<10} {'parameters':>10} {'test acc %':>10} {'reference %':>11} {'wall s':>7}")
    for name, params, acc, ref, wall in rows:
        ref_s = f"{ref:.1f}" if ref is not None else "-"
        print(f"{name:<10} {params:>10d} {acc:>10.2f} {ref_s:>11} {wall:>7.1f}")


if __name__ == "__main__":
    main()
