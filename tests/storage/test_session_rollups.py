"""The session counts kept by the catch-up (``session_logins``, ``session_lengths``; migration 0011) and the
exporter's session figures read from them, on the real PostgreSQL: equal to the same figures computed here from the
events themselves, with fractional lengths on and off the integer bounds, events without a region, logouts without
a length, events after ``as_of``, two games and two catch-ups; and the migration's back-fill gives the same rows."""

from __future__ import annotations

import importlib
import math
import random
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import create_engine, pool

from game_analytics.storage.derived import catch_up_now
from game_analytics.storage.engine import libpq_dsn
from game_analytics.storage.queries import sessions
from game_analytics.workers.batches import prepare_connection, prepare_dicts, write_batch
from game_analytics.workers.buckets import cumulate

T0 = datetime(2026, 11, 1, tzinfo=UTC)
AS_OF = T0 + timedelta(days=3)
BOUNDS = (60, 300, 900, 1800, 3600)
migration = importlib.import_module("game_analytics.storage.migrations.versions.0011_session_rollups")


def events() -> list[dict]:
    rng, out = random.Random(7), []
    for i in range(600):
        at = T0 + timedelta(minutes=rng.randrange(0, 4 * 24 * 60))  # a quarter of them after AS_OF
        game = rng.choice(["arena", "shop"])
        if i % 2:
            out.append({"event_id": f"in{i}", "event_type": "login", "occurred_at": at.isoformat(),
                        "player_id": f"u{i % 17}", "game": game, "region": rng.choice(["EU", "US", None])})  # fmt: skip
        else:  # on a bound (300), just above one (300.5), fractional, or no length at all
            seconds = rng.choice([300, 300.5, 59.25, 1800, 4000.75, None, rng.uniform(0, 5000)])
            payload = {} if seconds is None else {"session_seconds": seconds}
            out.append({"event_id": f"out{i}", "event_type": "logout", "occurred_at": at.isoformat(),
                        "player_id": f"u{i % 17}", "game": game, "payload": payload})  # fmt: skip
    return out


def expected_logins(rows: list[dict]) -> list[tuple[str, str, int]]:
    counts: dict[tuple[str, str], int] = {}
    for e in rows:
        if e["event_type"] == "login" and datetime.fromisoformat(e["occurred_at"]) <= AS_OF:
            key = (e["game"], e["region"] or "unknown")
            counts[key] = counts.get(key, 0) + 1
    return sorted((g, r, n) for (g, r), n in counts.items())


def expected_lengths(rows: list[dict]) -> dict[str, tuple[list[int], float]]:
    out: dict[str, tuple[list[int], float]] = {}
    for e in rows:
        seconds = (e.get("payload") or {}).get("session_seconds")
        if e["event_type"] != "logout" or seconds is None or datetime.fromisoformat(e["occurred_at"]) > AS_OF:
            continue
        counts, total = out.get(e["game"], ([0] * (len(BOUNDS) + 1), 0.0))
        for i, bound in enumerate(BOUNDS):
            counts[i] += seconds <= bound
        counts[-1] += 1
        out[e["game"]] = (counts, total + seconds)
    return out


@pytest.fixture
def stored(db_dsn: str):
    rows = events()
    with psycopg.connect(libpq_dsn(db_dsn)) as conn:
        prepare_connection(conn)
        for part in (rows[:350], rows[350:]):  # two catch-ups: the counts grow by upserts
            with conn.transaction():
                write_batch(conn, prepare_dicts(enumerate(part)))
            catch_up_now(conn)
    engine = create_engine(db_dsn, poolclass=pool.NullPool)
    yield engine, rows
    engine.dispose()


def test_logins_by_region_count_every_login_up_to_as_of(stored) -> None:
    engine, rows = stored
    with engine.connect() as conn:
        got = sessions.logins_by_region(conn, AS_OF)
        assert got == expected_logins(rows) and len(got) == 6
        assert sessions.logins_by_region(conn, AS_OF, ["shop"]) == [r for r in got if r[0] == "shop"]
        later = sum(e["event_type"] == "login" for e in rows) - sum(n for *_, n in got)
        assert later > 0  # the events after AS_OF were subtracted, or the comparison proves nothing


def test_session_lengths_give_the_histogram_of_every_finished_session(stored) -> None:
    engine, rows = stored
    with engine.connect() as conn:
        got = cumulate(sessions.logout_seconds_buckets(conn, AS_OF, BOUNDS), len(BOUNDS))
    want = expected_lengths(rows)
    assert set(got) == set(want) == {"arena", "shop"}
    for game, (counts, total) in want.items():
        assert got[game][0] == counts
        assert math.isclose(got[game][1], total, rel_tol=1e-12)
    with pytest.raises(ValueError, match="whole seconds"):
        sessions.logout_seconds_buckets(engine, AS_OF, (0.5, 60))


def test_the_migration_back_fill_equals_what_the_catch_up_keeps(stored) -> None:
    engine, _ = stored
    with engine.begin() as conn:
        kept = [conn.exec_driver_sql(f"SELECT * FROM {t} ORDER BY 1, 2").all()
                for t in ("session_logins", "session_lengths")]  # fmt: skip
        conn.exec_driver_sql("TRUNCATE session_logins, session_lengths")
        for statement in migration.BACKFILL.strip().split(";\n"):
            conn.exec_driver_sql(statement)
        again = [conn.exec_driver_sql(f"SELECT * FROM {t} ORDER BY 1, 2").all()
                 for t in ("session_logins", "session_lengths")]  # fmt: skip
    assert kept[0] and kept[1]
    assert again[0] == kept[0]
    assert [r[:3] for r in again[1]] == [r[:3] for r in kept[1]]
    assert all(math.isclose(a[3], b[3], rel_tol=1e-12) for a, b in zip(again[1], kept[1], strict=True))
