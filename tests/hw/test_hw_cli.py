"""The delgrad-hw command-line tool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from delgrad_hw.cli import load_factory, main
from delgrad_hw.client import RemoteChip
from hw_support import TOKEN
from hw_toychip import assert_times_equal, make_config, make_inputs, toy_forward

pytestmark = pytest.mark.timeout(60)

HERE = Path(__file__).resolve().parent


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "serve" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["serve", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for opt in ("--host", "--port", "--token-file", "--chip-id", "--seed", "--backend"):
        assert opt in out


def test_load_factory_errors() -> None:
    assert load_factory("hw_toychip:ToyChip").__name__ == "ToyChip"
    for spec in ("nocolon", "no_such_module_xyz:F", "hw_toychip:Nope", "hw_toychip:TOKEN_NOT_THERE", ":x"):
        with pytest.raises(ValueError, match="--backend"):
            load_factory(spec)


def test_serve_rejects_bad_backend_and_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tf = tmp_path / "token"
    tf.write_text(TOKEN)
    tf.chmod(0o600)
    assert main(["serve", "--token-file", str(tf), "--backend", "no_such_module_xyz:F"]) == 2
    assert "cannot import" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.write_text("\n")
    empty.chmod(0o600)
    assert main(["serve", "--token-file", str(empty), "--backend", "hw_toychip:ToyChip"]) == 2
    assert main(["serve", "--token-file", str(tmp_path / "missing"), "--backend", "hw_toychip:ToyChip"]) == 2


def test_serve_subprocess(tmp_path: Path) -> None:
    tf = tmp_path / "token"
    tf.write_text(TOKEN + "\n")
    tf.chmod(0o600)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    cmd = [
        sys.executable, "-m", "delgrad_hw", "serve", "--host", "127.0.0.1", "--port", "0", "--token-file", str(tf),
        "--chip-id", "cli-chip", "--seed", "3", "--backend", "hw_toychip:ToyChip",
    ]  # fmt: skip
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert "serving chip cli-chip on 127.0.0.1:" in line, line + (proc.stderr.read() if proc.stderr else "")
            address = line.strip().rsplit(" ", 1)[-1]
            cfg = make_config(50)
            with RemoteChip(address, token=TOKEN) as rc:
                assert rc.info().chip_id == "cli-chip"
                rc.configure(cfg)
                x = make_inputs(3)
                assert_times_equal(rc.run(x).times, toy_forward(cfg, x))
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_serve_default_backend_is_the_emulator(tmp_path: Path) -> None:
    """``delgrad-hw serve`` without --backend serves an EmulatedChip with the given chip id and seed."""
    from delgrad_hw.emulator import EmulatedChip
    from test_hw_emulator import hw_config, yy_inputs

    tf = tmp_path / "token"
    tf.write_text(TOKEN + "\n")
    tf.chmod(0o600)
    cmd = [
        sys.executable, "-m", "delgrad_hw", "serve", "--host", "127.0.0.1", "--port", "0", "--token-file", str(tf),
        "--chip-id", "emu-cli", "--seed", "7",
    ]  # fmt: skip
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert "serving chip emu-cli on 127.0.0.1:" in line, line + (proc.stderr.read() if proc.stderr else "")
            address = line.strip().rsplit(" ", 1)[-1]
            local = EmulatedChip("emu-cli", 7)
            cfg, x = hw_config(20), yy_inputs(16)
            with RemoteChip(address, token=TOKEN) as rc:
                assert rc.info().calibration_id == local.info().calibration_id
                assert rc.configure(cfg) == local.configure(cfg)
                assert_times_equal(rc.run(x).times, local.run(x).times)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
