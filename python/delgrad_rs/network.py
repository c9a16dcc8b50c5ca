"""A friendly Python face of the core network: construction, parameters, gradients, steps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from delgrad_rs import _core
from delgrad_rs._core import OptionError

DelayKindName = Literal["synaptic", "axonal", "dendritic"]
_DELAY_ALIASES = {
    "none": (),
    "syn": ("synaptic",),
    "synaptic": ("synaptic",),
    "axo": ("axonal",),
    "axonal": ("axonal",),
    "den": ("dendritic",),
    "dendritic": ("dendritic",),
    "all": ("synaptic", "axonal", "dendritic"),
}


def _size(v: object, arg: str) -> int:
    """Return a layer size given as a Python or numpy integer; other types are a TypeError naming ``arg``."""
    if isinstance(v, bool) or not isinstance(v, int | np.integer):
        raise TypeError(f"{arg}: expected an integer >= 1, got {type(v).__name__} {v!r}")
    return int(v)


def parse_delay_kinds(spec: str | Sequence[str] | None, arg: str = "delays") -> list[str]:
    """Normalise a delay specification to a list of kind names.

    Parameters
    ----------
    spec : str, sequence of str or None
        ``"none"``, ``"synaptic"``, ``"axonal"``, ``"dendritic"``, ``"all"``, a ``+``-joined
        combination such as ``"axonal+dendritic"``, or a list of these.
    arg : str
        Name of the argument in error messages.

    Returns
    -------
    list of str
        Unique kind names in the order ``synaptic``, ``axonal``, ``dendritic``.

    Raises
    ------
    OptionError
        For an unknown kind.

    """
    if spec is None:
        return []
    parts: list[str] = []
    items = [spec] if isinstance(spec, str) else list(spec)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{arg}: expected delay kind names (str), got {type(item).__name__}")
        for part in item.split("+"):
            name = part.strip().lower()
            if name not in _DELAY_ALIASES:
                raise OptionError(
                    f"option {arg}: unknown delay kind {part!r}; expected none, synaptic, axonal, dendritic, "
                    "all or a '+' combination"
                )
            parts.extend(_DELAY_ALIASES[name])
    return [k for k in ("synaptic", "axonal", "dendritic") if k in parts]


class Network:
    """A feed-forward spiking network coding in first-spike times, with exact gradients.

    Build one with :meth:`Network.create` (random initialisation) or :meth:`Network.from_params`
    (explicit parameters). Parameters are read and written as a list of per-layer dicts of
    numpy arrays through :attr:`params`.

    Several Python threads may use one network at once: each call computes with the parameters it
    started with, and setting :attr:`params` replaces them for the calls after it. Ctrl-C during a
    long call (many samples) raises ``KeyboardInterrupt`` within milliseconds; the network is
    unchanged.

    Parameters
    ----------
    core : delgrad_rs.hardware.CoreNetwork
        The compiled network this object wraps.

    """

    def __init__(self, core: _core.Network) -> None:
        self.core = core

    @classmethod
    def create(
        cls,
        sizes: Sequence[int],
        *,
        tau_m: float = 2.0,
        tau_s: float = 1.0,
        theta: float = 1.0,
        weight_mean: float | Sequence[float] = 1.0,
        weight_std: float | Sequence[float] = 1.0,
        delays: str | Sequence[str] | Sequence[Sequence[str]] | None = None,
        delay_group: int = 1,
        delay_param: Literal["sigmoid", "clip"] = "sigmoid",
        delay_shift: float = 0.0,
        delay_scale: float = 1.0,
        delay_init_mean: float = 0.0,
        delay_init_std: float = 0.25,
        seed: int = 0,
        threads: int | None = None,
    ) -> Network:
        """Create a randomly initialised network.

        Parameters
        ----------
        sizes : sequence of int
            ``[n_in, n_1, ..., n_L]``.
        tau_m, tau_s, theta : float
            Membrane and synaptic time constants and threshold of every neuron.
        weight_mean, weight_std : float or sequence of float
            Initial weights ``N(mean, std)``; one value for all layers or one per layer.
        delays : str, list of str, or list (one per layer) of str / list of str
            Trained delay kinds (see :func:`parse_delay_kinds`); a single spec applies to every
            projection.
        delay_group : int
            Consecutive inputs sharing one synaptic/axonal delay.
        delay_param : {"sigmoid", "clip"}
            ``d = shift + scale * sigmoid(p)`` or clipping at 0.
        delay_shift, delay_scale : float
            Parameters of the sigmoid parametrisation.
        delay_init_mean, delay_init_std : float
            Initial delay parameters ``p ~ N(mean, std)``.
        seed : int
            Seed of the initialisation (numpy ``RandomState`` semantics).
        threads : int or None
            Worker threads; None uses every core.

        Returns
        -------
        Network
            The new network.

        """
        sizes = [_size(s, f"sizes[{i}]") for i, s in enumerate(sizes)]
        if len(sizes) < 2:
            raise _core.InvalidValueError(f"sizes: expected [n_in, n_1, ...] with at least one layer, got {sizes}")
        n_layers = len(sizes) - 1

        def per_layer(v: float | Sequence[float], arg: str) -> list[float]:
            if isinstance(v, int | float):
                return [float(v)] * n_layers
            vals = [float(x) for x in v]
            if len(vals) != n_layers:
                raise _core.ShapeError(f"{arg}: expected shape [{n_layers}] (one per layer), got [{len(vals)}]")
            return vals

        means = per_layer(weight_mean, "weight_mean")
        stds = per_layer(weight_std, "weight_std")
        if delays is None or isinstance(delays, str):
            kinds = [parse_delay_kinds(delays)] * n_layers
        else:
            seq = list(delays)
            if all(isinstance(s, str) for s in seq):
                kinds = [parse_delay_kinds([str(s) for s in seq])] * n_layers
            else:
                if len(seq) != n_layers:
                    raise _core.ShapeError(f"delays: expected shape [{n_layers}] (one per layer), got [{len(seq)}]")
                kinds = [parse_delay_kinds(s, f"delays[{i}]") for i, s in enumerate(seq)]
        layers = [
            {
                "size": sizes[i + 1],
                "tau_m": tau_m,
                "tau_s": tau_s,
                "theta": theta,
                "weight_mean": means[i],
                "weight_std": stds[i],
                "delay_kinds": kinds[i],
                "delay_group": delay_group if i == 0 else 1,
                "delay_init_mean": delay_init_mean,
                "delay_init_std": delay_init_std,
            }
            for i in range(n_layers)
        ]
        core = _core.init_network(
            sizes[0],
            layers,
            delay_param=delay_param,
            delay_shift=delay_shift,
            delay_scale=delay_scale,
            seed=seed,
            threads=threads,
        )
        return cls(core)

    @classmethod
    def from_params(cls, layers: list[dict[str, Any]], *, threads: int | None = None) -> Network:
        """Create a network from explicit per-layer parameters.

        Parameters
        ----------
        layers : list of dict
            Keys ``w``, ``theta``, ``tau_m``, ``tau_s``, ``d_syn``, ``d_axo``, ``d_den``,
            ``delay_group`` (see :class:`delgrad_rs.hardware.CoreNetwork`).
        threads : int or None
            Worker threads; None uses every core.

        Returns
        -------
        Network
            The new network.

        """
        return cls(_core.Network(layers, threads=threads))

    @property
    def sizes(self) -> list[int]:
        """Layer sizes ``[n_in, n_1, ..., n_L]``."""
        return self.core.sizes

    @property
    def params(self) -> list[dict[str, Any]]:
        """Per-layer parameters (copies); assign a list of dicts to replace them."""
        return self.core.params()

    @params.setter
    def params(self, layers: list[dict[str, Any]]) -> None:
        self.core.set_params(layers)

    def forward(self, x: ArrayLike, method: Literal["auto", "bracket"] = "auto") -> list[NDArray[np.float64]]:
        """Spike times of every layer.

        Parameters
        ----------
        x : array_like, shape (batch, n_in)
            Input spike times (+inf: silent).
        method : {"auto", "bracket"}
            Closed forms where available, or bracketing everywhere.

        Returns
        -------
        list of ndarray
            ``[batch, n_l]`` per layer, +inf for silent neurons.

        """
        return self.core.forward(x, method=method)

    def grad_from_times(
        self,
        x: ArrayLike,
        layer_times: list[ArrayLike],
        y: ArrayLike,
        loss: Literal["mse", "ce"] = "mse",
        *,
        max_dw_norm: float | None = None,
        check_given_times: bool = False,
        **loss_options: float,
    ) -> tuple[float, dict[str, Any]]:
        """Loss and exact gradients at given spike times of every layer (e.g. measured on a chip).

        Parameters
        ----------
        x : array_like, shape (batch, n_in)
            Input spike times.
        layer_times : list of array_like
            Spike times of every layer ``[batch, n_l]``.
        y : array_like of int, shape (batch,)
            Labels.
        loss : {"mse", "ce"}
            The loss; ``loss_options`` (``delta``, ``xi``, ``alpha``, ``beta``, ``silent_loss``)
            set its parameters.
        max_dw_norm : float or None
            The per-sample weight-gradient limit of the reference.
        check_given_times : bool
            Zero the gradients of neurons the ideal model would leave silent.
        **loss_options : float
            Loss parameters.

        Returns
        -------
        loss : float
            Mean loss over the batch.
        grads : dict
            ``layers`` (per-layer dicts ``w``, ``theta``, ``d_syn``, ``d_axo``, ``d_den``) of the
            batch-mean loss, ``input`` (dL/dt of the inputs), ``invalid`` and ``clipped`` counts.

        """
        times = list(layer_times)
        if not times:
            raise _core.ShapeError("layer_times: expected one array per layer, got none")
        report = _core.loss_and_grad(times[-1], y, loss, **loss_options)  # type: ignore[arg-type]
        dl = report["dl_dt"] / max(1, report["dl_dt"].shape[0])
        grads = self.core.backward(x, times, dl, max_dw_norm=max_dw_norm, check_given_times=check_given_times)
        return float(report["loss"]), dict(grads)

    def loss_and_grad(
        self, x: ArrayLike, y: ArrayLike, loss: Literal["mse", "ce"] = "mse", **options: Any
    ) -> tuple[float, dict[str, Any]]:
        """Forward pass, loss and exact gradients of the batch-mean loss.

        Parameters
        ----------
        x : array_like, shape (batch, n_in)
            Input spike times.
        y : array_like of int, shape (batch,)
            Labels.
        loss : {"mse", "ce"}
            The loss.
        **options : Any
            Passed to :meth:`grad_from_times`.

        Returns
        -------
        loss : float
            Mean loss.
        grads : dict
            See :meth:`grad_from_times`.

        """
        return self.grad_from_times(x, list(self.forward(x)), y, loss, **options)

    def trainer(self, **config: Any) -> _core.Trainer:
        """Create a core trainer (Adam + stabilisers) for this network.

        Parameters
        ----------
        **config : Any
            Keyword arguments of :class:`delgrad_rs.Trainer`.

        Returns
        -------
        delgrad_rs.Trainer
            A trainer starting from the current parameters.

        """
        return _core.Trainer(self.core, **config)

    def train_step(self, x: ArrayLike, y: ArrayLike, trainer: _core.Trainer, epoch: int = 0) -> dict[str, Any]:
        """One training step with ``trainer``; copies the updated parameters into this network.

        Parameters
        ----------
        x : array_like, shape (batch, n_in)
            Input spike times.
        y : array_like of int
            Labels.
        trainer : delgrad_rs.Trainer
            From :meth:`trainer`; it keeps the optimiser state between steps.
        epoch : int
            Epoch (selects the StepLR learning rate).

        Returns
        -------
        dict
            The step report (loss, accuracy, silent fractions, bump, counts).

        """
        report = trainer.step(x, y, epoch)
        # The trainer's network is a copy with the same executor: take it, no parameter round trip.
        self.core = trainer.network()
        return dict(report)

    def __repr__(self) -> str:
        return f"Network(sizes={self.sizes})"
