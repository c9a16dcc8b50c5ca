import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from conftest import CONFIGS, REPO
from delgrad_rs import cli, fit
from delgrad_rs.sweep import (
    SweepError,
    count_trainable,
    format_table,
    load_results,
    load_sweep,
    median_table,
    results_frame,
    run_sweep,
    schedule,
    sweep_from_dict,
)

# 2 conditions x 2 hidden sizes x 2 seeds, 3 epochs: 8 cells of a few hundred milliseconds.
TINY: dict[str, Any] = {
    "name": "tiny",
    "hidden": [3, 6],
    "seeds": [0, 1],
    "epochs": 3,
    "overrides": {"training": {"checkpoint_every": 100, "save_every": 2}},
    "conditions": {
        "W": {"base": str(CONFIGS / "H30_W.toml"), "label": "weights only"},
        "WS": {
            "base": str(CONFIGS / "H30_WS.toml"),
            "label": "+ synaptic delays",
            "hidden_overrides": {"3": {"optimizer": {"lr_weights": 0.015, "lr_delays": 0.01}}},
        },
    },
}
VOLATILE = ["wall_time", "cpu_time", "engine"]


def tiny(**changes: Any) -> dict[str, Any]:
    d = copy.deepcopy(TINY)
    d.update(changes)
    return d


@pytest.fixture(scope="module")
def local_results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pl.DataFrame]:
    out = tmp_path_factory.mktemp("sweep") / "local"
    return out, run_sweep(sweep_from_dict(tiny()), out=out, workers=2, quiet=True)


def test_local_sweep_results_table(local_results: tuple[Path, pl.DataFrame]) -> None:
    out, df = local_results
    assert df.height == 8 and df["status"].to_list() == ["ok"] * 8
    assert df.select("condition", "hidden", "seed").rows() == [
        (c, h, s) for c in ("W", "WS") for h in (3, 6) for s in (0, 1)
    ]
    assert load_results(out).equals(df)
    assert pl.read_csv(out / "results.csv").height == 8
    # trainable parameters: weights (4h + 3h), plus as many synaptic delays
    assert df.filter(pl.col("condition") == "W")["n_params"].to_list() == [21, 21, 42, 42]
    assert df.filter(pl.col("condition") == "WS")["n_params"].to_list() == [42, 42, 84, 84]
    assert set(df["engine"]) == {"local"} and (df["wall_time"] > 0).all()
    assert df["best_epoch"].is_between(1, 3).all()
    # each cell is exactly the training `fit` does on its own, with its best checkpoint evaluated
    cell = df.row(5, named=True)
    cfg = load_sweep_cell_config("WS", 3, 1)
    ref = fit(cfg, threads=1, quiet=True)
    val = ref.filter(pl.col("split") == "validation")
    assert cell["val_accuracy"] == val["accuracy"].max()
    assert cell["test_accuracy_last"] == ref.filter(pl.col("split") == "test")["accuracy"][0]
    assert cfg["optimizer"]["lr_weights"] == 0.015  # the hidden-size override reached the cell
    metrics = pl.read_parquet(out / cell["run_dir"] / "metrics.parquet")
    assert metrics.drop("wall_time").equals(ref.drop("wall_time"))
    # the stability columns, from the same metrics
    train = ref.filter(pl.col("split") == "train").sort("epoch")
    assert cell["val_accuracy_std"] == pytest.approx(float(np.std(val.sort("epoch")["accuracy"].to_numpy(), ddof=1)))
    assert cell["silent_outputs_last"] == train["silent_l1"][-1]
    assert cell["bumps"] == train["bumps"].sum()


def load_sweep_cell_config(condition: str, hidden: int, seed: int) -> dict[str, Any]:
    sw = sweep_from_dict(tiny())
    (cell,) = [c for c in sw.cells if (c.condition, c.hidden, c.seed) == (condition, hidden, seed)]
    return cell.config


def test_ray_engine_gives_identical_results(local_results: tuple[Path, pl.DataFrame], tmp_path: Path) -> None:
    pytest.importorskip("ray")
    df = run_sweep(sweep_from_dict(tiny()), out=tmp_path / "ray", engine="ray", workers=2, quiet=True)
    assert set(df["engine"]) == {"ray"}
    assert df.drop(VOLATILE).equals(local_results[1].drop(VOLATILE))


