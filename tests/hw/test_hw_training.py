"""Chip-in-the-loop training on the emulator, through the server, across a server restart, and the CLI."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from delgrad_hw.chip import BadRequest, ChipConfig, ChipError, ChipMismatch, Health, RunResult, Timing
from delgrad_hw.client import RemoteChip
from delgrad_hw.emulator import EmulatedChip
from delgrad_hw.server import ExperimentServer
from delgrad_hw.training import ChipBackend, StallError, chip_config_from_params
from hw_support import CONFIGS, TOKEN, backend_for, free_port, metrics, small_cfg

from delgrad_rs import encode_times, yin_yang
from delgrad_rs.cli import main as delgrad_main
from delgrad_rs.config import load_config
from delgrad_rs.training import (
    CheckpointError,
    build_network,
    build_trainer,
    fit,
    load_checkpoint,
    make_backend,
    save_checkpoint,
    split_inputs,
)

ROOT = Path(__file__).resolve().parents[2]
MakeServer = Callable[..., ExperimentServer]


def test_hwaware_configs_build_the_reference_network() -> None:
    for name, kinds in (("hwaware_W", None), ("hwaware_WA", "axo")):
        cfg = load_config(CONFIGS / f"{name}.toml")
        net = build_network(cfg, threads=1)
        assert net.sizes == [20, 30, 3]
        p = net.params
        assert p[0]["tau_m"] == p[0]["tau_s"] == 1.0 and float(np.unique(p[0]["theta"])[0]) == 2.6
        assert abs(p[0]["w"].mean() - 1.0) < 0.02 and abs(p[1]["w"].mean() - 0.075) < 0.06
        if kinds:
            assert p[0]["d_axo"].shape == (4,) and p[0]["delay_group"] == 5 and p[1]["d_axo"].shape == (30,)
            assert np.all((p[0]["d_axo"] > 2.0) & (p[0]["d_axo"] < 3.5))
        else:
            assert p[0]["d_axo"] is None
        cc = chip_config_from_params(p, 5)
        assert cc.n_inputs == 4 and cc.theta == 2.6


def test_training_on_the_emulator_learns_and_records_the_chip(tmp_path: Path) -> None:
    cfg = small_cfg(epochs=3)
    chip = EmulatedChip("train-chip", 0)
    df = fit(cfg, out=tmp_path / "run", quiet=True, backend=backend_for(chip, cfg))
    val = df.filter(pl.col("split") == "validation")["accuracy"].to_list()
    assert len(val) == 3 and val[-1] > 0.6  # well above chance (1/3) after 3 epochs on the chip
    assert chip.runs >= 3 * 125  # every training batch ran on the chip
    assert df["retries"].to_list() == [0] * len(df) and df["dropped_events"].to_list() == [0] * len(df)
    assert '"chip_id": "train-chip"' in (tmp_path / "run" / "backend.json").read_text()
    # a run does not silently continue on another chip
    cfg.training.epochs = 4
    other = backend_for(EmulatedChip("another-chip", 0), cfg)
    with pytest.raises(CheckpointError, match="another-chip"):
        fit(cfg, out=tmp_path / "run", quiet=True, backend=other)


def test_a_resumed_emulator_run_continues_its_noise_exactly(tmp_path: Path) -> None:
    cfg = small_cfg(epochs=3)
    chip = EmulatedChip("train-chip", 2)
    whole = fit(cfg, out=tmp_path / "whole", quiet=True, backend=backend_for(chip, cfg))
    # interrupted after one epoch, resumed in a fresh process (a new emulator with its counter at 0)
    first = backend_for(EmulatedChip("train-chip", 2), cfg)
    fit(cfg, out=tmp_path / "split", quiet=True, stop_after=1, backend=first)
    assert load_checkpoint(tmp_path / "split" / "checkpoints" / "last.npz").backend == first.state()
    assert first.state()["runs"] > 125  # every batch and the validation ran on the chip
    fresh = EmulatedChip("train-chip", 2)
    resumed = fit(cfg, out=tmp_path / "split", quiet=True, backend=backend_for(fresh, cfg))
    assert fresh.runs == chip.runs
    assert metrics(resumed).equals(metrics(whole))
    # without the stored counter the noise would start over: the epochs after the first differ
    cfg_again = small_cfg(epochs=3)
    fit(
        cfg_again,
        out=tmp_path / "restart",
        quiet=True,
        stop_after=1,
        backend=backend_for(EmulatedChip("train-chip", 2), cfg),
    )
    ck = tmp_path / "restart" / "checkpoints" / "last.npz"
    st = load_checkpoint(ck)
    st.backend = {}
    save_checkpoint(ck, st)
    restarted = fit(
        cfg_again, out=tmp_path / "restart", quiet=True, backend=backend_for(EmulatedChip("train-chip", 2), cfg)
    )
    assert not metrics(restarted).equals(metrics(whole))
    with pytest.raises(ValueError, match="runs"):
        first.set_state({"runs": -1})


@pytest.mark.parametrize("name", ["hwaware_WA", "hwaware_W"])
def test_the_emulator_in_the_core_and_any_chip_through_the_server_train_identically(
    name: str, make_server: MakeServer
) -> None:
    # The in-process emulator trains its epochs in the core; through the server the same chip is
    # driven step by step from Python (configure, run, retry, step): bit for bit the same, stalls included.
    cfg = small_cfg(name, epochs=2)
    noise = {"stall_prob": 0.2, "event_loss": 0.002, "theta_sample_std": 0.01}
    chip = EmulatedChip("train-chip", 4, **noise)
    local = fit(cfg, quiet=True, backend=backend_for(chip, cfg))
    served = EmulatedChip("train-chip", 4, **noise)
    srv = make_server(served)
    with RemoteChip(srv.address, token=TOKEN) as rc:
        remote = fit(cfg, quiet=True, backend=backend_for(rc, cfg))
    assert metrics(local).equals(metrics(remote))
    assert sum(local["retries"].to_list()) > 0 and sum(local["dropped_events"].to_list()) > 0
    assert chip.runs == served.runs and chip.last_written_entries == served.last_written_entries
    assert chip.configure(chip.config) == served.configure(served.config)  # type: ignore[arg-type]


@pytest.mark.timeout(120)
def test_server_killed_and_restarted_mid_training(make_server: MakeServer) -> None:
    cfg = small_cfg("hwaware_W", epochs=3)
    port = free_port()
    servers = [make_server(EmulatedChip("train-chip", 0), port=port)]
    restarted = threading.Event()

    def restarter() -> None:  # kill the server during the second epoch, restart it on the same port
        while servers[0].stats["work_units"] < 190:
            time.sleep(0.01)
        servers[0].stop()
        time.sleep(0.5)
        servers.append(make_server(EmulatedChip("train-chip", 0), port=port))
        restarted.set()

    th = threading.Thread(target=restarter, daemon=True)
    th.start()
    with RemoteChip(f"127.0.0.1:{port}", token=TOKEN, retries=20, backoff=0.05, max_backoff=0.5) as rc:
        df = fit(cfg, quiet=True, backend=backend_for(rc, cfg))
        reconnects = rc.reconnects
    th.join(10)
    assert restarted.is_set()
    assert reconnects >= 1
    epochs = df.filter(pl.col("split") == "train")["epoch"].to_list()
    assert epochs == [0, 1, 2]  # no lost epoch
    assert df.filter(pl.col("split") == "test").height == 1
    assert servers[1].stats["work_units"] > 0


class _Stalling:
    """A chip whose first ``stalls`` runs stall (wraps an emulator)."""

    def __init__(self, stalls: int) -> None:
        self.inner = EmulatedChip("stall-chip", 0)
        self.stalls = stalls
        self.last_written_entries = 0

    def info(self) -> Any:
        return self.inner.info()

    def configure(self, config: ChipConfig) -> str:
        return self.inner.configure(config)

    def run(self, inputs: Any) -> RunResult:
        res = self.inner.run(inputs)
        if self.stalls > 0:
            self.stalls -= 1
            return RunResult(
                [np.full_like(t, np.inf) for t in res.times], Health(stall=True), Timing(), res.chip_id, res.config_hash
            )
        return res


def _batch(n: int, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    x, y = yin_yang(split)
    return np.repeat(np.asarray(encode_times(x[:n])), 5, axis=1), y[:n]


def test_stalled_runs_are_retried_then_fail_loudly() -> None:
    cfg = small_cfg(epochs=1)
    trainer = build_trainer(cfg, build_network(cfg, threads=1))
    x, y = _batch(40)
    b = ChipBackend(_Stalling(3), input_repeat=5, max_retries=5)
    r = b.train_epoch(trainer, x, y, np.arange(40), 40, 0)
    assert b.retries == 3 and r["samples"] == 40 and r["retries"] == 3
    b = ChipBackend(_Stalling(10), input_repeat=5, max_retries=5)
    with pytest.raises(StallError, match="6 attempts"):
        b.evaluate(trainer, x, y)
    assert issubclass(StallError, ChipError)


def test_results_from_another_chip_are_refused() -> None:
    class Impostor(_Stalling):
        def run(self, inputs: Any) -> RunResult:
            res = self.inner.run(inputs)
            res.chip_id = "impostor"
            return res

    cfg = small_cfg(epochs=1)
    trainer = build_trainer(cfg, build_network(cfg, threads=1))
    x, y = _batch(8)
    with pytest.raises(ChipMismatch, match="impostor"):
        ChipBackend(Impostor(0), input_repeat=5).evaluate(trainer, x, y)


def test_an_epoch_in_the_core_stops_at_a_batch_that_always_stalls() -> None:
    cfg = small_cfg(epochs=1)
    x, y = _batch(120, "train")
    groups = np.ascontiguousarray(x[:, ::5])
    trainer = build_trainer(cfg, build_network(cfg, threads=1), threads=1)
    chip = EmulatedChip("stalls", 1, stall_prob=1.0)
    with pytest.raises(BadRequest, match="before configure"):
        chip.train_epoch(trainer, groups, x, y, 40, 0)
    chip.configure(chip_config_from_params(trainer.network().params(), 5))
    before = trainer.state()
    out = chip.train_epoch(trainer, groups, x, y, 40, 0, max_retries=2)
    assert out["stalled"] and out["steps"] == [] and out["retries"] == 2
    assert chip.runs == 3  # the first batch, three times
    for p, q in zip(before["tensors"], trainer.state()["tensors"], strict=True):
        np.testing.assert_array_equal(p["values"], q["values"])  # no step was taken
    for args, match in (
        ((groups[:, :3], x, y, 40), "inputs"),
        ((groups, x[:80], y, 40), "x"),
        ((groups, x, y, 0), "batch_size"),
        ((groups, x, np.full_like(y, 7), 40), "labels"),
    ):
        with pytest.raises(BadRequest, match=match):
            chip.train_epoch(trainer, *args, 0)  # type: ignore[arg-type]
    with pytest.raises(BadRequest, match="max_retries"):
        chip.train_epoch(trainer, groups, x, y, 40, 0, max_retries=-1)
    assert chip.runs == 3  # none of the bad calls ran anything
    with pytest.raises(StallError, match="3 attempts"):
        ChipBackend(chip, input_repeat=5, max_retries=2).train_epoch(trainer, x, y, np.arange(120), 40, 0)


def test_cli_backends(tmp_path: Path, make_server: MakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg_path = CONFIGS / "hwaware_WA.toml"
    assert delgrad_main(["train", str(cfg_path), "--backend", "emulator", "--epochs", "1", "--threads", "1",
                         "--quiet", "--out", str(tmp_path / "emu")]) == 0  # fmt: skip
    assert (tmp_path / "emu" / "summary.json").exists()
    assert delgrad_main(["eval", str(tmp_path / "emu"), "--checkpoint", "last", "--backend", "emulator"]) == 0
    srv = make_server(EmulatedChip("bss2-emu-0", 0))
    tf = tmp_path / "token"
    tf.write_text(TOKEN + "\n")
    tf.chmod(0o600)
    assert delgrad_main(["train", str(cfg_path), "--backend", f"remote://{srv.address}", "--token-file", str(tf),
                         "--epochs", "1", "--threads", "1", "--quiet", "--out", str(tmp_path / "remote")]) == 0  # fmt: skip
    a = pl.read_csv(tmp_path / "emu" / "metrics.csv").drop("wall_time")
    b = pl.read_csv(tmp_path / "remote" / "metrics.csv").drop("wall_time")
    assert a.equals(b)  # the same chip id and seed, in-process or through the server
    monkeypatch.setenv("DELGRAD_HW_TOKEN", TOKEN)
    backend = make_backend(f"remote://{srv.address}", load_config(cfg_path))
    assert backend.describe() == {"backend": "remote", "chip_id": "bss2-emu-0"}
    with pytest.raises(ValueError, match="unknown backend 'quantum'; expected one of software, emulator, remote"):
        make_backend("quantum", load_config(cfg_path))
    assert delgrad_main(["train", str(cfg_path), "--backend", "quantum", "--epochs", "1", "--quiet",
                         "--out", str(tmp_path / "bad")]) == 1  # fmt: skip


def test_plot_on_the_chip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    from delgrad_rs.plots import output_times
    from delgrad_rs.training import SoftwareBackend, load_run, split_inputs

    cfg_path = CONFIGS / "hwaware_WA.toml"
    run = tmp_path / "emu"
    assert delgrad_main(["train", str(cfg_path), "--backend", "emulator", "--epochs", "1", "--threads", "1",
                         "--quiet", "--out", str(run)]) == 0  # fmt: skip
    assert delgrad_main(["plot", str(run)]) == 0
    captured = capsys.readouterr()
    assert "trained on the emulator backend" in captured.err and "--backend" in captured.err
    assert delgrad_main(["plot", str(run), "--backend", "emulator"]) == 0
    captured = capsys.readouterr()
    assert "note:" not in captured.err
    assert {"decision_map.png", "output_spike_times.png"} <= {Path(line).name for line in captured.out.split()}
    # The figures' times are the chip's (quantised, noisy), not the ideal model's.
    cfg, _, trainer = load_run(run, "best")
    t, _ = split_inputs(cfg, "test")
    chip = output_times(make_backend("emulator", cfg), trainer, t)
    ideal = output_times(SoftwareBackend(), trainer, t)
    assert chip.shape == ideal.shape == (len(t), 3)
    assert not np.array_equal(chip, ideal)
    finite = np.isfinite(chip)
    assert np.allclose(chip[finite] * 6000 / 8, np.round(chip[finite] * 6000 / 8), atol=1e-6)  # 8 ns timestamps


def test_a_sweep_on_the_emulator_equals_fit_on_the_chip(tmp_path: Path) -> None:
    from delgrad_rs.report import report
    from delgrad_rs.sweep import load_sweep, run_sweep

    base = (CONFIGS / "hwaware_W.toml").as_posix()
    path = tmp_path / "chip.toml"
    path.write_text(
        f"""name = "chip"
