"""Sweeps: a grid of full trainings (conditions x hidden sizes x seeds) on a local process pool or Ray.

A sweep file (TOML) names conditions, each a base run configuration plus overrides, and the hidden
sizes and seeds to cross them with::

    name = "paper"
    hidden = [5, 10, 15, 20, 25, 30]
    seeds = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    epochs = 300                          # optional: training.epochs of every cell

    [overrides.training]                  # optional: overrides of every condition
    checkpoint_every = 300

    [conditions.W]
    base = "../configs/H30_W.toml"        # relative to the sweep file
    label = "weights only"                # optional, used in figures and tables

    [conditions.WS]
    base = "../configs/H30_WS.toml"
    [conditions.WS.hidden_overrides.5.optimizer]   # optional: overrides for one hidden size
    lr_weights = 0.015

    [conditions.chip_W]
    base = "../configs/hwaware_W.toml"
    backend = "emulator"                  # optional: a registered backend (default "software")

    [[comparisons]]                       # optional: claims that ``delgrad report`` tests over seeds
    label = "synaptic delays at H/2 vs weights only at H"   # optional (default "b vs a")
    a = "W"                               # the condition the claim compares against
    b = "WS"
    claim = "b > a"                       # optional: "b > a" (default) or "b < a"
    metric = "test_accuracy_last"         # optional: or another metric of METRICS
    b_hidden = "half"                     # optional: "same" (default), "half" or a table {"10" = 5}
    hidden = [10, 20, 30]                 # optional: hidden sizes of a (default: all that b has too)

Every cell is one call of :func:`delgrad_rs.training.fit` with one core thread (on its condition's
backend, see :func:`delgrad_rs.training.make_backend`: an emulated chip per cell), in its own run
directory ``<out>/cells/<condition>/H<hidden>/seed<seed>``. A cell is finished when its
``cell.json`` exists: a rerun of the sweep skips finished cells and continues unfinished ones from
their last checkpoint. Results go to ``<out>/results.parquet`` (and ``results.csv``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import multiprocessing
import os
import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from tqdm.auto import tqdm

from delgrad_rs.config import ConfigError, config_from_dict, load_config, read_toml
from delgrad_rs.training.backend import backend_names

ENGINES = ("local", "ray")
SWEEP_KEYS = ("name", "hidden", "seeds", "epochs", "overrides", "conditions", "comparisons")
CONDITION_KEYS = ("base", "label", "backend", "overrides", "hidden_overrides")
COMPARISON_KEYS = ("label", "a", "b", "claim", "metric", "hidden", "b_hidden")
# What a comparison can test: the metric's description and the factor that shows it (100: a fraction
# shown in percent). The test accuracy of a cell is taken after the last epoch (what the reference
# code reports; the default everywhere a single number is shown) or at the best-validation checkpoint.
METRICS: dict[str, tuple[str, float]] = {
    "test_accuracy_last": ("test accuracy after the last epoch", 100.0),
    "test_accuracy": ("test accuracy at the best-validation checkpoint", 100.0),
    "val_accuracy_std": ("epoch-to-epoch standard deviation of the validation accuracy over the last 50 epochs", 100.0),
    "silent_outputs_last": ("share of output spikes missing in the last training epoch", 100.0),
    "bumps": ("training steps that bumped weights", 1.0),
}
STABILITY_EPOCHS = 50
CLAIMS = {"b > a": 1, "b < a": -1}
# Set per cell by the sweep; overriding them would be silently replaced.
RESERVED = {("seed",): "seeds", ("network", "hidden"): "hidden", ("training", "epochs"): "epochs",
            ("training", "threads"): "the engine (one thread per cell)", ("name",): "the sweep"}  # fmt: skip
TRAINABLE = ("w", "d_syn", "d_axo", "d_den")
RESULT_SCHEMA: dict[str, Any] = {
    "condition": pl.String,
    "label": pl.String,
    "hidden": pl.Int64,
    "seed": pl.Int64,
    "n_params": pl.Int64,
    "epochs": pl.Int64,
    "best_epoch": pl.Int64,
    "val_accuracy": pl.Float64,
    "test_accuracy": pl.Float64,
    "test_accuracy_last": pl.Float64,
    "val_accuracy_last": pl.Float64,
    "train_accuracy_last": pl.Float64,
    "val_accuracy_std": pl.Float64,
    "silent_outputs_last": pl.Float64,
    "bumps": pl.Int64,
    "wall_time": pl.Float64,
    "cpu_time": pl.Float64,
    "engine": pl.String,
    "status": pl.String,
    "error": pl.String,
    "run_dir": pl.String,
}
_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")


class SweepError(ConfigError):
    """A sweep file, its options or a sweep directory is invalid; the message names the key."""


@dataclass(frozen=True)
class Condition:
    """One condition of a sweep: a base configuration and overrides."""

    name: str
    label: str
    base: Path
    backend: str = "software"
    overrides: dict[str, Any] = field(default_factory=dict, compare=False)
    hidden_overrides: dict[int, dict[str, Any]] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Cell:
    """One training of a sweep: a condition at one hidden size and seed, with its full configuration."""

    condition: str
    label: str
    hidden: int
    seed: int
    config: dict[str, Any] = field(compare=False)
    backend: str = "software"

    @property
    def key(self) -> str:
        """Relative run directory, ``<condition>/H<hidden>/seed<seed>``."""
        return f"{self.condition}/H{self.hidden}/seed{self.seed}"

    @property
    def config_hash(self) -> str:
        """SHA-256 of the cell's configuration and backend (detects a changed sweep file on resumption)."""
        hashed: dict[str, Any] = self.config if self.backend == "software" else {**self.config, "": self.backend}
        return hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Comparison:
    """A claim about two conditions that ``delgrad report`` tests with paired differences over seeds.

    The claim is ``b > a`` (``sign`` = 1) or ``b < a`` (``sign`` = -1) in ``metric``, for condition
    ``a`` at each hidden size in ``hidden_pairs`` against ``b`` at the paired hidden size.
    """

    label: str
    a: str
    b: str
    sign: int
    metric: str
    hidden_pairs: tuple[tuple[int, int], ...]

    @property
    def claim(self) -> str:
        """The claim as written in the sweep file (``"b > a"`` or ``"b < a"``)."""
        return "b > a" if self.sign > 0 else "b < a"


