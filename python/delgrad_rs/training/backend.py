"""Where forward passes run: the :class:`Backend` protocol, the software backend and the registry of others.

Backends other than ``software`` live in other distributions and register a factory in the
entry-point group :data:`BACKEND_GROUP` (``delgrad-hw`` registers ``emulator`` and ``remote``).
A specification ``NAME`` or ``NAME://ADDRESS`` selects the factory registered as ``NAME``.
"""

from __future__ import annotations

import json
import os
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from delgrad_rs._core import OptionError, Trainer
from delgrad_rs.config import Config

#: Entry-point group in which distributions register backend factories (:class:`BackendFactory`).
BACKEND_GROUP = "delgrad_rs.backends"


class Backend(Protocol):
    """Where the forward pass of training and evaluation runs (software core, emulated or real chip).

    ``train_epoch`` and ``evaluate`` take the same arguments and return the same keys as
    :meth:`delgrad_rs.Trainer.train_epoch` / :meth:`~delgrad_rs.Trainer.evaluate`
    (``loss``, ``accuracy``, ``silent_fraction``; ``bumps`` for epochs). ``describe`` names the
    backend (and chip) in ``backend.json`` of the run directory; a run does not resume on another.

    A backend whose results depend on its own history (an emulated chip's temporal noise follows
    its run counter) may also define ``state() -> dict`` (JSON-serialisable; stored in every
    checkpoint) and ``set_state(state)`` (called when a run resumes), so that a resumed run
    continues exactly as the uninterrupted one would have.
    """

    def train_epoch(
        self,
        trainer: Trainer,
        x: NDArray[np.float64],
        y: NDArray[Any],
        order: NDArray[Any],
        batch: int,
        epoch: int,
    ) -> dict[str, Any]:
        """Train one epoch."""
        ...

    def evaluate(self, trainer: Trainer, x: NDArray[np.float64], y: NDArray[Any]) -> dict[str, Any]:
        """Evaluate the trainer's network."""
        ...

    def describe(self) -> dict[str, Any]:
        """Identify the backend (``{"backend": ..., "chip_id": ...}``)."""
        ...


class BackendFactory(Protocol):
    """What an entry point of :data:`BACKEND_GROUP` loads: builds the backend of a specification."""

    def __call__(self, spec: str, cfg: Config, *, token_file: str | os.PathLike[str] | None = None) -> Backend:
        """Return the backend of ``spec`` (e.g. ``remote://HOST:PORT``) for the run ``cfg``."""
        ...


class SoftwareBackend:
    """The ideal model in the core (the default backend of :func:`~delgrad_rs.training.fit`)."""

    def train_epoch(
        self,
        trainer: Trainer,
        x: NDArray[np.float64],
        y: NDArray[Any],
        order: NDArray[Any],
        batch: int,
        epoch: int,
    ) -> dict[str, Any]:
        """Train one epoch with the core's forward pass."""
        return dict(trainer.train_epoch(x, y, order, batch, epoch))

    def evaluate(self, trainer: Trainer, x: NDArray[np.float64], y: NDArray[Any]) -> dict[str, Any]:
        """Evaluate with the core's forward pass."""
        return dict(trainer.evaluate(x, y))

    def describe(self) -> dict[str, Any]:
        """Return ``{"backend": "software"}``."""
        return {"backend": "software"}


def backend_names() -> list[str]:
    """Return the names of the available backends: ``software`` and every registered one."""
    return ["software", *sorted({ep.name for ep in entry_points(group=BACKEND_GROUP)})]


def make_backend(spec: str, cfg: Config, token_file: str | os.PathLike[str] | None = None) -> Backend:
    """Build the backend of a specification (``delgrad train --backend SPEC``).

    Parameters
    ----------
    spec : str
        ``software``, the name of a registered backend (e.g. ``emulator``) or ``NAME://ADDRESS``
        (e.g. ``remote://HOST:PORT``).
    cfg : Config
        The run configuration (the backend reads ``[hardware]``, the loss and the seed).
    token_file : path-like or None
        Credentials of a remote backend.

    Returns
    -------
    Backend
        The backend.

    Raises
    ------
    OptionError
        For a backend that is not registered, listing those that are.

    """
    name = spec.split("://", 1)[0]
    if spec == "software":
        return SoftwareBackend()
    found = [ep for ep in entry_points(group=BACKEND_GROUP) if ep.name == name]
    if not found:
        known = backend_names()
        hint = "" if len(known) > 1 else " (install delgrad-hw for the emulator and remote chips)"
        raise OptionError(
            f"option --backend: unknown backend {spec!r}; expected one of {', '.join(known)}{hint} "
            "(NAME or NAME://ADDRESS)"
        )
    factory: BackendFactory = found[0].load()
    return factory(spec, cfg, token_file=token_file)


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


def backend_state(runner: Backend) -> dict[str, Any]:
    """Return the backend's own state for a checkpoint (``Backend.state``; empty if it keeps none)."""
    state = getattr(runner, "state", None)
    return dict(state()) if state is not None else {}


__all__ = [
    "BACKEND_GROUP",
    "Backend",
    "BackendFactory",
    "SoftwareBackend",
    "backend_names",
    "backend_state",
    "make_backend",
    "recorded_backend",
]
