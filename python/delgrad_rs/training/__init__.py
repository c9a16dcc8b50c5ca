"""Training runs: the loop, its backends, checkpoints, metrics and run directories.

The loop (:mod:`~delgrad_rs.training.loop`), where its forward passes run
(:mod:`~delgrad_rs.training.backend`), checkpoints (:mod:`~delgrad_rs.training.checkpoint`), their
background writer (:mod:`~delgrad_rs.training.writer`), metric rows
(:mod:`~delgrad_rs.training.metrics`), what a configuration builds (:mod:`~delgrad_rs.training.build`)
and run directories (:mod:`~delgrad_rs.training.run`).
"""

from delgrad_rs.training.backend import (
    BACKEND_GROUP,
    Backend,
    BackendFactory,
    SoftwareBackend,
    backend_names,
    make_backend,
    recorded_backend,
)
from delgrad_rs.training.build import SPLITS, build_network, build_trainer, repeat_inputs, split_inputs
from delgrad_rs.training.checkpoint import CheckpointError, TrainState, load_checkpoint, save_checkpoint
from delgrad_rs.training.loop import fit
from delgrad_rs.training.metrics import metrics_frame
from delgrad_rs.training.run import evaluate_run, load_run

__all__ = [
    "BACKEND_GROUP",
    "SPLITS",
    "Backend",
    "BackendFactory",
    "CheckpointError",
    "SoftwareBackend",
    "TrainState",
    "backend_names",
    "build_network",
    "build_trainer",
    "evaluate_run",
    "fit",
    "load_checkpoint",
    "load_run",
    "make_backend",
    "metrics_frame",
    "recorded_backend",
    "repeat_inputs",
    "save_checkpoint",
    "split_inputs",
]
