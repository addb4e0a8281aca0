"""Ratings in SQL: the ranking worker's reads and writes, and the exporter's view of the leaderboards.

The ranking worker talks psycopg directly (``COPY`` of the history); the exporter's functions take a SQLAlchemy
``Connection`` (its refresh transaction).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd
import psycopg
from sqlalchemy import Connection, text

__all__ = ["board_games", "game_matches", "latest_ratings", "rating_buckets", "read_matches", "read_seasons",
           "top_movers", "write_history"]

_MATCHES_SQL = """
SELECT m.home_id, m.away_id, m.home_score, m.away_score, m.occurred_at
FROM matches m JOIN events e ON e.event_id = m.match_id
WHERE m.game = %s AND e.event_type = %s
ORDER BY m.occurred_at, m.id
"""

# With team matches (TrueSkill): home/away rows of ``matches`` and the team events, which stay in ``events``.
_MATCHES_WITH_TEAMS_SQL = """
SELECT m.home_id, m.away_id, m.home_score, m.away_score, m.occurred_at, NULL::jsonb AS teams, e.id
FROM matches m JOIN events e ON e.event_id = m.match_id
WHERE m.game = %(game)s AND e.event_type = %(type)s
UNION ALL
SELECT NULL, NULL, NULL, NULL, e.occurred_at, e.payload->'teams', e.id
FROM events e
WHERE e.game = %(game)s AND e.event_type = %(type)s AND e.payload ? 'teams'
ORDER BY 5, 7
"""

_SEASONS_SQL = """
SELECT season::integer AS season, min(computed_at) FROM leaderboard_entries
WHERE board = %s AND season ~ '^[0-9]+$' GROUP BY 1 ORDER BY 1
"""


def read_matches(conn: psycopg.Connection, game: str, event_type: str, *, teams: bool = False) -> pd.DataFrame:
    """Matches of ``game`` stored from events of ``event_type``, chronological (columns as :func:`rate_matches`).

    ``teams``: also the team and free-for-all matches (events whose payload has ``teams``; column ``teams``, None
    for home/away rows), ties in time broken by storing order.  Without it (algorithms that rate home/away matches
    only) team matches are left out.
    """
    columns = ["home", "away", "home_score", "away_score", "occurred_at"]
    with conn.cursor() as cur:
        if teams:
            cur.execute(_MATCHES_WITH_TEAMS_SQL, {"game": game, "type": event_type})
            return pd.DataFrame([row[:6] for row in cur.fetchall()], columns=[*columns, "teams"])
        cur.execute(_MATCHES_SQL, (game, event_type))
        rows = cur.fetchall()
    return pd.DataFrame(rows, columns=columns)


def read_seasons(conn: psycopg.Connection, board: str) -> dict[int, datetime]:
    """Season number -> start time (earliest ``computed_at`` of its leaderboard rows) of ``board``."""
    with conn.cursor() as cur:
        cur.execute(_SEASONS_SQL, (board,))
        return {int(season): started for season, started in cur.fetchall()}


def write_history(conn: psycopg.Connection, board: str, algorithm: str, history: pd.DataFrame) -> None:
    """Replace ``board``'s ``rating_history`` rows of ``algorithm`` with ``history`` (caller's transaction)."""
    conn.execute("DELETE FROM rating_history WHERE job = %s AND algorithm = %s", (board, algorithm))
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY rating_history (player_id, algorithm, period, rating, rd, volatility, job) FROM STDIN"
        ) as copy,
    ):
        for pid, period, rating, rd, vol in history[
            ["player_id", "period", "rating", "rd", "volatility"]
        ].itertuples(index=False):
            copy.write_row((pid, algorithm, int(period), float(rating), None if rd != rd else float(rd),
                            None if vol != vol else float(vol), board))  # fmt: skip


def rating_buckets(conn: Connection, bounds: Sequence[float]) -> list[tuple[str, str, int, int, float, str | None]]:
    """The newest season of every leaderboard, bucketed: ``(game, board, width_bucket(-rating, negated reversed
    bounds), players, sum of ratings, league)`` rows.  ``game`` is that of a sample player's first match
    (``"unknown"`` when it has none).

    Reads ``leaderboard_rating_counts`` (rows per ``ceil(rating)``, kept by triggers on ``leaderboard_entries``,
    migration 0009): a few thousand rows per board whatever its size.  ``rating <= b`` iff ``ceil(rating) <= b``
    for an integer ``b``, so the buckets equal those of the entries themselves; raises ``ValueError`` for a bound
    that is not an integer."""
    if any(float(b) != int(b) for b in bounds):
        raise ValueError(f"rating bucket bounds must be integers (the counts are per ceil(rating)): {list(bounds)}")
    rows = conn.execute(text("""
            WITH RECURSIVE names AS (  -- the distinct boards, one index probe each (a loose index scan)
                SELECT min(board) AS board FROM leaderboard_entries
                UNION ALL
                SELECT (SELECT min(board) FROM leaderboard_entries WHERE board > names.board) FROM names
                WHERE names.board IS NOT NULL),
            latest AS MATERIALIZED (  -- the newest season of each board (index board, computed_at, season)
                SELECT names.board, l.season, l.player_id AS sample_player FROM names CROSS JOIN LATERAL (
                    SELECT season, player_id FROM leaderboard_entries e WHERE e.board = names.board
                    ORDER BY computed_at DESC, season DESC LIMIT 1) AS l
                WHERE names.board IS NOT NULL),
            boards AS MATERIALIZED (
                SELECT b.board, b.season,
                       coalesce((SELECT m.game FROM matches m WHERE m.home_id = b.sample_player LIMIT 1),
                                (SELECT m.game FROM matches m WHERE m.away_id = b.sample_player LIMIT 1),
                                'unknown') AS game
                FROM latest b)
            SELECT boards.game, boards.board, width_bucket(-c.rating_ceil, CAST(:bounds AS float8[])) AS b,
                   sum(c.players)::bigint, sum(c.rating_sum)::float8, nullif(c.league, '')
            FROM boards JOIN leaderboard_rating_counts c ON c.board = boards.board AND c.season = boards.season
            GROUP BY 1, 2, 3, c.league"""),
            {"bounds": [-float(b) for b in reversed(bounds)]}).all()  # fmt: skip
    return [(game, board, int(b), int(n), float(total), league) for game, board, b, n, total, league in rows]


def top_movers(conn: Connection, top: int) -> list[tuple[str, str, int, float]]:
    """The ``top`` largest rating changes up and down between each job's two latest rating periods:
    ``(job, direction "up"/"down", rank 1.., change)`` rows; never a player (who moved is in the report)."""
    rows = conn.execute(text("""
            WITH last AS (SELECT job, max(period) AS period FROM rating_history WHERE job IS NOT NULL GROUP BY job),
            moves AS (
                SELECT h.job, h.rating - prev.rating AS change
                FROM last JOIN rating_history h ON h.job = last.job AND h.period = last.period
                CROSS JOIN LATERAL (SELECT p.rating FROM rating_history p
                                    WHERE p.player_id = h.player_id AND p.algorithm = h.algorithm
                                      AND p.job = h.job AND p.period < h.period
                                    ORDER BY p.period DESC LIMIT 1) AS prev),
            ranked AS (
                SELECT job, change, CASE WHEN change >= 0 THEN 'up' ELSE 'down' END AS direction,
                       row_number() OVER (PARTITION BY job, change >= 0 ORDER BY abs(change) DESC) AS rank
                FROM moves WHERE change <> 0)
            SELECT job, direction, rank, change FROM ranked WHERE rank <= :top ORDER BY job, direction, rank"""),
            {"top": top}).all()  # fmt: skip
    return [(job, direction, int(rank), float(change)) for job, direction, rank, change in rows]


def board_games(conn: Connection) -> list[tuple[str, str]]:
    """``(board, game)`` of every leaderboard, ``game`` that of a player's first stored match (``"unknown"``
    when none), ordered by board."""
    rows = conn.execute(text("""
        SELECT b.board, coalesce((SELECT m.game FROM matches m WHERE m.home_id = b.player_id LIMIT 1),
                                 (SELECT m.game FROM matches m WHERE m.away_id = b.player_id LIMIT 1), 'unknown')
        FROM (SELECT DISTINCT ON (board) board, player_id FROM leaderboard_entries
              ORDER BY board, computed_at DESC, player_id) AS b ORDER BY 1""")).all()
    return [(board, game) for board, game in rows]


def game_matches(conn: Connection, game: str, before: datetime | None = None) -> pd.DataFrame:
    """Every stored match of ``game`` (before ``before`` when given): columns ``home``, ``away``, ``home_score``,
    ``away_score``, ``occurred_at`` (tz-aware), chronological (the input of
    :func:`game_analytics.analytics.ratings.quality.match_model_quality`)."""
    sql = "SELECT home_id, away_id, home_score, away_score, occurred_at FROM matches WHERE game = :game"
    params: dict = {"game": game}
    if before is not None:
        sql += " AND occurred_at < :before"
        params["before"] = before
    rows = conn.execute(text(sql + " ORDER BY occurred_at, id"), params).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=["home", "away", "home_score", "away_score", "occurred_at"])


def latest_ratings(conn: Connection, board: str, players: Sequence[str]) -> dict[str, tuple[float, float | None]]:
    """The newest ``rating_history`` ``(rating, rd)`` of each of ``players`` on ``board`` (rd None for Elo);
    players without history are absent."""
    rows = conn.execute(text("""
        SELECT DISTINCT ON (player_id) player_id, rating, rd FROM rating_history
        WHERE job = :board AND player_id = ANY(CAST(:players AS text[]))
        ORDER BY player_id, period DESC, computed_at DESC, id DESC"""),
        {"board": board, "players": list(players)}).all()  # fmt: skip
    return {pid: (float(rating), None if rd is None else float(rd)) for pid, rating, rd in rows}
