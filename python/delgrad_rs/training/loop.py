"""The training loop: epochs, validation, metrics, checkpoints that resume exactly, divergence handling."""

from __future__ import annotations

import json
import math
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from tqdm.auto import tqdm

from delgrad_rs._core import DelgradError, DivergedError
from delgrad_rs.config import Config, config_from_dict, load_config
from delgrad_rs.training.backend import Backend, SoftwareBackend, backend_state, recorded_backend
from delgrad_rs.training.build import SPLITS, build_network, build_trainer, split_inputs
from delgrad_rs.training.checkpoint import (
    CheckpointError,
    TrainState,
    config_differences,
    load_checkpoint,
    save_checkpoint,
    versions,
)
from delgrad_rs.training.metrics import metric_row, metrics_frame, write_metrics
from delgrad_rs.training.writer import BackgroundWriter, GracefulStop


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
        Run directory: ``config.toml``, ``backend.json``, ``metrics.parquet``, ``metrics.csv``,
        ``summary.json`` and ``checkpoints/`` (``last.npz`` every epoch, ``best.npz`` on the best
        validation accuracy, ``epoch_NNNN.npz`` every ``training.checkpoint_every`` epochs).
        None: nothing is written.
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
        Where forward passes run (None: :class:`SoftwareBackend`; chip-in-the-loop: a registered
        backend, see :func:`~delgrad_rs.training.make_backend`). Resumption is exact for the
        software backend; a chip's noise continues from the chip's own state.

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
    cfg = _resolve_config(config, epochs=epochs, seed=seed, threads=threads)
    loop = _Loop(cfg, Path(out) if out is not None else None, backend or SoftwareBackend())
    if loop.run is not None:
        loop.open_run(resume)
    loop.train(quiet=quiet, stop_after=stop_after)
    return loop.finish()


def _resolve_config(
    config: Config | str | Path | dict[str, Any], *, epochs: int | None, seed: int | None, threads: int | None
) -> Config:
    """Return a validated copy of the configuration with the overrides of :func:`fit` applied."""
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
    return config_from_dict(cfg.to_dict())


