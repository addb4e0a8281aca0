"""The batch write path (the direct COPY and its fallback on already stored events) and the derived tables."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from game_analytics.storage.derived import catch_up_now
from game_analytics.storage.engine import libpq_dsn
from game_analytics.workers.batches import prepare_connection, prepare_dicts, write_batch
from game_analytics.workers.load import copy_events


def purchase(i: int, player: str, day: int, region: str | None = None) -> dict:
    event = {"event_id": f"p-{i}", "event_type": "purchase", "occurred_at": f"2024-03-{day:02d}T12:00:00Z",
             "player_id": player, "game": "shop", "payload": {"quantity": 1, "amount": 2.5}}  # fmt: skip
    return event | ({"region": region} if region else {})


def match(i: int, home: str, away: str, day: int, **payload) -> dict:
    return {"event_id": f"m-{i}", "event_type": "match_result", "occurred_at": f"2024-03-{day:02d}T18:00:00Z",
            "game": "league", "region": "EU",
            "payload": {"home_team": home, "away_team": away, "home_score": 2, "away_score": 1, "season": 2024,
                        **payload}}  # fmt: skip


def at(day: int, hour: int) -> datetime:
    return datetime(2024, 3, day, hour, tzinfo=UTC)


def test_prepare_dicts_keeps_order_and_names_rejected_positions() -> None:
    bad = purchase(2, "ann", 3) | {"payload": {"quantity": 0, "amount": 1}}
    batch = prepare_dicts(enumerate([purchase(1, "ann", 5), bad, match(1, "Lions", "Tigers", 4)]))
    assert [r[0] for r in batch.rows] == ["p-1", "m-1"]
    assert batch.rows[0][2] == at(5, 12) and batch.rows[0][6] == '{"quantity":1,"amount":2.5,"currency":"USD"}'
    assert [(d.stream_id, d.field, d.kind) for d in batch.dead] == [("1", "payload.quantity", "invalid_value")]


def test_derived_tables_fold_participants_and_matches(conn) -> None:
    write(conn, [
        purchase(1, "ann", 5),
        purchase(2, "ann", 2, region="EU"),
        purchase(3, "ann", 9, region="AS"),
        match(1, "Lions", "Tigers", 4, home_player_id="lions", round=3),
        match(2, "Tigers", "Bears", 7, season="2024-S2"),
    ])  # fmt: skip
    assert catch_up_now(conn) == 5
    players = conn.execute("SELECT player_id, region, first_seen_at, last_seen_at FROM players ORDER BY player_id COLLATE \"C\"").fetchall()
    assert players == [
        ("Bears", "EU", at(7, 18), at(7, 18)),
        ("Tigers", "EU", at(4, 18), at(7, 18)),
        ("ann", "EU", at(2, 12), at(9, 12)),  # the greatest region (SQL max); first and last activity
        ("lions", "EU", at(4, 18), at(4, 18)),  # the player id wins over the team name
    ]
    assert conn.execute("SELECT match_id, game, season, round, home_id, away_id, home_score, away_score, "
                        "occurred_at FROM matches ORDER BY id").fetchall() == [
        ("m-1", "league", "2024", 3, "lions", "Tigers", 2, 1, at(4, 18)),
        ("m-2", "league", "2024-S2", None, "Tigers", "Bears", 2, 1, at(7, 18)),
    ]  # fmt: skip
    conn.commit()
    assert catch_up_now(conn) == 0  # nothing new


@pytest.fixture
def conn(db_dsn: str):
    with psycopg.connect(libpq_dsn(db_dsn)) as connection:
        prepare_connection(connection)
        yield connection


def write(conn: psycopg.Connection, events: list[dict], *, direct: bool = True):
    with conn.transaction():
        return write_batch(conn, prepare_dicts(enumerate(events)), direct=direct)


def test_fresh_batch_takes_the_direct_copy(conn) -> None:
    events = [purchase(i, f"u{i % 7}", 1 + i % 20) for i in range(300)] + [match(1, "A", "B", 3)]
    outcome = write(conn, events)
    assert outcome.direct and outcome.valid == 301 and outcome.duplicates == 0
    assert outcome.inserted == {("shop", "purchase"): 300, ("league", "match_result"): 1}
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 301
    conn.commit()
    assert catch_up_now(conn) == 301
    assert conn.execute("SELECT count(*) FROM players").fetchone()[0] == 9
    assert conn.execute("SELECT home_id, away_id, season FROM matches").fetchall() == [("A", "B", "2024")]


@pytest.mark.parametrize("position", ["first", "last"])
def test_an_already_stored_event_falls_back_to_insert_on_conflict(conn, position: str) -> None:
    old = purchase(0, "u0", 1)
    write(conn, [old])
    # a batch large enough that the COPY streams many blocks before or after the duplicate
    fresh = [purchase(i, f"u{i % 50}", 1 + i % 28) for i in range(1, 20_001)]
    batch = [old, *fresh] if position == "first" else [*fresh, old]
    outcome = write(conn, batch)
    assert not outcome.direct
    assert outcome.inserted == {("shop", "purchase"): 20_000} and outcome.duplicates == 1
    assert conn.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone() == (
        20_001,
        20_001,
    )
    conn.commit()
    assert catch_up_now(conn) == 20_001
    assert conn.execute("SELECT count(*) FROM players").fetchone()[0] == 50
    first_last = conn.execute("SELECT min(first_seen_at), max(last_seen_at) FROM players").fetchone()
    assert first_last == (at(1, 12), at(28, 12))


def test_duplicates_within_one_batch_are_stored_once(conn) -> None:
    events = [purchase(i, "u", 3) for i in range(10)]
    outcome = write(conn, events + events[:4])
    assert not outcome.direct and outcome.valid == 14 and outcome.duplicates == 4
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 10


def test_both_paths_store_the_same(postgres_server, _migrated_template: str) -> None:
    events = [purchase(i, f"u{i % 5}", 1 + i % 9, region="EU" if i % 2 else None) for i in range(40)]
    events += [match(i, f"T{i}", f"T{i + 1}", 1 + i, round=i) for i in range(6)]
    query = ("SELECT (SELECT array_agg((event_id, event_type, occurred_at, player_id, game, region, payload)::text "
             "ORDER BY event_id) FROM events), (SELECT array_agg(p::text ORDER BY player_id) FROM "
             "(SELECT player_id, region, first_seen_at, last_seen_at FROM players) p), "
             "(SELECT array_agg(m::text ORDER BY match_id) FROM (SELECT match_id, game, season, round, home_id, "
             "away_id, home_score, away_score, occurred_at FROM matches) m)")  # fmt: skip
    stored = []
    for direct in (True, False):
        dsn = postgres_server.create_database(f"ga_paths_{direct}", template=_migrated_template)
        try:
            with psycopg.connect(libpq_dsn(dsn)) as conn:
                prepare_connection(conn)
                assert write(conn, events, direct=direct).direct is direct
                catch_up_now(conn)
                stored.append(conn.execute(query).fetchone())
        finally:
            postgres_server.drop_database(f"ga_paths_{direct}")
    assert stored[0] == stored[1] and all(stored[0])


def test_copy_events_reload_overlapping_data(db_dsn: str) -> None:
    first = [purchase(i, f"u{i % 30}", 1 + i % 28) for i in range(1000)]
    second = [purchase(i, f"u{i % 30}", 1 + i % 28) for i in range(500, 1500)]
    assert copy_events(first, db_dsn, batch_size=300).inserted == 1000
    result = copy_events(second, db_dsn, batch_size=300)
    assert (result.inserted, result.duplicates, result.dead_lettered) == (500, 500, 0)
    with psycopg.connect(libpq_dsn(db_dsn)) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone() == (
            1500,
            1500,
        )


def test_a_bulk_load_leaves_fresh_planner_statistics(db_dsn: str) -> None:
    """A report right after ``game-analytics load`` must not be planned on an unanalysed table (the CDNOW funnel
    query nest-looped for minutes before autovacuum's analyse): copy_events analyses what it loaded."""
    assert copy_events([purchase(i, f"u{i % 30}", 1 + i % 28) for i in range(1000)], db_dsn).inserted == 1000
    with psycopg.connect(libpq_dsn(db_dsn)) as conn:
        rows = conn.execute("SELECT relname, reltuples FROM pg_class WHERE relname LIKE 'events%' AND relkind = 'r' "
                            "AND reltuples > 0").fetchall()  # fmt: skip
    assert sum(n for _, n in rows) == 1000, rows  # reltuples stays -1 (never analysed) without ANALYZE


def test_several_batches_in_one_transaction(conn) -> None:
    first = [purchase(i, "u1", 1) for i in range(5)] + [match(1, "A", "B", 2)]
    # replays keep their time (the key is (event_id, occurred_at): see storage/partitions.py)
    second = [purchase(i, "u1", 1 if i < 5 else 9) for i in range(3, 8)] + [match(1, "A", "B", 2), match(2, "B", "C", 3)]
    with conn.transaction():
        one = write_batch(conn, prepare_dicts(enumerate(first)))
        two = write_batch(conn, prepare_dicts(enumerate(second)))
    assert one.inserted == {("shop", "purchase"): 5, ("league", "match_result"): 1}
    assert not two.direct and two.inserted == {("shop", "purchase"): 3, ("league", "match_result"): 1} and two.duplicates == 3
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 10
    conn.commit()
    assert catch_up_now(conn) == 10
    assert conn.execute("SELECT count(*) FROM matches").fetchone()[0] == 2
    assert conn.execute(
        "SELECT first_seen_at, last_seen_at FROM players WHERE player_id = 'u1'"
    ).fetchone() == (
        at(1, 12),
        at(9, 12),
    )
