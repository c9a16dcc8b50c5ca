"""Checkpoints that resume a run exactly: :class:`TrainState`, its ``.npz`` file and the checks on loading."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from delgrad_rs import _core
from delgrad_rs._core import DelgradError

CHECKPOINT_FORMAT = "delgrad_rs.checkpoint"
#: Version 2: the SHA-256 covers the header (epoch, RNG position, bump, metrics, ...) as well as the
#: arrays. Version 1 (arrays only) is still read; its header is checked field by field like every other.
CHECKPOINT_VERSION = 2
_READABLE_VERSIONS = (1, 2)
#: Length of the Mersenne Twister's key (numpy's ``RandomState``).
_MT_KEY = 624


class CheckpointError(DelgradError):
    """A checkpoint is missing, corrupt, or does not match the run it is loaded into."""


@dataclass
class TrainState:
    """Everything needed to continue a run exactly."""

    epoch: int
    trainer: dict[str, Any]
    rng: tuple[Any, ...]
    config: dict[str, Any]
    metrics: list[dict[str, Any]] = field(default_factory=list)
    best_accuracy: float = -1.0
    silent_streak: int = 0
    threads: int = 0
    backend: dict[str, Any] = field(default_factory=dict)


def versions() -> dict[str, str]:
    """Return the versions recorded in checkpoints."""
    from delgrad_rs import __version__

    return {
        "delgrad_rs": __version__,
        "core": _core.__version__,
        "numpy": np.__version__,
        "polars": pl.__version__,
        "python": platform.python_version(),
    }


class RowsJson:
    """JSON of a run's metric rows, each row encoded once.

    A run's rows only grow and every epoch's checkpoint carries all of them: encoding them anew
    each time would cost O(epochs) per epoch. Rows are recognised by identity; a list that is not
    an extension or a prefix of the encoded one starts afresh.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: list[dict[str, Any]] = []
        self._parts: list[str] = []

    def encode(self, rows: list[dict[str, Any]]) -> str:
        """Return ``json.dumps(rows)`` (the same text)."""
        with self._lock:
            common = min(len(rows), len(self._rows))
            if any(a is not b for a, b in zip(rows[:common], self._rows[:common], strict=True)):
                self._rows, self._parts = [], []
            for row in rows[len(self._rows) :]:
                self._rows.append(row)
                self._parts.append(json.dumps(row))
            return "[" + ", ".join(self._parts[: len(rows)]) + "]"


_METRICS_JSON = RowsJson()


def _digest(arrays: dict[str, NDArray[Any]]) -> str:
    """Return the SHA-256 of the arrays (names and bytes, in name order; the header is the array ``meta``)."""
    digest = hashlib.sha256()
    for k in sorted(arrays):
        digest.update(k.encode())
        digest.update(arrays[k].tobytes())
    return digest.hexdigest()


def _arrays_and_header(state: TrainState) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
    """Split a state into its arrays (tensors, Adam moments, RNG key) and its JSON header."""
    arrays: dict[str, NDArray[Any]] = {}
    tensors = []
    for i, t in enumerate(state.trainer["tensors"]):
        for k in ("values", "m", "v"):
            arrays[f"t{i}_{k}"] = np.ascontiguousarray(t[k], dtype=np.float64)
        tensors.append({"layer": int(t["layer"]), "kind": str(t["kind"]), "t": int(t["t"])})
    name, key, pos, has_gauss, gauss = state.rng
    arrays["rng_key"] = np.asarray(key, dtype=np.uint32)
    meta = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "epoch": state.epoch,
        "config": state.config,
        "versions": versions(),
        "tensors": tensors,
        "bump": float(state.trainer["bump"]),
        "last_bumped": state.trainer["last_bumped"],
        "rng": {"name": name, "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "best_accuracy": state.best_accuracy,
        "silent_streak": state.silent_streak,
        "threads": state.threads,
        "backend": state.backend,
    }
    return arrays, meta


