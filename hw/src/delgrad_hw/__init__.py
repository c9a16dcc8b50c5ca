"""delgrad-hw: the hardware side of delgrad_rs.

The chip interface (:mod:`delgrad_hw.chip`), the driver wire protocol (:mod:`delgrad_hw.protocol`), the
experiment server that shares one chip between clients (:mod:`delgrad_hw.server`) and the remote chip
client (:mod:`delgrad_hw.client`). The BrainScaleS-2 emulator lives in :mod:`delgrad_hw.emulator`.
"""

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
from .server import ExperimentServer

__all__ = [
    "PROTOCOL_VERSION",
    "BadRequest",
    "Chip",
    "ChipConfig",
    "ChipError",
    "ChipInfo",
    "ChipMismatch",
    "ChipTimeout",
    "ExperimentServer",
    "Health",
    "LinkError",
    "RemoteChip",
    "RunResult",
    "Timing",
    "Unauthorized",
    "config_hash",
    "count_changed_entries",
    "expand_inputs",
]

__version__ = "0.1.0"
