"""Two DSNs on the real PostgreSQL (GameDataSource ``spec.postgres.migrationDsnSecretRef``, docs/interventions.md):
a non-superuser owner role migrates an empty database and maintains the partitions, as the migrate init container
and the partitions CronJob do; the workers' role (holding only ``game_analytics_writer``) writes rows but can
neither switch off the audit log's append-only trigger nor run the owner's DDL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from game_analytics.audit import AuditLog
from game_analytics.storage.engine import make_engine
from game_analytics.storage.migrate import current_revision, head_revision
from game_analytics.storage.migrate import main as migrate_main
from game_analytics.storage.partitions import main as partitions_main

WRITER_ROLE = "game_analytics_writer"  # migration 0004


@dataclass(frozen=True)
class Roles:
    owner: str  # URL of the owner role (LOGIN CREATEROLE, owns the database; not a superuser)
    worker: str  # URL of the workers' login role (IN ROLE game_analytics_writer)


@pytest.fixture
def roles(postgres_server) -> Iterator[Roles]:
    suffix = uuid.uuid4().hex[:8]
    owner, worker, database = f"ga_owner_{suffix}", f"ga_worker_{suffix}", f"ga_owned_{suffix}"
    admin = postgres_server.dsn(driver="postgresql")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {owner} LOGIN CREATEROLE NOSUPERUSER")
        conn.execute(f'CREATE DATABASE "{database}" OWNER {owner}')
    url = f"postgresql://{{}}@{postgres_server.host}:{postgres_server.port}/{database}"
    yield Roles(url.format(owner), url.format(worker))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
        conn.execute(f"DROP ROLE IF EXISTS {worker}")
        conn.execute(f"DROP ROLE {owner}")


def add_worker_role(postgres_server, roles: Roles) -> None:
    """The DBA's step after the first migration (docs/interventions.md): a login role holding the writer role."""
    name = roles.worker.split("//", 1)[1].split("@", 1)[0]
    with psycopg.connect(postgres_server.dsn(driver="postgresql"), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN NOSUPERUSER IN ROLE {WRITER_ROLE}")


def test_the_owner_dsn_migrates_and_the_workers_role_cannot_disable_the_trigger(postgres_server, roles: Roles,
                                                                                capsys) -> None:  # fmt: skip
    assert migrate_main(["--dsn", roles.owner]) == 0  # what the init container runs with the owner's Secret
    assert f"database at {head_revision()}" in capsys.readouterr().out
    add_worker_role(postgres_server, roles)
    assert current_revision(make_engine(roles.worker).url.render_as_string(hide_password=False)) == head_revision()

    worker_log = AuditLog(make_engine(roles.worker))
    worker_log.append("detection-worker", "intervention.open", "intervention/1", None, {"status": "open"},
                      source="worker")  # fmt: skip
    with psycopg.connect(roles.worker, autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0].startswith("ga_worker_")
        for statement in ("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
                          "ALTER TABLE audit_log DISABLE TRIGGER ALL",
                          "DROP TRIGGER audit_log_append_only ON audit_log",
                          "UPDATE audit_log SET actor = 'mallory'",
                          "DELETE FROM audit_log",
                          "TRUNCATE audit_log",
                          "SET session_replication_role = replica",  # would skip every trigger
                          "ALTER TABLE events OWNER TO CURRENT_USER",
                          "CREATE TABLE events_p209901 PARTITION OF events "
                          "FOR VALUES FROM ('2099-01-01') TO ('2099-02-01')"):  # fmt: skip
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        owned = conn.execute("SELECT count(*) FROM pg_class WHERE relowner = current_user::regrole").fetchone()[0]
        assert owned == 0
    assert worker_log.verify().ok and worker_log.head()[0] == 1

    # the partitions: refused to the workers' role, done by the owner (the CronJob)
    capsys.readouterr()
    assert partitions_main(["maintain", "--dsn", roles.worker, "--ahead", "6"]) == 1
    assert "InsufficientPrivilege" in capsys.readouterr().err  # errors go to stderr, one line (docs/cli.md)
    assert partitions_main(["maintain", "--dsn", roles.owner, "--ahead", "6"]) == 0
    assert "created ['events_p" in capsys.readouterr().out
    # and the owner can switch the trigger off, which is why its DSN stays out of the worker pods
    with psycopg.connect(roles.owner) as conn:
        conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        conn.rollback()
