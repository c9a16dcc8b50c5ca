"""The reproduction report script on made-up sweep results (the real sweeps take most of an hour)."""

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO
from delgrad_rs.sweep import results_frame

SCRIPT = REPO / "examples" / "reproduction.py"


def fake_sweep(root: Path, name: str, cells: list[tuple[str, int, float]], seeds: int) -> None:
    """Write a sweep directory with results for (condition, hidden, accuracy) over ``seeds`` seeds."""
    root.mkdir(parents=True)
    shutil.copy(REPO / "examples" / "sweeps" / f"{name}.toml", root / "sweep.toml")
    rows = [
        {"condition": c, "label": c, "hidden": h, "seed": s, "n_params": 7 * h, "epochs": 300, "status": "ok",
         "test_accuracy": acc, "test_accuracy_last": acc + 0.01 * s, "val_accuracy": acc, "cpu_time": 6.0,
         "val_accuracy_std": 0.02 - 0.001 * s, "silent_outputs_last": 0.01, "bumps": 100 + s}
        for c, h, acc in cells
        for s in range(seeds)
    ]  # fmt: skip
    results_frame(rows).write_parquet(root / "results.parquet")
    (root / "history.jsonl").write_text('{"wall_time": 120.0, "engine": "local", "workers": 2}\n')


def test_report_of_made_up_sweeps(tmp_path: Path) -> None:
    out = tmp_path / "reproduction"
    paper = [
        (c, h, 0.90 + 0.01 * i + 0.001 * h)
        for i, c in enumerate(("W", "WA", "WD", "WS"))
        for h in (5, 10, 15, 20, 25, 30)
    ]
    fake_sweep(out / "paper", "paper", paper, seeds=5)
    hardware = [
        (c, 30, 0.9 + 0.01 * ("A" in c)) for c in ("W", "WA", "W_s0", "WA_s0", "W_s2", "WA_s2", "W_s3", "WA_s3")
    ]
    fake_sweep(out / "hardware", "hardware", hardware, seeds=5)
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--no-run", "--out", str(out), "--img", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    text = (out / "report.md").read_text()
    assert text == r.stdout
    assert "- `paper`: 120 trainings, 0 failed, 2.0 min of wall time over 1 invocation(s)" in text
    assert "### Claim 3: the emulated chip" in text and "| weight bumps | WA < W | bumps | 30 vs 30 | 5 |" in text
    # claim 4: published, the reference code's reruns and ours; W at H30 is 0.93 + 0.01 s over 5 seeds
    assert "| H30_W | 96.7 | - | 95.0 [" in text and "(93.0-97.0), 5 | above 4 of 5 seeds |" in text
    assert "| H30_WA | 97.5 | 96.1 95.8 97.8 98.2 91.8 96.5 98.5 96.8 94.8 97.5 (96.65) |" in text
    # the claim-4 rows of conditions the sweep does not have are left out
    assert "| hardware-aware W, reference recipe |" not in text
    assert (tmp_path / "claims_paper.png").is_file() and (tmp_path / "claims_noise.png").is_file()