def test_resume_skips_finished_cells(local_results: tuple[Path, pl.DataFrame], tmp_path: Path) -> None:
    out = tmp_path / "resume"
    first = run_sweep(sweep_from_dict(tiny(seeds=[0])), out=out, workers=1, quiet=True)
    assert first.height == 4
    markers = sorted(out.glob("cells/*/*/seed0/cell.json"))
    assert len(markers) == 4
    before = {p: p.read_bytes() for p in markers}
    # half a cell done, as if interrupted: its run directory has a checkpoint but no cell.json
    partial = out / "cells" / "W" / "H3" / "seed1"
    fit(load_sweep_cell_config("W", 3, 1), out=partial, threads=1, quiet=True, stop_after=2)
    assert not (partial / "cell.json").exists()
    full = run_sweep(sweep_from_dict(tiny()), out=out, workers=2, quiet=True)
    assert {p: p.read_bytes() for p in markers} == before  # finished cells were not rerun
    assert full.drop(VOLATILE).equals(local_results[1].drop(VOLATILE))
    again = run_sweep(sweep_from_dict(tiny()), out=out, workers=2, quiet=True)
    assert again.equals(full)  # nothing left to run: the same table, wall times included


def test_failed_cell_is_recorded_and_others_finish(tmp_path: Path) -> None:
    d = tiny(hidden=[3], seeds=[0])
    # all outputs silent from the start, no bumping, patience 1: training diverges at epoch 0
    d["conditions"]["BAD"] = {
        "base": str(CONFIGS / "H30_W.toml"),
        "overrides": {"network": {"weight_mean": -5.0}, "training": {"bump": 0.0, "silent_patience": 1}},
    }
    out = tmp_path / "failing"
    df = run_sweep(sweep_from_dict(d), out=out, workers=2, quiet=True)
    assert df["condition"].to_list() == ["W", "WS", "BAD"]
    assert df["status"].to_list() == ["ok", "ok", "failed"]
    bad = df.row(2, named=True)
    assert bad["error"].startswith("DivergedError: training diverged at epoch 0")
    assert bad["test_accuracy"] is None and df["error"][0] is None
    marker = out / "cells" / "BAD" / "H3" / "seed0" / "cell.json"
    saved = marker.read_bytes()
    assert run_sweep(sweep_from_dict(d), out=out, quiet=True).equals(df)
    assert marker.read_bytes() == saved  # failed cells are not retried by default
    retried = run_sweep(sweep_from_dict(d), out=out, workers=1, quiet=True, retry_failed=True)
    assert retried["status"].to_list() == ["ok", "ok", "failed"] and marker.read_bytes() != saved
    table = median_table(df)
    assert table.filter(pl.col("condition") == "BAD").select("runs", "failed").row(0) == (0, 1)


def test_changed_sweep_in_same_directory_is_an_error(local_results: tuple[Path, pl.DataFrame], tmp_path: Path) -> None:
    out = tmp_path / "changed"
    run_sweep(
        sweep_from_dict(tiny(hidden=[3], seeds=[0], conditions={"W": TINY["conditions"]["W"]})), out=out, quiet=True
    )
    changed = tiny(hidden=[3], seeds=[0], epochs=4, conditions={"W": TINY["conditions"]["W"]})
    with pytest.raises(SweepError, match=r"cell W/H3/seed0 was run with a different configuration"):
        run_sweep(sweep_from_dict(changed), out=out, quiet=True)


def with_condition(**cond: Any) -> dict[str, Any]:
    d = tiny()
    d["conditions"]["W"] = {**d["conditions"]["W"], **cond}
    return d


