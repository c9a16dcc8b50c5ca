import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from conftest import CONFIGS, REPO
from delgrad_rs import ConfigError, fit, load_config
from delgrad_rs.config import DataConfig, config_from_dict
from delgrad_rs.datasets import digits, encode_latency, load_encoded
from delgrad_rs.training import build_network


def test_digits_splits_shapes_and_determinism() -> None:
    sizes = {"train": 1197, "validation": 300, "test": 300}
    parts = {}
    for split, n in sizes.items():
        x, y = digits(split)  # type: ignore[arg-type]
        assert x.shape == (n, 64) and x.dtype == np.float64 and y.shape == (n,) and y.dtype == np.int64
        assert x.min() == 0.0 and x.max() == 1.0 and set(np.unique(y)) == set(range(10))
        # scaled from integers 0..16
        assert np.array_equal(x * 16, np.round(x * 16))
        x2, y2 = digits(split)  # type: ignore[arg-type]
        assert np.array_equal(x, x2) and np.array_equal(y, y2)
        x2[0, 0] = 0.5  # callers get copies
        assert not np.array_equal(digits(split)[0], x2)  # type: ignore[arg-type]
        parts[split] = (x, y)
    # the three splits are a partition of the 1797 bundled images (compare as sorted row sets)
    allx = np.concatenate([p[0] for p in parts.values()])
    ally = np.concatenate([p[1] for p in parts.values()])
    assert allx.shape == (1797, 64) and np.bincount(ally).sum() == 1797
    assert np.bincount(ally).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    # golden values of the fixed split (RandomState(0) permutation of the bundled file)
    golden = {
        "train": ([2, 8, 2, 6, 6, 7, 1, 9], "2b4dd5028b8ca5f9"),
        "validation": ([5, 3, 9, 6, 1, 6, 0, 6], "53e7a69bfd94076a"),
        "test": ([8, 8, 2, 2, 2, 9, 8, 8], "b6a12ab86d7b19bb"),
    }
    for split, (first, digest) in golden.items():
        x, y = parts[split]
        assert y[:8].tolist() == first
        raw = (x * 16).astype(np.uint8).tobytes() + y.astype(np.uint8).tobytes()
        assert hashlib.sha256(raw).hexdigest()[:16] == digest
    with pytest.raises(ValueError, match="option split"):
        digits("dev")  # type: ignore[arg-type]


def test_digits_latency_encoding_brighter_is_earlier() -> None:
    t = encode_latency(np.array([[1.0, 0.5, 0.0]]), 0.15, 2.0)
    np.testing.assert_allclose(t, [[0.15, 1.075, 2.0]])
    times, y = load_encoded(DataConfig(dataset="digits"), "validation")
    x, y2 = digits("validation")
    assert np.array_equal(y, y2) and times.shape == (300, 64)
    np.testing.assert_allclose(times, 0.15 + (1.0 - x) * 1.85)
    # a brighter pixel of the same image spikes earlier
    i = 0
    bright, dark = int(np.argmax(x[i])), int(np.argmin(x[i]))
    assert times[i, bright] < times[i, dark]


def test_bias_spikes_are_extra_inputs() -> None:
    cfg = DataConfig(dataset="yin_yang", bias_times=[0.9])
    t, _ = load_encoded(cfg, "test")
    assert t.shape == (1000, 5) and np.all(t[:, 4] == 0.9)
    c2021 = load_config(CONFIGS / "YY2021_H120.toml")
    net = build_network(c2021, threads=1)
    assert net.core.sizes == [5, 120, 3]
    w0, w1 = (p["w"] for p in net.params)
    assert abs(w0.mean() - 1.5) < 0.1 and abs(w0.std() - 0.8) < 0.1 and abs(w1.mean() - 0.5) < 0.2
    d = c2021.to_dict()
    d["data"]["bias_times"] = [-1.0]
    with pytest.raises(ConfigError, match=r"option data\.bias_times"):
        config_from_dict(d)
    d = c2021.to_dict()
    d["network"]["layer_weight_mean"] = [1.0]
    with pytest.raises(ConfigError, match=r"option network.layer_weight_mean: expected \[\] or one value per layer"):
        config_from_dict(d)
    d = c2021.to_dict()
    d["data"]["dataset"] = "mnist"
    with pytest.raises(ConfigError, match=r"option data\.dataset: expected 'yin_yang', 'digits' or 'idx'"):
        config_from_dict(d)


