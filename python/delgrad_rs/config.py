"""TOML run configurations, validated strictly: unknown keys and wrong types are errors naming the key."""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from delgrad_rs import _core
from delgrad_rs._core import OptionError


class ConfigError(OptionError):
    """A configuration is invalid; the message names the key (e.g. ``training.epochs``)."""


@dataclass
class NetworkConfig:
    """Architecture and initialisation (``[network]``).

    ``layer_weight_mean`` / ``layer_weight_std``, when not empty, give one initial weight
    mean / standard deviation per layer (hidden layers first, then the output layer) and replace
    ``weight_mean`` / ``weight_std``.
    """

    hidden: list[int] = field(default_factory=lambda: [30])
    tau_m: float = 2.0
    tau_s: float = 1.0
    theta: float = 1.0
    weight_mean: float = 1.0
    weight_std: float = 1.0
    delays: list[str] = field(default_factory=list)
    delay_group: int = 1
    layer_weight_mean: list[float] = field(default_factory=list)
    layer_weight_std: list[float] = field(default_factory=list)


@dataclass
class DelayConfig:
    """Delay parametrisation ``d = shift + scale * sigmoid(p)`` and its initialisation (``[delays]``)."""

    param: str = "sigmoid"
    shift: float = 0.0
    scale: float = 1.0
    init_mean: float = 0.0
    init_std: float = 0.25


#: The names of ``loss.tie_rule`` (how a tie between the earliest output spikes is classified).
TIE_RULES: tuple[str, ...] = ("wrong", "first")


@dataclass
class LossConfig:
    """The loss (``[loss]``).

    ``tie_rule`` classifies a tie between the earliest output spikes in every accuracy:
    ``"wrong"`` (the default) counts it as wrong, ``"first"`` takes the lowest tied class (as the
    reference code's argmin). Silent outputs are wrong under both.
    """

    kind: str = "mse"
    delta: float = 0.2
    xi: float = 0.2
    alpha: float = 0.005
    beta: float = 1.0
    silent_loss: float = 100.0
    tie_rule: str = TIE_RULES[0]


@dataclass
class OptimizerConfig:
    """Adam with per-group learning rates and StepLR (``[optimizer]``)."""

    kind: str = "adam"
    lr_weights: float = 0.01
    lr_delays: float = 0.003
    step_size: int = 20
    gamma: float = 0.95
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8


@dataclass
class TrainingConfig:
    """Loop settings and stabilisers (``[training]``).

    ``save_every``: write ``last.npz``, ``best.npz`` and the metrics files every this many epochs
    (and at the end or an interruption) instead of every epoch; sweeps use it to save I/O. A run
    killed hard between two saves resumes from the last save and repeats those epochs exactly.
    """

    epochs: int = 300
    batch_size: int = 150
    max_dw_norm: float = 0.2
    bump: float = 5e-4
    bump_limits: list[float] = field(default_factory=list)  # empty: the core's default for the depth
    checkpoint_every: int = 10
    save_every: int = 1
    silent_patience: int = 20
    threads: int = 0


@dataclass
class DataConfig:
    """Data set and input encoding (``[data]``).

    ``dataset`` is ``"yin_yang"`` (4 inputs, 3 classes), ``"digits"`` (the bundled 8x8 digits, 64
    inputs, 10 classes; see :func:`delgrad_rs.datasets.digits`) or ``"idx"``: images and labels in the
    IDX format of MNIST, Fashion-MNIST or EMNIST, from the files ``train_images``, ``train_labels``,
    ``test_images`` and ``test_labels`` (gzip or not; relative paths are relative to the working
    directory; nothing is downloaded). Their images are cut to the central ``crop`` x ``crop`` pixels
    (0: not cut), resized to ``image_size`` x ``image_size`` (0: as stored), latency-encoded (brighter =
    earlier) and flattened; ``validation_size`` training samples, chosen by a permutation seeded with
    ``split_seed``, are held out for validation; ``classes`` is the number of output neurons.
    ``bias_times`` adds one input per entry that spikes at that fixed time for every sample (the 2021
    configuration uses ``[0.9]``).
    """

    dataset: str = "yin_yang"
    t_early: float = 0.15
    t_late: float = 2.0
    bias_times: list[float] = field(default_factory=list)
    train_images: str = ""
    train_labels: str = ""
    test_images: str = ""
    test_labels: str = ""
    crop: int = 0
    image_size: int = 0
    validation_size: int = 10000
    split_seed: int = 0
    classes: int = 10