@pytest.mark.parametrize(
    ("data", "key"),
    [
        (tiny(grid=[1]), "option grid: unknown key"),
        ({k: v for k, v in TINY.items() if k != "seeds"}, "option seeds: missing"),
        (tiny(hidden=5), "option hidden: expected a non-empty list of integers"),
        (tiny(hidden=[5, "10"]), r"option hidden\[1\]: expected an integer"),
        (tiny(hidden=[5, 0]), r"option hidden\[1\]: must be >= 1"),
        (tiny(seeds=[1, 1]), "option seeds: values must be unique"),
        (tiny(epochs=2.5), "option epochs: expected an integer >= 1"),
        (tiny(name="a b"), "option name"),
        (tiny(conditions={}), "option conditions: expected a non-empty table"),
        (with_condition(lr=1), "option conditions.W.lr: unknown key"),
        (with_condition(base=3), "option conditions.W.base: expected a path"),
        (with_condition(base="nope.toml"), "option conditions.W.base: no such configuration file"),
        (with_condition(label=["x"]), "option conditions.W.label: expected a string"),
        (with_condition(backend="chip9"), "option conditions.W.backend: expected one of software"),
        (
            with_condition(overrides={"optimizer": {"lr_wieghts": 0.1}}),
            "option conditions.W.overrides.optimizer.lr_wieghts: unknown configuration key",
        ),
        (with_condition(overrides={"seed": 3}), "option conditions.W.overrides.seed: is set by the sweep"),
        (
            with_condition(overrides={"network": {"hidden": [4]}}),
            "option conditions.W.overrides.network.hidden: is set by the sweep",
        ),
        (with_condition(overrides={"optimizer": 3}), "option conditions.W.overrides.optimizer: expected a table"),
        (
            with_condition(overrides={"optimizer": {"lr_weights": "fast"}}),
            r"conditions.W at hidden 3, seed 0: option optimizer.lr_weights: expected a number",
        ),
        (
            with_condition(overrides={"training": {"save_every": 0}}),
            "option training.save_every: must be >= 1",
        ),
        (with_condition(hidden_overrides={"five": {}}), "option conditions.W.hidden_overrides.five: keys must be"),
        (
            tiny(overrides={"data": {"datset": "digits"}}),
            "option overrides.data.datset: unknown configuration key",
        ),
    ],
)
def test_sweep_validation_errors_name_the_key(data: dict[str, Any], key: str) -> None:
    with pytest.raises(SweepError, match=key):
        sweep_from_dict(data)