class _Loop:
    """One run of :func:`fit`: its trainer, shuffling, progress and files.

    ``epoch``, ``rows``, ``best`` and ``silent_streak`` are what a checkpoint records besides the
    trainer and the shuffling state; ``good`` is the snapshot after the last finished epoch.
    """

    def __init__(self, cfg: Config, run: Path | None, backend: Backend) -> None:
        self.cfg, self.run, self.backend = cfg, run, backend
        # Recorded in every epoch's snapshot: made once (the run's configuration does not change).
        self.cfg_dict = cfg.to_dict()
        self.ckdir = run / "checkpoints" if run is not None else None
        self.trainer = build_trainer(cfg, build_network(cfg))
        self.rng = np.random.RandomState((cfg.seed + 1) % 2**32)
        self.rows: list[dict[str, Any]] = []
        self.epoch = 0
        self.best = -1.0
        self.silent_streak = 0
        self.data = {s: split_inputs(cfg, s) for s in SPLITS}
        self.writer = BackgroundWriter()
        self.good = self.snapshot()
        self.saved_epoch = 0
        self.unsaved_best: TrainState | None = None  # a best snapshot not written yet (training.save_every > 1)

    # -- the run directory -----------------------------------------------------------------------
    def open_run(self, resume: bool) -> None:
        """Create the run directory, continue from its last checkpoint, record backend and configuration."""
        assert self.run is not None and self.ckdir is not None
        self.run.mkdir(parents=True, exist_ok=True)
        for partial_write in self.ckdir.glob("*.tmp"):  # a write cut short by a crash or kill -9
            partial_write.unlink()
        last = self.ckdir / "last.npz"
        resumed = self._resume(last) if resume and last.exists() else None
        _record_backend(self.run, self.backend.describe(), resuming=resumed is not None)
        set_state = getattr(self.backend, "set_state", None)
        if resumed is not None and resumed.backend and set_state is not None:
            set_state(resumed.backend)  # e.g. the emulated chip's run counter: the same noise from here
        (self.run / "config.toml").write_text(self.cfg.to_toml(), encoding="utf-8")
        self.good, self.saved_epoch = self.snapshot(), self.epoch
        if resumed is not None:
            self._redo_interrupted_writes()

    def _redo_interrupted_writes(self) -> None:
        """Write the snapshots of the resumed epoch that a crash may have cut short.

        ``last.npz`` is written first, then ``best.npz`` and ``epoch_NNNN.npz`` of the same epoch: a
        run killed between them resumes from that epoch, and its state is what they would have held.
        """
        assert self.ckdir is not None
        t = self.cfg.training
        periodic = self.ckdir / f"epoch_{self.epoch:04d}.npz"
        if self.epoch > 0 and self.epoch % t.checkpoint_every == 0 and not periodic.exists():
            save_checkpoint(periodic, self.good)
        validation = [r for r in self.rows if r["split"] == "validation"]
        last_was_best = bool(validation) and validation[-1]["accuracy"] == self.best
        best = self.ckdir / "best.npz"
        if last_was_best and (not best.exists() or _best_accuracy(best) < self.best):
            save_checkpoint(best, self.good)

    def _resume(self, last: Path) -> TrainState:
        """Restore trainer, shuffling and progress from ``last`` after checking it belongs to this run."""
        st = load_checkpoint(last)
        try:  # fill sections added since the checkpoint was written with their defaults
            stored = config_from_dict(st.config).to_dict()
        except DelgradError:
            stored = st.config
        diffs = config_differences(stored, self.cfg_dict)
        if diffs:
            raise CheckpointError(
                f"checkpoint {last} belongs to a different configuration (differs in {', '.join(diffs)}); "
                "use another --out directory or resume=False"
            )
        try:
            self.trainer.set_state(st.trainer)
        except (DelgradError, TypeError) as e:
            raise CheckpointError(f"checkpoint {last} does not fit the network: {e}") from None
        self.rng.set_state(st.rng)
        self.rows = [r for r in st.metrics if r["split"] != "test"]
        self.epoch, self.best, self.silent_streak = st.epoch, st.best_accuracy, st.silent_streak
        return st

    def snapshot(self) -> TrainState:
        """Return the state after the epochs done so far."""
        return TrainState(
            epoch=self.epoch,
            trainer=self.trainer.state(),
            rng=self.rng.get_state(),  # type: ignore[arg-type]
            config=self.cfg_dict,
            metrics=list(self.rows),
            best_accuracy=self.best,
            silent_streak=self.silent_streak,
            threads=self.trainer.threads,
            backend=backend_state(self.backend),
        )

    def persist(self, state: TrainState) -> None:
        """Write last.npz, a pending best.npz and the metrics files of ``state`` (in the background)."""
        self.saved_epoch = state.epoch
        if self.run is None or self.ckdir is None:
            return
        best, self.unsaved_best = self.unsaved_best, None
        self.writer.submit(partial(_persist_files, self.run, self.ckdir, state, best))

    # -- the epochs ------------------------------------------------------------------------------
    def train(self, *, quiet: bool, stop_after: int | None) -> None:
        """Train up to ``training.epochs`` (or ``stop_after``) epochs; every checkpoint is written on return."""
        n_epochs = self.cfg.training.epochs
        bar = tqdm(
            total=n_epochs,
            initial=min(self.epoch, n_epochs),
            disable=quiet,
            desc=self.cfg.name,
            unit="epoch",
            dynamic_ncols=True,
        )
        try:
            # Ctrl-C asks the loop to stop at the next epoch boundary (a checkpoint, then KeyboardInterrupt).
            with GracefulStop() as stop:
                try:
                    while self.epoch < n_epochs and (stop_after is None or self.epoch < stop_after):
                        tr, va = self.train_epoch()
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
                    self._save_interrupted()
                    raise
            bar.close()
            # Zero epochs still leave the initial network in last.npz (to inspect, export or resume).
            unwritten = self.ckdir is not None and not (self.ckdir / "last.npz").exists()
            if self.saved_epoch != self.good.epoch or unwritten:
                self.persist(self.good)
        finally:
            self.writer.close()  # every checkpoint is on disk before fit returns or raises

    def train_epoch(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Train and validate one epoch, record its rows and save what is due; return both results."""
        t0 = time.perf_counter()
        epoch = self.epoch
        lrs = self.trainer.learning_rates(epoch)
        x, y = self.data["train"]
        order = self.rng.permutation(len(y))
        try:
            tr = self.backend.train_epoch(self.trainer, x, y, order, self.cfg.training.batch_size, epoch)
            va = self.backend.evaluate(self.trainer, *self.data["validation"])
        except DivergedError as e:
            raise DivergedError(self._diverged(str(e))) from None
        if not (math.isfinite(tr["loss"]) and math.isfinite(va["loss"])):
            raise DivergedError(self._diverged(f"loss is not finite at epoch {epoch}"))
        wall = time.perf_counter() - t0
        self.rows.append(metric_row(epoch, "train", dict(tr), lrs, tr["bumps"], wall))
        self.rows.append(metric_row(epoch, "validation", dict(va), lrs, 0, wall))
        self.silent_streak = self.silent_streak + 1 if tr["silent_fraction"][-1] >= 1.0 else 0
        if self.silent_streak >= self.cfg.training.silent_patience:
            raise DivergedError(self._diverged(f"every output neuron was silent for {self.silent_streak} epochs"))
        self.epoch += 1
        self._save_epoch(improved=va["accuracy"] > self.best, accuracy=float(va["accuracy"]))
        return tr, va

    def _save_epoch(self, *, improved: bool, accuracy: float) -> None:
        """Take the snapshot of the finished epoch and write what ``save_every`` / ``checkpoint_every`` ask."""
        t = self.cfg.training
        if improved:
            self.best = accuracy
        self.good = self.snapshot()
        if improved:
            self.unsaved_best = self.good
        if self.epoch % t.save_every == 0 or self.epoch >= t.epochs:
            self.persist(self.good)
        if self.ckdir is not None and self.epoch % t.checkpoint_every == 0:
            self.writer.submit(partial(save_checkpoint, self.ckdir / f"epoch_{self.epoch:04d}.npz", self.good))

    def _save_interrupted(self) -> None:
        """Write the last good snapshot after Ctrl-C and say where it is."""
        self.persist(self.good)
        self.writer.close()
        if self.ckdir is not None:
            print(f"interrupted: saved a checkpoint after epoch {self.good.epoch} to {self.ckdir / 'last.npz'}")

    def _diverged(self, reason: str) -> str:
        """Return the message of a diverged run: the reason, the kept checkpoint and what to try."""
        msg = f"training diverged at epoch {self.epoch}: {reason}"
        if self.ckdir is not None and (self.ckdir / "last.npz").exists():
            msg += f"; the last good checkpoint is kept at {self.ckdir / 'last.npz'}"
        return msg + " (try smaller learning rates, a different seed or a larger bump)"

    # -- the end ---------------------------------------------------------------------------------
    def finish(self) -> pl.DataFrame:
        """Test a finished run and write its summary; return (and write) the metrics."""
        n_epochs = self.cfg.training.epochs
        if self.epoch >= n_epochs > 0:
            te = self.backend.evaluate(self.trainer, *self.data["test"])
            lrs = self.trainer.learning_rates(n_epochs - 1)
            self.rows.append(metric_row(n_epochs - 1, "test", dict(te), lrs, 0, 0.0))
            if self.run is not None:
                self._write_summary(te)
        if self.run is not None:
            return write_metrics(self.run, self.rows)
        return metrics_frame(self.rows)

    def _write_summary(self, te: dict[str, Any]) -> None:
        assert self.run is not None
        summary = {
            "name": self.cfg.name,
            "epochs": self.cfg.training.epochs,
            "test_accuracy": te["accuracy"],
            "test_loss": te["loss"],
            "best_validation_accuracy": self.best,
            "backend": self.backend.describe(),
            "versions": versions(),
        }
        (self.run / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


def _best_accuracy(path: Path) -> float:
    """Return the best validation accuracy recorded in a checkpoint (-1 when it cannot be read)."""
    try:
        return load_checkpoint(path).best_accuracy
    except CheckpointError:
        return -1.0


def _persist_files(run: Path, ckdir: Path, state: TrainState, best: TrainState | None) -> None:
    """Write ``last.npz``, ``best.npz`` (when ``best`` is given) and the metrics files of ``state``."""
    save_checkpoint(ckdir / "last.npz", state)
    if best is not None:
        save_checkpoint(ckdir / "best.npz", best)
    write_metrics(run, state.metrics)


def _record_backend(run: Path, desc: dict[str, Any], resuming: bool) -> None:
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


__all__ = ["fit"]
