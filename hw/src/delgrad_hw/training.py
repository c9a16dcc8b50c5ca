"""Chip-in-the-loop training (``docs/hardware.md``, "Chip-in-the-loop training") on any :class:`Chip`.

Per batch, :class:`ChipBackend`

1. writes the trainer's float shadow parameters to the chip (the chip quantises; unchanged entries
   are not rewritten),
2. runs the batch as one spike train and reads the first spike of every neuron per sample slot,
3. repeats a stalled run (``Health.stall``) up to ``max_retries`` times, then fails loudly,
4. evaluates the exact gradients of the ideal model (nominal threshold, tau_m = tau_s) at the measured
   times and at the quantised weights and delays the chip ran
   (``Trainer.step_from_times(..., at=quantised)``; ``gradient_weights="float"``: at the float
   shadow parameters): straight-through for weights and delays; neurons the ideal model would
   leave silent get zero gradient (the trainer's ``gradient_slope`` sets the slope they divide by),
5. lets the trainer bump weights when more than ``training.bump_limits`` of a layer's spikes are
   missing, else take the Adam step on the shadow parameters,
6. with ``clamp_float_weights``, clamps the float shadow weights to the grid's weight range,
7. checks that every result comes from the chip the run started on (:class:`ChipMismatch`).

Validation and test accuracies are measured on the chip as well.

One procedure, two roads: an in-process :class:`~delgrad_hw.emulator.EmulatedChip` trains each
epoch in one core call (:meth:`EmulatedChip.train_epoch`, the core's loop); any other chip (a
:class:`~delgrad_hw.client.RemoteChip`, a real chip) is driven from here through ``configure`` and
``run``. Both quantise on the core's grid and give the same results bit for bit.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from delgrad_rs import loss_and_grad
from delgrad_rs.config import Config
from delgrad_rs.hardware import Trainer, epoch_totals

from .bss2 import BSS2, Bss2Resources, core_grid
from .chip import Chip, ChipConfig, ChipError, ChipMismatch, RunResult
from .emulator import EmulatedChip

if TYPE_CHECKING:
    from delgrad_rs.hardware import StepResult

__all__ = ["ChipBackend", "StallError", "chip_config_from_params", "make_backend"]

FloatArray = npt.NDArray[np.float64]


class StallError(ChipError):
    """A run stalled on every attempt."""


def chip_config_from_params(layers: list[dict[str, Any]], input_repeat: int) -> ChipConfig:
    """Build the chip configuration of a core network's parameters.

    Parameters
    ----------
    layers : list of dict
        ``delgrad_rs`` layer parameters (``w``, ``theta``, ``tau_m``, ``tau_s``, ``d_axo``, ``d_syn``,
        ``d_den``, ``delay_group``), e.g. ``Trainer.network().params()``.
    input_repeat : int
        Input duplication of the first layer.

    Returns
    -------
    ChipConfig
        Weights and delays in model units; the threshold and time constants of the first layer.

    Raises
    ------
    ValueError
        When the layers use per-neuron thresholds or different time constants (a chip has one
        calibration), or synaptic delays of the first layer are shared across input copies.
    """
    theta = np.unique(np.concatenate([np.atleast_1d(np.asarray(p["theta"], dtype=float)) for p in layers]))
    taus = {(float(p["tau_m"]), float(p["tau_s"])) for p in layers}
    if theta.size != 1 or len(taus) != 1:
        raise ValueError("network: a chip needs one threshold and one pair of time constants for every neuron")
    (tau_m, tau_s) = taus.pop()

    def opt(key: str) -> list[FloatArray | None]:
        return [None if p.get(key) is None else np.asarray(p[key], dtype=float) for p in layers]

    return ChipConfig(
        weights=[np.asarray(p["w"], dtype=float) for p in layers],
        axonal_delays=opt("d_axo"),
        synaptic_delays=_per_channel_synaptic(layers, opt("d_syn")),
        dendritic_delays=opt("d_den"),
        theta=float(theta[0]),
        tau_m=tau_m,
        tau_s=tau_s,
        input_repeat=input_repeat,
    )


def _per_channel_synaptic(layers: list[dict[str, Any]], syn: list[FloatArray | None]) -> list[FloatArray | None]:
    """Return synaptic delays per input channel: a first layer's delays shared by a delay group, repeated."""
    out = list(syn)
    g = int(layers[0].get("delay_group", 1)) if layers else 1
    if out and out[0] is not None and g > 1:
        out[0] = np.repeat(out[0], g, axis=1)
    return out


