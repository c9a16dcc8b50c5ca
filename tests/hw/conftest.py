"""Fixtures for the delgrad-hw tests: servers on 127.0.0.1 with the toy chip, and raw protocol clients."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# the helper modules beside this file (hw_support, hw_toychip) must import under any --import-mode
sys.path.insert(0, str(Path(__file__).resolve().parent))

from delgrad_hw.server import ExperimentServer
from hw_support import TOKEN, RawClient


def pytest_configure(config: pytest.Config) -> None:
    # keep the per-test timeout marks harmless when pytest-timeout is not installed
    config.addinivalue_line("markers", "timeout(seconds): per-test time limit (pytest-timeout)")


@pytest.fixture
def token() -> str:
    return TOKEN


@pytest.fixture
def make_server() -> Iterator[Callable[..., ExperimentServer]]:
    """Factory of started servers on 127.0.0.1; all are stopped at teardown."""
    servers: list[ExperimentServer] = []

    def make(chip: Any, **kwargs: Any) -> ExperimentServer:
        kwargs.setdefault("token", TOKEN)
        kwargs.setdefault("host", "127.0.0.1")
        srv = ExperimentServer(chip, **kwargs)
        srv.start()
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()


@pytest.fixture
def raw_client() -> Iterator[Callable[[int], RawClient]]:
    clients: list[RawClient] = []

    def make(port: int) -> RawClient:
        c = RawClient(port)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()
