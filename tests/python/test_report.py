import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from scipy import stats

from conftest import CONFIGS, REPO
from delgrad_rs import cli
from delgrad_rs.report import report
from delgrad_rs.sweep import SweepError, load_sweep, results_frame, sweep_from_dict


def cells(cond: str, hidden: int, acc: list[float], seeds: list[int] | None = None) -> list[dict[str, Any]]:
    seeds = list(range(len(acc))) if seeds is None else seeds
    return [
        {"condition": cond, "label": cond, "hidden": hidden, "seed": s, "n_params": 7 * hidden, "status": "ok",
         "test_accuracy_last": a, "test_accuracy": a - 0.005}
        for s, a in zip(seeds, acc, strict=True)
    ]  # fmt: skip


def toml_value(v: Any) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {toml_value(x)}" for k, x in v.items()) + " }"
    return json.dumps(v)


def write_sweep(root: Path, rows: list[dict[str, Any]], comparisons: list[dict[str, Any]]) -> Path:
    """A sweep directory as `delgrad sweep` leaves it, without training: results.parquet and sweep.toml."""
    root.mkdir(parents=True, exist_ok=True)
    results_frame(rows).write_parquet(root / "results.parquet")
    conds = sorted({r["condition"] for r in rows})
    hidden = sorted({r["hidden"] for r in rows})
    lines = ['name = "synthetic"', f"hidden = {hidden}", "seeds = [0]"]
    lines += [f'[conditions.{c}]\nbase = "unused.toml"' for c in conds]
    for comp in comparisons:
        lines.append("[[comparisons]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in comp.items()]
    (root / "sweep.toml").write_text("\n".join(lines) + "\n")
    return root


BASE = [0.90, 0.92, 0.88, 0.91, 0.93, 0.89, 0.90, 0.94, 0.87, 0.92]
NOISE = [0.004, -0.003, 0.002, -0.001, 0.003, -0.002, 0.001, -0.004, 0.0, 0.002]


def test_known_differences_give_the_right_verdict(tmp_path: Path) -> None:
    up = [b + 0.02 + n for b, n in zip(BASE, NOISE, strict=True)]
    down = [b - 0.02 + n for b, n in zip(BASE, NOISE, strict=True)]
    same = [b + n for b, n in zip(BASE, NOISE, strict=True)]
    rows = cells("A", 10, BASE) + cells("UP", 10, up) + cells("DOWN", 10, down) + cells("SAME", 10, same)
    rows += cells("ONE", 10, [0.99], seeds=[4])
    comps = [
        {"a": "A", "b": "UP"},
        {"a": "A", "b": "DOWN"},
        {"a": "A", "b": "DOWN", "claim": "b < a", "label": "lower"},
        {"a": "A", "b": "SAME"},
        {"a": "A", "b": "ONE"},
    ]
    rep = report(write_sweep(tmp_path / "s", rows, comps))
    t = rep.table
    assert t["verdict"].to_list() == ["holds", "reversed", "holds", "not shown", "n too small"]
    assert t["comparison"].to_list()[:3] == ["UP vs A", "DOWN vs A", "lower"]
    assert t["n"].to_list() == [10, 10, 10, 10, 1]
    up_row = t.row(0, named=True)
    assert up_row["mean_diff"] == pytest.approx(0.02 + np.mean(NOISE))
    assert up_row["median_diff"] == pytest.approx(0.02 + np.median(NOISE))
    assert up_row["ci_low"] > 0 and up_row["p_value"] < 0.05 and up_row["ci_method"] == "BCa"
    one = t.row(4, named=True)
    assert one["ci_low"] is None and one["p_value"] is None and one["mean_diff"] == pytest.approx(0.99 - BASE[4])
    text = rep.markdown()
    assert "| UP vs A | UP > A | test_accuracy_last | 10 vs 10 | 10 | +2." in text
    assert "| lower | DOWN < A |" in text and "| n too small |" in text
    assert 'zero_method="zsplit"' in text and "not checked: the sweep directory has no cell configurations" in text


def test_all_equal_differences_are_handled(tmp_path: Path) -> None:
    rows = cells("A", 5, BASE) + cells("B", 5, [b + 0.01 for b in BASE]) + cells("C", 5, BASE)
    rep = report(write_sweep(tmp_path / "s", rows, [{"a": "A", "b": "B"}, {"a": "A", "b": "C"}]))
    shifted, zero = rep.table.row(0, named=True), rep.table.row(1, named=True)
    # identical differences: BCa is degenerate (0 / 0), the percentile interval is the value itself
    assert shifted["ci_method"] == "percentile"
    assert (shifted["ci_low"], shifted["ci_high"]) == pytest.approx((0.01, 0.01))
    assert shifted["verdict"] == "holds" and shifted["p_value"] < 0.05
    assert (zero["ci_low"], zero["ci_high"], zero["p_value"]) == (0.0, 0.0, 1.0)
    assert zero["verdict"] == "not shown"
    assert "(percentile)" in rep.markdown()


def test_pairing_by_seed_drops_unpaired_seeds_and_failed_cells(tmp_path: Path) -> None:
    a = cells("A", 10, BASE[:6], seeds=[0, 1, 2, 3, 4, 5])
    b = cells("B", 5, [0.5, 0.6, 0.7, 0.8, 0.9, 0.95], seeds=[2, 3, 4, 5, 6, 7])
    b[1].update(status="failed", error="DivergedError: x", test_accuracy_last=None, test_accuracy=None)
    a += cells("A", 5, [0.1] * 6)  # another hidden size of A: not part of the half-size comparison
    rep = report(write_sweep(tmp_path / "s", a + b, [{"a": "A", "b": "B", "b_hidden": "half"}]))
    row = rep.table.row(0, named=True)
    assert (row["hidden_a"], row["hidden_b"], row["seeds"], row["n"]) == (10, 5, [2, 4, 5], 3)
    d = np.array([0.5 - BASE[2], 0.7 - BASE[4], 0.8 - BASE[5]])
    assert row["mean_diff"] == pytest.approx(d.mean())
    assert row["pairing"] == "seeds only: hidden sizes differ (10 vs 5), so the initial weights do too"


@pytest.mark.parametrize("metric", ["test_accuracy_last", "test_accuracy"])
def test_ci_and_p_value_are_scipys(tmp_path: Path, metric: str) -> None:
    rng = np.random.default_rng(7)
    a = rng.uniform(0.85, 0.95, 12).round(3)
    b = (a + rng.normal(0.005, 0.01, 12)).round(3)
    rows = cells("A", 10, a.tolist()) + cells("B", 10, b.tolist())
    rep = report(write_sweep(tmp_path / "s", rows, [{"a": "A", "b": "B", "metric": metric}]))
    row = rep.table.row(0, named=True)
    d = (b - 0.005 * (metric == "test_accuracy")) - (a - 0.005 * (metric == "test_accuracy"))
    ci = stats.bootstrap((d,), np.mean, n_resamples=9999, method="BCa", rng=np.random.default_rng(0))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(
        (ci.confidence_interval.low, ci.confidence_interval.high), rel=1e-9
    )
    assert row["p_value"] == pytest.approx(stats.wilcoxon(d, zero_method="zsplit").pvalue, rel=1e-12)
    assert row["metric"] == metric and row["n"] == 12


def test_cli_report_writes_markdown_and_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    rows = cells("W", 10, BASE) + cells("W", 5, BASE) + cells("WS", 5, [x + 0.01 for x in BASE])
    rows += cells("WS", 10, [x + 0.03 for x in BASE[:1]])  # one seed only: no CI, the figure still draws it
    root = write_sweep(tmp_path / "s", rows, [{"a": "W", "b": "WS"}, {"a": "W", "b": "WS", "b_hidden": {"10": 5}}])
    assert cli.main(["report", str(root)]) == 0
    out = capsys.readouterr().out
    md, png = root / "report.md", root / "report.png"
    assert md.read_text() in out and str(png) in out
    assert md.read_text().count("| W vs") == 0 and md.read_text().count("| WS vs W |") == 3
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli.main(["report", str(root), "--out", str(tmp_path / "r.md"), "--figure", str(tmp_path / "r.png")]) == 0
    assert (tmp_path / "r.md").read_text() == md.read_text() and (tmp_path / "r.png").is_file()


def test_report_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_sweep(tmp_path / "none", cells("A", 5, BASE), [])
    with pytest.raises(SweepError, match="option comparisons: none declared"):
        report(root)
    (root / "sweep.toml").unlink()
    with pytest.raises(SweepError, match=r"no sweep\.toml"):
        report(root)
    root = write_sweep(tmp_path / "bad", cells("A", 5, BASE), [{"a": "A", "b": "Z"}])
    assert cli.main(["report", str(root)]) == 1
    err = capsys.readouterr().err
    assert r"option comparisons[0].b: expected one of the conditions A, got 'Z'" in err and "Traceback" not in err
    assert cli.main(["report", str(tmp_path / "missing")]) == 1
    assert "no results.parquet" in capsys.readouterr().err


SWEEP: dict[str, Any] = {
    "hidden": [5, 10, 15],
    "seeds": [0],
    "conditions": {"W": {"base": str(CONFIGS / "H30_W.toml")}, "WS": {"base": str(CONFIGS / "H30_WS.toml")}},
}


def with_comparison(**comp: Any) -> dict[str, Any]:
    return {**SWEEP, "comparisons": [{"a": "W", "b": "WS", **comp}]}


def test_comparisons_are_parsed() -> None:
    comps = sweep_from_dict(
        {**SWEEP, "comparisons": [{"a": "W", "b": "WS"}, {"a": "W", "b": "WS", "b_hidden": "half", "claim": "b < a",
                                   "metric": "test_accuracy", "label": "x"}, {"a": "W", "b": "WS", "hidden": [10]}]}
    ).comparisons  # fmt: skip
    assert [c.hidden_pairs for c in comps] == [((5, 5), (10, 10), (15, 15)), ((10, 5),), ((10, 10),)]
    assert (comps[1].sign, comps[1].claim, comps[1].metric, comps[1].label) == (-1, "b < a", "test_accuracy", "x")
    assert (comps[0].sign, comps[0].metric, comps[0].label) == (1, "test_accuracy_last", "WS vs W")


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({**SWEEP, "comparisons": {"a": "W"}}, "option comparisons: expected an array of tables"),
        ({**SWEEP, "comparisons": [3]}, r"option comparisons\[0\]: expected a table"),
        (with_comparison(c="W"), r"option comparisons\[0\].c: unknown key"),
        ({**SWEEP, "comparisons": [{"b": "W"}]}, r"option comparisons\[0\].a: missing"),
        (with_comparison(b="WD"), r"option comparisons\[0\].b: expected one of the conditions W, WS, got 'WD'"),
        (with_comparison(b="W"), r"option comparisons\[0\].b: compares 'W' with itself"),
        (with_comparison(label=3), r"option comparisons\[0\].label: expected a string"),
        (with_comparison(claim="b >= a"), r"option comparisons\[0\].claim: expected one of 'b > a', 'b < a'"),
        (with_comparison(metric="val_accuracy"), r"option comparisons\[0\].metric: expected one of test_accuracy_last"),
        (with_comparison(hidden=[20]), r"option comparisons\[0\].hidden\[0\]: 20 is not a hidden size"),
        (with_comparison(hidden=[5], b_hidden="half"), r"option comparisons\[0\].hidden\[0\]: b_hidden gives no"),
        (with_comparison(hidden=[]), r"option comparisons\[0\].hidden: expected a non-empty list"),
        (with_comparison(b_hidden="double"), r"option comparisons\[0\].b_hidden: expected \"same\", \"half\""),
        (with_comparison(b_hidden={"10": 7}), r"option comparisons\[0\].b_hidden.10: expected a hidden size"),
        (with_comparison(b_hidden={"x": 5}), r"option comparisons\[0\].b_hidden.x: keys must be hidden sizes"),
        ({**with_comparison(b_hidden="half"), "hidden": [5, 15]}, r"option comparisons\[0\].b_hidden: pairs none"),
    ],
)
def test_bad_comparisons_name_the_key(data: dict[str, Any], key: str) -> None:
    with pytest.raises(SweepError, match=key):
        sweep_from_dict(data)


