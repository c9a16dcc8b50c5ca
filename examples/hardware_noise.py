"""Accuracy against noise strength on the emulated BrainScaleS-2 chip, with and without delays.

Trains ``hwaware_W`` (weights) and ``hwaware_WA`` (weights + axonal delays) chip-in-the-loop on
emulated chips whose noise is scaled by a factor s: fixed-pattern threshold offsets N(0.13 s, 0.08 s),
threshold noise per batch 0.04 s and arrival jitter 0.01 s (s = 1: the reference hardware model of
``docs/hardware.md``; weight/delay quantisation, 8 ns timestamps and sample slots stay on). The
effects that are off by default (not measured publicly) can be added, also scaled by s:
per-circuit tau_m / tau_s mismatch, per-row synaptic gain mismatch and event loss. Prints the median
test accuracy over seeds (and the per-seed values) per noise scale.

    python examples/hardware_noise.py --scales 0 1 2 4 --seeds 3 --epochs 60 --jobs 2
    python examples/hardware_noise.py --scales 1 2 --tau-mismatch 0.03 --gain-mismatch 0.05 --jobs 2
"""

from __future__ import annotations

import argparse
import statistics
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_one(args: tuple[str, float, int, int, dict[str, float]]) -> float:
    """Train one configuration on a chip with noise scale ``s`` and return its test accuracy."""
    import polars as pl
    from delgrad_hw.emulator import EmulatedChip
    from delgrad_hw.training import ChipBackend

    from delgrad_rs.config import load_config
    from delgrad_rs.training import fit

    name, s, seed, epochs, optional = args
    cfg = load_config(HERE / "configs" / f"{name}.toml")
    cfg.seed, cfg.training.epochs, cfg.training.threads = seed, epochs, 1
    chip = EmulatedChip(cfg.hardware.chip_id, cfg.hardware.chip_seed + seed, threads=1, noise_scale=s, **optional)
    backend = ChipBackend(
        chip, input_repeat=cfg.hardware.input_repeat, loss={"loss": cfg.loss.kind, "delta": cfg.loss.delta}
    )
    df = fit(cfg, quiet=True, backend=backend)
    return float(df.filter(pl.col("split") == "test")["accuracy"][0])


def main() -> None:
    """Run the sweep and print the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scales", type=float, nargs="+", default=[0.0, 1.0, 2.0, 4.0], help="noise scale factors s")
    p.add_argument("--seeds", type=int, default=3, help="seeds per point (median reported)")
    p.add_argument("--epochs", type=int, default=60, help="epochs per training")
    p.add_argument("--jobs", type=int, default=1, help="parallel trainings (one thread each)")
    p.add_argument("--tau-mismatch", type=float, default=0.0, help="relative std of tau_m, tau_s per circuit (s = 1)")
    p.add_argument("--gain-mismatch", type=float, default=0.0, help="relative std of each synapse row's gain at s = 1")
    p.add_argument("--event-loss", type=float, default=0.0, help="probability that an event is lost at s = 1")
    a = p.parse_args()
    optional = {
        key: value
        for key, value in (
            ("tau_m_mismatch", a.tau_mismatch),
            ("tau_s_mismatch", a.tau_mismatch),
            ("gain_mismatch", a.gain_mismatch),
            ("event_loss", a.event_loss),
        )
        if value > 0
    }
    names = ("hwaware_W", "hwaware_WA")
    tasks = [(n, s, seed, a.epochs, optional) for s in a.scales for n in names for seed in range(a.seeds)]
    with ProcessPoolExecutor(max_workers=a.jobs) as pool:
        accs = list(pool.map(run_one, tasks))
    res: dict[tuple[str, float], list[float]] = {}
    for (n, s, *_), acc in zip(tasks, accs, strict=True):
        res.setdefault((n, s), []).append(acc)
    extra = ", ".join(f"{k} {v:g}" for k, v in optional.items()) or "none"
    print(f"test accuracy [%], median over {a.seeds} seeds, {a.epochs} epochs (per-seed values in brackets)")
    print(f"optional effects at s = 1: {extra}")
    print(f"{'noise scale':>11} | {'W':>28} | {'W + axonal delays':>28} | {'delta':>6}")
    for s in a.scales:
        w, wa = res[("hwaware_W", s)], res[("hwaware_WA", s)]
        mw, mwa = 100 * statistics.median(w), 100 * statistics.median(wa)

        def cell(m: float, v: list[float]) -> str:
            return f"{m:5.1f} [{' '.join(f'{100 * x:.1f}' for x in v)}]"

        print(f"{s:>11g} | {cell(mw, w):>28} | {cell(mwa, wa):>28} | {mwa - mw:+6.1f}")


if __name__ == "__main__":
    main()
