"""Ctrl-C during ``delgrad train`` saves a checkpoint that resumes the run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

from conftest import CONFIGS
from delgrad_rs import fit, load_checkpoint, load_config


def test_ctrl_c_saves_a_checkpoint_that_resumes(tmp_path: Path) -> None:
    cfg = load_config(CONFIGS / "H5_WS.toml")
    cfg.training.epochs = 100_000  # far more than the test waits for
    cfg.training.checkpoint_every = 1
    cfg.training.threads = 1
    config = tmp_path / "long.toml"
    config.write_text(cfg.to_toml())
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "delgrad_rs.cli", "train", str(config), "--out", str(run), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    last = run / "checkpoints" / "last.npz"
    deadline = time.monotonic() + 120
    try:
        while not (last.exists() and load_checkpoint(last).epoch >= 2):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "training made no checkpoint in 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (out, err)
    assert "interrupted: saved a checkpoint after epoch" in out, (out, err)
    state = load_checkpoint(last)
    assert state.epoch >= 2
    # The metrics on disk end where the checkpoint does, and the run resumes from it.
    metrics = pl.read_parquet(run / "metrics.parquet")
    assert metrics.filter(pl.col("split") == "train")["epoch"].max() == state.epoch - 1
    df = fit(config, out=run, epochs=state.epoch + 1, quiet=True)
    train = df.filter(pl.col("split") == "train")
    assert train["epoch"].to_list() == list(range(state.epoch + 1))
    assert df.filter(pl.col("split") == "test").height == 1
