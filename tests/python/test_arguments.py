"""Every public argument of the wrong type or out of its domain raises an error naming it and the expected form."""

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import delgrad_rs
from delgrad_rs import InvalidValueError, Network, ShapeError, _core, conformance, datasets
from delgrad_rs.config import ConfigError, load_config

NET = Network.create([4, 5, 3], seed=0, threads=1)
# Typed as Any: the calls below pass what the stubs forbid on purpose.
core: Any = _core
create: Any = Network.create
net_core: Any = NET.core
run_case: Any = conformance.run_case
yin_yang: Any = datasets.yin_yang
TRAINER: Any = _core.Trainer(NET.core, threads=1)
X = np.full((2, 4), 0.5)
Y = np.array([0, 1])
LAYER = {"size": 2, "weight_mean": 0.0, "weight_std": 1.0}

CASE: dict[str, Any] = {
    "neuron": {"tau_m": 2.0, "tau_s": 1.0},
    "layers": [{"w": [[1.0, 2.0]]}],
    "input": [0.1, 0.2],
    "label": 0,
    "loss": {"kind": "mse", "delta": 0.2},
}


def case_with(**fields: Any) -> dict[str, Any]:
    """The conformance case with ``fields`` replaced (``w``: the first layer's weights)."""
    c = copy.deepcopy(CASE)
    for key, value in fields.items():
        if key == "w":
            c["layers"][0]["w"] = value
        else:
            c[key] = value
    return c


def params(*cases: tuple[str, Callable[[], object], type[Exception], str]) -> list[Any]:
    return [pytest.param(call, exc, match, id=name) for name, call, exc, match in cases]