@dataclass
class Sweep:
    """A validated sweep: the grid, every cell's configuration and the declared comparisons."""

    name: str
    hidden: list[int]
    seeds: list[int]
    epochs: int | None
    conditions: list[Condition]
    cells: list[Cell]
    source: str = ""
    comparisons: list[Comparison] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------
# sweep files


def _fail(where: str, key: str, message: str) -> SweepError:
    return SweepError(f"{where}: option {key}: {message}")


def _int_list(value: Any, key: str, where: str, minimum: int, maximum: int | None = None) -> list[int]:
    if not isinstance(value, list) or not value:
        raise _fail(where, key, f"expected a non-empty list of integers, got {value!r}")
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int):
            raise _fail(where, f"{key}[{i}]", f"expected an integer, got {type(v).__name__} {v!r}")
        if v < minimum or (maximum is not None and v >= maximum):
            upper = f" and < {maximum}" if maximum is not None else ""
            raise _fail(where, f"{key}[{i}]", f"must be >= {minimum}{upper}, got {v}")
    if len(set(value)) != len(value):
        raise _fail(where, key, f"values must be unique, got {value}")
    return list(value)


def _check_overrides(over: Any, base: dict[str, Any], key: str, where: str, path: tuple[str, ...] = ()) -> None:
    if not isinstance(over, dict):
        raise _fail(where, key, f"expected a table of configuration keys, got {type(over).__name__} {over!r}")
    for k, v in over.items():
        sub = f"{key}.{k}"
        here = (*path, k)
        if here in RESERVED:
            raise _fail(where, sub, f"is set by the sweep (use {RESERVED[here]})")
        if k not in base:
            raise _fail(where, sub, f"unknown configuration key; expected one of {', '.join(sorted(base))}")
        if isinstance(base[k], dict):
            _check_overrides(v, base[k], sub, where, here)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def sweep_from_dict(data: dict[str, Any], base_dir: str | Path = ".", where: str = "sweep") -> Sweep:
    """Build and validate a sweep from nested dicts (a parsed sweep file).

    Parameters
    ----------
    data : dict
        The sweep tables (see the module docstring).
    base_dir : str or Path
        Directory that relative ``base`` paths are resolved against (the sweep file's).
    where : str
        Name of the source in error messages.

    Returns
    -------
    Sweep
        The sweep with every cell's validated configuration.

    Raises
    ------
    SweepError
        Naming the first invalid key (unknown keys, wrong types, bad values, invalid overrides).

    """
    if not isinstance(data, dict):
        raise SweepError(f"{where}: expected a table, got {type(data).__name__}")
    for k in data:
        if k not in SWEEP_KEYS:
            raise _fail(where, k, f"unknown key; expected one of {', '.join(SWEEP_KEYS)}")
    for k in ("hidden", "seeds", "conditions"):
        if k not in data:
            raise _fail(where, k, "missing (required)")
    name = data.get("name", "sweep")
    if not isinstance(name, str) or not _NAME.match(name):
        raise _fail(where, "name", f"expected a name of letters, digits, '_', '.', '+' or '-', got {name!r}")
    hidden = _int_list(data["hidden"], "hidden", where, 1)
    seeds = _int_list(data["seeds"], "seeds", where, 0, 2**32)
    epochs = data.get("epochs")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise _fail(where, "epochs", f"expected an integer >= 1, got {epochs!r}")
    overrides = data.get("overrides", {})
    conds = data["conditions"]
    if not isinstance(conds, dict) or not conds:
        raise _fail(where, "conditions", "expected a non-empty table of conditions ([conditions.NAME])")
    conditions: list[Condition] = []
    cells: list[Cell] = []
    for cname, c in conds.items():
        cond, base_cfg = _condition(cname, c, Path(base_dir), overrides, where)
        conditions.append(cond)
        merged = _merge(_merge(base_cfg, overrides), cond.overrides)
        for h in hidden:
            cfg_h = _merge(merged, cond.hidden_overrides.get(h, {}))
            cells.extend(_cell(name, cond, cfg_h, h, s, epochs, where) for s in seeds)
    comparisons = comparisons_from_dict(data.get("comparisons", []), list(conds), hidden, where)
    return Sweep(name, hidden, seeds, epochs, conditions, cells, comparisons=comparisons)


