"""The training loop: epochs, validation, metrics, checkpoints that resume exactly, divergence handling."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import queue
import signal
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import polars as pl
from numpy.typing import NDArray
from tqdm.auto import tqdm

from delgrad_rs import _core
from delgrad_rs._core import DelgradError, DivergedError
from delgrad_rs.config import Config, config_from_dict, load_config
from delgrad_rs.datasets import Split, dataset_sizes, load_encoded
from delgrad_rs.network import Network, parse_delay_kinds

CHECKPOINT_FORMAT = "delgrad_rs.checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(DelgradError):
    """A checkpoint is missing, corrupt, or does not match the run it is loaded into."""


#: The data set's splits, in the order runs report them.
SPLITS: tuple[Split, ...] = ("train", "validation", "test")


def split_inputs(cfg: Config, split: Split) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Return the encoded input times of a split (inputs repeated ``hardware.input_repeat`` times).

    Parameters
    ----------
    cfg : Config
        The configuration (``[data]`` and ``[hardware]``).
    split : str
        ``train``, ``validation`` or ``test``.

    Returns
    -------
    tuple of numpy.ndarray
        Times ``[n, n_in * input_repeat]`` and labels ``[n]``.

    """
    t, y = load_encoded(cfg.data, split)
    return repeat_inputs(t, cfg.hardware.input_repeat), y


def build_network(cfg: Config, threads: int | None = None) -> Network:
    """Create the randomly initialised network a configuration describes.

    Parameters
    ----------
    cfg : Config
        The configuration.
    threads : int or None
        Worker threads (None: ``cfg.training.threads``, 0 = all cores).

    Returns
    -------
    Network
        Data set inputs (plus bias spikes) -> hidden layers -> one output per class.

    """
    n = cfg.network
    n_in, n_out = dataset_sizes(cfg.data)
    return Network.create(
        [n_in * cfg.hardware.input_repeat, *n.hidden, n_out],
        tau_m=n.tau_m,
        tau_s=n.tau_s,
        theta=n.theta,
        weight_mean=n.layer_weight_mean or n.weight_mean,
        weight_std=n.layer_weight_std or n.weight_std,
        delays=parse_delay_kinds(n.delays, "network.delays"),
        delay_group=n.delay_group,
        delay_param="clip" if cfg.delays.param == "clip" else "sigmoid",
        delay_shift=cfg.delays.shift,
        delay_scale=cfg.delays.scale,
        delay_init_mean=cfg.delays.init_mean,
        delay_init_std=cfg.delays.init_std,
        seed=cfg.seed,
        threads=cfg.training.threads if threads is None else threads,
    )


def build_trainer(cfg: Config, net: Network, threads: int | None = None) -> _core.Trainer:
    """Create the core trainer for ``net`` with the configuration's hyperparameters.

    Parameters
    ----------
    cfg : Config
        The configuration.
    net : Network
        The network to train (copied).
    threads : int or None
        Worker threads (None: those of ``net``).

    Returns
    -------
    delgrad_rs._core.Trainer
        The trainer.

    """
    lo, o, t = cfg.loss, cfg.optimizer, cfg.training
    return _core.Trainer(
        net.core,
        loss="ce" if lo.kind == "ce" else "mse",
        delta=lo.delta,
        xi=lo.xi,
        alpha=lo.alpha,
        beta=lo.beta,
        silent_loss=lo.silent_loss,
        lr_weights=o.lr_weights,
        lr_delays=o.lr_delays,
        step_size=o.step_size,
        gamma=o.gamma,
        adam_beta1=o.beta1,
        adam_beta2=o.beta2,
        adam_eps=o.eps,
        max_dw_norm=t.max_dw_norm if t.max_dw_norm > 0 else None,
        bump=t.bump,
        bump_limits=list(t.bump_limits),
        delay_param="clip" if cfg.delays.param == "clip" else "sigmoid",
        delay_shift=cfg.delays.shift,
        delay_scale=cfg.delays.scale,
        threads=threads,
    )


# ------------------------------------------------------------------------------------------------
# backends


