"""A real `gopay serve` process over a fresh database, per test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import new_database
from tests.support import Client, GoPayServer, gopay_env, staff


@pytest.fixture(scope="module")
def server_env(postgres_server, tmp_path_factory) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return gopay_env(new_database(postgres_server), tmp_path_factory.mktemp("var"))


@pytest.fixture(scope="module")
def server(server_env: dict[str, str], tmp_path_factory) -> Iterator[GoPayServer]:  # type: ignore[no-untyped-def]
    log = Path(tmp_path_factory.mktemp("logs")) / "serve.log"
    running = GoPayServer.create(server_env, log).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def admin(server: GoPayServer, server_env: dict[str, str]) -> Client:
    return staff(server.url, server_env, "admin")