CALLS = params(
    # non-negative integers: negative, float, string, beyond 64 bits
    (
        "step_negative_epoch",
        lambda: TRAINER.step(X, Y, -1),
        InvalidValueError,
        r"^epoch: expected an integer >= 0, got -1",
    ),
    (
        "step_float_epoch",
        lambda: TRAINER.step(X, Y, 1.5),
        TypeError,
        r"^epoch: expected an integer >= 0, got float 1\.5",
    ),
    ("step_str_epoch", lambda: TRAINER.step(X, Y, "1"), TypeError, r"^epoch: expected an integer >= 0, got str '1'"),
    (
        "learning_rates_negative",
        lambda: TRAINER.learning_rates(-1),
        InvalidValueError,
        r"^epoch: expected an integer >= 0",
    ),
    (
        "step_from_times_negative",
        lambda: TRAINER.step_from_times(X, net_core.forward(X), Y, -1),
        InvalidValueError,
        r"^epoch: ",
    ),
    (
        "train_epoch_negative_batch",
        lambda: TRAINER.train_epoch(X, Y, np.array([0, 1]), -1, 0),
        InvalidValueError,
        r"^batch: expected an integer >= 0",
    ),
    ("trainer_negative_step_size", lambda: core.Trainer(net_core, step_size=-1), InvalidValueError, r"^step_size: "),
    (
        "init_network_negative_n_in",
        lambda: core.init_network(-4, [LAYER]),
        InvalidValueError,
        r"^n_in: expected an integer >= 0",
    ),
    (
        "init_network_huge_n_in",
        lambda: core.init_network(2**64, [LAYER]),
        InvalidValueError,
        r"^n_in: expected an integer <= ",
    ),
    (
        "init_network_str_seed",
        lambda: core.init_network(4, [LAYER], seed="1"),
        TypeError,
        r"^seed: expected an integer",
    ),
    ("default_bump_limits_negative", lambda: core.default_bump_limits(-1), InvalidValueError, r"^n_layers: "),
    ("chip_pattern_negative", lambda: core.chip_pattern(-1, 2, seed=0), InvalidValueError, r"^circuits: "),
    (
        "chip_pattern_str",
        lambda: core.chip_pattern(2, "2", seed=0),
        TypeError,
        r"^rows: expected an integer >= 0, got str",
    ),
    ("hardware_forward_str_seed", lambda: core.hardware_forward(net_core, X, seed="0"), TypeError, r"^seed: "),
    ("hardware_forward_float_repeat", lambda: core.hardware_forward(net_core, X, repeat=1.0), TypeError, r"^repeat: "),
    # thread counts
    (
        "trainer_str_threads",
        lambda: core.Trainer(net_core, threads="1"),
        TypeError,
        r"^threads: expected None or an integer >= 0, got str",
    ),
    ("init_network_str_threads", lambda: core.init_network(4, [LAYER], threads="1"), TypeError, r"^threads: "),
    ("create_str_threads", lambda: create([4, 3], threads="1"), TypeError, r"^threads: "),
    ("network_str_threads", lambda: core.Network([{"w": [[1.0]]}], threads="1"), TypeError, r"^threads: "),
    ("forward_str_threads", lambda: net_core.forward(X, threads="1"), TypeError, r"^threads: "),
    # sizes of Network.create
    ("create_str_size", lambda: create([4, "a"]), TypeError, r"^sizes\[1\]: expected an integer >= 1, got str"),
    (
        "create_float_size",
        lambda: create([4, 2.5]),
        TypeError,
        r"^sizes\[1\]: expected an integer >= 1, got float",
    ),
    # numbers, flags, strings
    ("trainer_str_gamma", lambda: core.Trainer(net_core, gamma="x"), TypeError, r"^gamma: expected a number, got str"),
    (
        "trainer_str_max_dw_norm",
        lambda: core.Trainer(net_core, max_dw_norm="x"),
        TypeError,
        r"^max_dw_norm: expected a number",
    ),
    (
        "loss_str_strict",
        lambda: core.loss_and_grad(np.zeros((1, 3)), [0], strict="yes"),
        TypeError,
        r"^strict: expected True or False",
    ),
    ("encode_times_str", lambda: core.encode_times(X, t_early="a"), TypeError, r"^t_early: expected a number"),
    ("yin_yang_none", lambda: core.yin_yang(None), TypeError, r"^split: expected a string, got None"),
    ("datasets_yin_yang_none", lambda: yin_yang(None), TypeError, r"^split: expected a string, got None"),
    # bump limits are fractions
    (
        "bump_limits_above_one",
        lambda: core.Trainer(net_core, bump_limits=[2.0, 0.0]),
        InvalidValueError,
        r"^bump_limits: expected fractions in \[0, 1\]; entry 0 is 2",
    ),
    (
        "bump_limits_negative",
        lambda: core.Trainer(net_core, bump_limits=[-0.5, 0.0]),
        InvalidValueError,
        r"^bump_limits: .*entry 0 is -0\.5",
    ),
    ("bump_limits_str", lambda: core.Trainer(net_core, bump_limits="ab"), TypeError, r"^bump_limits: "),
    # labels
    (
        "loss_uint64_labels",
        lambda: core.loss_and_grad(np.zeros((1, 3)), np.array([2**64 - 1], dtype=np.uint64)),
        InvalidValueError,
        r"^labels: .*18446744073709551615",
    ),
    (
        "loss_zero_outputs",
        lambda: core.loss_and_grad(np.zeros((1, 0)), np.array([0])),
        ShapeError,
        r"^out_times: expected shape \[batch, n_out >= 1\]",
    ),
    # conformance cases
    (
        "conformance_str_w",
        lambda: run_case(case_with(w=[["a", 1.0]])),
        TypeError,
        r"^layers\[0\]\.w: expected numbers",
    ),
    (
        "conformance_ragged_w",
        lambda: run_case(case_with(w=[[1.0, 2.0], [1.0]])),
        ShapeError,
        r"^layers\[0\]\.w: expected a rectangular",
    ),
    (
        "conformance_str_input",
        lambda: run_case(case_with(input="ab")),
        TypeError,
        r"^input: expected numbers",
    ),
    (
        "conformance_float_label",
        lambda: run_case(case_with(label=0.5)),
        TypeError,
        r"^label: expected an integer >= 0, got float",
    ),
    ("conformance_str_label", lambda: run_case(case_with(label="a")), TypeError, r"^label: "),
    (
        "conformance_str_tau",
        lambda: run_case(case_with(neuron={"tau_m": "a", "tau_s": 1.0})),
        TypeError,
        r"^neuron\.tau_m: ",
    ),
)


@pytest.mark.parametrize(("call", "exc", "match"), CALLS)
def test_bad_arguments_are_named(call: Callable[[], object], exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        call()


def test_numpy_integers_and_python_ints_are_accepted() -> None:
    a = TRAINER.learning_rates(np.int64(3))
    assert a == TRAINER.learning_rates(3)
    assert core.default_bump_limits(np.uint8(2)) == [0.3, 0.0]
    assert run_case(case_with(label=np.int64(0)))["loss"] == run_case(CASE)["loss"]


def test_config_bump_limits_are_fractions(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[training]\nbump_limits = [1.5, 0.0]\n")
    with pytest.raises(ConfigError, match=r"training\.bump_limits: expected fractions in \[0, 1\]"):
        load_config(p)
    assert delgrad_rs.load_config is load_config