class Backend(Protocol):
    """Where the forward pass of training and evaluation runs (software core, emulated or real chip).

    ``train_epoch`` and ``evaluate`` take the same arguments and return the same keys as
    :meth:`delgrad_rs._core.Trainer.train_epoch` / :meth:`~delgrad_rs._core.Trainer.evaluate`
    (``loss``, ``accuracy``, ``silent_fraction``; ``bumps`` for epochs). ``describe`` names the
    backend (and chip) in ``backend.json`` of the run directory; a run does not resume on another.

    A backend whose results depend on its own history (an emulated chip's temporal noise follows
    its run counter) may also define ``state() -> dict`` (JSON-serialisable; stored in every
    checkpoint) and ``set_state(state)`` (called when a run resumes), so that a resumed run
    continues exactly as the uninterrupted one would have.
    """

    def train_epoch(
        self,
        trainer: _core.Trainer,
        x: NDArray[np.float64],
        y: NDArray[Any],
        order: NDArray[Any],
        batch: int,
        epoch: int,
    ) -> dict[str, Any]:
        """Train one epoch."""
        ...

    def evaluate(self, trainer: _core.Trainer, x: NDArray[np.float64], y: NDArray[Any]) -> dict[str, Any]:
        """Evaluate the trainer's network."""
        ...

    def describe(self) -> dict[str, Any]:
        """Identify the backend (``{"backend": ..., "chip_id": ...}``)."""
        ...


class SoftwareBackend:
    """The ideal model in the core (the default backend of :func:`fit`)."""

    def train_epoch(
        self,
        trainer: _core.Trainer,
        x: NDArray[np.float64],
        y: NDArray[Any],
        order: NDArray[Any],
        batch: int,
        epoch: int,
    ) -> dict[str, Any]:
        """Train one epoch with the core's forward pass."""
        return dict(trainer.train_epoch(x, y, order, batch, epoch))

    def evaluate(self, trainer: _core.Trainer, x: NDArray[np.float64], y: NDArray[Any]) -> dict[str, Any]:
        """Evaluate with the core's forward pass."""
        return dict(trainer.evaluate(x, y))

    def describe(self) -> dict[str, Any]:
        """Return ``{"backend": "software"}``."""
        return {"backend": "software"}


def repeat_inputs(t: NDArray[np.float64], repeat: int) -> NDArray[np.float64]:
    """Feed every input ``repeat`` times (copies adjacent): ``[n, 4] -> [n, 4 * repeat]``."""
    return np.repeat(t, repeat, axis=1) if repeat > 1 else t


# ------------------------------------------------------------------------------------------------
# checkpoints


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


class _RowsJson:
    """JSON of a run's metric rows, each row encoded once.

    A run's rows only grow and every epoch's checkpoint carries all of them: encoding them anew
    each time cost O(epochs) per epoch (2 ms per checkpoint after 300 epochs). Rows are recognised
    by identity; a list that is not an extension or a prefix of the encoded one starts afresh.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: list[dict[str, Any]] = []
        self._parts: list[str] = []

    def encode(self, rows: list[dict[str, Any]]) -> str:
        """Return ``json.dumps(rows)`` (the same text)."""
        with self._lock:
            shared = min(len(rows), len(self._rows))
            if any(a is not b for a, b in zip(rows[:shared], self._rows[:shared], strict=True)):
                self._rows, self._parts = [], []
            for row in rows[len(self._rows) :]:
                self._rows.append(row)
                self._parts.append(json.dumps(row))
            return "[" + ", ".join(self._parts[: len(rows)]) + "]"


_METRICS_JSON = _RowsJson()


def save_checkpoint(path: Path, state: TrainState) -> None:
    """Write a checkpoint atomically (``.npz`` with a JSON header and a SHA-256 of the arrays).

    Parameters
    ----------
    path : Path
        Destination file.
    state : TrainState
        What to store.

    """
    arrays: dict[str, NDArray[Any]] = {}
    tensors = []
    for i, t in enumerate(state.trainer["tensors"]):
        for k in ("values", "m", "v"):
            arrays[f"t{i}_{k}"] = np.ascontiguousarray(t[k], dtype=np.float64)
        tensors.append({"layer": int(t["layer"]), "kind": str(t["kind"]), "t": int(t["t"])})
    name, key, pos, has_gauss, gauss = state.rng
    arrays["rng_key"] = np.asarray(key, dtype=np.uint32)
    digest = hashlib.sha256()
    for k in sorted(arrays):
        digest.update(k.encode())
        digest.update(arrays[k].tobytes())
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
        "sha256": digest.hexdigest(),
    }
    # The metrics rows (all epochs so far) are encoded once each, not again in every checkpoint.
    text = json.dumps(meta)[:-1] + ', "metrics": ' + _METRICS_JSON.encode(state.metrics) + "}"
    arrays["meta"] = np.frombuffer(text.encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p}: no such file")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint {p} is corrupt or not a delgrad_rs checkpoint: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {p}: not a delgrad_rs checkpoint")
    if meta.get("format_version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"checkpoint {p}: format version {meta.get('format_version')} is not supported "
            f"(expected {CHECKPOINT_VERSION})"
        )
    digest = hashlib.sha256()
    for k in sorted(arrays):
        digest.update(k.encode())
        digest.update(arrays[k].tobytes())
    if digest.hexdigest() != meta.get("sha256"):
        raise CheckpointError(f"checkpoint {p} is corrupt: checksum mismatch")
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


def _same_run(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Keys (dotted) whose values differ, ignoring the epoch count (a run may be extended)."""
    diffs = []
    for section in sorted(set(a) | set(b)):
        va, vb = a.get(section), b.get(section)
        if isinstance(va, dict) and isinstance(vb, dict):
            for k in sorted(set(va) | set(vb)):
                if (section, k) in (("training", "epochs"), ("training", "threads"), ("training", "save_every")):
                    continue
                if va.get(k) != vb.get(k):
                    diffs.append(f"{section}.{k}")
        elif va != vb and section != "name":
            diffs.append(section)
    return diffs