#: The choices of the chip-in-the-loop host recipe (``[hardware]``), the default first.
GRADIENT_WEIGHTS: tuple[str, ...] = ("quantised", "float")
GRADIENT_SLOPES: tuple[str, ...] = ("measured", "nominal")
CHIP_PER_RUN: tuple[str, ...] = ("shared", "new")

#: The ``[hardware]`` keys of the reference code's chip-in-the-loop procedure (docs/hardware.md,
#: "Chip-in-the-loop training"); ``examples/configs/hwaware_*_reference.toml`` set them.
REFERENCE_RECIPE: dict[str, Any] = {
    "gradient_weights": "float",
    "gradient_slope": "nominal",
    "clamp_float_weights": True,
    "chip_per_run": "new",
    "eval_batch": 200,
}


@dataclass
class HardwareConfig:
    """Input duplication, the chip used by ``delgrad train --backend`` and the host recipe (``[hardware]``).

    ``input_repeat`` feeds every network input that many times (the first layer then has
    ``4 * input_repeat`` inputs; set ``network.delay_group`` to it to share delays across copies).
    The emulator backend is the chip ``chip_id`` with temporal-noise seed ``chip_seed + seed``;
    a stalled run is repeated up to ``max_retries`` times; evaluation runs batches of ``eval_batch``,
    each with its own draw of the per-batch noise.
    The emulator's noise parameters are multiplied by ``noise_scale`` (0: no noise; see
    ``docs/hardware.md``).

    The host side of chip-in-the-loop training (docs/hardware.md, "Chip-in-the-loop training";
    the defaults are the project's recipe, :data:`REFERENCE_RECIPE` the reference code's):
    ``gradient_weights`` takes the gradient at the ``"quantised"`` weights and delays the chip ran
    or at the ``"float"`` shadow ones; ``gradient_slope`` divides by the ``"measured"`` slope of the
    ideal potential at the measured time or the ``"nominal"`` one (the nominal threshold in place
    of the potential); ``clamp_float_weights`` clamps the float shadow weights to the chip's weight
    range after every batch; ``chip_per_run`` trains every seed on the chip ``chip_id``
    (``"shared"``) or on a chip of its own, ``"<chip_id>/seed-<seed>"`` (``"new"``: a new fixed
    pattern per seed; the emulator only).
    """

    input_repeat: int = 1
    chip_id: str = "bss2-emu-0"
    chip_seed: int = 0
    max_retries: int = 5
    eval_batch: int = 1000
    noise_scale: float = 1.0
    gradient_weights: str = GRADIENT_WEIGHTS[0]
    gradient_slope: str = GRADIENT_SLOPES[0]
    clamp_float_weights: bool = False
    chip_per_run: str = CHIP_PER_RUN[0]

    def run_chip_id(self, seed: int) -> str:
        """Return the id of the chip a run with ``seed`` trains on (``chip_per_run``).

        Parameters
        ----------
        seed : int
            The run's seed.

        Returns
        -------
        str
            ``chip_id`` (``"shared"``) or ``"<chip_id>/seed-<seed>"`` (``"new"``).

        """
        return self.chip_id if self.chip_per_run == "shared" else f"{self.chip_id}/seed-{seed}"


