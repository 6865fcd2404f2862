"""Fixtures: a throwaway PostgreSQL server for the session, a fresh database per test."""

from __future__ import annotations

import itertools
import json
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from gopay.settings import Settings
from gopay.system import System, prepare_database
from tests.support import SECRET_KEY, UNLIMITED

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from gopay.embedded_postgres import EmbeddedPostgres

_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[EmbeddedPostgres]:
    """A real PostgreSQL server on a free loopback port, deleted after the test session."""
    server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="gopay-test-pg-")) / "data").start()
    yield server
    server.destroy()


@pytest.fixture
def database_url(postgres_server: EmbeddedPostgres) -> str:
    """An empty database of its own for one test."""
    return new_database(postgres_server)


def new_database(server: EmbeddedPostgres) -> str:
    name = f"gopay_test_{next(_database_numbers)}"
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return server.url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(database_url=database_url, var_dir=tmp_path / "var",
                    secret_key=SECRET_KEY, kyc_limits=json.loads(UNLIMITED))


@pytest.fixture
def system(settings: Settings, database_url: str) -> Iterator[System]:
    """GoPay's application and read side over the test database (projections run on demand)."""
    prepare_database(settings, database_url)
    running = System.connect(settings, database_url)
    yield running
    running.close()