# ------------------------------------------------------------------------------------------------
# fit


def _metric_row(
    epoch: int, split: str, r: dict[str, Any], lrs: tuple[float, float], bumps: int, wall: float
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "epoch": epoch,
        "split": split,
        "loss": float(r["loss"]),
        "accuracy": float(r["accuracy"]),
        "lr_weights": float(lrs[0]),
        "lr_delays": float(lrs[1]),
        "bumps": int(bumps),
    }
    for i, f in enumerate(r["silent_fraction"]):
        row[f"silent_l{i}"] = float(f)
    for key in ("retries", "dropped_events"):  # chip health, reported by hardware backends
        if key in r:
            row[key] = int(r[key])
    row["wall_time"] = float(wall)
    return row


def metrics_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Return metric rows as a polars DataFrame with stable dtypes."""
    if not rows:
        return pl.DataFrame(schema={"epoch": pl.Int64, "split": pl.String, "loss": pl.Float64, "accuracy": pl.Float64})
    return pl.DataFrame(rows, infer_schema_length=None)


def _persist_files(run: Path, ckdir: Path, state: TrainState, best: TrainState | None) -> None:
    """Write ``last.npz``, ``best.npz`` (when ``best`` is given) and the metrics files of ``state``."""
    save_checkpoint(ckdir / "last.npz", state)
    if best is not None:
        save_checkpoint(ckdir / "best.npz", best)
    _write_metrics(run, state.metrics)


def _write_metrics(run: Path, rows: list[dict[str, Any]]) -> pl.DataFrame:
    df = metrics_frame(rows)
    df.write_parquet(run / "metrics.parquet")
    df.write_csv(run / "metrics.csv")
    return df


def fit(
    config: Config | str | Path | dict[str, Any],
    *,
    out: str | Path | None = None,
    epochs: int | None = None,
    seed: int | None = None,
    threads: int | None = None,
    quiet: bool = False,
    resume: bool = True,
    stop_after: int | None = None,
    backend: Backend | None = None,
) -> pl.DataFrame:
    """Train on the configured data set with validation every epoch, checkpoints and exact resumption.

    Parameters
    ----------
    config : Config, path or dict
        The run configuration (a TOML file, nested dicts or a :class:`Config`).
    out : str or Path or None
        Run directory: ``config.toml``, ``metrics.parquet``, ``metrics.csv``, ``summary.json`` and
        ``checkpoints/`` (``last.npz`` every epoch, ``best.npz`` on the best validation accuracy,
        ``epoch_NNNN.npz`` every ``training.checkpoint_every`` epochs). None: nothing is written.
    epochs : int or None
        Overrides ``training.epochs``.
    seed : int or None
        Overrides ``seed`` (initialisation; shuffling uses ``seed + 1``).
    threads : int or None
        Overrides ``training.threads`` (0 = all cores). Bit-exact resumption needs the same count.
    quiet : bool
        No progress bar.
    resume : bool
        Continue from ``out/checkpoints/last.npz`` when it exists (the configuration must match
        except for ``training.epochs``).
    stop_after : int or None
        Stop (as if interrupted, after checkpointing) once this many epochs are done.
    backend : Backend or None
        Where forward passes run (None: :class:`SoftwareBackend`; chip-in-the-loop:
        ``delgrad_hw.training.ChipBackend``). Resumption is exact for the software backend; a chip's
        noise continues from the chip's own state.

    Returns
    -------
    polars.DataFrame
        One row per epoch and split (``train``, ``validation``; ``test`` after the last epoch):
        epoch, split, loss, accuracy, lr_weights, lr_delays, bumps, silent_l<i> per layer, wall_time.

    Raises
    ------
    DivergedError
        When training produces non-finite values or every output stays silent for
        ``training.silent_patience`` epochs; the last good checkpoint is kept.
    CheckpointError
        When the checkpoint to resume from is corrupt or belongs to another configuration.

    """
    if isinstance(config, Config):
        cfg = config_from_dict(config.to_dict())
    elif isinstance(config, dict):
        cfg = config_from_dict(config)
    else:
        cfg = load_config(config)
    if epochs is not None:
        cfg.training.epochs = int(epochs)
    if seed is not None:
        cfg.seed = int(seed)
    if threads is not None:
        cfg.training.threads = int(threads)
    cfg = config_from_dict(cfg.to_dict())
    run = Path(out) if out is not None else None
    ckdir = run / "checkpoints" if run is not None else None

    runner: Backend = backend if backend is not None else SoftwareBackend()
    net = build_network(cfg)
    trainer = build_trainer(cfg, net)
    rng = np.random.RandomState((cfg.seed + 1) % 2**32)
    rows: list[dict[str, Any]] = []
    start_epoch = 0
    best = -1.0
    silent_streak = 0
    if run is not None and ckdir is not None:
        run.mkdir(parents=True, exist_ok=True)
        last = ckdir / "last.npz"
        resumed: TrainState | None = None
        if resume and last.exists():
            st = resumed = load_checkpoint(last)
            try:  # fill sections added since the checkpoint was written with their defaults
                stored = config_from_dict(st.config).to_dict()
            except DelgradError:
                stored = st.config
            diffs = _same_run(stored, cfg.to_dict())
            if diffs:
                raise CheckpointError(
                    f"checkpoint {last} belongs to a different configuration (differs in {', '.join(diffs)}); "
                    "use another --out directory or resume=False"
                )
            try:
                trainer.set_state(st.trainer)
            except (DelgradError, TypeError) as e:
                raise CheckpointError(f"checkpoint {last} does not fit the network: {e}") from None
            rng.set_state(st.rng)
            rows, start_epoch, best, silent_streak = st.metrics, st.epoch, st.best_accuracy, st.silent_streak
            rows = [r for r in rows if r["split"] != "test"]
        _check_backend(run, runner.describe(), resuming=resumed is not None)
        set_state = getattr(runner, "set_state", None)
        if resumed is not None and resumed.backend and set_state is not None:
            set_state(resumed.backend)  # e.g. the emulated chip's run counter: the same noise from here
        (run / "config.toml").write_text(cfg.to_toml(), encoding="utf-8")

    (t_tr, y_tr), (t_va, y_va), (t_te, y_te) = (split_inputs(cfg, s) for s in SPLITS)
    n_epochs = cfg.training.epochs
    batch = cfg.training.batch_size

    def snapshot(epoch: int) -> TrainState:
        return TrainState(
            epoch=epoch,
            trainer=trainer.state(),
            rng=rng.get_state(),  # type: ignore[arg-type]
            config=cfg.to_dict(),
            metrics=list(rows),
            best_accuracy=best,
            silent_streak=silent_streak,
            threads=trainer.threads,
            backend=_backend_state(runner),
        )

    good = snapshot(start_epoch)
    saved_epoch = start_epoch
    unsaved_best: TrainState | None = None  # a best snapshot not written yet (training.save_every > 1)

    # Checkpoints and metrics files are written in the background, in order, while training goes
    # on; the loop waits for them before it returns or raises (`writer.close()`).
    writer = _Writer()

    def persist(state: TrainState) -> None:
        """Write last.npz, a pending best.npz and the metrics files (in the background)."""
        nonlocal unsaved_best, saved_epoch
        saved_epoch = state.epoch
        if run is None or ckdir is None:
            return
        best_state, unsaved_best = unsaved_best, None
        writer.submit(partial(_persist_files, run, ckdir, state, best_state))

    bar = tqdm(
        total=n_epochs,
        initial=min(start_epoch, n_epochs),
        disable=quiet,
        desc=cfg.name,
        unit="epoch",
        dynamic_ncols=True,
    )
    epoch = start_epoch
    try:
        # Ctrl-C asks the loop to stop at the next epoch boundary (a checkpoint, then KeyboardInterrupt).
        with _GracefulStop() as stop:
            try:
                while epoch < n_epochs:
                    if stop_after is not None and epoch >= stop_after:
                        break
                    t0 = time.perf_counter()
                    lrs = trainer.learning_rates(epoch)
                    order = rng.permutation(len(y_tr))
                    try:
                        tr = runner.train_epoch(trainer, t_tr, y_tr, order, batch, epoch)
                        va = runner.evaluate(trainer, t_va, y_va)
                    except DivergedError as e:
                        raise DivergedError(_diverged_message(str(e), epoch, ckdir)) from None
                    if not (math.isfinite(tr["loss"]) and math.isfinite(va["loss"])):
                        raise DivergedError(_diverged_message(f"loss is not finite at epoch {epoch}", epoch, ckdir))
                    wall = time.perf_counter() - t0
                    rows.append(_metric_row(epoch, "train", dict(tr), lrs, tr["bumps"], wall))
                    rows.append(_metric_row(epoch, "validation", dict(va), lrs, 0, wall))
                    silent_streak = silent_streak + 1 if tr["silent_fraction"][-1] >= 1.0 else 0
                    if silent_streak >= cfg.training.silent_patience:
                        raise DivergedError(
                            _diverged_message(
                                f"every output neuron was silent for {silent_streak} epochs", epoch, ckdir
                            )
                        )
                    epoch += 1
                    improved = va["accuracy"] > best
                    if improved:
                        best = float(va["accuracy"])
                    good = snapshot(epoch)
                    if improved:
                        unsaved_best = good
                    if epoch % cfg.training.save_every == 0 or epoch >= n_epochs:
                        persist(good)
                    if ckdir is not None and epoch % cfg.training.checkpoint_every == 0:
                        writer.submit(partial(save_checkpoint, ckdir / f"epoch_{epoch:04d}.npz", good))
                    bar.set_postfix(
                        loss=f"{tr['loss']:.4f}",
                        acc=f"{tr['accuracy']:.3f}",
                        val_acc=f"{va['accuracy']:.3f}",
                        refresh=False,
                    )
                    bar.update(1)
                    if stop.requested:
                        raise KeyboardInterrupt
            except KeyboardInterrupt:
                bar.close()
                persist(good)
                writer.close()
                if ckdir is not None:
                    print(f"interrupted: saved a checkpoint after epoch {good.epoch} to {ckdir / 'last.npz'}")
                raise
        bar.close()
        if saved_epoch != good.epoch:
            persist(good)
    finally:
        writer.close()  # every checkpoint is on disk before fit returns or raises
    if epoch >= n_epochs:
        te = runner.evaluate(trainer, t_te, y_te)
        rows.append(_metric_row(n_epochs - 1, "test", dict(te), trainer.learning_rates(n_epochs - 1), 0, 0.0))
        if run is not None:
            summary = {
                "name": cfg.name,
                "epochs": n_epochs,
                "test_accuracy": te["accuracy"],
                "test_loss": te["loss"],
                "best_validation_accuracy": best,
                "backend": runner.describe(),
                "versions": versions(),
            }
            (run / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if run is not None:
        return _write_metrics(run, rows)
    return metrics_frame(rows)


def recorded_backend(run: str | Path) -> Any:
    """Return the backend a run directory records in ``backend.json`` (as written), None if unreadable.

    Parameters
    ----------
    run : str or Path
        The run directory.

    Returns
    -------
    Any
        The recorded description (``{"backend": ..., "chip_id": ...}``) or None.

    """
    try:
        return json.loads((Path(run) / "backend.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _backend_state(runner: Backend) -> dict[str, Any]:
    """Return the backend's own state for a checkpoint (``Backend.state``; empty if it keeps none)."""
    state = getattr(runner, "state", None)
    return dict(state()) if state is not None else {}