def comparisons_from_dict(raw: Any, conditions: list[str], hidden: list[int], where: str) -> list[Comparison]:
    """Validate the ``[[comparisons]]`` of a sweep file.

    Parameters
    ----------
    raw : Any
        The parsed ``comparisons`` value (an array of tables; see the module docstring).
    conditions : list of str
        The sweep's condition names.
    hidden : list of int
        The sweep's hidden sizes.
    where : str
        Name of the source in error messages.

    Returns
    -------
    list of Comparison
        One per table, in file order.

    Raises
    ------
    SweepError
        Naming the first invalid key (``comparisons[i].KEY``).

    """
    if not isinstance(raw, list):
        raise _fail(where, "comparisons", f"expected an array of tables ([[comparisons]]), got {type(raw).__name__}")
    return [_comparison(c, f"comparisons[{i}]", conditions, hidden, where) for i, c in enumerate(raw)]


def _comparison(c: Any, ck: str, conditions: list[str], hidden: list[int], where: str) -> Comparison:
    """Return the checked comparison table ``ck``."""
    if not isinstance(c, dict):
        raise _fail(where, ck, f"expected a table, got {type(c).__name__} {c!r}")
    for k in c:
        if k not in COMPARISON_KEYS:
            raise _fail(where, f"{ck}.{k}", f"unknown key; expected one of {', '.join(COMPARISON_KEYS)}")
    for k in ("a", "b"):
        if k not in c:
            raise _fail(where, f"{ck}.{k}", "missing (required): a condition name")
        if c[k] not in conditions:
            raise _fail(where, f"{ck}.{k}", f"expected one of the conditions {', '.join(conditions)}, got {c[k]!r}")
    if c["a"] == c["b"] and c.get("b_hidden", "same") == "same":
        raise _fail(where, f"{ck}.b", f"compares {c['a']!r} with itself at the same hidden sizes")
    label = c.get("label", f"{c['b']} vs {c['a']}")
    if not isinstance(label, str):
        raise _fail(where, f"{ck}.label", f"expected a string, got {type(label).__name__}")
    claim = c.get("claim", "b > a")
    if claim not in CLAIMS:
        raise _fail(where, f"{ck}.claim", f"expected one of {', '.join(map(repr, CLAIMS))}, got {claim!r}")
    metric = c.get("metric", next(iter(METRICS)))
    if metric not in METRICS:
        raise _fail(where, f"{ck}.metric", f"expected one of {', '.join(METRICS)}, got {metric!r}")
    to_b = _b_hidden(c.get("b_hidden", "same"), f"{ck}.b_hidden", hidden, where)
    if "hidden" in c:
        sizes = _int_list(c["hidden"], f"{ck}.hidden", where, 1)
        for i, h in enumerate(sizes):
            if h not in hidden:
                raise _fail(where, f"{ck}.hidden[{i}]", f"{h} is not a hidden size of the sweep {hidden}")
            if h not in to_b:
                raise _fail(where, f"{ck}.hidden[{i}]", f"b_hidden gives no hidden size of the sweep for {h}")
    else:
        sizes = [h for h in hidden if h in to_b]
        if not sizes:
            raise _fail(where, f"{ck}.b_hidden", f"pairs none of the sweep's hidden sizes {hidden}")
    return Comparison(label, c["a"], c["b"], CLAIMS[claim], metric, tuple((h, to_b[h]) for h in sizes))


