"""The insert-only writer role (migration 0004) on the real PostgreSQL, and tamper evidence against the owner."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, make_url, pool, text
from sqlalchemy.exc import DBAPIError

from game_analytics.audit import GENESIS_HASH, AuditLog, entry_hash
from game_analytics.audit.cli import main as audit_main
from game_analytics.interventions.cli import main as interventions_main
from game_analytics.interventions.detections import NewDetection, record_detections

WORKER_LOGIN = "ga_worker_login"
WRITER_ROLE = "game_analytics_writer"  # created by migration 0004


@pytest.fixture
def writer_dsn(postgres_server, db_dsn: str) -> str:
    """``db_dsn`` as a login role holding only ``game_analytics_writer`` (trust auth: no password)."""
    with psycopg.connect(postgres_server.dsn(driver="postgresql"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (WORKER_LOGIN,)).fetchone()
        if not exists:
            conn.execute(f"CREATE ROLE {WORKER_LOGIN} LOGIN NOSUPERUSER NOINHERIT IN ROLE {WRITER_ROLE}")
            conn.execute(f"ALTER ROLE {WORKER_LOGIN} SET role = {WRITER_ROLE}")
    return make_url(db_dsn).set(username=WORKER_LOGIN).render_as_string(hide_password=False)


@pytest.fixture
def writer(writer_dsn: str) -> Iterator[Engine]:
    engine = create_engine(writer_dsn, poolclass=pool.NullPool)
    yield engine
    engine.dispose()


@pytest.fixture
def owner(db_dsn: str) -> Iterator[Engine]:
    engine = create_engine(db_dsn, poolclass=pool.NullPool)
    yield engine
    engine.dispose()


def work_a_case(writer: Engine, writer_dsn: str) -> int:
    """Open a case as the worker would and resolve it through the CLI, both as the writer role."""
    with writer.begin() as conn:
        assert conn.execute(text("SELECT current_user")).scalar_one() == WRITER_ROLE
        case_id = record_detections(conn, "games/r", "player", "warning", 2,
                                    [NewDetection("p1", "p1", 3.0, {"subject": "p1", "x": 1})]).opened[0]  # fmt: skip
    argv = [str(case_id), "--dsn", writer_dsn, "--actor", "alice"]
    assert interventions_main(["ack", *argv]) == 0
    assert interventions_main(["resolve", *argv, "-r", "false-positive", "-j", "test account"]) == 0
    return case_id


@pytest.mark.parametrize("statement", [
    "UPDATE audit_log SET actor = 'mallory' WHERE seq = 1",
    "DELETE FROM audit_log WHERE seq = 3",
    "TRUNCATE audit_log",
    "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
    "DROP TRIGGER audit_log_append_only ON audit_log",
])  # fmt: skip
def test_writer_role_can_append_but_not_rewrite(writer: Engine, writer_dsn: str, statement: str, capsys) -> None:
    work_a_case(writer, writer_dsn)
    capsys.readouterr()
    with pytest.raises(DBAPIError, match="permission denied|must be (the )?owner"), writer.begin() as conn:
        conn.execute(text(statement))
    log = AuditLog(writer)
    assert log.verify().ok and log.head()[0] == 3


def test_writer_role_owns_nothing(owner: Engine) -> None:
    with owner.connect() as conn:
        owned = conn.execute(text(
            "SELECT c.relname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
            "WHERE r.rolname IN (:w, :l)"), {"w": WRITER_ROLE, "l": WORKER_LOGIN}).all()  # fmt: skip
        grants = set(conn.execute(text(
            "SELECT privilege_type FROM information_schema.role_table_grants "
            "WHERE grantee = :w AND table_name = 'audit_log'"), {"w": WRITER_ROLE}).scalars())  # fmt: skip
    assert owned == [] and grants == {"INSERT", "SELECT"}


def test_owner_rewrite_is_caught_by_expect_head(writer: Engine, writer_dsn: str, owner: Engine, db_dsn: str,
                                                capsys) -> None:  # fmt: skip
    case_id = work_a_case(writer, writer_dsn)
    head = AuditLog(owner).head()
    capsys.readouterr()
    # the owner can switch the trigger off, change the resolution and recompute every hash after it
    entries = list(AuditLog(owner).entries())
    forged, prev = [], GENESIS_HASH
    for entry in entries:
        if entry.action == "intervention.resolve":
            entry = dataclasses.replace(entry, actor="mallory", justification="nothing to see")
        entry = dataclasses.replace(entry, prev_hash=prev)
        entry = dataclasses.replace(entry, hash=entry_hash(entry))
        forged.append(entry)
        prev = entry.hash
    with owner.begin() as conn:
        conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
        conn.execute(text("ALTER TABLE audit_log DROP CONSTRAINT uq_audit_log_hash"))
        for entry in forged:
            conn.execute(text("UPDATE audit_log SET actor = :actor, justification = :justification, "
                              "prev_hash = :prev_hash, hash = :hash WHERE seq = :seq"), entry.__dict__)  # fmt: skip
        conn.execute(text("ALTER TABLE audit_log ADD CONSTRAINT uq_audit_log_hash UNIQUE (hash)"))
        conn.execute(text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only"))
    assert audit_main(["verify", "--dsn", db_dsn]) == 0  # consistent on its own ...
    capsys.readouterr()
    assert audit_main(["verify", "--dsn", db_dsn, "--expect-head", head[1]]) == 1  # ... but not the anchored head
    out = capsys.readouterr().out
    assert out.startswith(f"BROKEN at seq {head[0]}") and "not the expected head" in out
    assert audit_main(["verify", "--dsn", db_dsn, "--anchor", f"{head[0]}:{head[1]}"]) == 1
    assert case_id