def _check_backend(run: Path, desc: dict[str, Any], resuming: bool) -> None:
    """Record the backend in ``run/backend.json``; refuse to resume a run on another backend or chip."""
    path = run / "backend.json"
    if resuming and path.exists():
        old = recorded_backend(run)
        if old != desc:
            raise CheckpointError(
                f"run {run} was trained on {old}, not on {desc}; training must not silently continue on "
                "another backend or chip (use another --out directory)"
            )
    path.write_text(json.dumps(desc) + "\n", encoding="utf-8")


class _GracefulStop:
    """Ctrl-C during training: stop at the next epoch boundary; a second Ctrl-C stops at once.

    The first press asks the loop to stop after the current epoch (it then checkpoints and raises
    KeyboardInterrupt). Handling the signal here, rather than letting KeyboardInterrupt land anywhere, keeps it out of
    the middle of a checkpoint or metrics write (libraries that check signals themselves could
    otherwise raise it twice). Only the main thread can install handlers; elsewhere nothing changes.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _GracefulStop:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)


def _lower_priority() -> None:
    """Give the calling thread the lowest CPU priority (Linux; elsewhere nothing).

    The writer thread then takes a core only when the training's threads leave one idle, instead
    of preempting them: a preempted core thread holds up the whole parallel step.
    """
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except OSError:  # not permitted in this sandbox: run at normal priority
            pass


class _Writer:
    """Runs the loop's file writes in order on one background thread while the next epoch trains.

    The jobs only read immutable snapshots (:class:`TrainState`, metric rows). At most two wait at
    a time (``submit`` blocks beyond). ``close`` waits for every job; an exception of a job is raised
    by the next ``submit`` or ``close`` (later jobs are skipped).
    """

    def __init__(self) -> None:
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def submit(self, job: Callable[[], None]) -> None:
        """Queue ``job`` after the ones already submitted."""
        self._raise()
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="delgrad-writer", daemon=True)
            self._thread.start()
        self._jobs.put(job)

    def close(self) -> None:
        """Wait for every submitted job; raise the first exception of one."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            e, self._error = self._error, None
            raise e

    def _work(self) -> None:
        _lower_priority()
        while (job := self._jobs.get()) is not None:
            if self._error is None:
                try:
                    job()
                except BaseException as e:  # handed to the training thread
                    self._error = e


