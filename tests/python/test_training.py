from pathlib import Path

import numpy as np
import polars as pl
import pytest

import delgrad_rs
from conftest import CONFIGS
from delgrad_rs import CheckpointError, DivergedError, fit, load_checkpoint, load_config
from delgrad_rs.datasets import yin_yang, yin_yang_frame


def test_yin_yang_golden_values() -> None:
    x, y = yin_yang("train")
    assert x.shape == (5000, 4) and x.dtype == np.float64 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [1681, 1702, 1617]
    np.testing.assert_allclose(x[0], [0.68030754, 0.45049925, 0.31969246, 0.54950075], atol=5e-9)
    assert y[0] == 2
    assert yin_yang("test")[0].shape == (1000, 4)
    df = yin_yang_frame("validation")
    assert isinstance(df, pl.DataFrame) and df.height == 1000 and "class" in df.columns


def small(cfg_name: str = "H30_WS", **training: object) -> dict[str, object]:
    d = load_config(CONFIGS / f"{cfg_name}.toml").to_dict()
    d["training"].update({"threads": 2, "checkpoint_every": 2, **training})
    return d


def test_short_training_exceeds_90_percent(tmp_path: Path) -> None:
    df = fit(small(), epochs=25, out=tmp_path / "run", quiet=True)
    test = df.filter(pl.col("split") == "test")
    assert test["accuracy"][0] > 0.90
    cols = set(df.columns)
    assert {"epoch", "split", "loss", "accuracy", "lr_weights", "lr_delays", "bumps", "silent_l0", "wall_time"} <= cols
    run = tmp_path / "run"
    for f in ("metrics.parquet", "metrics.csv", "config.toml", "summary.json", "checkpoints/best.npz"):
        assert (run / f).exists(), f
    assert (run / "checkpoints" / "epoch_0010.npz").exists()
    assert pl.read_parquet(run / "metrics.parquet").height == df.height


def test_resume_is_bit_exact(tmp_path: Path) -> None:
    full = fit(small(), epochs=6, out=tmp_path / "a", quiet=True)
    part = fit(small(), epochs=6, out=tmp_path / "b", quiet=True, stop_after=3)
    assert part.filter(pl.col("split") == "train").height == 3
    resumed = fit(small(), epochs=6, out=tmp_path / "b", quiet=True)
    drop = ["wall_time"]
    assert full.drop(drop).equals(resumed.drop(drop))
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.npz")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.npz")
    for ta, tb in zip(a.trainer["tensors"], b.trainer["tensors"], strict=True):
        for k in ("values", "m", "v"):
            assert np.array_equal(ta[k], tb[k])
        assert ta["t"] == tb["t"]
    assert a.rng[2] == b.rng[2] and np.array_equal(a.rng[1], b.rng[1])


def test_corrupt_and_mismatched_checkpoints(tmp_path: Path) -> None:
    fit(small(), epochs=1, out=tmp_path / "r", quiet=True)
    last = tmp_path / "r" / "checkpoints" / "last.npz"
    other = small("H5_WS")
    with pytest.raises(CheckpointError, match="different configuration"):
        fit(other, epochs=2, out=tmp_path / "r", quiet=True)
    data = bytearray(last.read_bytes())
    data[len(data) // 2] ^= 0xFF
    last.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(last)
    last.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        fit(small(), epochs=2, out=tmp_path / "r", quiet=True)
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "missing.npz")


def test_divergence_stops_with_clear_message(tmp_path: Path) -> None:
    d = small("H30_W", silent_patience=2, bump=0.0)
    d["network"]["weight_mean"] = -5.0  # nothing ever spikes
    with pytest.raises(DivergedError, match="silent"):
        fit(d, epochs=10, out=tmp_path / "div", quiet=True)


def test_trainer_state_round_trip() -> None:
    net = delgrad_rs.Network.create([4, 8, 3], delays="all", seed=4, threads=1)
    tr = net.trainer(lr_weights=0.01, lr_delays=0.01, threads=1)
    x, y = yin_yang("train")
    t = delgrad_rs.encode_times(x[:300])
    tr.step(t, y[:300], 0)
    state = tr.state()
    tr2 = net.trainer(lr_weights=0.01, lr_delays=0.01, threads=1)
    tr2.set_state(state)
    assert tr.step(t, y[:300], 1) == tr2.step(t, y[:300], 1)
    for a, b in zip(tr.network().params(), tr2.network().params(), strict=True):
        np.testing.assert_array_equal(a["w"], b["w"])
    bad = dict(state)
    bad["tensors"] = state["tensors"][:-1]
    with pytest.raises(delgrad_rs.ShapeError):
        tr2.set_state(bad)


