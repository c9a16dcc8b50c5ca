import json
import os
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "examples" / "configs"


def shared_dir() -> Path:
    env = os.environ.get("DELGRAD_SHARED")
    return Path(env) if env else REPO.parent / "shared"


@pytest.fixture(scope="session")
def vectors() -> list[dict[str, Any]]:
    path = shared_dir() / "conformance" / "vectors.json"
    if not path.is_file():
        pytest.fail(f"conformance vectors not found at {path}; set DELGRAD_SHARED")
    return list(json.loads(path.read_text())["cases"])