def _diverged_message(reason: str, epoch: int, ckdir: Path | None) -> str:
    msg = f"training diverged at epoch {epoch}: {reason}"
    if ckdir is not None and (ckdir / "last.npz").exists():
        msg += f"; the last good checkpoint is kept at {ckdir / 'last.npz'}"
    return msg + " (try smaller learning rates, a different seed or a larger bump)"


# ------------------------------------------------------------------------------------------------
# evaluation of a run


def load_run(run: str | Path, which: str = "best") -> tuple[Config, Network, _core.Trainer]:
    """Rebuild the network of a run directory from one of its checkpoints.

    Parameters
    ----------
    run : str or Path
        The run directory.
    which : str
        ``best``, ``last`` or a checkpoint file name in ``checkpoints/``.

    Returns
    -------
    cfg : Config
        The run's configuration.
    net : Network
        The network with the checkpoint's parameters.
    trainer : delgrad_rs._core.Trainer
        A trainer holding the checkpoint's state.

    """
    ckdir = Path(run) / "checkpoints"
    name = which if which.endswith(".npz") else f"{which}.npz"
    st = load_checkpoint(ckdir / name)
    cfg = config_from_dict(st.config)
    net = build_network(cfg)
    trainer = build_trainer(cfg, net)
    try:
        trainer.set_state(st.trainer)
    except (DelgradError, TypeError) as e:
        raise CheckpointError(f"checkpoint {ckdir / name} does not fit its configuration: {e}") from None
    net = Network(trainer.network())
    return cfg, net, trainer


