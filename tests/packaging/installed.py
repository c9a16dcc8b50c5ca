"""Checks of the installed distributions, run by ``test_wheels.sh`` inside a fresh venv.

Usage::

    python -I installed.py CONFIG OUT [REFERENCE]

CONFIG is a training configuration (a copy of one in examples/configs), OUT a directory for the
training run and the results of this check (``results.npz``); REFERENCE the ``results.npz`` of
another installation that the forward pass and the emulator run must reproduce bit for bit.
Everything is imported from the venv: the script is copied next to CONFIG, outside the repository.
"""

from __future__ import annotations

import csv
import math
import shutil
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import delgrad_hw
import numpy as np

import delgrad_rs


def check(condition: bool, message: str) -> None:
    """Stop with ``message`` unless ``condition`` holds."""
    if not condition:
        raise SystemExit(f"FAILED: {message}")


def check_environment() -> None:
    """The packages come from this venv's site-packages, and no Rust toolchain is reachable."""
    prefix = Path(sys.prefix).resolve()
    for module in (delgrad_rs, delgrad_hw):
        where = Path(str(module.__file__)).resolve()
        check(prefix in where.parents and "site-packages" in where.parts, f"{module.__name__} imported from {where}")
    print(f"imported delgrad_rs {delgrad_rs.__version__} and delgrad_hw from {prefix}")


def check_data() -> None:
    """The files shipped with delgrad_rs are installed and load."""
    data = files("delgrad_rs") / "data"
    readme = (data / "README.md").read_text(encoding="utf-8")
    check("digits" in readme.lower(), "delgrad_rs/data/README.md does not describe the digits")
    check((files("delgrad_rs") / "py.typed").is_file() and (files("delgrad_hw") / "py.typed").is_file(), "py.typed")
    with np.load(str(data / "digits.npz")) as npz:
        shapes = {k: npz[k].shape for k in npz.files}
    check(shapes == {"images": (1797, 64), "labels": (1797,)}, f"digits.npz holds {shapes}")
    x, y = delgrad_rs.datasets.digits("test")
    check(x.shape == (300, 64) and y.shape == (300,), f"digits('test') shapes {x.shape}, {y.shape}")
    print("data files: digits.npz (1797 images) and README.md installed")


def run_cli(*args: str) -> str:
    """Run a console script of the venv; return its standard output."""
    exe = shutil.which(args[0])
    check(exe is not None and Path(exe).parent == Path(sys.executable).parent, f"{args[0]} not in the venv's bin")
    done = subprocess.run([str(exe), *args[1:]], capture_output=True, text=True, check=False)
    check(done.returncode == 0, f"{' '.join(args)} exited with {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def check_cli(config: Path, out: Path) -> None:
    """``delgrad --help``, ``delgrad-hw --help`` and a 5-epoch training through the CLI."""
    check("train" in run_cli("delgrad", "--help"), "delgrad --help does not list 'train'")
    check("serve" in run_cli("delgrad-hw", "--help"), "delgrad-hw --help does not list 'serve'")
    run = out / "run"
    run_cli("delgrad", "train", str(config), "--epochs", "5", "--out", str(run), "--quiet")
    with (run / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    trained = sorted({int(r["epoch"]) for r in rows if r["split"] == "train"})
    check(trained == list(range(5)), f"metrics.csv: expected training epochs 0..4, found {trained}")
    check(all(math.isfinite(float(r["loss"])) for r in rows), "metrics.csv: a loss is not finite")
    state = delgrad_rs.load_checkpoint(run / "checkpoints" / "last.npz")
    in_checkpoint = sorted({int(r["epoch"]) for r in state.metrics if r["split"] == "train"})
    check(in_checkpoint == trained, f"last.npz: training epochs {in_checkpoint}, metrics.csv {trained}")
    check(0.0 <= state.best_accuracy <= 1.0, f"best accuracy {state.best_accuracy}")
    print(f"delgrad train: 5 epochs, best validation accuracy {state.best_accuracy:.4f}")


def forward_pass() -> list[np.ndarray]:
    """First-spike times of a small network with synaptic delays on Yin-Yang inputs."""
    net = delgrad_rs.Network.create([4, 12, 3], weight_mean=1.5, weight_std=0.8, delays="synaptic", seed=3)
    x, _ = delgrad_rs.yin_yang("test")
    times = net.forward(delgrad_rs.encode_times(x[:64]))
    check([t.shape for t in times] == [(64, 12), (64, 3)], f"forward shapes {[t.shape for t in times]}")
    check(all(bool(np.all((t >= 0) | np.isinf(t))) for t in times), "negative or NaN spike times")
    check(bool(np.isfinite(times[-1]).any()), "no output neuron fired")
    return [np.asarray(t) for t in times]


def emulator_run() -> list[np.ndarray]:
    """One batch on the emulated BrainScaleS-2 chip (20 = 4 x 5 inputs, 30 hidden, 3 outputs)."""
    rng = np.random.default_rng(0)
    config = delgrad_hw.ChipConfig(
        weights=[rng.normal(1.0, 0.12, (30, 20)), rng.normal(0.6, 0.4, (3, 30))],
        theta=2.6,
        tau_m=1.0,
        tau_s=1.0,
        input_repeat=5,
    )
    chip = delgrad_hw.EmulatedChip("wheel-check", 0)
    chip.configure(config)
    x, _ = delgrad_rs.yin_yang("test")
    result = chip.run(np.asarray(delgrad_rs.encode_times(x[:32])))
    check([t.shape for t in result.times] == [(32, 30), (32, 3)], f"emulator shapes {[t.shape for t in result.times]}")
    check(bool(np.isfinite(result.times[-1]).any()), "no output neuron fired on the emulator")
    return [np.asarray(t) for t in result.times]


def main() -> None:
    """Run every check; compare with the reference installation when one is given."""
    config, out = Path(sys.argv[1]), Path(sys.argv[2])
    check_environment()
    check_data()
    check_cli(config, out)
    results = {f"forward{i}": t for i, t in enumerate(forward_pass())}
    results |= {f"emulator{i}": t for i, t in enumerate(emulator_run())}
    print("forward pass and emulator run: shapes and spikes as expected")
    np.savez(out / "results.npz", **results)
    if len(sys.argv) > 3:
        with np.load(sys.argv[3]) as reference:
            for key, value in results.items():
                check(np.array_equal(reference[key], value), f"{key} differs from the reference installation")
        print("forward pass and emulator run equal the reference installation's bit for bit")


if __name__ == "__main__":
    main()