hidden = [30]
seeds = [0, 1]
epochs = 2
[conditions.W]
base = "{base}"
backend = "emulator"
[conditions.W_quiet]
base = "{base}"
backend = "emulator"
overrides = {{hardware = {{noise_scale = 0.0}}}}
[[comparisons]]
a = "W"
b = "W_quiet"
metric = "bumps"
claim = "b < a"
"""
    )
    df = run_sweep(load_sweep(path), out=tmp_path / "sweep", workers=1, quiet=True)
    assert df["status"].to_list() == ["ok"] * 4, df["error"].to_list()
    # a cell is `fit` on the emulated chip the configuration names, noise scaled as configured
    cfg = load_config(CONFIGS / "hwaware_W.toml")
    cfg.seed, cfg.training.epochs, cfg.training.threads, cfg.hardware.noise_scale = 1, 2, 1, 0.0
    ref = fit(cfg, quiet=True, backend=make_backend("emulator", cfg))
    cell = df.filter((pl.col("condition") == "W_quiet") & (pl.col("seed") == 1)).row(0, named=True)
    assert cell["test_accuracy_last"] == ref.filter(pl.col("split") == "test")["accuracy"][0]
    assert cell["bumps"] == ref.filter(pl.col("split") == "train")["bumps"].sum()
    noisy = df.filter(pl.col("condition") == "W")["test_accuracy_last"].to_list()
    assert noisy != df.filter(pl.col("condition") == "W_quiet")["test_accuracy_last"].to_list()
    assert '"backend": "emulator"' in (tmp_path / "sweep" / cell["run_dir"] / "backend.json").read_text()
    text = report(tmp_path / "sweep").markdown()
    assert "| W_quiet < W | bumps |" in text and "training steps that bumped weights" in text


def test_ties_on_the_emulated_chip_follow_the_tie_rule() -> None:
    # After one epoch on the chip some test samples tie exactly: the chip's timestamps lie on an
    # 8 ns grid. The same run (same noise) evaluated under each rule: by hand from its output times.
    cfg = small_cfg("hwaware_W", epochs=1)
    chip = EmulatedChip("train-chip", 0)
    trainer = build_trainer(cfg, build_network(cfg, threads=1))
    x, y = split_inputs(cfg, "train")
    ChipBackend(chip, input_repeat=5).train_epoch(trainer, x, y, np.arange(len(y)), 40, 0)
    xt, yt = split_inputs(cfg, "test")
    runs = chip.runs
    got = {}
    for rule in ("wrong", "first"):
        chip.runs = runs
        b = ChipBackend(chip, input_repeat=5, loss={"loss": "mse", "delta": 0.3, "tie_rule": rule})
        got[rule] = b.evaluate(trainer, xt, yt)
    out = got["wrong"]["output_times"]
    assert np.array_equal(out, got["first"]["output_times"])
    earliest = out.min(axis=1)
    tied = ((out == earliest[:, None]).sum(axis=1) > 1) & np.isfinite(earliest)
    hit = (np.argmin(out, axis=1) == yt) & np.isfinite(earliest)
    assert tied.sum() >= 5 and (hit & tied).any()
    assert got["wrong"]["correct"] == (hit & ~tied).sum()
    assert got["first"]["correct"] == hit.sum()
