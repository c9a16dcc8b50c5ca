"""Chip-in-the-loop training: the reference procedure of ``shared/HARDWARE.md`` on any :class:`Chip`.

Per batch, :class:`ChipBackend`

1. writes the trainer's float shadow parameters to the chip (the chip quantises; unchanged entries
   are not rewritten),
2. runs the batch as one spike train and reads the first spike of every neuron per sample slot,
3. repeats a stalled run (``Health.stall``) up to ``max_retries`` times, then fails loudly,
4. evaluates the exact gradients of the ideal model (nominal threshold, tau_m = tau_s) at the measured
   times and at the quantised weights and delays the chip ran
   (``Trainer.step_from_times(..., at=quantised)``): straight-through for weights and delays; neurons
   the ideal model would leave silent get zero gradient,
5. lets the trainer bump weights when more than ``training.bump_limits`` (5 % on hardware) of a
   layer's spikes are missing, else take the Adam step on the shadow parameters,
6. checks that every result comes from the chip the run started on (:class:`ChipMismatch`).

Validation and test accuracies are measured on the chip as well.

Any :class:`Chip` is driven through ``configure`` and ``run``. An in-process
:class:`~delgrad_hw.emulator.EmulatedChip` takes a shorter road with the same results: the chip
quantises and writes the trainer's parameters in one core call once it holds a configuration of the
trainer (``EmulatedChip.write_trainer``; otherwise ``EmulatedChip.write``, which defers the hash),
and runs the batch and takes the step in another (``EmulatedChip.run_and_step``), its quantised
network serving as the ideal model of the gradients.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .bss2 import BSS2, Bss2Resources, quantise_config
from .chip import Chip, ChipConfig, ChipError, ChipMismatch, RunResult
from .emulator import EmulatedChip

__all__ = ["ChipBackend", "StallError", "chip_config_from_params", "make_backend"]

FloatArray = npt.NDArray[np.float64]


def _core() -> Any:
    from delgrad_rs import _core

    return _core


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
    syn: list[FloatArray | None] = []
    for i, p in enumerate(layers):
        d = p.get("d_syn")
        if d is not None and i == 0 and int(p.get("delay_group", 1)) > 1:
            d = np.repeat(np.asarray(d, dtype=float), int(p["delay_group"]), axis=1)
        syn.append(None if d is None else np.asarray(d, dtype=float))

    def opt(key: str) -> list[FloatArray | None]:
        return [None if p.get(key) is None else np.asarray(p[key], dtype=float) for p in layers]

    return ChipConfig(
        weights=[np.asarray(p["w"], dtype=float) for p in layers],
        axonal_delays=opt("d_axo"),
        synaptic_delays=syn,
        dendritic_delays=opt("d_den"),
        theta=float(theta[0]),
        tau_m=tau_m,
        tau_s=tau_s,
        input_repeat=input_repeat,
    )


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


def _quantised_params(layers: list[dict[str, Any]], q: ChipConfig) -> list[dict[str, Any]]:
    """Return the core layer parameters with the quantised weights and delays the chip ran."""
    out = []
    assert q.axonal_delays is not None and q.synaptic_delays is not None and q.dendritic_delays is not None
    for i, p in enumerate(layers):
        d = {k: v for k, v in p.items() if v is not None}
        d["w"] = q.weights[i]
        if p.get("d_axo") is not None:
            d["d_axo"] = q.axonal_delays[i]
        if p.get("d_syn") is not None:
            syn = q.synaptic_delays[i]
            assert syn is not None
            g = int(p.get("delay_group", 1))
            d["d_syn"] = syn[:, ::g] if (i == 0 and g > 1) else syn
        if p.get("d_den") is not None:
            d["d_den"] = q.dendritic_delays[i]
        out.append(d)
    return out


class ChipBackend:
    """Training and evaluation forward passes on a chip (a ``delgrad_rs.training.Backend``).

    Parameters
    ----------
    chip : Chip
        The chip (``EmulatedChip``, ``RemoteChip`` or a real backend).
    input_repeat : int
        Input duplication (the trainer's inputs have ``n_groups * input_repeat`` columns).
    loss : dict
        Loss options of ``delgrad_rs._core.loss_and_grad`` for evaluation (``loss``, ``delta``,
        ``xi``, ``alpha``, ``beta``, ``silent_loss``).
    max_retries : int
        Repetitions of a stalled run before :class:`StallError`.
    eval_batch : int
        Samples per evaluation run.
    resources : Bss2Resources
        The quantisation rules of the chip (for the gradients at the quantised parameters).
    name : str
        Backend name recorded in the run directory.
    epochs_in_core : bool
        On the in-process emulator, train each epoch's steps in one core call
        (:meth:`EmulatedChip.train_epoch`) once the chip holds a configuration of the trainer's
        layout: the same results as step by step, without Python between the steps. False: one
        core call per step (for comparisons).

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
        resources: Bss2Resources = BSS2,
        name: str = "chip",
        epochs_in_core: bool = True,
    ) -> None:
        if input_repeat < 1:
            raise ValueError(f"input_repeat: must be >= 1, got {input_repeat}")
        if max_retries < 0:
            raise ValueError(f"max_retries: must be >= 0, got {max_retries}")
        if eval_batch < 1:
            raise ValueError(f"eval_batch: must be >= 1, got {eval_batch}")
        self.chip = chip
        self.input_repeat = int(input_repeat)
        self.loss = dict(loss or {"loss": "mse", "delta": 0.3})
        self.max_retries = int(max_retries)
        self.eval_batch = int(eval_batch)
        self.resources = resources
        self.name = name
        self.epochs_in_core = bool(epochs_in_core)
        self.chip_id = chip.info().chip_id
        self.retries = 0
        self.dropped_events = 0
        # the structure of the last shadow parameters and their validated configuration (the
        # checks of chip_config_from_params run once per structure, not per step)
        self._structure: tuple[Any, ...] | None = None
        self._checked: ChipConfig | None = None
        self._trainer: Any = None  # the trainer whose parameters have the structure `_structure`
        # An in-process emulator runs a batch and the step in one core call (EmulatedChip.run_and_step);
        # with this backend's quantisation it already holds the ideal model at the quantised
        # parameters (its `network`), used for the gradients when its layout is the trainer's.
        self._fused = isinstance(chip, EmulatedChip)
        self._local = self._fused and chip.resources == resources  # type: ignore[attr-defined]
        self._local_layout: tuple[tuple[Any, ...] | None, bool] | None = None
        self._generation = -1  # the chip's `generation` after this backend's last write

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

    def _shadow_config(self, params: list[dict[str, Any]], trainer: Any = None) -> ChipConfig:
        """Return the chip configuration of the trainer's parameters (checked when their structure changes).

        A trainer's layout and neuron parameters never change (it trains weights and delays only):
        the structure of the parameters of the trainer seen last is not recomputed.
        """
        if trainer is None or trainer is not self._trainer:
            key = _structure(params)
            if key != self._structure or self._checked is None:
                cfg = chip_config_from_params(params, self.input_repeat)
                self._structure, self._checked = key, cfg
                self._trainer = trainer
                return cfg
            self._trainer = trainer
        # Same shapes, delay kinds and neuron parameters as a configuration that passed the checks;
        # the core network holds finite weights and delays >= 0: only the values are new.
        c = self._checked
        assert c is not None  # set with `_structure`
        syn: list[FloatArray | None] = []
        for i, p in enumerate(params):
            d = p.get("d_syn")
            if d is not None and i == 0 and int(p.get("delay_group", 1)) > 1:
                d = np.repeat(d, int(p["delay_group"]), axis=1)
            syn.append(d)
        return ChipConfig.unchecked(
            weights=[p["w"] for p in params],
            axonal_delays=[p.get("d_axo") for p in params],
            synaptic_delays=syn,
            dendritic_delays=[p.get("d_den") for p in params],
            theta=c.theta,
            tau_m=c.tau_m,
            tau_s=c.tau_s,
            input_repeat=c.input_repeat,
        )

    def _gradient_network(self, params: list[dict[str, Any]], cfg: ChipConfig) -> Any:
        """Return the ideal model at the quantised weights and delays the chip ran (``at`` of the step)."""
        if self._local:
            net = self.chip.network  # type: ignore[attr-defined]
            if self._local_layout is None or self._local_layout[0] != self._structure:
                self._local_layout = (self._structure, net is not None and _structure(net.params()) == self._structure)
            if self._local_layout[1]:
                return net
        # `at` only carries parameters (the trainer's threads run the step): one thread, no pool
        return _core().Network(_quantised_params(params, quantise_config(cfg, self.resources)), threads=1)

    def _step(self, trainer: Any, groups: FloatArray, x: FloatArray, y: npt.NDArray[Any], epoch: int) -> dict[str, Any]:
        """One chip-in-the-loop step: configure, run (with stall retries), step at the measured times."""
        if not self._fused:  # any Chip: configure, run, step_from_times
            params = trainer.network().params()
            cfg = self._shadow_config(params, trainer)
            self.chip.configure(cfg)
            res = self._run_groups(groups)
            at = self._gradient_network(params, cfg)
            report: dict[str, Any] = trainer.step_from_times(x, res.times, y, epoch, at=at)
            return report
        chip: EmulatedChip = self.chip  # type: ignore[assignment]
        if self._writes_trainer(trainer):
            # the chip holds this trainer's configuration and its network is the `at` of the step:
            # quantise and write in one core call, then run and step in another
            chip.write_trainer(trainer)
            at = None
        else:
            params = trainer.network().params()
            cfg = self._shadow_config(params, trainer)
            chip.write(cfg)  # configure without computing the hash
            at = self._gradient_network(params, cfg)
        self._generation = chip.generation
        return self._run_and_step(groups, trainer, x, y, epoch, at)

    def _writes_trainer(self, trainer: Any) -> bool:
        """Whether the chip holds the configuration this backend last wrote for ``trainer``, in its layout."""
        return (
            self._local
            and trainer is self._trainer
            and self._local_layout == (self._structure, True)
            and self.chip.generation == self._generation  # type: ignore[attr-defined]
        )

    def _configure(self, trainer: Any) -> tuple[list[dict[str, Any]], ChipConfig]:
        params = trainer.network().params()
        cfg = self._shadow_config(params, trainer)
        self.chip.configure(cfg)
        return params, cfg

    def _run_and_step(
        self, groups: FloatArray, trainer: Any, x: FloatArray, y: npt.NDArray[Any], epoch: int, at: Any
    ) -> dict[str, Any]:
        """Run a batch and step on the in-process emulator (stall retries as :meth:`_run_groups`)."""
        chip: EmulatedChip = self.chip  # type: ignore[assignment]
        for attempt in range(self.max_retries + 1):
            self._check_chip(chip.chip_id)
            health, r = chip.run_and_step(groups, trainer, x, y, epoch, at=at)
            self.dropped_events += health.dropped_events
            if r is not None:
                return r
            if attempt < self.max_retries:
                self.retries += 1
        raise self._stalled()

    def _run(self, x: FloatArray) -> RunResult:
        return self._run_groups(np.ascontiguousarray(x[:, :: self.input_repeat]))

    def _run_groups(self, groups: FloatArray) -> RunResult:
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

    def _epoch_in_core(self, trainer: Any) -> bool:
        """Whether the in-process emulator can train the epoch in one core call.

        It can when it holds a configuration of the trainer's layout and neuron parameters.
        """
        if not (self._local and self.epochs_in_core):
            return False
        net = self.chip.network  # type: ignore[attr-defined]
        return net is not None and _structure(net.params()) == _structure(trainer.network().params())

    def _core_epoch(
        self, trainer: Any, groups: FloatArray, x: FloatArray, y: npt.NDArray[Any], batch: int, epoch: int
    ) -> list[dict[str, Any]]:
        """Train the epoch's steps in one core call (:meth:`EmulatedChip.train_epoch`); return their results."""
        chip: EmulatedChip = self.chip  # type: ignore[assignment]
        self._check_chip(chip.chip_id)
        out = chip.train_epoch(trainer, groups, x, y, batch, epoch, self.max_retries)
        self.retries += int(out["retries"])
        self.dropped_events += int(out["dropped_events"])
        self._generation = chip.generation
        if out["stalled"]:
            raise self._stalled()
        steps: list[dict[str, Any]] = out["steps"]
        return steps

    def train_epoch(
        self, trainer: Any, x: FloatArray, y: npt.NDArray[Any], order: npt.NDArray[Any], batch: int, epoch: int
    ) -> dict[str, Any]:
        """Train one epoch chip-in-the-loop (same keys as ``Trainer.train_epoch``).

        Parameters
        ----------
        trainer : delgrad_rs._core.Trainer
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
        loss_sum = correct = samples = bumps = 0.0
        silent: np.ndarray | None = None
        retries0, dropped0 = self.retries, self.dropped_events
        order = np.asarray(order)
        # the epoch's samples in order (the batches are contiguous views) and what the chip is sent
        xs, ys = x[order], y[order]
        gs = np.ascontiguousarray(xs[:, :: self.input_repeat])
        steps: Iterable[dict[str, Any]]
        if self._epoch_in_core(trainer):
            steps = self._core_epoch(trainer, gs, xs, ys, batch, epoch)
        else:
            steps = (
                self._step(trainer, gs[s : s + batch], xs[s : s + batch], ys[s : s + batch], epoch)
                for s in range(0, len(order), batch)
            )
        for r in steps:
            n = r["batch"]
            loss_sum += r["loss"] * n
            correct += r["correct"]
            samples += n
            bumps += r["bumped"] is not None
            f = np.asarray(r["silent_fraction"], dtype=float) * n
            silent = f if silent is None else silent + f
        return {
            "loss": loss_sum / max(samples, 1),
            "accuracy": correct / max(samples, 1),
            "samples": int(samples),
            "bumps": int(bumps),
            "silent_fraction": [] if silent is None else list(silent / max(samples, 1)),
            "retries": self.retries - retries0,
            "dropped_events": self.dropped_events - dropped0,
        }

    def evaluate(self, trainer: Any, x: FloatArray, y: npt.NDArray[Any]) -> dict[str, Any]:
        """Measure loss, accuracy and silent fractions on the chip.

        Parameters
        ----------
        trainer : delgrad_rs._core.Trainer
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
        from delgrad_rs import _core

        self._configure(trainer)
        retries0, dropped0 = self.retries, self.dropped_events
        parts = [self._run(x[s : s + self.eval_batch]).times for s in range(0, len(x), self.eval_batch)]
        layers = [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))] if parts else []
        out = layers[-1] if layers else np.zeros((0, 3))
        opts = dict(self.loss)
        kind = opts.pop("loss", "mse")
        r = _core.loss_and_grad(out, np.asarray(y), kind, **opts)
        n = len(y)
        return {
            "loss": float(r["loss"]),
            "accuracy": r["correct"] / n if n else 0.0,
            "correct": int(r["correct"]),
            "samples": n,
            "silent_samples": int(r["silent"]),
            "silent_fraction": [float(np.isinf(t).mean()) if t.size else 0.0 for t in layers],
            "output_times": out,
            "retries": self.retries - retries0,
            "dropped_events": self.dropped_events - dropped0,
        }