def evaluate_run(run: str | Path, which: str = "best", backend: Backend | None = None) -> pl.DataFrame:
    """Evaluate a run's checkpoint on every split.

    Parameters
    ----------
    run : str or Path
        The run directory.
    which : str
        ``best`` or ``last`` (or a checkpoint file name).
    backend : Backend or None
        Where to run the forward passes (None: the ideal model in software; a network trained
        chip-in-the-loop is adapted to its chip and should be evaluated on it).

    Returns
    -------
    polars.DataFrame
        Columns split, loss, accuracy, silent_samples.

    """
    cfg, _, trainer = load_run(run, which)
    runner: Backend = backend if backend is not None else SoftwareBackend()
    rows = []
    for split in SPLITS:
        r = runner.evaluate(trainer, *split_inputs(cfg, split))
        rows.append(
            {"split": split, "loss": r["loss"], "accuracy": r["accuracy"], "silent_samples": r["silent_samples"]}
        )
    return pl.DataFrame(rows)


__all__ = [
    "Backend",
    "CheckpointError",
    "SoftwareBackend",
    "TrainState",
    "build_network",
    "build_trainer",
    "evaluate_run",
    "fit",
    "load_checkpoint",
    "load_run",
    "metrics_frame",
    "repeat_inputs",
    "save_checkpoint",
]