def test_epoch_totals_are_the_totals_train_epoch_reports() -> None:
    from delgrad_rs.hardware import epoch_totals

    net = delgrad_rs.Network.create([4, 8, 3], delays="synaptic", seed=5, threads=1)
    x, y = yin_yang("train")
    t, y = delgrad_rs.encode_times(x[:230]), y[:230]
    order = np.random.default_rng(0).permutation(230)
    epoch = net.trainer(threads=1).train_epoch(t, y, order, 50, 0)
    tr = net.trainer(threads=1)
    steps = [tr.step(t[order[s : s + 50]], y[order[s : s + 50]], 0) for s in range(0, 230, 50)]
    assert epoch_totals(steps) == epoch
    n = np.array([s["batch"] for s in steps], dtype=float)
    assert epoch["samples"] == 230 and epoch["accuracy"] == sum(s["correct"] for s in steps) / 230
    np.testing.assert_allclose(epoch["loss"], np.dot(n, [s["loss"] for s in steps]) / 230, rtol=1e-15)
    assert epoch_totals([]) == {"loss": 0.0, "accuracy": 0.0, "samples": 0, "bumps": 0, "silent_fraction": []}
    with pytest.raises(delgrad_rs.InvalidValueError, match=r"steps\[1\]\.batch"):
        epoch_totals([steps[0], {**steps[1], "batch": -3}])
    with pytest.raises(delgrad_rs.OptionError, match=r"steps\[0\]\.bumped: missing"):
        epoch_totals([{"loss": 1.0}])


def test_network_train_step_and_grad_from_times() -> None:
    net = delgrad_rs.Network.create([4, 10, 3], delays="synaptic", seed=2, threads=1)
    x, y = yin_yang("train")
    t = delgrad_rs.encode_times(x[:150])
    times = net.forward(t)
    loss, grads = net.grad_from_times(t, times, y[:150], check_given_times=True)
    assert np.isfinite(loss) and grads["layers"][0]["w"].shape == (10, 4)
    tr = net.trainer(threads=1)
    w0 = net.params[0]["w"].copy()
    report = net.train_step(t, y[:150], tr)
    assert report["batch"] == 150
    assert not np.array_equal(w0, net.params[0]["w"]) or report["bumped"] is not None
    r = tr.step_from_times(t, net.forward(t), y[:150], 1)
    assert r["batch"] == 150


def test_metric_rows_are_encoded_once_and_as_json_dumps() -> None:
    import json

    from delgrad_rs.training.checkpoint import RowsJson

    enc = RowsJson()
    rows: list[dict[str, object]] = [{"epoch": 0, "loss": float("nan"), "split": "train"}]
    assert enc.encode(rows) == json.dumps(rows)
    for epoch in range(1, 40):  # the history grows: each new row is encoded once
        rows = [*rows, {"epoch": epoch, "loss": 1.0 / epoch, "split": "validation"}]
        assert enc.encode(rows) == json.dumps(rows)
    assert enc.encode(rows[:7]) == json.dumps(rows[:7])  # an older snapshot (best.npz)
    assert enc.encode(rows) == json.dumps(rows)
    fresh = [dict(r) for r in rows[:3]]  # equal rows, other objects (a resumed run): encoded anew
    fresh[1]["loss"] = 5.0
    assert enc.encode(fresh) == json.dumps(fresh)
    assert enc.encode([]) == "[]"


def test_checkpoints_carry_the_metrics_and_the_writer_yields_the_cpu(tmp_path: Path) -> None:
    import os
    import sys
    import threading

    from delgrad_rs.training.writer import BackgroundWriter

    cfg = load_config(CONFIGS / "H30_WS.toml")
    cfg.training.epochs = 3
    df = fit(cfg, out=tmp_path / "run", quiet=True)
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.npz")
    assert state.epoch == 3 and len(state.metrics) == 6
    stepped = df.filter(pl.col("split") != "test")
    assert pl.DataFrame(state.metrics)["accuracy"].to_list() == stepped["accuracy"].to_list()
    seen: list[int] = []
    writer = BackgroundWriter()
    writer.submit(lambda: seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
    writer.close()
    if sys.platform.startswith("linux"):
        assert seen == [19]
