"""Shared pytest fixtures.

Real PostgreSQL / Redis processes (see ``devtools``) are started lazily, once per session, only when
a test asks for them, and stopped by PID at the end.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import redis

from devtools.postgres import PostgresServer, start_postgres
from devtools.redis import RedisServer, start_redis

_db_counter = itertools.count()

try:  # property-based tests: `pytest --hypothesis-profile=long` for the long fuzz runs (docs/testing.md)
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("long", max_examples=2000, deadline=None)
except ImportError:  # pragma: no cover - hypothesis is in the dev extra
    pass


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server for the whole session."""
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_dsn(postgres_server: PostgresServer) -> str:
    """SQLAlchemy URL of the session server's ``postgres`` database (superuser)."""
    return postgres_server.dsn()


@pytest.fixture(scope="session")
def _migrated_template(postgres_server: PostgresServer) -> str:
    """Name of a database migrated to head once per session, used as a CREATE DATABASE template."""
    from game_analytics.storage.migrate import upgrade

    name = "ga_template"
    upgrade(postgres_server.create_database(name))
    return name


@pytest.fixture
def empty_db_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    """URL of a fresh, empty database (no schema) for this test; dropped afterwards."""
    name = f"ga_empty_{next(_db_counter)}"
    yield postgres_server.create_database(name)
    postgres_server.drop_database(name)


@pytest.fixture
def db_dsn(postgres_server: PostgresServer, _migrated_template: str) -> Iterator[str]:
    """URL of a fresh database with the full schema (copied from the migrated template); dropped afterwards."""
    name = f"ga_test_{next(_db_counter)}"
    yield postgres_server.create_database(name, template=_migrated_template)
    postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A throwaway redis-server for the whole session."""
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    """``redis://`` URL of the session Redis server."""
    return redis_server.url


@pytest.fixture
def clean_redis_url(redis_url: str) -> str:
    """The session Redis URL after FLUSHALL, for tests that need an empty keyspace."""
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    client.close()
    return redis_url
