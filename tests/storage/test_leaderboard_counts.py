"""``leaderboard_rating_counts`` (migration 0009) against the leaderboard rows themselves, on real PostgreSQL.

The exporter's rating buckets read the counts; every test compares them with an independent computation: Python
over the entries written, and a direct ``GROUP BY`` of ``leaderboard_entries``.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import psycopg
import pytest
from sqlalchemy import create_engine, pool, text

from game_analytics.leaderboard import Entry, write_entries
from game_analytics.monitoring import names
from game_analytics.storage import upgrade
from game_analytics.storage.engine import libpq_dsn
from game_analytics.storage.queries.ratings import rating_buckets

BOUNDS = [float(b) for b in names.RATING_BUCKETS]

DIRECT_COUNTS = """
    SELECT board, season, coalesce(league, ''), ceil(rating), count(*), sum(rating::numeric)
    FROM leaderboard_entries GROUP BY 1, 2, 3, 4"""


def _entries(rng: np.random.Generator, players: range, leagues: list[str | None]) -> list[Entry]:
    """Ratings on and just beside every bound, negative and above the top bound, many ties; random leagues."""
    edges = [b + d for b in BOUNDS for d in (-0.5, -1e-9, 0.0, 1e-9, 0.5)] + [-120.25, 3_999.75]
    ratings = [float(x) for x in rng.choice(edges, len(players) // 2)]
    ratings += [round(float(x), 3) for x in rng.normal(1_500, 600, len(players) - len(ratings))]
    return [Entry(rank=k + 1, player_id=f"p{pid}", rating=r, percentile=0.0,
                  league=leagues[int(rng.integers(len(leagues)))])
            for k, (pid, r) in enumerate(zip(players, ratings, strict=True))]  # fmt: skip


def _write(dsn: str, board: str, season: int, entries: list[Entry]) -> None:
    with psycopg.connect(libpq_dsn(dsn)) as conn, conn.transaction():
        write_entries(conn, board, season, entries)


def _stored_counts(conn) -> set[tuple]:
    rows = conn.execute(text("SELECT board, season, league, rating_ceil, players, rating_sum "
                             "FROM leaderboard_rating_counts")).all()  # fmt: skip
    return {tuple(r) for r in rows}


def _direct_counts(conn) -> set[tuple]:
    return {tuple(r) for r in conn.execute(text(DIRECT_COUNTS)).all()}


def _python_buckets(entries: list[Entry]) -> tuple[dict[int, int], dict[str | None, int], float]:
    """Players per ``le`` bound (cumulative: rating <= bound), per league, and the rating sum, in Python."""
    ratings = sorted(e.rating for e in entries)
    le = {int(b): sum(1 for r in ratings if r <= b) for b in BOUNDS}
    return le, dict(Counter(e.league for e in entries)), sum(ratings)


def _exported(rows: list[tuple]) -> dict[str, tuple[dict[int, int], dict[str | None, int], float]]:
    """``rating_buckets`` rows -> per board the same three figures as :func:`_python_buckets`."""
    per_bucket: dict[str, Counter] = defaultdict(Counter)
    leagues: dict[str, Counter] = defaultdict(Counter)
    totals: dict[str, float] = defaultdict(float)
    for _game, board, bucket, players, total, league in rows:
        per_bucket[board][bucket] += players
        leagues[board][league] += players
        totals[board] += total
    out = {}
    for board, buckets in per_bucket.items():
        # width_bucket over the negated, reversed bounds: bucket k counts ratings in (bound[n-k-1], bound[n-k]]
        le = {int(b): sum(n for k, n in buckets.items() if k >= len(BOUNDS) - i) for i, b in enumerate(BOUNDS)}
        out[board] = (le, dict(leagues[board]), totals[board])
    return out


def test_counts_follow_the_writer_and_match_the_entries(db_dsn: str) -> None:
    rng = np.random.default_rng(19)
    first = _entries(rng, range(4_000), ["gold", "silver", None])
    _write(db_dsn, "ns/elo", 1, first)
    _write(db_dsn, "ns/other", 7, _entries(rng, range(500), ["a"]))
    # the next run of season 1: a quarter of the players gone, the rest re-rated, new players, leagues moved
    second = _entries(rng, range(1_000, 5_500), ["gold", "bronze"])
    _write(db_dsn, "ns/elo", 1, second)
    engine = create_engine(db_dsn, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            assert _stored_counts(conn) == _direct_counts(conn)
            assert conn.execute(text("SELECT count(*) FROM leaderboard_rating_counts WHERE players <= 0")).scalar() == 0
            season_rows = conn.execute(text("SELECT sum(players) FROM leaderboard_rating_counts "
                                            "WHERE board = 'ns/elo' AND season = '1'")).scalar_one()  # fmt: skip
            assert season_rows == len(second)
            exported = _exported(rating_buckets(conn, BOUNDS))
    finally:
        engine.dispose()
    le, leagues, total = _python_buckets(second)
    assert exported["ns/elo"][0] == le
    assert exported["ns/elo"][1] == leagues and "silver" not in leagues
    assert exported["ns/elo"][2] == pytest.approx(total, rel=1e-12)
    assert 0 < le[1_500] < le[3_000] < len(second)  # the data reach both sides of the bounds


def test_the_newest_season_is_bucketed(db_dsn: str) -> None:
    rng = np.random.default_rng(3)
    _write(db_dsn, "ns/elo", 1, _entries(rng, range(300), ["x"]))
    newest = _entries(rng, range(200), ["y"])
    _write(db_dsn, "ns/elo", 2, newest)
    engine = create_engine(db_dsn, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            exported = _exported(rating_buckets(conn, BOUNDS))
    finally:
        engine.dispose()
    assert exported["ns/elo"][0] == _python_buckets(newest)[0] and exported["ns/elo"][1] == {"y": 200}


def test_any_sql_write_keeps_the_counts(db_dsn: str) -> None:
    """Plain INSERT / UPDATE / DELETE / TRUNCATE of leaderboard_entries (a restore, a fix by hand) move the counts."""
    engine = create_engine(db_dsn, poolclass=pool.NullPool)
    statements = [
        """INSERT INTO leaderboard_entries (board, season, player_id, rating, rank, percentile, league)
           SELECT 'b', '1', 'p' || g, (g * 37) % 3100 + (g % 7) / 4.0, g, 0, (ARRAY['x', 'y', NULL])[1 + g % 3]
           FROM generate_series(1, 3000) AS g""",
        "UPDATE leaderboard_entries SET rating = rating + 0.5, league = 'z' WHERE player_id LIKE 'p1%'",
        "DELETE FROM leaderboard_entries WHERE rank % 5 = 0",
        "UPDATE leaderboard_entries SET season = '2' WHERE rank < 100",
    ]
    try:
        for statement in statements:
            with engine.begin() as conn:
                conn.execute(text(statement))
            with engine.connect() as conn:
                assert _stored_counts(conn) == _direct_counts(conn), statement
        with engine.begin() as conn:  # a rolled-back write leaves the counts as they were
            before = _stored_counts(conn)
            nested = conn.begin_nested()
            conn.execute(text("DELETE FROM leaderboard_entries"))
            nested.rollback()
            assert _stored_counts(conn) == before
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE leaderboard_entries"))
        with engine.connect() as conn:
            assert _stored_counts(conn) == set()
    finally:
        engine.dispose()


def test_migration_backfills_existing_entries(empty_db_dsn: str) -> None:
    upgrade(empty_db_dsn, "0008")
    engine = create_engine(empty_db_dsn, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text("""
                INSERT INTO leaderboard_entries (board, season, player_id, rating, rank, percentile, league)
                SELECT 'old', '3', 'p' || g, 400 + (g * 37) % 2800 + 0.25, g, 0, (ARRAY['a', NULL])[1 + g % 2]
                FROM generate_series(1, 2000) AS g"""))
        upgrade(empty_db_dsn)
        with engine.connect() as conn:
            stored = _stored_counts(conn)
            assert stored == _direct_counts(conn) and sum(r[4] for r in stored) == 2000
    finally:
        engine.dispose()


def test_non_integer_bounds_are_refused(db_dsn: str) -> None:
    engine = create_engine(db_dsn, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn, pytest.raises(ValueError, match="integers"):
            rating_buckets(conn, [0, 1_500.5])
    finally:
        engine.dispose()

