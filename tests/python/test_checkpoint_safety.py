"""Checkpoints that were edited, cut short by kill -9, or asked for zero epochs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from conftest import CONFIGS
from delgrad_rs import CheckpointError, fit, load_checkpoint, load_config
from delgrad_rs.training import checkpoint as ck


def small(**training: object) -> dict[str, Any]:
    d = load_config(CONFIGS / "H30_W.toml").to_dict()
    d["training"].update({"threads": 1, "checkpoint_every": 2, **training})
    return d


def metrics(run: Path) -> pl.DataFrame:
    return pl.read_csv(run / "metrics.csv").drop("wall_time")


def test_zero_epochs_writes_the_initial_network(tmp_path: Path) -> None:
    df = fit(small(), epochs=0, out=tmp_path / "a", quiet=True)
    assert df.height == 0
    st = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.npz")
    assert st.epoch == 0 and st.metrics == []
    fit(small(), epochs=3, out=tmp_path / "a", quiet=True)  # continues from the initial network
    fit(small(), epochs=3, out=tmp_path / "b", quiet=True)
    assert metrics(tmp_path / "a").equals(metrics(tmp_path / "b"))


def _rewrite(path: Path, edit: Any, *, resign: bool) -> None:
    """Edit a checkpoint's header; with ``resign``, recompute its checksum as a careless tool might."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.pop("sha256")
    meta = json.loads(arrays["meta"].tobytes().decode())
    edit(meta)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    if resign:
        arrays["sha256"] = np.frombuffer(ck._digest(arrays).encode(), dtype=np.uint8)
    else:
        with np.load(path) as z:
            arrays["sha256"] = z["sha256"]
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _set(*keys: str, value: object) -> Any:
    def edit(meta: dict[str, Any]) -> None:
        d = meta
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value

    return edit


EDITS = [
    (("rng", "pos"), 10**9, "rng.pos"),
    (("rng", "pos"), -1, "rng.pos"),
    (("rng", "has_gauss"), 2, "rng.has_gauss"),
    (("rng", "name"), "PCG64", "rng.name"),
    (("bump",), float("nan"), "bump"),
    (("bump",), -1.0, "bump"),
    (("epoch",), 10**6, "epoch"),
    (("epoch",), -1, "epoch"),
    (("epoch",), 1, "epoch"),  # in range, but not what its metrics say
    (("best_accuracy",), 2.0, "best_accuracy"),
    (("silent_streak",), -3, "silent_streak"),
    (("threads",), 10**6, "threads"),
    (("last_bumped",), "x", "last_bumped"),
    (("tensors",), "none", "tensors"),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("trained")
    fit(small(), epochs=2, out=run, quiet=True)
    return run / "checkpoints" / "last.npz"


@pytest.mark.parametrize(("keys", "value", "field"), EDITS)
def test_edited_header_is_refused(
    trained: Path, tmp_path: Path, keys: tuple[str, ...], value: object, field: str
) -> None:
    for resign in (False, True):
        p = tmp_path / f"edited_{resign}.npz"
        p.write_bytes(trained.read_bytes())
        _rewrite(p, _set(*keys, value=value), resign=resign)
        what = f"field {field}" if resign else "checksum mismatch"
        with pytest.raises(CheckpointError, match=what.replace(".", r"\.")):
            load_checkpoint(p)


def test_version_1_files_are_read_and_checked(trained: Path, tmp_path: Path) -> None:
    """Files of the previous format (checksum of the arrays only, in the header) still resume."""
    with np.load(trained) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.pop("sha256")
    meta = json.loads(arrays.pop("meta").tobytes().decode())
    meta["format_version"] = 1
    meta["sha256"] = ck._digest(arrays)
    p = tmp_path / "v1.npz"
    with open(p, "wb") as f:
        np.savez(f, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    assert load_checkpoint(p).epoch == 2
    meta["rng"]["pos"] = 10**9  # the header is not covered by a version-1 checksum: the fields are checked
    with open(p, "wb") as f:
        np.savez(f, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    with pytest.raises(CheckpointError, match=r"field rng\.pos"):
        load_checkpoint(p)


KILLER = """
import importlib, os, signal, sys
fit_module = importlib.import_module("delgrad_rs.training.loop")
real = fit_module.save_checkpoint

def save(path, state):
    if path.name == "epoch_0002.npz":  # die halfway through writing the periodic snapshot
        path.with_name(path.name + ".tmp").write_bytes(b"PK partial")
        os.kill(os.getpid(), signal.SIGKILL)
    real(path, state)

fit_module.save_checkpoint = save
config = {config!r}
fit_module.fit(config, epochs=4, out=sys.argv[1], quiet=True)
"""


def test_kill_during_a_periodic_snapshot(tmp_path: Path) -> None:
    run = tmp_path / "killed"
    script = KILLER.format(config=small())
    proc = subprocess.run([sys.executable, "-c", script, str(run)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr
    ckdir = run / "checkpoints"
    assert (ckdir / "epoch_0002.npz.tmp").exists() and not (ckdir / "epoch_0002.npz").exists()
    fit(small(), epochs=4, out=run, quiet=True)
    assert not list(ckdir.glob("*.tmp"))
    fit(small(), epochs=4, out=tmp_path / "whole", quiet=True)
    assert metrics(run).equals(metrics(tmp_path / "whole"))
    for name in ("epoch_0002.npz", "epoch_0004.npz", "last.npz", "best.npz"):
        a, b = load_checkpoint(ckdir / name), load_checkpoint(tmp_path / "whole" / "checkpoints" / name)
        assert a.epoch == b.epoch and a.best_accuracy == b.best_accuracy, name
        for ta, tb in zip(a.trainer["tensors"], b.trainer["tensors"], strict=True):
            assert np.array_equal(ta["values"], tb["values"]), name


def test_kill_during_best_snapshot_is_redone(tmp_path: Path) -> None:
    run = tmp_path / "r"
    fit(small(), epochs=1, out=run, quiet=True)  # the first epoch is always the best so far
    ckdir = run / "checkpoints"
    st = load_checkpoint(ckdir / "last.npz")
    os.replace(ckdir / "best.npz", ckdir / "best.npz.tmp")  # as if killed while writing it
    fit(small(), epochs=1, out=run, quiet=True)
    assert load_checkpoint(ckdir / "best.npz").best_accuracy == st.best_accuracy
    assert not list(ckdir.glob("*.tmp"))