def save_checkpoint(path: Path, state: TrainState) -> None:
    """Write a checkpoint atomically (``.npz`` with a JSON header and a SHA-256 of header and arrays).

    Parameters
    ----------
    path : Path
        Destination file.
    state : TrainState
        What to store.

    """
    arrays, meta = _arrays_and_header(state)
    # The metrics rows (all epochs so far) are encoded once each, not again in every checkpoint.
    text = json.dumps(meta)[:-1] + ', "metrics": ' + _METRICS_JSON.encode(state.metrics) + "}"
    arrays["meta"] = np.frombuffer(text.encode(), dtype=np.uint8)
    arrays["sha256"] = np.frombuffer(_digest(arrays).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_checked(p: Path) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
    """Return the arrays and the header of a checkpoint file after checking format, version and checksum."""
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p}: no such file")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        sha = arrays.pop("sha256").tobytes().decode() if "sha256" in arrays else None
        meta = json.loads(arrays["meta"].tobytes().decode())
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, UnicodeDecodeError, RecursionError) as e:
        raise CheckpointError(f"checkpoint {p} is corrupt or not a delgrad_rs checkpoint: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {p}: not a delgrad_rs checkpoint")
    version = meta.get("format_version")
    if version not in _READABLE_VERSIONS:
        raise CheckpointError(
            f"checkpoint {p}: format version {version} is not supported (expected one of {_READABLE_VERSIONS})"
        )
    if version == 1:  # the checksum of the arrays, kept in the header
        sha, header = meta.get("sha256"), arrays.pop("meta")
        ok = _digest(arrays) == sha
        arrays["meta"] = header
    else:
        ok = sha is not None and _digest(arrays) == sha
    if not ok:
        raise CheckpointError(f"checkpoint {p} is corrupt or was edited: checksum mismatch")
    arrays.pop("meta")
    return arrays, meta


