"""The backends delgrad-hw registers with delgrad_rs (entry-point group ``delgrad_rs.backends``).

``delgrad train/eval/plot --backend emulator`` builds :func:`emulator`, ``--backend
remote://HOST:PORT`` builds :func:`remote`; both are a :class:`~delgrad_hw.training.ChipBackend`
with the run configuration's ``[hardware]`` settings and loss.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from delgrad_rs.config import Config

from .emulator import EmulatedChip
from .training import ChipBackend

__all__ = ["emulator", "remote"]


def _backend_options(cfg: Config) -> dict[str, Any]:
    """Return the :class:`ChipBackend` options of a run configuration (``[hardware]`` and the loss)."""
    h, lo = cfg.hardware, cfg.loss
    loss = {
        "loss": lo.kind,
        "delta": lo.delta,
        "xi": lo.xi,
        "alpha": lo.alpha,
        "beta": lo.beta,
        "silent_loss": lo.silent_loss,
        "tie_rule": lo.tie_rule,
    }
    return {
        "input_repeat": h.input_repeat,
        "loss": loss,
        "max_retries": h.max_retries,
        "eval_batch": h.eval_batch,
        "gradient_weights": h.gradient_weights,
        "clamp_float_weights": h.clamp_float_weights,
    }


def emulator(spec: str, cfg: Config, *, token_file: str | os.PathLike[str] | None = None) -> ChipBackend:
    """Return the backend ``emulator``: an in-process :class:`~delgrad_hw.emulator.EmulatedChip`.

    Parameters
    ----------
    spec : str
        ``emulator``.
    cfg : delgrad_rs.config.Config
        The run configuration: chip ``cfg.hardware.run_chip_id(cfg.seed)`` (``chip_id``, or with
        ``chip_per_run = "new"`` a chip of the run's own, ``"<chip_id>/seed-<seed>"``), temporal-noise seed
        ``cfg.hardware.chip_seed + cfg.seed``, noise scaled by ``cfg.hardware.noise_scale``,
        ``cfg.training.threads`` worker threads.
    token_file : path-like, optional
        Not used (the chip is in this process).

    Returns
    -------
    ChipBackend
        The backend.
    """
    if spec != "emulator":
        raise ValueError(f"--backend: expected 'emulator', got {spec!r}")
    h = cfg.hardware
    chip = EmulatedChip(
        h.run_chip_id(cfg.seed), h.chip_seed + cfg.seed, threads=cfg.training.threads or None, noise_scale=h.noise_scale
    )
    return ChipBackend(chip, name="emulator", **_backend_options(cfg))


def remote(spec: str, cfg: Config, *, token_file: str | os.PathLike[str] | None = None) -> ChipBackend:
    """Return the backend ``remote://HOST:PORT``: a :class:`~delgrad_hw.client.RemoteChip`.

    Parameters
    ----------
    spec : str
        ``remote://HOST:PORT``.
    cfg : delgrad_rs.config.Config
        The run configuration.
    token_file : path-like, optional
        File holding the server token (default: the environment ``DELGRAD_HW_TOKEN``).

    Returns
    -------
    ChipBackend
        The backend.

    Raises
    ------
    ValueError
        For ``hardware.chip_per_run = "new"``: the chip behind a server is the server's.
    """
    from .client import RemoteChip

    if cfg.hardware.chip_per_run != "shared":
        got = cfg.hardware.chip_per_run
        raise ValueError(f"hardware.chip_per_run: a remote chip is the server's; expected 'shared', got {got!r}")
    chip = RemoteChip(spec, token_file=Path(token_file) if token_file is not None else None)
    return ChipBackend(chip, name="remote", **_backend_options(cfg))