def _b_hidden(raw: Any, key: str, hidden: list[int], where: str) -> dict[int, int]:
    """Return the map from a's hidden sizes to b's that ``b_hidden`` gives (sizes of the sweep only)."""
    if raw == "same":
        return {h: h for h in hidden}
    if raw == "half":
        return {h: h // 2 for h in hidden if h % 2 == 0 and h // 2 in hidden}
    if not isinstance(raw, dict):
        raise _fail(where, key, f'expected "same", "half" or a table {{"A_HIDDEN" = B_HIDDEN}}, got {raw!r}')
    out: dict[int, int] = {}
    for hk, hv in raw.items():
        if not str(hk).isdigit() or int(hk) not in hidden:
            raise _fail(where, f"{key}.{hk}", f"keys must be hidden sizes of the sweep {hidden}")
        if isinstance(hv, bool) or not isinstance(hv, int) or hv not in hidden:
            raise _fail(where, f"{key}.{hk}", f"expected a hidden size of the sweep {hidden}, got {hv!r}")
        out[int(hk)] = hv
    return out


def _condition(cname: str, c: Any, base_dir: Path, overrides: Any, where: str) -> tuple[Condition, dict[str, Any]]:
    """Return the checked condition ``[conditions.<cname>]`` and its base configuration (nested dicts)."""
    ck = f"conditions.{cname}"
    if not _NAME.match(cname):
        raise _fail(where, ck, "condition names may only contain letters, digits, '_', '.', '+' or '-'")
    if not isinstance(c, dict):
        raise _fail(where, ck, f"expected a table, got {type(c).__name__} {c!r}")
    for k in c:
        if k not in CONDITION_KEYS:
            raise _fail(where, f"{ck}.{k}", f"unknown key; expected one of {', '.join(CONDITION_KEYS)}")
    if "base" not in c:
        raise _fail(where, f"{ck}.base", "missing (required): the base run configuration (TOML)")
    if not isinstance(c["base"], str):
        raise _fail(where, f"{ck}.base", f"expected a path (string), got {type(c['base']).__name__}")
    base_path = (base_dir / c["base"]).resolve()
    if not base_path.is_file():
        raise _fail(where, f"{ck}.base", f"no such configuration file {base_path}")
    try:
        base_cfg = load_config(base_path).to_dict()
    except ConfigError as e:
        raise _fail(where, f"{ck}.base", f"{base_path}: {e}") from None
    label = c.get("label", cname)
    if not isinstance(label, str):
        raise _fail(where, f"{ck}.label", f"expected a string, got {type(label).__name__}")
    backend = c.get("backend", "software")
    known = backend_names()
    if backend not in known:
        raise _fail(where, f"{ck}.backend", f"expected one of {', '.join(known)}, got {backend!r}")
    _check_overrides(overrides, base_cfg, "overrides", where)
    c_over = c.get("overrides", {})
    _check_overrides(c_over, base_cfg, f"{ck}.overrides", where)
    h_over = _hidden_overrides(c.get("hidden_overrides", {}), base_cfg, ck, where)
    return Condition(cname, label, base_path, backend, c_over, h_over), base_cfg


def _hidden_overrides(raw: Any, base_cfg: dict[str, Any], ck: str, where: str) -> dict[int, dict[str, Any]]:
    """Return a condition's checked ``hidden_overrides`` keyed by hidden size."""
    if not isinstance(raw, dict):
        raise _fail(where, f"{ck}.hidden_overrides", "expected a table keyed by hidden size")
    out: dict[int, dict[str, Any]] = {}
    for hk_raw, hv in raw.items():
        hk = str(hk_raw)
        hkey = f"{ck}.hidden_overrides.{hk}"
        if isinstance(hk_raw, bool) or not hk.isdigit() or int(hk) < 1:
            raise _fail(where, hkey, f"keys must be hidden sizes (positive integers), got {hk!r}")
        _check_overrides(hv, base_cfg, hkey, where)
        out[int(hk)] = hv
    return out


def _cell(name: str, cond: Condition, cfg_h: dict[str, Any], h: int, s: int, epochs: int | None, where: str) -> Cell:
    """Return the cell of a condition at hidden size ``h`` and seed ``s`` with its validated configuration."""
    d = copy.deepcopy(cfg_h)
    d["name"] = f"{name}_{cond.name}_H{h}_seed{s}"
    d["seed"] = s
    d["network"]["hidden"] = [h]
    d["training"]["threads"] = 1
    if epochs is not None:
        d["training"]["epochs"] = epochs
    try:
        cfg = config_from_dict(d)
    except ConfigError as e:
        raise SweepError(f"{where}: conditions.{cond.name} at hidden {h}, seed {s}: {e}") from None
    return Cell(cond.name, cond.label, h, s, cfg.to_dict(), cond.backend)


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file.

    Parameters
    ----------
    path : str or Path
        The TOML sweep file; ``base`` paths in it are relative to its directory.

    Returns
    -------
    Sweep
        The validated sweep.

    Raises
    ------
    SweepError
        For a missing file, invalid TOML, unknown keys, wrong types or invalid configurations.

    """
    p = Path(path)
    if not p.is_file():
        raise SweepError(f"sweep file {p}: no such file")
    data, text = read_toml(p, "sweep file", SweepError)
    sweep = sweep_from_dict(data, p.parent, str(p))
    sweep.source = text
    return sweep


# ------------------------------------------------------------------------------------------------
# one cell


def count_trainable(cfg: dict[str, Any]) -> int:
    """Count the trainable parameters (weights, plus delays when they have a learning rate) of a config.

    Parameters
    ----------
    cfg : dict
        A configuration as nested dicts.

    Returns
    -------
    int
        Number of trained weights and delays.

    """
    from delgrad_rs.training import build_network

    conf = config_from_dict(cfg)
    kinds = TRAINABLE if conf.optimizer.lr_delays > 0 else ("w",)
    layers = build_network(conf, threads=1).params
    return sum(int(layer[k].size) for layer in layers for k in kinds if layer.get(k) is not None)


def run_cell(task: dict[str, Any]) -> dict[str, Any]:
    """Train one cell and summarise it (runs in a worker process or a Ray task).

    Parameters
    ----------
    task : dict
        ``condition``, ``label``, ``hidden``, ``seed``, ``config`` (nested dicts), ``run_dir`` and
        ``engine``.

    Returns
    -------
    dict
        One row of ``results.parquet`` (see :func:`run_sweep`). Any exception of the training is
        caught and recorded as ``status = "failed"`` with its message in ``error``.

    """
    from delgrad_rs.training import fit, load_run, make_backend, split_inputs

    rec: dict[str, Any] = {k: None for k in RESULT_SCHEMA}
    rec.update({k: task[k] for k in ("condition", "label", "hidden", "seed", "run_dir", "engine")})
    rec["epochs"] = int(task["config"]["training"]["epochs"])
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        rec["n_params"] = count_trainable(task["config"])
        backend = make_backend(task.get("backend", "software"), config_from_dict(task["config"]))
        df = fit(task["config"], out=task["run_dir"], threads=1, quiet=True, backend=backend)
        if not df.filter(pl.col("split") == "test").height:
            raise RuntimeError("training stopped before its last epoch")
        rec.update(_training_summary(df))
        cfg, _, trainer = load_run(task["run_dir"], "best")
        rec["test_accuracy"] = float(backend.evaluate(trainer, *split_inputs(cfg, "test"))["accuracy"])
        rec["status"] = "ok"
    except Exception as e:  # a failed cell is recorded and does not stop the sweep
        rec["status"] = "failed"
        rec["error"] = f"{type(e).__name__}: {e}"
    rec["wall_time"] = time.perf_counter() - t0
    rec["cpu_time"] = time.process_time() - c0
    return rec


# ------------------------------------------------------------------------------------------------
# engines


Done = Callable[[dict[str, Any]], None]


def _training_summary(df: pl.DataFrame) -> dict[str, Any]:
    """Summarise a finished training's metrics (the columns of ``results.parquet`` that come from them)."""
    val = df.filter(pl.col("split") == "validation").sort("epoch")
    train = df.filter(pl.col("split") == "train").sort("epoch")
    best = int(val["accuracy"].arg_max())  # type: ignore[arg-type]
    last_layer = max((c for c in train.columns if c.startswith("silent_l")), key=lambda c: int(c[len("silent_l") :]))
    tail = val["accuracy"].tail(STABILITY_EPOCHS)
    return {
        "best_epoch": int(val["epoch"][best]) + 1,
        "val_accuracy": float(val["accuracy"][best]),
        "val_accuracy_last": float(val["accuracy"][-1]),
        "train_accuracy_last": float(train["accuracy"][-1]),
        "test_accuracy_last": float(df.filter(pl.col("split") == "test")["accuracy"][0]),
        "val_accuracy_std": float(tail.std()) if tail.len() > 1 else None,  # type: ignore[arg-type]
        "silent_outputs_last": float(train[last_layer][-1]),
        "bumps": int(train["bumps"].sum()),
    }


def _failed(task: dict[str, Any], error: str) -> dict[str, Any]:
    rec: dict[str, Any] = {k: None for k in RESULT_SCHEMA}
    rec.update({k: task[k] for k in ("condition", "label", "hidden", "seed", "run_dir", "engine")})
    rec["epochs"] = int(task["config"]["training"]["epochs"])
    rec.update(status="failed", error=error)
    return rec


def _run_local(tasks: list[dict[str, Any]], workers: int, done: Done) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx) as pool:
        futures: dict[Future[dict[str, Any]], dict[str, Any]] = {pool.submit(run_cell, t): t for t in tasks}
        pending = set(futures)
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    try:
                        done(fut.result())
                    except BrokenProcessPool as e:
                        raise SweepError(
                            f"a worker process died ({e}); finished cells are saved, rerun the sweep to continue"
                        ) from None
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _run_ray(tasks: list[dict[str, Any]], workers: int | None, address: str | None, done: Done) -> None:
    try:
        import ray
    except ImportError:
        raise SweepError("option --engine: 'ray' needs Ray: pip install 'delgrad_rs[ray]'") from None
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        started = True
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(run_cell)
        limit = workers if workers is not None else len(tasks)
        queue = list(tasks)
        running: dict[Any, dict[str, Any]] = {}
        while queue or running:
            while queue and len(running) < limit:
                t = queue.pop(0)
                running[remote.remote(t)] = t
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                task = running.pop(ref)
                try:
                    rec = ray.get(ref)
                except ray.exceptions.RayError as e:  # the task's worker died (run_cell catches training errors)
                    rec = _failed(task, f"{type(e).__name__}: {e}")
                done(rec)
    finally:
        if started:
            ray.shutdown()


