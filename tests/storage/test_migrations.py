"""The packaged Alembic migrations against a real PostgreSQL server."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, pool, text

from game_analytics.storage import Base, downgrade, upgrade
from game_analytics.storage.migrate import current_revision, head_revision

EXPECTED_TABLES = {
    "events", "players", "matches", "rating_history", "leaderboard_entries", "detections",
    "interventions", "report_runs", "audit_log", "dead_letters", "player_balances", "player_activity",
    "aggregate_state", "activity_hourly", "market_hourly", "last_activity_hourly", "wealth_values",
    "leaderboard_rating_counts", "event_ids", "session_logins", "session_lengths",
}  # fmt: skip


def _schema_diff(url: str) -> list:
    """Models vs. database.  The partitions of ``events`` are tables of their own in the catalog but not models
    (the partitioned parent is): they are left out of the compare by the catalog's own flag (relispartition),
    so any other extra table still shows up; the partitioning itself is checked by test_events_is_partitioned."""
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            partitions = set(conn.execute(text("SELECT relname FROM pg_class WHERE relispartition")).scalars())

            def include_name(name: str | None, type_: str, parent_names: dict) -> bool:
                return not (type_ in ("table", "index") and name in partitions)

            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True, "include_name": include_name}
            )
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_models_cover_expected_tables() -> None:
    assert set(Base.metadata.tables) == EXPECTED_TABLES


def test_migration_matches_models(empty_db_dsn: str) -> None:
    upgrade(empty_db_dsn)
    assert current_revision(empty_db_dsn) == head_revision()
    assert _schema_diff(empty_db_dsn) == []


def test_events_is_partitioned(empty_db_dsn: str) -> None:
    """events is a RANGE-partitioned table on occurred_at with a DEFAULT partition; its key holds the partition key."""
    upgrade(empty_db_dsn)
    engine = create_engine(empty_db_dsn, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            key = conn.execute(text("SELECT pg_get_partkeydef('events'::regclass)")).scalar_one()
            default = conn.execute(text("SELECT to_regclass('events_default') IS NOT NULL")).scalar_one()
            pk = conn.execute(text("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                                   "WHERE conname = 'pk_events'")).scalar_one()  # fmt: skip
            brin = conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_events_occurred_at'"))
        assert key == "RANGE (occurred_at)" and default
        assert pk == "PRIMARY KEY (event_id, occurred_at)"
        assert "USING brin" in brin.scalar_one()
    finally:
        engine.dispose()


def test_migration_moves_an_unpartitioned_events_table(empty_db_dsn: str) -> None:
    """Rows stored before the partitioning migration survive it with their id and xact_id (catch-up state)."""
    upgrade(empty_db_dsn, "0005")
    engine = create_engine(empty_db_dsn, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO events (event_id, event_type, occurred_at, player_id, game, payload) "
                "SELECT 'e' || i, 'login', timestamptz '2024-01-31 23:00+00' + i * interval '1 hour', 'p' || i, "
                "'g', '{}' FROM generate_series(1, 3) i"))  # fmt: skip
            before = conn.execute(text("SELECT event_id, id, xact_id FROM events ORDER BY event_id")).all()
        upgrade(empty_db_dsn)
        with engine.begin() as conn:
            after = conn.execute(text("SELECT event_id, id, xact_id FROM events ORDER BY event_id")).all()
            new_id = conn.execute(text(
                "INSERT INTO events (event_id, event_type, occurred_at, game, payload) "
                "VALUES ('e9', 'login', now(), 'g', '{}') RETURNING id")).scalar_one()  # fmt: skip
        assert after == before and new_id > max(row.id for row in before)
        assert _schema_diff(empty_db_dsn) == []
        downgrade(empty_db_dsn, "0005")  # and back: the rows again in one unpartitioned table
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() == 4
            assert conn.execute(text("SELECT pg_get_partkeydef('events'::regclass)")).scalar_one() is None
    finally:
        engine.dispose()


def test_diff_detects_a_drift(empty_db_dsn: str) -> None:
    """Guard against a vacuous comparison: a schema change must show up as a diff."""
    upgrade(empty_db_dsn)
    engine = create_engine(empty_db_dsn, poolclass=pool.NullPool)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_events_event_type_occurred_at"))
        conn.execute(text("ALTER TABLE players ADD COLUMN nickname text"))
    engine.dispose()
    diff = _schema_diff(empty_db_dsn)
    kinds = {entry[0] if isinstance(entry, tuple) else entry[0][0] for entry in diff}
    assert {"add_index", "remove_column"} <= kinds


def test_upgrade_downgrade_roundtrip(empty_db_dsn: str) -> None:
    upgrade(empty_db_dsn)
    engine = create_engine(empty_db_dsn, poolclass=pool.NullPool)
    try:
        assert EXPECTED_TABLES <= set(inspect(engine).get_table_names())
        downgrade(empty_db_dsn, "base")
        insp = inspect(engine)
        assert set(insp.get_table_names()) == {"alembic_version"}
        with engine.connect() as conn:
            leftovers = conn.execute(
                text(
                    "SELECT typname FROM pg_type WHERE typname = 'intervention_status' "
                    "UNION ALL SELECT proname FROM pg_proc WHERE proname = 'audit_log_reject_change'"
                )
            ).all()
        assert leftovers == []
        assert current_revision(empty_db_dsn) is None
        upgrade(empty_db_dsn)  # and up again from scratch
        assert current_revision(empty_db_dsn) == head_revision()
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"]
)
def test_audit_log_rejects_changes(db_dsn: str, statement: str) -> None:
    engine = create_engine(db_dsn, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO audit_log (seq, at, actor, action, object_ref, prev_hash, hash) "
                    "VALUES (1, now(), 'a', 'create', 'x/y', repeat('0', 64), repeat('1', 64))"
                )
            )
        with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT actor FROM audit_log")).scalar_one() == "a"
    finally:
        engine.dispose()


def test_concurrent_migrate_commands_serialise(empty_db_dsn: str) -> None:
    """Three pods' init containers migrating one empty database at once: all succeed, the schema is at head."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "GAME_ANALYTICS_DSN": empty_db_dsn}
    procs = [subprocess.Popen([sys.executable, "-m", "game_analytics.cli", "migrate"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert current_revision(empty_db_dsn) == head_revision()
    assert _schema_diff(empty_db_dsn) == []


def test_migrate_command_reports_an_unreachable_database_in_one_line() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "game_analytics.cli", "migrate", "--dsn",
                           "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("game-analytics migrate: error: OperationalError") and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and done.stdout == ""  # errors on stderr, like every command's
