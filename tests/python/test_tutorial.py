"""docs/tutorial.md runs as written: its code blocks, in order, in a fresh directory.

```python blocks run in one namespace (a later block uses what an earlier one defined); ```bash blocks
run in a shell with this Python's scripts (``delgrad``) first on PATH. The blocks of the NIR section
run after the others, in the same namespace.
"""

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO

TUTORIAL = REPO / "docs" / "tutorial.md"
NIR_SECTION = "Export to NIR"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


@dataclass
class Block:
    lang: str
    code: str
    line: int
    section: str


def tutorial_blocks() -> list[Block]:
    text = TUTORIAL.read_text(encoding="utf-8")
    blocks = []
    for m in _FENCE.finditer(text):
        before = text[: m.start()]
        headings = re.findall(r"^## (.+)$", before, re.MULTILINE)
        blocks.append(Block(m.group(1), m.group(2), before.count("\n") + 2, headings[-1] if headings else ""))
    return blocks


def run_block(block: Block, namespace: dict[str, Any], cwd: Path) -> None:
    where = f"{TUTORIAL.relative_to(REPO)}:{block.line}"
    if block.lang == "python":
        exec(compile(block.code, where, "exec"), namespace)
    elif block.lang == "bash":
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.code], cwd=cwd, env=env, capture_output=True, text=True
        )
        print(proc.stdout, end="")
        assert proc.returncode == 0, f"{where}: exit status {proc.returncode}\n{proc.stderr}"
    else:
        raise AssertionError(f"{where}: code block of unknown language {block.lang!r} (expected python or bash)")


def run_blocks(namespace: dict[str, Any], cwd: Path, nir: bool) -> None:
    """Run, in ``cwd``, the blocks of the NIR section (``nir``) or those of every other section."""
    old = Path.cwd()
    os.chdir(cwd)
    try:
        for block in tutorial_blocks():
            if (block.section == NIR_SECTION) == nir:
                run_block(block, namespace, cwd)
    finally:
        os.chdir(old)


@pytest.fixture(scope="module")
def tutorial_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """Run every block outside the NIR section; return the namespace and the directory."""
    cwd = tmp_path_factory.mktemp("tutorial")
    namespace: dict[str, Any] = {"__name__": "__tutorial__"}
    run_blocks(namespace, cwd, nir=False)
    return namespace, cwd


def test_tutorial_has_every_section() -> None:
    sections = {b.section for b in tutorial_blocks()}
    assert {"Train a network with delays", "Inspect the spike times", "Evaluate on the emulated chip"} <= sections
    assert NIR_SECTION in sections


def test_tutorial_runs(tutorial_run: tuple[dict[str, Any], Path]) -> None:
    namespace, cwd = tutorial_run
    assert (cwd / "runs" / "tutorial" / "checkpoints" / "best.npz").is_file()
    assert (cwd / "runs" / "tutorial_chip" / "backend.json").is_file()
    # The accuracies the text describes: learning on the ideal model, and on the chip in the loop.
    test_acc = namespace["metrics"].filter(namespace["metrics"]["split"] == "test")["accuracy"].item()
    chip_acc = namespace["chip_metrics"].filter(namespace["chip_metrics"]["split"] == "test")["accuracy"].item()
    assert test_acc > 0.85
    assert chip_acc > 0.75


def test_tutorial_nir_section_runs(tutorial_run: tuple[dict[str, Any], Path]) -> None:
    namespace, cwd = tutorial_run
    run_blocks(namespace, cwd, nir=True)
    assert (cwd / "tutorial.nir").is_file()
    assert namespace["same"] is True
