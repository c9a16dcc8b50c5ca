"""The tie rule: a tie between the earliest output spikes is wrong, or its lowest class is taken."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from delgrad_rs import Network, OptionError, Trainer, loss_and_grad
from delgrad_rs.config import TIE_RULES, ConfigError, config_from_dict, load_config
from delgrad_rs.training import build_trainer

CONFIGS = Path(__file__).resolve().parents[2] / "examples" / "configs"

#: The example configurations that reproduce a reference run (and so take its argmin's choice).
REFERENCE_RUNS = ("H30_W", "H30_WA", "H30_WD", "H30_WS", "H5_WS", "YY2021_H120", "hwaware_W", "hwaware_WA")


def test_loss_and_grad_classifies_exact_ties_by_the_rule() -> None:
    inf = np.inf
    out = np.array([[0.5, 0.5, 1.0], [1.0, 0.7, 0.7], [0.2, 0.7, 0.7], [inf, inf, inf], [inf, 0.9, 0.9]])
    y = np.array([0, 2, 0, 0, 1])
    wrong = loss_and_grad(out, y)
    first = loss_and_grad(out, y, tie_rule="first")
    assert wrong["predicted"].tolist() == [-1, -1, 0, -1, -1]
    assert first["predicted"].tolist() == [0, 1, 0, -1, 1]
    assert (wrong["correct"], first["correct"]) == (1, 3)
    # the loss and its gradient do not depend on the rule
    assert wrong["loss"] == first["loss"] and np.array_equal(wrong["dl_dt"], first["dl_dt"])
    with pytest.raises(OptionError, match=r'tie_rule: unknown tie rule "last"; expected "wrong" or "first"'):
        loss_and_grad(out, y, tie_rule="last")  # type: ignore[arg-type]


def _tied_network() -> Network:
    """4 inputs -> 3 outputs whose neurons 0 and 1 have the same weights (their times tie exactly)."""
    net = Network.create([4, 3], weight_mean=1.5, weight_std=0.5, seed=3, threads=1)
    params = net.params
    params[0]["w"][1] = params[0]["w"][0]
    net.params = params
    return net


def test_trainer_accuracy_follows_the_rule() -> None:
    net = _tied_network()
    rng = np.random.default_rng(0)
    x = rng.uniform(0.15, 2.0, size=(60, 4))
    y = rng.integers(0, 3, size=60)
    out = np.asarray(net.forward(x)[-1])
    # by hand: the earliest output, whether it is shared, numpy's argmin (the lowest index)
    earliest = out.min(axis=1)
    tied = (out == earliest[:, None]).sum(axis=1) > 1
    spikes = np.isfinite(earliest)
    assert tied.sum() >= 10 and spikes.all()
    hit = np.argmin(out, axis=1) == y
    want = {"wrong": int((hit & ~tied).sum()), "first": int(hit.sum())}
    assert want["first"] > want["wrong"]
    for rule in TIE_RULES:
        tr = Trainer(net.core, tie_rule=rule, threads=1)  # type: ignore[arg-type]
        r = tr.evaluate(x, y)
        assert r["correct"] == want[rule] and r["accuracy"] == want[rule] / 60
        step = Trainer(net.core, tie_rule=rule, bump=0.0, threads=1).step(x, y, 0)  # type: ignore[arg-type]
        assert step["correct"] == want[rule]
    assert Trainer(net.core).evaluate(x, y)["correct"] == want["wrong"]  # the default
    with pytest.raises(OptionError, match="tie_rule"):
        Trainer(net.core, tie_rule="random")  # type: ignore[arg-type]


def test_the_config_key_is_checked_and_reaches_the_trainer() -> None:
    cfg = config_from_dict({"loss": {"tie_rule": "first"}, "network": {"hidden": []}})
    assert cfg.loss.tie_rule == "first"
    default = config_from_dict({"network": {"hidden": []}})
    assert default.loss.tie_rule == "wrong"
    with pytest.raises(ConfigError, match=r"option loss\.tie_rule: expected one of 'wrong', 'first', got 'argmin'"):
        config_from_dict({"loss": {"tie_rule": "argmin"}})
    with pytest.raises(ConfigError, match=r"option loss\.tie_rule: expected a string"):
        config_from_dict({"loss": {"tie_rule": 1}})
    # the trainer's rule is the config's: evaluate a network whose outputs tie
    net = _tied_network()
    x = np.full((1, 4), 0.5)
    t = np.asarray(net.forward(x)[-1])
    assert t[0, 0] == t[0, 1] and t[0, 0] < t[0, 2]
    tr = build_trainer(cfg, net, threads=1)
    assert tr.evaluate(x, np.array([0]))["correct"] == 1
    assert build_trainer(default, net, threads=1).evaluate(x, np.array([0]))["correct"] == 0


@pytest.mark.parametrize("name", REFERENCE_RUNS)
def test_configs_that_reproduce_a_reference_run_take_the_first_of_a_tie(name: str) -> None:
    assert load_config(CONFIGS / f"{name}.toml").loss.tie_rule == "first"