# ------------------------------------------------------------------------------------------------
# the sweep


def results_frame(records: Iterable[dict[str, Any]]) -> pl.DataFrame:
    """Return result records as a DataFrame with the fixed ``results.parquet`` schema."""
    rows = [{k: r.get(k) for k in RESULT_SCHEMA} for r in records]
    return pl.DataFrame(rows, schema=RESULT_SCHEMA)


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _write_results(out: Path, df: pl.DataFrame) -> None:
    _write_atomic(out / "results.parquet", df.write_parquet)
    _write_atomic(out / "results.csv", df.write_csv)


def schedule(sweep: Sweep) -> list[Cell]:
    """Return the cells in the order they are started: seed by seed, largest networks first.

    Seed-major order makes a sweep stopped early a balanced subset (every condition and size with
    the first seeds) rather than complete conditions and missing ones; within a seed the larger
    hidden sizes start first so that the last cells running are short ones.
    """
    seed_rank = {s: i for i, s in enumerate(sweep.seeds)}
    cond_rank = {c.name: i for i, c in enumerate(sweep.conditions)}
    return sorted(sweep.cells, key=lambda c: (seed_rank[c.seed], -c.hidden, cond_rank[c.condition]))


def default_workers() -> int:
    """Return the number of cores this process may use (the local engine's default worker count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _check_options(engine: str, workers: int | None, address: str | None) -> None:
    """Raise SweepError for an unknown engine, a bad worker count or an address without Ray."""
    if engine not in ENGINES:
        raise SweepError(f"option --engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise SweepError(f"option --workers: expected an integer >= 1, got {workers!r}")
    if address is not None and engine != "ray":
        raise SweepError("option --address: only used with --engine ray")


def _recorded_cells(sw: Sweep, root: Path, retry_failed: bool) -> dict[str, dict[str, Any]]:
    """Return the records of the cells the sweep directory holds (failed ones too unless ``retry_failed``).

    Raises SweepError for a corrupt ``cell.json`` or a cell run with another configuration.
    """
    records: dict[str, dict[str, Any]] = {}
    for cell in sw.cells:
        marker = root / "cells" / cell.key / "cell.json"
        if not marker.is_file():
            continue
        try:
            saved = json.loads(marker.read_text(encoding="utf-8"))
            rec, digest = saved["record"], saved["config_hash"]
        except (ValueError, KeyError, TypeError) as e:
            raise SweepError(
                f"sweep directory {root}: {marker} is corrupt ({e}); delete it to rerun the cell"
            ) from None
        if digest != cell.config_hash:
            raise SweepError(
                f"sweep directory {root}: cell {cell.key} was run with a different configuration; "
                "use another --out directory for a changed sweep"
            )
        if rec.get("status") == "ok" or not retry_failed:
            records[cell.key] = rec
    return records


def _tasks(sw: Sweep, root: Path, engine: str, records: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the cells still to run, in schedule order, as the tasks the workers take."""
    return [
        {
            "condition": c.condition,
            "label": c.label,
            "hidden": c.hidden,
            "seed": c.seed,
            "config": c.config,
            "backend": c.backend,
            "run_dir": str((root / "cells" / c.key).resolve()),
            "engine": engine,
            "key": c.key,
            "hash": c.config_hash,
        }
        for c in schedule(sw)
        if c.key not in records
    ]