@dataclass
class Config:
    """A complete run configuration."""

    name: str = "run"
    seed: int = 0
    network: NetworkConfig = field(default_factory=NetworkConfig)
    delays: DelayConfig = field(default_factory=DelayConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    data: DataConfig = field(default_factory=DataConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as plain nested dicts (TOML/JSON-serialisable)."""
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        """Return the configuration as TOML text that :func:`load_config` reads back."""
        d = self.to_dict()
        lines = [f"{k} = {_toml_value(v)}" for k, v in d.items() if not isinstance(v, dict)]
        for section, values in d.items():
            if isinstance(values, dict):
                lines.append(f"\n[{section}]")
                lines.extend(f"{k} = {_toml_value(v)}" for k, v in values.items())
        return "\n".join(lines) + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


def _check_type(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"option {key}: expected a list, got {type(value).__name__} {value!r}")
        return [_check_type(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        raise TypeError("unions are not used in configs")
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"option {key}: expected a number, got {type(value).__name__} {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"option {key}: expected a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"option {key}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"option {key}: expected true or false, got {type(value).__name__} {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"option {key}: expected a string, got {type(value).__name__} {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp}")


_TYPE_HINTS: dict[type, dict[str, Any]] = {}


def _type_hints(cls: type) -> dict[str, Any]:
    """Return the field types of a config section (resolved once: a sweep builds hundreds of configs)."""
    hints = _TYPE_HINTS.get(cls)
    if hints is None:
        hints = _TYPE_HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _build(cls: type[Any], data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"option {prefix}: expected a table, got {type(data).__name__}")
    hints = _type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            where = f"{prefix}.{key}" if prefix else key
            raise ConfigError(f"option {where}: unknown key; expected one of {', '.join(sorted(known))}")
    kwargs: dict[str, Any] = {}
    for name in known:
        if name not in data:
            continue
        where = f"{prefix}.{name}" if prefix else name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, data[name], where)  # type: ignore[arg-type]
        else:
            kwargs[name] = _check_type(data[name], tp, where)
    return cls(**kwargs)


def _require(cond: bool, key: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"option {key}: {message}")


def validate(cfg: Config) -> Config:
    """Check value ranges and option names of a configuration.

    Parameters
    ----------
    cfg : Config
        The configuration.

    Returns
    -------
    Config
        ``cfg`` itself.

    Raises
    ------
    ConfigError
        Naming the first invalid key.

    """
    _require(0 <= cfg.seed < 2**32, "seed", f"expected 0 <= seed < 2**32, got {cfg.seed}")
    n_layers = len(cfg.network.hidden) + 1
    _check_network(cfg.network)
    _check_delays(cfg.delays)
    _check_loss_and_optimizer(cfg.loss, cfg.optimizer)
    _check_training(cfg.training, n_layers)
    _check_layer_weights(cfg.network, n_layers)
    _check_hardware(cfg.hardware, cfg.network)
    _check_data(cfg.data)
    return cfg


def _check_network(n: NetworkConfig) -> None:
    from delgrad_rs.network import parse_delay_kinds

    _require(all(h >= 1 for h in n.hidden), "network.hidden", f"layer sizes must be >= 1, got {n.hidden}")
    _require(n.tau_m > 0 and n.tau_s > 0, "network.tau_m", "time constants must be > 0")
    _require(n.theta > 0, "network.theta", f"must be > 0, got {n.theta}")
    _require(n.weight_std >= 0, "network.weight_std", f"must be >= 0, got {n.weight_std}")
    _require(n.delay_group >= 1, "network.delay_group", f"must be >= 1, got {n.delay_group}")
    try:
        parse_delay_kinds(n.delays, "network.delays")
    except OptionError as e:
        raise ConfigError(str(e)) from None


def _check_delays(d: DelayConfig) -> None:
    _require(d.param in ("sigmoid", "clip"), "delays.param", f"expected 'sigmoid' or 'clip', got {d.param!r}")
    _require(d.shift >= 0, "delays.shift", f"must be >= 0, got {d.shift}")
    _require(d.scale > 0, "delays.scale", f"must be > 0, got {d.scale}")
    _require(d.init_std >= 0, "delays.init_std", f"must be >= 0, got {d.init_std}")


def _check_loss_and_optimizer(lo: LossConfig, o: OptimizerConfig) -> None:
    _require(lo.kind in ("mse", "ce"), "loss.kind", f"expected 'mse' or 'ce', got {lo.kind!r}")
    _require(lo.xi > 0 and lo.beta > 0, "loss.xi", "xi and beta must be > 0")
    _require(
        lo.tie_rule in TIE_RULES,
        "loss.tie_rule",
        f"expected one of {', '.join(repr(r) for r in TIE_RULES)}, got {lo.tie_rule!r}",
    )
    _require(o.kind == "adam", "optimizer.kind", f"only 'adam' is supported, got {o.kind!r}")
    _require(o.lr_weights >= 0, "optimizer.lr_weights", f"must be >= 0, got {o.lr_weights}")
    _require(o.lr_delays >= 0, "optimizer.lr_delays", f"must be >= 0, got {o.lr_delays}")
    _require(o.step_size >= 1, "optimizer.step_size", f"must be >= 1, got {o.step_size}")
    _require(o.gamma > 0, "optimizer.gamma", f"must be > 0, got {o.gamma}")


def _check_training(t: TrainingConfig, n_layers: int) -> None:
    if not t.bump_limits:  # the one default, the core's: 0.3 for hidden layers, 0 for the output
        t.bump_limits = _core.default_bump_limits(n_layers)
    _require(t.epochs >= 0, "training.epochs", f"must be >= 0, got {t.epochs}")
    _require(t.batch_size >= 1, "training.batch_size", f"must be >= 1, got {t.batch_size}")
    _require(t.max_dw_norm >= 0, "training.max_dw_norm", f"must be >= 0 (0 disables), got {t.max_dw_norm}")
    _require(t.bump >= 0, "training.bump", f"must be >= 0, got {t.bump}")
    _require(
        len(t.bump_limits) == n_layers,
        "training.bump_limits",
        f"expected one limit per layer ({n_layers}), got {len(t.bump_limits)}",
    )
    _require(
        all(0 <= v <= 1 for v in t.bump_limits),
        "training.bump_limits",
        f"expected fractions in [0, 1], got {t.bump_limits}",
    )
    _require(t.checkpoint_every >= 1, "training.checkpoint_every", f"must be >= 1, got {t.checkpoint_every}")
    _require(t.save_every >= 1, "training.save_every", f"must be >= 1, got {t.save_every}")
    _require(t.silent_patience >= 1, "training.silent_patience", f"must be >= 1, got {t.silent_patience}")
    _require(t.threads >= 0, "training.threads", f"must be >= 0 (0 = all cores), got {t.threads}")


def _check_layer_weights(n: NetworkConfig, n_layers: int) -> None:
    for key in ("layer_weight_mean", "layer_weight_std"):
        v = getattr(n, key)
        _require(len(v) in (0, n_layers), f"network.{key}", f"expected [] or one value per layer ({n_layers}), got {v}")
    _require(all(s >= 0 for s in n.layer_weight_std), "network.layer_weight_std", "must be >= 0")


def _check_hardware(h: HardwareConfig, n: NetworkConfig) -> None:
    _require(h.input_repeat >= 1, "hardware.input_repeat", f"must be >= 1, got {h.input_repeat}")
    _require(
        (4 * h.input_repeat) % n.delay_group == 0,
        "network.delay_group",
        f"must divide the {4 * h.input_repeat} inputs (4 x hardware.input_repeat), got {n.delay_group}",
    )
    _require(bool(h.chip_id), "hardware.chip_id", "must not be empty")
    _require(0 <= h.chip_seed < 2**63, "hardware.chip_seed", f"expected 0 <= chip_seed < 2**63, got {h.chip_seed}")
    _require(h.max_retries >= 0, "hardware.max_retries", f"must be >= 0, got {h.max_retries}")
    _require(h.eval_batch >= 1, "hardware.eval_batch", f"must be >= 1, got {h.eval_batch}")
    _require(h.noise_scale >= 0, "hardware.noise_scale", f"must be >= 0, got {h.noise_scale}")
    for key, allowed in (
        ("gradient_weights", GRADIENT_WEIGHTS),
        ("gradient_slope", GRADIENT_SLOPES),
        ("chip_per_run", CHIP_PER_RUN),
    ):
        value = getattr(h, key)
        _require(
            value in allowed,
            f"hardware.{key}",
            f"expected one of {', '.join(repr(a) for a in allowed)}, got {value!r}",
        )


def _check_data(a: DataConfig) -> None:
    _require(
        a.dataset in ("yin_yang", "digits", "idx"),
        "data.dataset",
        f"expected 'yin_yang', 'digits' or 'idx', got {a.dataset!r}",
    )
    if a.dataset == "idx":
        for key in ("train_images", "train_labels", "test_images", "test_labels"):
            _require(bool(getattr(a, key)), f"data.{key}", "the path of an IDX file is required for dataset 'idx'")
    _require(a.crop >= 0, "data.crop", f"must be >= 0 (0 = no crop), got {a.crop}")
    _require(a.image_size >= 0, "data.image_size", f"must be >= 0 (0 = as stored), got {a.image_size}")
    _require(a.validation_size >= 1, "data.validation_size", f"must be >= 1, got {a.validation_size}")
    _require(0 <= a.split_seed < 2**32, "data.split_seed", f"expected 0 <= split_seed < 2**32, got {a.split_seed}")
    _require(a.classes >= 2, "data.classes", f"must be >= 2, got {a.classes}")
    _require(a.t_early <= a.t_late, "data.t_late", "must be >= data.t_early")
    _require(
        all(math.isfinite(b) and b >= 0 for b in a.bias_times),
        "data.bias_times",
        f"bias spike times must be finite and >= 0, got {a.bias_times}",
    )


def config_from_dict(data: dict[str, Any]) -> Config:
    """Build and validate a configuration from nested dicts.

    Parameters
    ----------
    data : dict
        Nested tables as parsed from TOML.

    Returns
    -------
    Config
        The validated configuration.

    """
    cfg: Config = _build(Config, data, "")
    return validate(cfg)


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML configuration file.

    Parameters
    ----------
    path : str or Path
        The TOML file.

    Returns
    -------
    Config
        The validated configuration.

    Raises
    ------
    ConfigError
        For unreadable or non-text files, syntax errors, unknown keys, wrong types, non-finite numbers
        or out-of-range values; the message names the file or the key.

    """
    data, _ = read_toml(Path(path), "config", ConfigError)
    return config_from_dict(data)


def read_toml(p: Path, what: str, error: type[Exception]) -> tuple[dict[str, Any], str]:
    """Read a TOML file, reporting every way it can fail as ``error`` naming the file.

    Parameters
    ----------
    p : Path
        The file.
    what : str
        What the file is, for messages (``"config"``, ``"sweep file"``).
    error : type of Exception
        The exception to raise.

    Returns
    -------
    tuple of (dict, str)
        The parsed tables and the file's text.

    Raises
    ------
    Exception
        ``error``, if the file cannot be read, is not UTF-8 text, is not valid TOML or is nested too
        deeply to parse.

    """
    try:
        text = p.read_text(encoding="utf-8")
        return tomllib.loads(text), text
    except OSError as e:
        raise error(f"{what} {p}: cannot read it: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise error(f"{what} {p}: not a text file (expected TOML in UTF-8)") from None
    except RecursionError:
        raise error(f"{what} {p}: nested too deeply to parse") from None
    except tomllib.TOMLDecodeError as e:
        raise error(f"{what} {p}: not valid TOML: {e}") from None
