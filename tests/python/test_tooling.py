import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CONFIGS, REPO
from delgrad_rs import ConfigError, OptionError, load_config
from delgrad_rs.cli import main


def test_stubtest() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "delgrad_rs._core"], capture_output=True, text=True, cwd=REPO
    )
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("name", ["H30_W", "H30_WA", "H30_WD", "H30_WS", "H5_WS"])
def test_example_configs_load(name: str) -> None:
    cfg = load_config(CONFIGS / f"{name}.toml")
    assert cfg.name == name and cfg.training.epochs == 300 and cfg.training.batch_size == 150
    assert cfg.optimizer.step_size == 20 and cfg.optimizer.gamma == 0.95
    assert cfg.loss.kind == "mse" and cfg.loss.delta == 0.2


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("bogus = 1", "bogus"),
        ("[network]\nhiden = [30]", "network.hiden"),
        ("[training]\nepochs = 'many'", "training.epochs"),
        ("[training]\nepochs = 1.5", "training.epochs"),
        ("[optimizer]\nlr_weights = true", "optimizer.lr_weights"),
        ("[network]\ndelays = ['sideways']", "network.delays"),
        ("[network]\nhidden = 30", "network.hidden"),
        ("[loss]\nkind = 'hinge'", "loss.kind"),
        ("[training]\nbump_limits = [0.3]", "training.bump_limits"),
        ("network = 3", "network"),
        ("[training\n", "not valid TOML"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace(".", r"\.")) as e:
        load_config(p)
    assert isinstance(e.value, OptionError) and isinstance(e.value, ValueError)


@pytest.mark.parametrize("cmd", [[], ["train"], ["eval"], ["plot"]])
def test_cli_help(cmd: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main([*cmd, "--help"])
    assert e.value.code == 0
    assert "usage: delgrad" in capsys.readouterr().out


def test_cli_train_eval_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    cfg = CONFIGS / "H5_WS.toml"
    assert main(["train", str(cfg), "--epochs", "2", "--out", str(out), "--threads", "1", "--quiet"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert main(["eval", str(out)]) == 0
    assert "validation" in capsys.readouterr().out
    pytest.importorskip("matplotlib")
    assert main(["plot", str(out)]) == 0
    for f in ("learning_curves.png", "output_spike_times.png", "decision_map.png", "parameters.png"):
        assert (out / f).stat().st_size > 1000
    assert main(["eval", str(tmp_path / "nothing")]) == 1


def test_console_script_help() -> None:
    r = subprocess.run([sys.executable, "-m", "delgrad_rs.cli", "train", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--epochs" in r.stdout


def _imported_modules(root: Path) -> set[str]:
    import ast

    found: set[str] = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def test_the_packages_do_not_import_each_other_and_hw_uses_the_public_api() -> None:
    # delgrad_rs finds its hardware backends through entry points; delgrad_hw uses delgrad_rs.hardware
    assert not any(m.startswith("delgrad_hw") for m in _imported_modules(REPO / "python" / "delgrad_rs"))
    assert not any("_core" in m for m in _imported_modules(REPO / "hw" / "src" / "delgrad_hw"))
