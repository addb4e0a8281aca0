"""Time partitions of events against a real PostgreSQL: creation ahead, rows moving out of the default partition,
idempotent replay across a partition boundary, retention by dropping partitions, the CLI."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from game_analytics.storage import partitions
from game_analytics.storage.engine import libpq_dsn
from game_analytics.storage.partitions import ensure_partition, list_partitions, maintain, partition_for
from game_analytics.workers.batches import prepare_connection, prepare_dicts, write_batch


def event(i: int, when: str) -> dict:
    return {"event_id": f"e-{i}", "event_type": "login", "occurred_at": when, "player_id": f"p{i}", "game": "g",
            "payload": {}}  # fmt: skip


@pytest.fixture
def conn(db_dsn: str):
    with psycopg.connect(libpq_dsn(db_dsn)) as connection:
        prepare_connection(connection)
        yield connection


@pytest.fixture
def admin(db_dsn: str):
    with psycopg.connect(libpq_dsn(db_dsn), autocommit=True) as connection:
        yield connection


def write(conn: psycopg.Connection, events: list[dict], *, direct: bool = True):
    with conn.transaction():
        return write_batch(conn, prepare_dicts(enumerate(events)), direct=direct)


def where(conn: psycopg.Connection) -> list[tuple[str, str]]:
    return conn.execute("SELECT event_id, tableoid::regclass::text FROM events ORDER BY event_id").fetchall()


def test_partition_for_months_and_days() -> None:
    jan = partition_for(datetime(2025, 12, 31, 23, 59, tzinfo=UTC))
    assert (jan.name, jan.start, jan.end) == ("events_p202512", datetime(2025, 12, 1, tzinfo=UTC),
                                             datetime(2026, 1, 1, tzinfo=UTC))  # fmt: skip
    day = partition_for(datetime(2026, 2, 28, 23, 0, tzinfo=UTC), "day")
    assert (day.name, day.end) == ("events_p20260228", datetime(2026, 3, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="interval"):
        partition_for(datetime(2026, 1, 1, tzinfo=UTC), "week")


def test_replay_across_a_partition_boundary_stores_each_event_once(conn, admin) -> None:
    """A batch straddling a month boundary, first into the default partition, then again after the partitions of
    both months were created (its rows moved out of the default): nothing is stored twice."""
    batch = [event(1, "2024-01-31T23:59:59.999999Z"), event(2, "2024-02-01T00:00:00Z"), event(3, "2024-02-15T00:00:00Z")]
    assert sum(write(conn, batch).inserted.values()) == 3
    assert {t for _, t in where(admin)} == {"events_default"}
    with admin.transaction():
        for day in ("2024-01-10", "2024-02-10"):
            assert ensure_partition(admin, partition_for(datetime.fromisoformat(day + "T00:00:00+00:00")))
    assert where(admin) == [("e-1", "events_p202401"), ("e-2", "events_p202402"), ("e-3", "events_p202402")]
    replay = write(conn, batch)
    assert not replay.direct and replay.duplicates == 3 and replay.inserted == {}
    both = write(conn, [event(1, "2024-01-31T23:59:59.999999Z"), event(4, "2024-02-01T00:00:01Z")])
    assert sum(both.inserted.values()) == 1
    assert conn.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone() == (4, 4)


@pytest.mark.parametrize("direct", [True, False])
def test_an_event_id_is_stored_once_whatever_its_occurred_at(conn, admin, direct: bool) -> None:
    """The same id re-sent with another time, into another partition (a publisher stamping the time again on a
    retry, once as epoch milliseconds): a duplicate, the first stored row stays; within one batch too. It was a
    second row (the key of the partitioned events is (event_id, occurred_at)); event_ids holds each id once."""
    with admin.transaction():
        for day in ("2024-01-10", "2024-02-10"):
            ensure_partition(admin, partition_for(datetime.fromisoformat(day + "T00:00:00+00:00")))
    assert sum(write(conn, [event(1, "2024-01-31T23:00:00Z")], direct=direct).inserted.values()) == 1
    again = write(conn, [event(1, "2024-02-01T01:00:00Z"), event(1, 1706749200000)], direct=direct)  # 2024-02-01T01Z
    assert (again.inserted, again.duplicates) == ({}, 2)
    mixed = write(conn, [event(2, "2024-02-02T00:00:00Z"), event(2, "2024-01-02T00:00:00Z"),
                         event(3, 1706832000)], direct=direct)  # fmt: skip
    assert (sum(mixed.inserted.values()), mixed.duplicates) == (2, 1)
    assert where(admin) == [("e-1", "events_p202401"), ("e-2", "events_p202402"), ("e-3", "events_p202402")]
    assert admin.execute("SELECT event_id, occurred_at FROM event_ids ORDER BY event_id").fetchall() == [
        ("e-1", datetime(2024, 1, 31, 23, tzinfo=UTC)), ("e-2", datetime(2024, 2, 2, tzinfo=UTC)),
        ("e-3", datetime(2024, 2, 2, tzinfo=UTC))]


def test_maintain_creates_ahead_and_drops_by_retention(conn, admin) -> None:
    now = datetime(2026, 6, 15, tzinfo=UTC)
    write(conn, [event(1, "2026-02-10T00:00:00Z"), event(2, "2026-03-20T00:00:00Z"), event(3, "2026-06-01T00:00:00Z"),
                 event(4, "2025-01-01T00:00:00Z")])  # fmt: skip
    for month in ("2026-02-01", "2026-03-01", "2026-04-01"):
        with admin.transaction():
            ensure_partition(admin, partition_for(datetime.fromisoformat(month + "T00:00:00+00:00")))
    done = maintain(admin, now=now, ahead=2)
    assert done.created == ["events_p202606", "events_p202607", "events_p202608"] and not done.dropped
    assert maintain(admin, now=now, ahead=2).created == []  # idempotent
    done = maintain(admin, now=now, retention=timedelta(days=90), ahead=2)  # cutoff 2026-03-17
    assert done.dropped == ["events_p202602"] and done.default_deleted == 1  # 2025-01-01 was in the default
    assert all(s < 1.0 for s in done.drop_seconds)
    assert [p.name for p in list_partitions(admin)][:2] == ["events_p202603", "events_p202604"]
    assert [e for e, _ in where(admin)] == ["e-2", "e-3"]
    # the ids go with their events (older than the oldest partition left, 2026-03-01), so they can come again
    assert done.ids_deleted == 2
    assert [r[0] for r in admin.execute("SELECT event_id FROM event_ids ORDER BY 1")] == ["e-2", "e-3"]


def test_retention_drop_while_ingest_runs(conn, admin, db_dsn: str) -> None:
    """DETACH ... CONCURRENTLY does not wait for the writers' locks to clear for good: a drop with COPYs running."""
    with admin.transaction():
        ensure_partition(admin, partition_for(datetime(2024, 5, 1, tzinfo=UTC)))
    write(conn, [event(i, "2024-05-02T00:00:00Z") for i in range(2000)])
    stop, written = threading.Event(), []

    def ingest() -> None:
        with psycopg.connect(libpq_dsn(db_dsn)) as other:
            prepare_connection(other)
            n = 10_000
            while not stop.is_set():
                write(other, [event(n + i, f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%S}Z") for i in range(200)])
                n += 200
                written.append(n)

    thread = threading.Thread(target=ingest)
    thread.start()
    try:
        while not written and thread.is_alive():
            time.sleep(0.01)
        done = maintain(admin, now=datetime.now(UTC), retention=timedelta(days=30))
        seen = len(written)
        while len(written) == seen and thread.is_alive():  # ingest goes on after the drop
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join()
    assert "events_p202405" in done.dropped and max(done.drop_seconds) < 1.0 and written


def test_maintain_needs_autocommit(conn) -> None:
    with pytest.raises(ValueError, match="autocommit"):
        maintain(conn)


def test_cli_maintain_and_list(db_dsn: str, capsys) -> None:
    assert partitions.main(["maintain", "--dsn", db_dsn, "--retention", "90d"]) == 0
    assert "created" in capsys.readouterr().out
    assert partitions.main(["list", "--dsn", db_dsn]) == 0
    assert partition_for(datetime.now(UTC)).name in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        partitions.main(["maintain", "--dsn", db_dsn, "--retention", "ninety"])
    assert exit_.value.code == 2