def load_checkpoint(path: str | Path) -> TrainState:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Parameters
    ----------
    path : str or Path
        The ``.npz`` file.

    Returns
    -------
    TrainState
        The stored state.

    Raises
    ------
    CheckpointError
        When the file is missing, truncated, corrupt or of another format.

    """
    p = Path(path)
    arrays, meta = _read_checked(p)
    try:
        _check_header(meta, arrays)
    except CheckpointField as e:
        raise CheckpointError(f"checkpoint {p}: field {e.args[0]}: {e.args[1]}") from None
    try:
        tensors = [
            {
                "layer": t["layer"],
                "kind": t["kind"],
                "t": t["t"],
                "values": arrays[f"t{i}_values"],
                "m": arrays[f"t{i}_m"],
                "v": arrays[f"t{i}_v"],
            }
            for i, t in enumerate(meta["tensors"])
        ]
        rng = meta["rng"]
        rng_state = (rng["name"], arrays["rng_key"], rng["pos"], rng["has_gauss"], rng["gauss"])
        return TrainState(
            epoch=int(meta["epoch"]),
            trainer={"tensors": tensors, "bump": meta["bump"], "last_bumped": meta["last_bumped"]},
            rng=rng_state,
            config=meta["config"],
            metrics=list(meta["metrics"]),
            best_accuracy=float(meta["best_accuracy"]),
            silent_streak=int(meta["silent_streak"]),
            threads=int(meta.get("threads", 0)),
            backend=dict(meta.get("backend", {})),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {p} is incomplete: missing {e}") from None


class CheckpointField(Exception):
    """A header field of a checkpoint is out of range (its name, what was expected)."""


def _int_field(meta: dict[str, Any], key: str, low: int, high: int, name: str | None = None) -> int:
    v = meta.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
        raise CheckpointField(name or key, f"expected an integer in [{low}, {high}], got {v!r}")
    return v


def _float_field(meta: dict[str, Any], key: str, low: float, high: float, name: str | None = None) -> float:
    v = meta.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not (low <= v <= high):  # NaN fails too
        raise CheckpointField(name or key, f"expected a number in [{low}, {high}], got {v!r}")
    return float(v)


def _check_header(meta: dict[str, Any], arrays: dict[str, NDArray[Any]]) -> None:
    """Check every header field of a checkpoint; raise :class:`CheckpointField` naming the first bad one.

    The checksum makes edits detectable; these checks keep a consistent but implausible header (and a
    version-1 file, whose checksum does not cover the header) from reaching the trainer and the
    random number generator.
    """
    for key, kind in (("config", dict), ("metrics", list), ("tensors", list), ("rng", dict), ("backend", dict)):
        if not isinstance(meta.get(key, {} if key == "backend" else None), kind):
            raise CheckpointField(key, f"expected a {kind.__name__}, got {type(meta.get(key)).__name__}")
    epoch = _int_field(meta, "epoch", 0, 2**31)
    trained = sum(1 for r in meta["metrics"] if isinstance(r, dict) and r.get("split") == "train")
    if trained != epoch:
        raise CheckpointField("epoch", f"{epoch} does not match the {trained} epochs of its metrics")
    _float_field(meta, "bump", 0.0, math.inf)
    if meta.get("last_bumped") is not None:
        _int_field(meta, "last_bumped", 0, 2**16)
    _float_field(meta, "best_accuracy", -1.0, 1.0)
    _int_field(meta, "silent_streak", 0, 2**31)
    if "threads" in meta:
        _int_field(meta, "threads", 0, 1024)
    rng = meta["rng"]
    if rng.get("name") != "MT19937":
        raise CheckpointField("rng.name", f"expected 'MT19937', got {rng.get('name')!r}")
    _int_field(rng, "pos", 0, _MT_KEY, "rng.pos")
    _int_field(rng, "has_gauss", 0, 1, "rng.has_gauss")
    _float_field(rng, "gauss", -math.inf, math.inf, "rng.gauss")
    rng_key = arrays.get("rng_key")
    if rng_key is None or rng_key.dtype != np.uint32 or rng_key.shape != (_MT_KEY,):
        raise CheckpointField("rng_key", f"expected {_MT_KEY} uint32 values")
    for i, t in enumerate(meta["tensors"]):
        if not isinstance(t, dict):
            raise CheckpointField(f"tensors[{i}]", "expected a table")
        _int_field(t, "layer", 0, 2**16, f"tensors[{i}].layer")
        _int_field(t, "t", 0, 2**53, f"tensors[{i}].t")
        shapes = {arrays[f"t{i}_{k}"].shape for k in ("values", "m", "v") if f"t{i}_{k}" in arrays}
        if len(shapes) != 1:
            raise CheckpointField(f"tensors[{i}]", "values, m and v must all be present and of one shape")


#: Settings a run may change between sessions: how long it runs, on how many threads, how often it saves.
_EXTENDABLE = (("training", "epochs"), ("training", "threads"), ("training", "save_every"))


def config_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Return the keys (dotted) whose values differ between two configurations of one run.

    The run's name and the settings a resumed run may change (epochs, threads, save_every) are
    not compared.

    Parameters
    ----------
    a, b : dict
        Configurations as nested dicts (:meth:`Config.to_dict`).

    Returns
    -------
    list of str
        ``section.key`` (or ``section``) of every difference, sorted.

    """
    diffs = []
    for section in sorted(set(a) | set(b)):
        va, vb = a.get(section), b.get(section)
        if isinstance(va, dict) and isinstance(vb, dict):
            for k in sorted(set(va) | set(vb)):
                if (section, k) not in _EXTENDABLE and va.get(k) != vb.get(k):
                    diffs.append(f"{section}.{k}")
        elif va != vb and section != "name":
            diffs.append(section)
    return diffs


__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "CheckpointError",
    "RowsJson",
    "TrainState",
    "config_differences",
    "load_checkpoint",
    "save_checkpoint",
    "versions",
]
