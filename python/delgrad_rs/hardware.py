"""The core's hardware side, typed, for chip packages (``delgrad-hw``) and chip-in-the-loop training.

The model is described in ``docs/hardware.md``. What the core offers:

* :class:`Grid`, a chip's weight and delay grid, :func:`changed_entries`, the number of entries a
  chip rewrites from one array to another, and :meth:`Trainer.quantised_network`, which
  puts a trainer's network on it and counts the entries that differ from the network on the chip;
* :func:`hardware_forward` (one noisy run of an emulated BrainScaleS-2 chip), :func:`chip_pattern`
  (a chip's fixed pattern) and :func:`hardware_noise_defaults` (the temporal-noise parameters, by
  name, with their reference values);
* the chip-in-the-loop steps of :class:`Trainer`: :meth:`~Trainer.step_from_times` (at measured
  times, gradients at the network the chip ran; any chip) and :meth:`~Trainer.emulated_epoch` (an
  epoch's runs on an emulated chip and its steps in one call), and :func:`epoch_totals`, the totals
  of an epoch's steps as :meth:`Trainer.train_epoch` reports them;
* :class:`CoreNetwork`, the core's network (what a chip runs; :attr:`delgrad_rs.Network.core`).

The typed dicts of the results (``StepResult``, ``EmulatedEpoch``, ``HardwareRun``, ``ChipPattern``)
can be imported from here under ``typing.TYPE_CHECKING``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from delgrad_rs._core import (
    Grid,
    Trainer,
    changed_entries,
    chip_pattern,
    epoch_totals,
    hardware_forward,
    hardware_noise_defaults,
)
from delgrad_rs._core import Network as CoreNetwork

if TYPE_CHECKING:  # the result dicts (typed dicts of the stubs) exist for the type checker only
    from delgrad_rs._core import _ChipPattern, _EmulatedEpoch, _HardwareRun, _StepResult

    ChipPattern = _ChipPattern
    EmulatedEpoch = _EmulatedEpoch
    HardwareRun = _HardwareRun
    StepResult = _StepResult


__all__ = [
    "CoreNetwork",
    "Grid",
    "Trainer",
    "changed_entries",
    "chip_pattern",
    "epoch_totals",
    "hardware_forward",
    "hardware_noise_defaults",
]