def _append_history(
    root: Path, started: float, wall: float, engine: str, workers: int | None, run: int, total: int, status: str
) -> None:
    """Append one line to ``history.jsonl``: when this invocation started, how long it ran, what it ran."""
    entry = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_time": round(wall, 3),
        "engine": engine,
        "workers": workers if workers is not None else (default_workers() if engine == "local" else None),
        "cells_run": run,
        "cells_total": total,
        "status": status,
    }
    with open(root / "history.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


def run_sweep(
    sweep: Sweep | str | Path,
    *,
    out: str | Path | None = None,
    engine: str = "local",
    workers: int | None = None,
    address: str | None = None,
    quiet: bool = False,
    retry_failed: bool = False,
) -> pl.DataFrame:
    """Run (or continue) a sweep and return its results table.

    Parameters
    ----------
    sweep : Sweep, str or Path
        A sweep or a sweep file.
    out : str or Path or None
        Sweep directory (default ``runs/sweeps/<name>``): ``sweep.toml`` (the sweep file),
        ``cells/<condition>/H<hidden>/seed<seed>/`` (run directory and ``cell.json`` per cell),
        ``results.parquet``, ``results.csv`` and ``history.jsonl`` (one line per invocation that
        ran cells: start, wall time, engine, workers, cells run, finished or interrupted). An
        existing directory is continued: finished cells are not rerun, unfinished ones resume from
        their last checkpoint.
    engine : {"local", "ray"}
        ``local``: a process pool (spawn) with one core thread per worker. ``ray``: one Ray task
        (1 CPU) per cell on the cluster at ``address`` or on a local instance.
    workers : int or None
        Parallel cells. ``local``: default the number of usable cores. ``ray``: CPUs of a local
        instance, or the maximum of tasks in flight on a cluster (default: no limit).
    address : str or None
        Ray cluster address for ``ray.init(address=...)`` (e.g. ``"auto"``); None starts a local
        instance (unless Ray is already initialised in this process).
    quiet : bool
        No progress bar.
    retry_failed : bool
        Rerun cells recorded as failed (by default they stay recorded and are skipped).

    Returns
    -------
    polars.DataFrame
        One row per cell in sweep order: condition, label, hidden, seed, n_params (trainable
        weights and delays), epochs, best_epoch (epochs trained when the validation accuracy
        first reached its maximum, i.e. the ``best`` checkpoint), val_accuracy (that maximum),
        test_accuracy (of the ``best`` checkpoint), test_accuracy_last, val_accuracy_last and
        train_accuracy_last (after the last epoch), wall_time and cpu_time (s, of this cell's last
        invocation; CPU time of the worker process, which shows how much other load slowed it),
        engine, status (``ok`` / ``failed``), error, run_dir (relative to ``out``).

    Raises
    ------
    SweepError
        For invalid options, or a sweep directory whose finished cells were run with other
        configurations.

    """
    _check_options(engine, workers, address)
    sw = sweep if isinstance(sweep, Sweep) else load_sweep(sweep)
    root = Path(out) if out is not None else Path("runs") / "sweeps" / sw.name
    root.mkdir(parents=True, exist_ok=True)
    if sw.source:
        (root / "sweep.toml").write_text(sw.source, encoding="utf-8")
    records = _recorded_cells(sw, root, retry_failed)

    def table() -> pl.DataFrame:
        return results_frame(records[c.key] for c in sw.cells if c.key in records)

    _write_results(root, table())
    tasks = _tasks(sw, root, engine, records)
    by_dir = {t["run_dir"]: t for t in tasks}
    bar = tqdm(total=len(sw.cells), initial=len(records), disable=quiet, desc=sw.name, unit="cell", dynamic_ncols=True)
    n_failed = sum(1 for r in records.values() if r.get("status") != "ok")

    def done(rec: dict[str, Any]) -> None:
        nonlocal n_failed
        task = by_dir[rec["run_dir"]]
        rec = dict(rec, run_dir=str(Path("cells") / task["key"]))
        marker = Path(task["run_dir"]) / "cell.json"
        marker.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"config_hash": task["hash"], "record": rec}, indent=1) + "\n"
        _write_atomic(marker, lambda p: _write_text(p, payload))
        records[task["key"]] = rec
        _write_results(root, table())
        if rec["status"] != "ok":
            n_failed += 1
            bar.write(f"cell {task['key']} failed: {rec['error']}")
        bar.set_postfix(failed=n_failed, refresh=False)
        bar.update(1)

    started, t0 = time.time(), time.perf_counter()
    n_before = len(records)
    status = "interrupted"
    try:
        if tasks and engine == "local":
            _run_local(tasks, workers or default_workers(), done)
        elif tasks:
            _run_ray(tasks, workers, address, done)
        status = "finished"
    finally:
        bar.close()
        if tasks:
            wall = time.perf_counter() - t0
            _append_history(root, started, wall, engine, workers, len(records) - n_before, len(sw.cells), status)
    return table()


