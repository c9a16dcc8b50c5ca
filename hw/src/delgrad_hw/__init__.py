"""delgrad-hw: the hardware side of delgrad_rs.

The chip interface (:mod:`delgrad_hw.chip`), the driver wire protocol (:mod:`delgrad_hw.protocol`), the
experiment server that shares one chip between clients (:mod:`delgrad_hw.server`) and the remote chip
client (:mod:`delgrad_hw.client`), the BrainScaleS-2 facts (:mod:`delgrad_hw.bss2`: resources,
quantisation, placement), the emulated chip (:mod:`delgrad_hw.emulator`, running the noisy forward pass
of the delgrad_rs core), chip-in-the-loop training (:mod:`delgrad_hw.training`) and the backends
registered with ``delgrad train --backend`` (:mod:`delgrad_hw.backends`).
"""

from .bss2 import BSS2, Bss2Resources, PlacementError, quantise_config
from .chip import (
    PROTOCOL_VERSION,
    BadRequest,
    Chip,
    ChipConfig,
    ChipError,
    ChipInfo,
    ChipMismatch,
    ChipTimeout,
    Health,
    LinkError,
    RunResult,
    Timing,
    Unauthorized,
    config_hash,
    count_changed_entries,
    expand_inputs,
)
from .client import RemoteChip
from .emulator import EmulatedChip
from .server import ExperimentServer

__all__ = [
    "BSS2",
    "PROTOCOL_VERSION",
    "BadRequest",
    "Bss2Resources",
    "Chip",
    "ChipConfig",
    "ChipError",
    "ChipInfo",
    "ChipMismatch",
    "ChipTimeout",
    "EmulatedChip",
    "ExperimentServer",
    "Health",
    "LinkError",
    "PlacementError",
    "RemoteChip",
    "RunResult",
    "Timing",
    "Unauthorized",
    "config_hash",
    "count_changed_entries",
    "expand_inputs",
    "quantise_config",
]

__version__ = "0.1.0"
