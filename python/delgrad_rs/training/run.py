"""A finished (or interrupted) run directory: its network rebuilt from a checkpoint, and its evaluation."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from delgrad_rs._core import DelgradError, Trainer
from delgrad_rs.config import Config, config_from_dict
from delgrad_rs.network import Network
from delgrad_rs.training.backend import Backend, SoftwareBackend
from delgrad_rs.training.build import SPLITS, build_network, build_trainer, split_inputs
from delgrad_rs.training.checkpoint import CheckpointError, load_checkpoint


def load_run(run: str | Path, which: str = "best") -> tuple[Config, Network, Trainer]:
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
    trainer : Trainer
        A trainer holding the checkpoint's state.

    """
    ckdir = Path(run) / "checkpoints"
    name = which if which.endswith(".npz") else f"{which}.npz"
    st = load_checkpoint(ckdir / name)
    cfg = config_from_dict(st.config)
    trainer = build_trainer(cfg, build_network(cfg))
    try:
        trainer.set_state(st.trainer)
    except (DelgradError, TypeError) as e:
        raise CheckpointError(f"checkpoint {ckdir / name} does not fit its configuration: {e}") from None
    return cfg, Network(trainer.network()), trainer


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


__all__ = ["evaluate_run", "load_run"]