def make_backend(spec: str, cfg: Any, token_file: str | os.PathLike[str] | None = None) -> ChipBackend:
    """Build the backend of ``delgrad train --backend SPEC``.

    Parameters
    ----------
    spec : str
        ``emulator`` (an :class:`~delgrad_hw.emulator.EmulatedChip` with ``cfg.hardware.chip_id`` and
        seed ``cfg.hardware.chip_seed + cfg.seed``) or ``remote://HOST:PORT`` (a
        :class:`~delgrad_hw.client.RemoteChip`; token from ``token_file`` or ``DELGRAD_HW_TOKEN``).
    cfg : delgrad_rs.config.Config
        The run configuration.
    token_file : path-like, optional
        File holding the server token.

    Returns
    -------
    ChipBackend
        The backend.

    Raises
    ------
    ValueError
        For an unknown backend specification.
    """
    h, lo = cfg.hardware, cfg.loss
    loss = {
        "loss": lo.kind,
        "delta": lo.delta,
        "xi": lo.xi,
        "alpha": lo.alpha,
        "beta": lo.beta,
        "silent_loss": lo.silent_loss,
    }
    kw: dict[str, Any] = {
        "input_repeat": h.input_repeat,
        "loss": loss,
        "max_retries": h.max_retries,
        "eval_batch": h.eval_batch,
    }
    chip: Chip
    if spec == "emulator":
        from .emulator import EmulatedChip

        chip = EmulatedChip(h.chip_id, h.chip_seed + cfg.seed, threads=cfg.training.threads or None)
        return ChipBackend(chip, name="emulator", **kw)
    if spec.startswith("remote://"):
        from .client import RemoteChip

        chip = RemoteChip(spec, token_file=Path(token_file) if token_file is not None else None)
        return ChipBackend(chip, name="remote", **kw)
    raise ValueError(f"--backend: expected 'software', 'emulator' or 'remote://HOST:PORT', got {spec!r}")
