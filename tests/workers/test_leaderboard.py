"""Leaderboards: deterministic ties, leagues, PostgreSQL <-> Redis agreement, rebuild after a wipe."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
import redis

from game_analytics.api.rankingjob import League
from game_analytics.leaderboard import (
    Leaderboard,
    assign_leagues,
    build_entries,
    read_entries,
    rebuild_from_postgres,
    write_entries,
)
from game_analytics.storage.engine import libpq_dsn

LEAGUES = [League(name=n, min_percentile=p) for n, p in
           [("Gold", 80.0), ("Bronze", 0.0), ("Diamond", 99.0), ("Silver", 50.0), ("Platinum", 95.0)]]  # fmt: skip


def _tied_board():
    # Constructed ties: equal ratings broken by RD asc, then games desc, then id asc.
    players = ["zed", "amy", "bob", "cat", "dan", "eve"]
    rating = [1600.0, 1600.0, 1600.0, 1600.0, 1700.0, 1500.0]
    rd = [50.0, 50.0, 50.0, 40.0, 80.0, 10.0]
    games = [10, 10, 12, 1, 3, 99]
    return players, rating, rd, games


def test_ties_are_broken_deterministically_in_any_input_order() -> None:
    players, rating, rd, games = _tied_board()
    expected = ["dan", "cat", "bob", "amy", "zed", "eve"]
    rng = np.random.default_rng(0)
    for _ in range(5):
        p = rng.permutation(len(players))
        entries = build_entries(
            [players[i] for i in p], np.take(rating, p), np.take(rd, p), np.take(games, p), LEAGUES
        )
        assert [e.player_id for e in entries] == expected
        assert [e.rank for e in entries] == [1, 2, 3, 4, 5, 6]
    tied = [e for e in entries if e.rating == 1600.0]
    assert len({e.percentile for e in tied}) == 1 and len({e.league for e in tied}) == 1


def test_league_sizes_match_percentile_cut_points() -> None:
    n = 10_000
    rating = np.random.default_rng(1).normal(1500, 200, n)  # distinct ratings
    entries = build_entries([f"p{i:05d}" for i in range(n)], rating, np.zeros(n), np.zeros(n), LEAGUES)
    sizes = {
        name: sum(e.league == name for e in entries)
        for name in ("Bronze", "Silver", "Gold", "Platinum", "Diamond")
    }
    assert sizes == {"Bronze": 5000, "Silver": 3000, "Gold": 1500, "Platinum": 400, "Diamond": 100}
    assert entries[0].league == "Diamond" and entries[-1].league == "Bronze"
    assert assign_leagues([0.0, 49.99, 50.0, 99.0], LEAGUES) == ["Bronze", "Bronze", "Silver", "Diamond"]
    assert assign_leagues([10.0], [League(name="Top", min_percentile=20.0)]) == [None]


def _publish(db_dsn: str, client: redis.Redis, board: str, n: int, season: int = 1):
    rng = np.random.default_rng(2)
    rating = np.round(rng.normal(1500, 150, n), 0)  # rounding makes many exact ties
    entries = build_entries([f"player-{i}" for i in range(n)], rating, rng.integers(30, 60, n).astype(float),
                            rng.integers(0, 5, n), LEAGUES)  # fmt: skip
    with psycopg.connect(libpq_dsn(db_dsn)) as conn, conn.transaction():
        write_entries(conn, board, season, entries)
    Leaderboard(client, board).publish(entries, season)
    return entries


def test_redis_equals_postgres_and_rebuild_after_wipe(db_dsn: str, clean_redis_url: str) -> None:
    client = redis.Redis.from_url(clean_redis_url)
    board = Leaderboard(client, "ns/job")
    entries = _publish(db_dsn, client, "ns/job", 3000)
    with psycopg.connect(libpq_dsn(db_dsn)) as conn:
        season, stored = read_entries(conn, "ns/job")
    assert season == 1 and len(stored) == 3000
    before = board.top(3000)
    assert [(e.player_id, e.rank, e.rating, e.league) for e in before] == \
        [(e.player_id, e.rank, e.rating, e.league) for e in entries]  # fmt: skip
    assert before == stored
    target = entries[1234].player_id
    assert board.rank(target) == 1235 and board.entry(target) == stored[1234]
    assert [e.rank for e in board.around(target, 2)] == [1233, 1234, 1235, 1236, 1237]
    assert [e.rank for e in board.around(entries[0].player_id, 2)] == [1, 2, 3]
    meta = board.meta()
    assert meta["season"] == 1 and meta["players"] == 3000 and sum(meta["leagues"].values()) == 3000

    client.flushall()  # a failover to a replica that missed the writes
    assert board.top(10) == [] and board.rank(target) is None
    with psycopg.connect(libpq_dsn(db_dsn)) as conn:
        assert rebuild_from_postgres(client, conn, "ns/job") == 3000
        assert rebuild_from_postgres(client, conn, "ns/other") == 0
    assert board.top(3000) == before
    assert board.meta()["leagues"] == meta["leagues"] and board.season() == 1


def test_publish_replaces_atomically_and_upsert_keeps_first_seen(db_dsn: str, clean_redis_url: str) -> None:
    client = redis.Redis.from_url(clean_redis_url)
    _publish(db_dsn, client, "ns/job", 500)
    smaller = _publish(db_dsn, client, "ns/job", 200)
    board = Leaderboard(client, "ns/job")
    assert board.size() == 200 and board.top(200) == [
        e.__class__(e.rank, e.player_id, e.rating, e.percentile, e.league) for e in smaller
    ]
    assert not [k for k in client.scan_iter("ga:lb:*tmp*")]
    with psycopg.connect(libpq_dsn(db_dsn)) as conn:
        assert (
            conn.execute("SELECT count(*) FROM leaderboard_entries WHERE board = 'ns/job'").fetchone()[0]
            == 200
        )
    Leaderboard(client, "ns/job").publish([], 3)
    assert board.size() == 0 and board.season() == 3


def test_empty_inputs() -> None:
    assert build_entries([], [], [], [], LEAGUES) == []
    with pytest.raises(ValueError):
        build_entries(["a", "b"], [1.0], [0.0], [0], LEAGUES)