def test_digits_training_learns(tmp_path: Path) -> None:
    cfg = load_config(CONFIGS / "digits_WS.toml").to_dict()
    cfg["training"]["threads"] = 2
    df = fit(cfg, epochs=5, out=tmp_path / "digits", quiet=True)
    assert build_network(config_from_dict(cfg)).core.sizes == [64, 30, 10]
    test = df.filter(pl.col("split") == "test")["accuracy"][0]
    assert test > 0.5  # ten classes: chance is 0.1
    pytest.importorskip("matplotlib")
    from delgrad_rs.plots import plot_run

    names = {p.name for p in plot_run(tmp_path / "digits")}
    assert names == {"learning_curves.png", "parameters.png"}  # no Yin-Yang figures for digits


def test_2021_configuration_trains_and_plots(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from delgrad_rs.plots import plot_run

    df = fit(CONFIGS / "YY2021_H120.toml", epochs=2, threads=2, out=tmp_path / "yy2021", quiet=True)
    assert df.filter(pl.col("split") == "test")["accuracy"][0] > 0.5
    names = {p.name for p in plot_run(tmp_path / "yy2021")}
    assert {"decision_map.png", "output_spike_times.png"} <= names  # the grid gets the bias spike too


def test_results_table_script(tmp_path: Path) -> None:
    from delgrad_rs.sweep import results_frame

    root = tmp_path / "paper"
    root.mkdir()
    rows = [
        {"condition": c, "label": lbl, "hidden": h, "seed": s, "n_params": 7 * h * (1 + (c == "WS")), "epochs": 300,
         "status": "ok", "test_accuracy": acc + 0.001 * s, "test_accuracy_last": acc, "val_accuracy": acc,
         "cpu_time": 10.0}
        for c, lbl, base in (("W", "weights only", 0.90), ("WS", "+ synaptic delays", 0.95))
        for h, acc in ((5, base), (10, base + 0.02), (30, base + 0.04))
        for s in range(3)
    ]  # fmt: skip
    results_frame(rows).write_parquet(root / "results.parquet")
    (root / "history.jsonl").write_text('{"wall_time": 600.0, "engine": "local", "workers": 2}\n')
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- sweep-results:begin -->\nOLD TEXT\n<!-- sweep-results:end -->\noutro\n")
    script = REPO / "examples" / "results_table.py"
    r = subprocess.run(
        [sys.executable, str(script), str(root), "--readme", str(readme)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    text = readme.read_text()
    assert text.startswith("intro\n<!-- sweep-results:begin -->\n") and text.endswith(
        "<!-- sweep-results:end -->\noutro\n"
    )
    assert "OLD TEXT" not in text and "in 10.0 min of wall time with the local (2 workers) engine" in text
    assert "CPU time adds up to 3.0 min, i.e. 1.5 min on 2 otherwise idle cores" in text
    # by default the network after the last epoch; --checkpoint best: the best-validation checkpoint
    assert "| 5 | 90.0 (90.0-90.0) [35] | 95.0 (95.0-95.0) [70] |" in text
    assert "| H30_W | 96.7 | 94.0 | 94.1 |" in text and "| H5_WS | 95.4 | 95.0 | 95.1 |" in text
    assert "| + synaptic delays | 5 vs 10 | 95.0 | 92.0 | yes |" in text
    best = subprocess.run(
        [sys.executable, str(script), str(root), "--checkpoint", "best"], capture_output=True, text=True
    )
    assert best.returncode == 0 and "| 5 | 90.1 (90.0-90.2) [35] | 95.1 (95.0-95.2) [70] |" in best.stdout
    bad = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode == 1 and "no results.parquet" in bad.stderr