def test_sweep_file_and_option_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("hidden = [5\n")
    with pytest.raises(SweepError, match="not valid TOML"):
        load_sweep(bad)
    with pytest.raises(SweepError, match="no such file"):
        load_sweep(tmp_path / "missing.toml")
    sw = sweep_from_dict(tiny())
    with pytest.raises(SweepError, match="option --engine: expected one of local, ray"):
        run_sweep(sw, out=tmp_path / "x", engine="dask")
    with pytest.raises(SweepError, match="option --workers: expected an integer >= 1"):
        run_sweep(sw, out=tmp_path / "x", workers=0)
    with pytest.raises(SweepError, match="option --address: only used with --engine ray"):
        run_sweep(sw, out=tmp_path / "x", address="auto")
    bad.write_text('hidden = [3]\nseeds = [0]\n[conditions.W]\nbase = "missing.toml"\n')
    assert cli.main(["sweep", str(bad), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "option conditions.W.base: no such configuration file" in err and "Traceback" not in err


def test_ray_engine_without_ray_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(SweepError, match=r"option --engine: 'ray' needs Ray: pip install 'delgrad_rs\[ray\]'"):
        run_sweep(sweep_from_dict(tiny(hidden=[3], seeds=[0])), out=tmp_path / "noray", engine="ray", quiet=True)


def test_example_sweep_files_are_valid() -> None:
    paper = load_sweep(REPO / "examples" / "sweeps" / "paper.toml")
    assert [c.name for c in paper.conditions] == ["W", "WA", "WD", "WS"]
    assert paper.hidden == [5, 10, 15, 20, 25, 30] and paper.seeds == list(range(20)) and len(paper.cells) == 480
    ws5 = next(c for c in paper.cells if (c.condition, c.hidden) == ("WS", 5))
    ws10 = next(c for c in paper.cells if (c.condition, c.hidden) == ("WS", 10))
    assert (ws5.config["optimizer"]["lr_weights"], ws5.config["optimizer"]["lr_delays"]) == (0.015, 0.01)
    assert (ws10.config["optimizer"]["lr_weights"], ws10.config["optimizer"]["lr_delays"]) == (0.01, 0.003)
    # claim 1 (delays vs weights only at equal H) and claim 2 (delays at H/2 vs weights only at H)
    pairs = {(c.b, c.hidden_pairs) for c in paper.comparisons}
    same, half = tuple((h, h) for h in paper.hidden), ((10, 5), (20, 10), (30, 15))
    assert pairs == {(b, hp) for b in ("WA", "WD", "WS") for hp in (same, half)} and len(paper.comparisons) == 6
    assert {(c.a, c.sign, c.metric) for c in paper.comparisons} == {("W", 1, "test_accuracy_last")}
    for name in ("quick", "digits", "claims_quick"):
        assert load_sweep(REPO / "examples" / "sweeps" / f"{name}.toml").cells


def test_cells_are_scheduled_seed_by_seed_largest_first() -> None:
    order = [(c.seed, c.hidden, c.condition) for c in schedule(sweep_from_dict(tiny()))]
    assert order == [(s, h, c) for s in (0, 1) for h in (6, 3) for c in ("W", "WS")]


def test_count_trainable_parameters() -> None:
    def count(name: str) -> int:
        return count_trainable(fit_config(name))

    # 4-30-3: 210 weights; synaptic delays one per weight, axonal one per input neuron (4 + 30),
    # dendritic one per neuron (30 + 3)
    assert [count(n) for n in ("H30_W", "H30_WS", "H30_WA", "H30_WD", "H5_WS")] == [210, 420, 244, 243, 70]


def fit_config(name: str) -> dict[str, Any]:
    from delgrad_rs import load_config

    return load_config(CONFIGS / f"{name}.toml").to_dict()


def test_median_table() -> None:
    rows = [
        {"condition": "A", "label": "a", "hidden": 5, "seed": s, "n_params": 35, "status": "ok", "test_accuracy": v,
         "test_accuracy_last": v - 0.01, "val_accuracy": v}
        for s, v in enumerate([0.9, 0.8, 0.95])
    ] + [{"condition": "A", "label": "a", "hidden": 5, "seed": 3, "status": "failed", "error": "x"}]  # fmt: skip
    t = median_table(results_frame(rows))
    r = t.row(0, named=True)
    assert (r["runs"], r["failed"], r["n_params"]) == (3, 1, 35)
    # test_*: the network after the last epoch (the default); best_*: the best-validation checkpoint
    assert (r["test_median"], r["test_min"], r["test_max"]) == pytest.approx((0.89, 0.79, 0.94))
    assert (r["best_median"], r["best_min"], r["best_max"]) == (0.9, 0.8, 0.95)
    lines = format_table(t).splitlines()
    assert lines[0].split()[5:] == ["test", "median", "min", "max", "best-val", "val"]
    assert lines[1].split()[5:] == ["89.00", "79.00", "94.00", "90.00", "90.00"]
    assert "test: after the last epoch; best-val: at the best-validation checkpoint" in lines[2]


def test_cli_sweep_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    d = tiny(hidden=[3, 6], seeds=[0])
    lines = [f"name = {json.dumps(d['name'])}", "hidden = [3, 6]", "seeds = [0]", "epochs = 2"]
    for name, c in d["conditions"].items():
        lines += [f"[conditions.{name}]", f"base = {json.dumps(c['base'])}", f"label = {json.dumps(c['label'])}"]
    path = tmp_path / "s.toml"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert cli.main(["sweep", str(path), "--out", str(out), "--workers", "2", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "test median" in text and "4 cells (0 failed)" in text
    assert (out / "sweep.toml").read_text() == path.read_text()
    assert cli.main(["plot", str(out)]) == 0
    text = capsys.readouterr().out
    png = out / "parameter_efficiency.png"
    assert str(png) in text and "test median" in text
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    med = median_table(load_results(out))
    assert med.height == 4 and np.all(med["runs"].to_numpy() == 1)
    from delgrad_rs.sweep_plots import plot_sweep

    last = png.read_bytes()
    assert plot_sweep(out, checkpoint="best") == [png] and png.read_bytes() != last
    with pytest.raises(SweepError, match="option checkpoint: expected one of last, best, got 'first'"):
        plot_sweep(out, checkpoint="first")


def test_plot_of_a_sweep_without_finished_cells_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    rows = [{"condition": "A", "label": "a", "hidden": 5, "seed": 0, "status": "failed", "error": "DivergedError: x"}]
    results_frame(rows).write_parquet(tmp_path / "results.parquet")
    assert cli.main(["plot", str(tmp_path)]) == 1
    assert "no finished cell to plot yet" in capsys.readouterr().err
    assert cli.main(["plot", str(tmp_path), "--backend", "emulator"]) == 1
    assert "--backend emulator: a sweep directory" in capsys.readouterr().err