# ------------------------------------------------------------------------------------------------
# summaries


def is_sweep_dir(path: str | Path) -> bool:
    """Return whether ``path`` is a sweep directory (it has ``results.parquet``)."""
    return (Path(path) / "results.parquet").is_file()


def load_results(path: str | Path) -> pl.DataFrame:
    """Read ``results.parquet`` of a sweep directory.

    Parameters
    ----------
    path : str or Path
        The sweep directory (or the parquet file).

    Returns
    -------
    polars.DataFrame
        The results table.

    """
    p = Path(path)
    f = p / "results.parquet" if p.is_dir() else p
    if not f.is_file():
        raise SweepError(f"sweep directory {p}: no results.parquet (not a sweep directory?)")
    return pl.read_parquet(f)


def median_table(results: pl.DataFrame) -> pl.DataFrame:
    """Summarise a results table per condition and hidden size (successful cells only).

    Parameters
    ----------
    results : polars.DataFrame
        As returned by :func:`run_sweep`.

    Returns
    -------
    polars.DataFrame
        condition, label, hidden, n_params, runs, failed; ``test_median`` / ``test_min`` /
        ``test_max``: test accuracy of the network after the last epoch (``test_accuracy_last``, what
        the reference code reports); ``best_median`` / ``best_min`` / ``best_max``: test accuracy at
        the best-validation checkpoint (``test_accuracy``); ``val_median``: median best validation
        accuracy. In the order of the sweep file.

    """
    failed = results.group_by("condition", "hidden", maintain_order=True).agg(
        (pl.col("status") != "ok").sum().cast(pl.Int64).alias("failed")
    )
    ok = results.filter(pl.col("status") == "ok")
    spread = [
        agg(pl.col(column)).alias(f"{prefix}_{name}")
        for prefix, column in (("test", "test_accuracy_last"), ("best", "test_accuracy"))
        for name, agg in (("median", pl.Expr.median), ("min", pl.Expr.min), ("max", pl.Expr.max))
    ]
    stats = ok.group_by("condition", "hidden", maintain_order=True).agg(
        pl.col("label").first(),
        pl.col("n_params").first(),
        pl.len().cast(pl.Int64).alias("runs"),
        *spread,
        pl.col("val_accuracy").median().alias("val_median"),
    )
    order = results.select("condition").unique(maintain_order=True).with_row_index("_c")
    return (
        failed.join(stats, on=["condition", "hidden"], how="left")
        .join(order, on="condition")
        .sort("_c", "hidden")
        .select(
            "condition",
            "label",
            "hidden",
            "n_params",
            "runs",
            "failed",
            *(e.meta.output_name() for e in spread),
            "val_median",
        )
        .with_columns(pl.col("runs").fill_null(0))
    )