def test_sweep_then_report_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """examples/sweeps/claims_quick.toml at 2 epochs: 2 conditions x 2 hidden sizes x 3 seeds (about 5 s)."""
    pytest.importorskip("matplotlib")
    src = REPO / "examples" / "sweeps" / "claims_quick.toml"
    text = src.read_text().replace('"../configs/', f'"{(REPO / "examples" / "configs").as_posix()}/')
    path = tmp_path / "claims_quick.toml"
    path.write_text(text.replace("\nepochs = 30\n", "\nepochs = 2\n"))
    assert load_sweep(path).epochs == 2 and len(load_sweep(path).cells) == 12
    out = tmp_path / "out"
    t0 = time.perf_counter()
    assert cli.main(["sweep", str(path), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    assert cli.main(["report", str(out)]) == 0
    assert time.perf_counter() - t0 < 60
    capsys.readouterr()
    rep = report(out)
    t = rep.table
    assert t.select("hidden_a", "hidden_b", "n").rows() == [(5, 5, 3), (10, 10, 3), (10, 5, 3)]
    results = pl.read_parquet(out / "results.parquet")
    for r in t.iter_rows(named=True):
        a = results.filter((pl.col("condition") == "W") & (pl.col("hidden") == r["hidden_a"])).sort("seed")
        b = results.filter((pl.col("condition") == "WS") & (pl.col("hidden") == r["hidden_b"])).sort("seed")
        d = (b["test_accuracy_last"] - a["test_accuracy_last"]).to_numpy()
        assert r["mean_diff"] == pytest.approx(d.mean()) and r["verdict"] in ("holds", "not shown", "reversed")
        assert r["p_value"] >= 0.25  # 3 seeds: the smallest two-sided exact Wilcoxon p-value is 2 / 2**3
    # the reference's W and WS initialise weights with different means; the batch order is the seed's
    assert t["pairing"][0] == "different initial weights (initialisation or delay kinds differ), same batch order"
    assert (out / "report.md").read_text() == rep.markdown() and (out / "report.png").is_file()


def test_pairing_checks_the_initial_networks(tmp_path: Path) -> None:
    from delgrad_rs import load_config

    rows = cells("A", 4, BASE[:3]) + cells("LR", 4, BASE[:3]) + cells("BS", 4, BASE[:3]) + cells("WS", 4, BASE[:3])
    comps = [{"a": "A", "b": "LR"}, {"a": "A", "b": "BS"}, {"a": "A", "b": "WS"}]
    root = write_sweep(tmp_path / "s", rows, comps)
    for cond, name, change in (
        ("A", "H30_W", {}),
        ("LR", "H30_W", {"lr_weights": 0.5}),
        ("BS", "H30_W", {"batch_size": 7}),
        ("WS", "H30_WS", {}),
    ):
        cfg = load_config(CONFIGS / f"{name}.toml")
        cfg.network.hidden = [4]
        cfg.optimizer.lr_weights = change.get("lr_weights", cfg.optimizer.lr_weights)
        cfg.training.batch_size = change.get("batch_size", cfg.training.batch_size)
        (root / "cells" / cond / "H4" / "seed0").mkdir(parents=True)
        (root / "cells" / cond / "H4" / "seed0" / "config.toml").write_text(cfg.to_toml())
    assert report(root).table["pairing"].to_list() == [
        "same initial weights, same batch order",
        "same initial weights, different batch order (other data or batch size)",
        "different initial weights (initialisation or delay kinds differ), same batch order",
    ]