def _structure(layers: list[dict[str, Any]]) -> tuple[Any, ...]:
    """Return what the layers are besides their trained values: shapes, delay kinds, neuron parameters."""

    def shape(v: Any) -> tuple[int, ...] | None:
        return None if v is None else np.shape(v)

    return tuple(
        (
            np.shape(p["w"]),
            np.asarray(p["theta"], dtype=float).tobytes(),
            float(p["tau_m"]),
            float(p["tau_s"]),
            int(p.get("delay_group", 1)),
            shape(p.get("d_axo")),
            shape(p.get("d_syn")),
            shape(p.get("d_den")),
        )
        for p in layers
    )


class ChipBackend:
    """Training and evaluation forward passes on a chip (a ``delgrad_rs.training.Backend``).

    Parameters
    ----------
    chip : Chip
        The chip (``EmulatedChip``, ``RemoteChip`` or a real backend).
    input_repeat : int
        Input duplication (the trainer's inputs have ``n_groups * input_repeat`` columns).
    loss : dict
        Loss options of ``delgrad_rs.loss_and_grad`` for evaluation (``loss``, ``delta``, ``xi``,
        ``alpha``, ``beta``, ``silent_loss``, ``tie_rule``; training takes the trainer's).
    max_retries : int
        Repetitions of a stalled run before :class:`StallError`.
    eval_batch : int
        Samples per evaluation run (each run draws its own per-batch noise).
    gradient_weights : {"quantised", "float"}
        Where the host takes each step's gradient: at the quantised weights and delays the chip
        ran, or at the trainer's float shadow parameters.
    clamp_float_weights : bool
        Clamp the float shadow weights to the grid's weight range after every step.
    resources : Bss2Resources
        The quantisation rules of the chip (for the gradients at the quantised parameters).
    name : str
        Backend name recorded in the run directory.

    Attributes
    ----------
    retries : int
        Stalled runs repeated so far.
    dropped_events : int
        Events the chip reported lost so far.
    """

    def __init__(
        self,
        chip: Chip,
        *,
        input_repeat: int = 1,
        loss: dict[str, Any] | None = None,
        max_retries: int = 5,
        eval_batch: int = 1000,
        gradient_weights: str = "quantised",
        clamp_float_weights: bool = False,
        resources: Bss2Resources = BSS2,
        name: str = "chip",
    ) -> None:
        if input_repeat < 1:
            raise ValueError(f"input_repeat: must be >= 1, got {input_repeat}")
        if max_retries < 0:
            raise ValueError(f"max_retries: must be >= 0, got {max_retries}")
        if eval_batch < 1:
            raise ValueError(f"eval_batch: must be >= 1, got {eval_batch}")
        if gradient_weights not in ("quantised", "float"):
            raise ValueError(f"gradient_weights: expected 'quantised' or 'float', got {gradient_weights!r}")
        if not isinstance(clamp_float_weights, bool):
            raise ValueError(f"clamp_float_weights: expected True or False, got {clamp_float_weights!r}")
        self.chip = chip
        self.input_repeat = int(input_repeat)
        self.loss = dict(loss or {"loss": "mse", "delta": 0.3})
        self.max_retries = int(max_retries)
        self.eval_batch = int(eval_batch)
        self.gradient_weights = gradient_weights
        self.clamp_float_weights = clamp_float_weights
        self.resources = resources
        self.name = name
        self.chip_id = chip.info().chip_id
        self.retries = 0
        self.dropped_events = 0
        # the structure of the last shadow parameters and their validated configuration (the
        # checks of chip_config_from_params run once per structure, not per step)
        self._structure: tuple[Any, ...] | None = None
        self._checked: ChipConfig | None = None

    # ----------------------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Return ``{"backend": name, "chip_id": ...}`` (recorded in the run directory)."""
        return {"backend": self.name, "chip_id": self.chip_id}

    def state(self) -> dict[str, Any]:
        """Return what a resumed run needs to continue exactly (stored in every checkpoint).

        Returns
        -------
        dict
            ``{"runs": n}``: the in-process emulator's run counter, which keys its temporal noise.
            Empty for other chips (a real or remote chip's noise cannot be replayed).
        """
        if isinstance(self.chip, EmulatedChip):
            return {"runs": int(self.chip.runs)}
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint's :meth:`state` (the training loop calls it on resumption).

        Parameters
        ----------
        state : dict
            ``{"runs": n}`` sets the in-process emulator's run counter, so that the resumed run draws
            the temporal noise the uninterrupted one would have. Ignored for other chips.

        Raises
        ------
        ValueError
            When ``runs`` is not an integer >= 0.
        """
        runs = state.get("runs")
        if runs is None or not isinstance(self.chip, EmulatedChip):
            return
        if isinstance(runs, bool) or not isinstance(runs, int) or runs < 0:
            raise ValueError(f"state['runs']: expected an integer >= 0, got {runs!r}")
        self.chip.runs = runs

    # ----------------------------------------------------------------------------------------------
    def train_epoch(
        self, trainer: Trainer, x: FloatArray, y: npt.NDArray[Any], order: npt.NDArray[Any], batch: int, epoch: int
    ) -> dict[str, Any]:
        """Train one epoch chip-in-the-loop (same keys as ``Trainer.train_epoch``).

        Parameters
        ----------
        trainer : delgrad_rs.Trainer
            The trainer (float shadow parameters and Adam state).
        x : numpy.ndarray
            Input times ``[n, n_groups * input_repeat]``.
        y : numpy.ndarray
            Labels.
        order : numpy.ndarray
            Sample order.
        batch : int
            Batch size.
        epoch : int
            Epoch (learning-rate schedule).

        Returns
        -------
        dict
            ``loss``, ``accuracy``, ``samples``, ``bumps``, ``silent_fraction``, and the chip's health
            in this epoch: ``retries`` (stalled runs repeated), ``dropped_events``.
        """
        retries0, dropped0 = self.retries, self.dropped_events
        order = np.asarray(order)
        # the epoch's samples in order (the batches are contiguous views) and what the chip is sent
        xs, ys = x[order], y[order]
        gs = np.ascontiguousarray(xs[:, :: self.input_repeat])
        emulator = self._emulator_for(trainer)
        if emulator is not None:
            steps = self._emulated_epoch(emulator, trainer, gs, xs, ys, batch, epoch)
        else:
            steps = [
                self._chip_step(trainer, gs[s : s + batch], xs[s : s + batch], ys[s : s + batch], epoch)
                for s in range(0, len(order), batch)
            ]
        health = {"retries": self.retries - retries0, "dropped_events": self.dropped_events - dropped0}
        return epoch_totals(steps) | health

    def _emulator_for(self, trainer: Trainer) -> EmulatedChip | None:
        """Return the chip when it is an in-process emulator that can train the trainer's epochs in the core.

        It can when it quantises with this backend's resources and holds a network of the trainer's
        layout and neuron parameters; a first configuration of the trainer's parameters is written
        here. Synaptic delays of duplicated inputs (per channel on the chip, per input group in the
        trainer) take the road of any other chip.
        """
        chip = self.chip
        if not isinstance(chip, EmulatedChip) or chip.resources != self.resources:
            return None
        params = trainer.network().params()
        want = _structure(params)
        have = None if chip.network is None else _structure(chip.network.params())
        if have != want:
            chip.write(self._shadow_config(params))
            assert chip.network is not None  # written
            have = _structure(chip.network.params())
        return chip if have == want else None

    def _emulated_epoch(
        self,
        chip: EmulatedChip,
        trainer: Trainer,
        groups: FloatArray,
        x: FloatArray,
        y: npt.NDArray[Any],
        batch: int,
        epoch: int,
    ) -> list[StepResult]:
        """Train the epoch's steps in one core call (:meth:`EmulatedChip.train_epoch`); return their results."""
        self._check_chip(chip.chip_id)
        out = chip.train_epoch(
            trainer,
            groups,
            x,
            y,
            batch,
            epoch,
            self.max_retries,
            gradient_weights=self.gradient_weights,
            clamp_float_weights=self.clamp_float_weights,
        )
        self.retries += int(out["retries"])
        self.dropped_events += int(out["dropped_events"])
        if out["stalled"]:
            raise self._stalled()
        return out["steps"]

    def _chip_step(
        self, trainer: Trainer, groups: FloatArray, x: FloatArray, y: npt.NDArray[Any], epoch: int
    ) -> StepResult:
        """One step on any chip: configure, run (stall retries), step at the measured times (and clamp)."""
        self.chip.configure(self._shadow_config(trainer.network().params()))
        res = self._run(groups)
        grid = core_grid(self.resources)
        # the ideal model at the weights and delays the chip ran, quantised by the core's grid, or
        # (None) at the trainer's float shadow parameters
        at = trainer.quantised_network(trainer.network(), grid)[0] if self.gradient_weights == "quantised" else None
        step = trainer.step_from_times(x, res.times, y, epoch, at=at)
        if self.clamp_float_weights:
            trainer.clamp_weights(grid)
        return step

    def _shadow_config(self, params: list[dict[str, Any]]) -> ChipConfig:
        """Return the chip configuration of the trainer's parameters (checked when their structure changes)."""
        key = _structure(params)
        if key != self._structure or self._checked is None:
            self._checked = chip_config_from_params(params, self.input_repeat)
            self._structure = key
            return self._checked
        # Same shapes, delay kinds and neuron parameters as a configuration that passed the checks;
        # the core network holds finite weights and delays >= 0: only the values are new.
        c = self._checked
        return ChipConfig.unchecked(
            weights=[p["w"] for p in params],
            axonal_delays=[p.get("d_axo") for p in params],
            synaptic_delays=_per_channel_synaptic(params, [p.get("d_syn") for p in params]),
            dendritic_delays=[p.get("d_den") for p in params],
            theta=c.theta,
            tau_m=c.tau_m,
            tau_s=c.tau_s,
            input_repeat=c.input_repeat,
        )

    def _run(self, groups: FloatArray) -> RunResult:
        """Run a batch on the chip, repeating a stalled run up to ``max_retries`` times (the one retry rule)."""
        for attempt in range(self.max_retries + 1):
            res = self.chip.run(groups)
            self._check_chip(res.chip_id)
            self.dropped_events += res.health.dropped_events
            if not res.health.stall:
                return res
            if attempt < self.max_retries:
                self.retries += 1
        raise self._stalled()

    def _check_chip(self, chip_id: str) -> None:
        """Raise ChipMismatch unless ``chip_id`` is the chip this run started on."""
        if chip_id != self.chip_id:
            raise ChipMismatch(f"result from chip {chip_id!r}, but this run started on {self.chip_id!r}")

    def _stalled(self) -> StallError:
        """Return the error of a run that stalled on every attempt."""
        return StallError(f"the chip stalled on {self.max_retries + 1} attempts of one run")

    # ----------------------------------------------------------------------------------------------
    def evaluate(self, trainer: Trainer, x: FloatArray, y: npt.NDArray[Any]) -> dict[str, Any]:
        """Measure loss, accuracy and silent fractions on the chip.

        Parameters
        ----------
        trainer : delgrad_rs.Trainer
            The trainer whose parameters are evaluated.
        x : numpy.ndarray
            Input times ``[n, n_groups * input_repeat]``.
        y : numpy.ndarray
            Labels.

        Returns
        -------
        dict
            ``loss``, ``accuracy``, ``correct``, ``samples``, ``silent_samples``, ``silent_fraction``,
            ``output_times``, ``retries``, ``dropped_events``.
        """
        self.chip.configure(self._shadow_config(trainer.network().params()))
        retries0, dropped0 = self.retries, self.dropped_events
        r = self.input_repeat
        parts = [
            self._run(np.ascontiguousarray(x[s : s + self.eval_batch, ::r])).times
            for s in range(0, len(x), self.eval_batch)
        ]
        layers = [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))] if parts else []
        out = layers[-1] if layers else np.zeros((0, 3))
        opts = dict(self.loss)
        kind = opts.pop("loss", "mse")
        res = loss_and_grad(out, np.asarray(y), kind, **opts)
        n = len(y)
        return {
            "loss": float(res["loss"]),
            "accuracy": res["correct"] / n if n else 0.0,
            "correct": int(res["correct"]),
            "samples": n,
            "silent_samples": int(res["silent"]),
            "silent_fraction": [float(np.isinf(t).mean()) if t.size else 0.0 for t in layers],
            "output_times": out,
            "retries": self.retries - retries0,
            "dropped_events": self.dropped_events - dropped0,
        }


def make_backend(spec: str, cfg: Config, token_file: str | os.PathLike[str] | None = None) -> ChipBackend:
    """Build the backend of ``delgrad train --backend SPEC`` (deprecated: ``delgrad_rs.training.make_backend``).

    Parameters
    ----------
    spec : str
        ``emulator`` or ``remote://HOST:PORT``.
    cfg : delgrad_rs.config.Config
        The run configuration.
    token_file : path-like, optional
        File holding the server token.

    Returns
    -------
    ChipBackend
        The backend.
    """
    _warn_once("delgrad_hw.training.make_backend is deprecated; use delgrad_rs.training.make_backend")
    from delgrad_rs.training import make_backend as registered

    backend = registered(spec, cfg, token_file=token_file)
    if not isinstance(backend, ChipBackend):
        raise ValueError(f"--backend: {spec!r} is not a chip backend")
    return backend


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, DeprecationWarning, stacklevel=3)