def format_table(table: pl.DataFrame) -> str:
    """Return a median table (:func:`median_table`) as aligned plain text (accuracies in %).

    ``test median``, ``min`` and ``max`` are of the network after the last epoch; ``best-val`` is the
    median test accuracy at the best-validation checkpoint, ``val`` the median best validation accuracy.
    """

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.2f}"

    head = (
        f"{'condition':<12} {'hidden':>6} {'params':>6} {'runs':>4} {'failed':>6} "
        f"{'test median':>11} {'min':>6} {'max':>6} {'best-val':>8} {'val':>6}"
    )
    lines = [head]
    for r in table.iter_rows(named=True):
        params = "-" if r["n_params"] is None else str(r["n_params"])
        lines.append(
            f"{r['condition']:<12} {r['hidden']:>6} {params:>6} {r['runs']:>4} {r['failed']:>6} "
            f"{pct(r['test_median']):>11} {pct(r['test_min']):>6} {pct(r['test_max']):>6} "
            f"{pct(r['best_median']):>8} {pct(r['val_median']):>6}"
        )
    lines.append("test: after the last epoch; best-val: at the best-validation checkpoint (medians over seeds)")
    return "\n".join(lines)


__all__ = [
    "Cell",
    "Comparison",
    "Condition",
    "Sweep",
    "SweepError",
    "comparisons_from_dict",
    "count_trainable",
    "format_table",
    "is_sweep_dir",
    "load_results",
    "load_sweep",
    "median_table",
    "results_frame",
    "run_cell",
    "run_sweep",
    "schedule",
    "sweep_from_dict",
]
