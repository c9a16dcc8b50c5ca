"""delgrad_rs: exact event-based gradients for the weights and delays of spiking neural networks.

The heavy lifting (forward pass, exact backward pass, losses, Adam, the Yin-Yang data set) is done
by the Rust core in :mod:`delgrad_rs._core`; this package adds a friendly network class, the
training loop with metrics and checkpoints (:mod:`delgrad_rs.training`), the typed hardware API
of the core for chip packages (:mod:`delgrad_rs.hardware`), plots and the ``delgrad``
command-line tool.
"""

from delgrad_rs import conformance, datasets, hardware
from delgrad_rs._core import (
    AllocationError,
    DelgradError,
    DivergedError,
    InvalidValueError,
    OptionError,
    ShapeError,
    Trainer,
    encode_times,
    init_network,
    loss_and_grad,
    yin_yang,
)
from delgrad_rs._core import __version__ as __version__
from delgrad_rs.config import Config, ConfigError, load_config
from delgrad_rs.network import Network
from delgrad_rs.training import CheckpointError, evaluate_run, fit, load_checkpoint

__all__ = [
    "AllocationError",
    "CheckpointError",
    "Config",
    "ConfigError",
    "DelgradError",
    "DivergedError",
    "InvalidValueError",
    "Network",
    "OptionError",
    "ShapeError",
    "Trainer",
    "conformance",
    "datasets",
    "encode_times",
    "hardware",
    "evaluate_run",
    "fit",
    "init_network",
    "load_checkpoint",
    "load_config",
    "loss_and_grad",
    "yin_yang",
]
