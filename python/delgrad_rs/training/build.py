"""What a configuration builds: the network, its trainer and the encoded inputs of every split."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from delgrad_rs._core import Trainer
from delgrad_rs.config import Config
from delgrad_rs.datasets import Split, dataset_sizes, load_encoded
from delgrad_rs.network import Network, parse_delay_kinds

#: The data set's splits, in the order runs report them.
SPLITS: tuple[Split, ...] = ("train", "validation", "test")


def repeat_inputs(t: NDArray[np.float64], repeat: int) -> NDArray[np.float64]:
    """Feed every input ``repeat`` times (copies adjacent): ``[n, 4] -> [n, 4 * repeat]``."""
    return np.repeat(t, repeat, axis=1) if repeat > 1 else t


def split_inputs(cfg: Config, split: Split) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Return the encoded input times of a split (inputs repeated ``hardware.input_repeat`` times).

    Parameters
    ----------
    cfg : Config
        The configuration (``[data]`` and ``[hardware]``).
    split : str
        ``train``, ``validation`` or ``test``.

    Returns
    -------
    tuple of numpy.ndarray
        Times ``[n, n_in * input_repeat]`` and labels ``[n]``.

    """
    t, y = load_encoded(cfg.data, split)
    return repeat_inputs(t, cfg.hardware.input_repeat), y


def build_network(cfg: Config, threads: int | None = None) -> Network:
    """Create the randomly initialised network a configuration describes.

    Parameters
    ----------
    cfg : Config
        The configuration.
    threads : int or None
        Worker threads (None: ``cfg.training.threads``, 0 = all cores).

    Returns
    -------
    Network
        Data set inputs (plus bias spikes) -> hidden layers -> one output per class.

    """
    n = cfg.network
    n_in, n_out = dataset_sizes(cfg.data)
    return Network.create(
        [n_in * cfg.hardware.input_repeat, *n.hidden, n_out],
        tau_m=n.tau_m,
        tau_s=n.tau_s,
        theta=n.theta,
        weight_mean=n.layer_weight_mean or n.weight_mean,
        weight_std=n.layer_weight_std or n.weight_std,
        delays=parse_delay_kinds(n.delays, "network.delays"),
        delay_group=n.delay_group,
        delay_param="clip" if cfg.delays.param == "clip" else "sigmoid",
        delay_shift=cfg.delays.shift,
        delay_scale=cfg.delays.scale,
        delay_init_mean=cfg.delays.init_mean,
        delay_init_std=cfg.delays.init_std,
        seed=cfg.seed,
        threads=cfg.training.threads if threads is None else threads,
    )


def build_trainer(cfg: Config, net: Network, threads: int | None = None) -> Trainer:
    """Create the core trainer for ``net`` with the configuration's hyperparameters.

    Parameters
    ----------
    cfg : Config
        The configuration.
    net : Network
        The network to train (copied).
    threads : int or None
        Worker threads (None: those of ``net``).

    Returns
    -------
    Trainer
        The trainer.

    """
    lo, o, t = cfg.loss, cfg.optimizer, cfg.training
    return Trainer(
        net.core,
        loss="ce" if lo.kind == "ce" else "mse",
        delta=lo.delta,
        xi=lo.xi,
        alpha=lo.alpha,
        beta=lo.beta,
        silent_loss=lo.silent_loss,
        tie_rule="first" if lo.tie_rule == "first" else "wrong",
        lr_weights=o.lr_weights,
        lr_delays=o.lr_delays,
        step_size=o.step_size,
        gamma=o.gamma,
        adam_beta1=o.beta1,
        adam_beta2=o.beta2,
        adam_eps=o.eps,
        max_dw_norm=t.max_dw_norm if t.max_dw_norm > 0 else None,
        bump=t.bump,
        bump_limits=list(t.bump_limits),
        delay_param="clip" if cfg.delays.param == "clip" else "sigmoid",
        delay_shift=cfg.delays.shift,
        delay_scale=cfg.delays.scale,
        gradient_slope="nominal" if cfg.hardware.gradient_slope == "nominal" else "measured",
        threads=threads,
    )


__all__ = ["SPLITS", "build_network", "build_trainer", "repeat_inputs", "split_inputs"]
