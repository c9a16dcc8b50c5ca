import json
import os
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "examples" / "configs"
CONFORMANCE = REPO / "tests" / "conformance"
# The conformance reference and generator are scripts beside their cases; the tests import both.
sys.path.insert(0, str(CONFORMANCE))


def under_ci() -> bool:
    """Whether the tests run under continuous integration (``CI`` set to ``true`` or ``1``)."""
    return os.environ.get("CI", "").lower() in ("true", "1")


def external_vectors_path() -> Path:
    """``$DELGRAD_SHARED/conformance/vectors.json``, by default in ``shared`` beside the repository."""
    env = os.environ.get("DELGRAD_SHARED")
    return (Path(env) if env else REPO.parent / "shared") / "conformance" / "vectors.json"


@cache
def _cases(path: Path) -> list[dict[str, Any]]:
    return list(json.loads(path.read_text())["cases"])


def external_vectors() -> list[dict[str, Any]]:
    """The external conformance vectors; skips the calling test when they are absent, except
    under CI, where their absence fails it."""
    path = external_vectors_path()
    if not path.is_file():
        why = (
            f"external conformance vectors not found at {path} "
            "(set DELGRAD_SHARED to the folder holding conformance/vectors.json)"
        )
        if under_ci():
            pytest.fail(f"{why}; CI=true requires them")
        pytest.skip(why)
    return _cases(path)


@pytest.fixture(scope="session")
def own_cases() -> list[dict[str, Any]]:
    """The repository's own conformance cases (``tests/conformance/cases.json``)."""
    return _cases(CONFORMANCE / "cases.json")
