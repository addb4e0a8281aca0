"""THE definition of a session, in SQL over ``events`` (docs/architecture.md, "Definitions").

A **session** is taken from ``logout`` events' ``payload.session_seconds`` when the filtered events have any;
otherwise (most sources, e.g. the CDNOW purchase log, have no logouts) a player's events in a game, ordered by
time, are split at gaps longer than :data:`SESSION_GAP` (inter-event sessionization, the usual 30-minute
web-analytics convention) and a session lasts from its first to its last event.

* :func:`session_summary` applies the definition (the reports' session figures);
* :func:`sessions` lists the inter-event sessions, one row each;
* :func:`logins_by_region` and :func:`logout_seconds_buckets` are the cheap per-scrape part the exporter
  publishes: sessions started (``login`` events) and the lengths of finished sessions (``logout`` events), all
  time, from the counts the catch-up keeps (``session_logins``, ``session_lengths``; migration 0011) minus the
  events stored after ``as_of`` (a partition-pruned range, empty for ``--as-of now``). They must be read in the
  transaction that ran :func:`game_analytics.storage.derived.catch_up` (the exporter does), where those counts
  hold exactly the events of the transaction's snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from .filters import ALL, Bind, Filters, clauses, fetch_frame, where

__all__ = ["SESSION_GAP", "logins_by_region", "logout_seconds_buckets", "session_summary", "sessions"]

#: Inactivity gap that ends a derived session (the common 30-minute web-analytics convention).
SESSION_GAP = timedelta(minutes=30)


def _sessionized(cond: str) -> str:
    """Per-session rows (``player_id, game, session, started_at, ended_at, events, duration_seconds``) of the
    events matching ``cond`` (on alias ``e``; parameter ``:gap``)."""
    return f"""
    WITH ordered AS (
        SELECT e.id, e.player_id, e.game, e.occurred_at,
               CASE WHEN lag(e.occurred_at) OVER w IS NULL OR e.occurred_at - lag(e.occurred_at) OVER w > :gap
                    THEN 1 ELSE 0 END AS starts
        FROM events e WHERE {cond}
        WINDOW w AS (PARTITION BY e.player_id, e.game ORDER BY e.occurred_at, e.id)
    ), marked AS (
        SELECT *, sum(starts) OVER (PARTITION BY player_id, game ORDER BY occurred_at, id
                                    ROWS UNBOUNDED PRECEDING) AS session
        FROM ordered
    )
    SELECT player_id, game, session::int AS session, min(occurred_at) AS started_at, max(occurred_at) AS ended_at,
           count(*) AS events, extract(epoch FROM max(occurred_at) - min(occurred_at))::float8 AS duration_seconds
    FROM marked GROUP BY player_id, game, session"""


def sessions(bind: Bind, filters: Filters = ALL, *, gap: timedelta = SESSION_GAP) -> pd.DataFrame:
    """The inter-event sessions of the events matching ``filters``, one row per session.

    Returns:
        Columns ``player_id``, ``game``, ``session`` (1-based per player and game), ``started_at``,
        ``ended_at`` (timestamps of its first and last event), ``events`` (int) and ``duration_seconds``
        (float, ``ended_at - started_at``), ordered by player, game, session.

    Raises:
        ValueError: ``gap`` is not positive.
    """
    if gap <= timedelta(0):
        raise ValueError("gap must be positive")
    cond, params = where(filters)
    frame = fetch_frame(bind, _sessionized(cond) + " ORDER BY player_id, game, session", {**params, "gap": gap})
    if not frame.empty:
        frame["events"] = frame["events"].astype("int64")
        frame["duration_seconds"] = frame["duration_seconds"].astype(float)
    return frame


def session_summary(bind: Bind, filters: Filters = ALL, *, gap: timedelta = SESSION_GAP) -> tuple[pd.Series, str]:
    """Sessions of the events matching ``filters`` by the module's definition.

    Returns:
        ``(summary, method)``: ``summary`` has ``sessions``, ``mean_seconds``, ``median_seconds`` (None when
        there are no sessions) and ``players`` (players with a session); ``method`` says which half of the
        definition applied (``"logout events (payload.session_seconds)"`` or ``"inter-event sessionization
        (gap > 30 min)"``).
    """
    more, params = clauses(filters)
    logout = fetch_frame(bind, f"""
        SELECT count(*) AS sessions, avg((e.payload->>'session_seconds')::double precision) AS mean_seconds,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY (e.payload->>'session_seconds')::double precision)
                   AS median_seconds,
               count(DISTINCT e.player_id) AS players
        FROM events e WHERE e.event_type = 'logout' AND e.payload ? 'session_seconds'{more}""", params).iloc[0]
    if int(logout["sessions"]) > 0:
        return logout, "logout events (payload.session_seconds)"
    cond, params = where(filters)
    summary = fetch_frame(bind, f"""
        SELECT count(*) AS sessions, avg(duration_seconds) AS mean_seconds,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_seconds) AS median_seconds,
               count(DISTINCT player_id) AS players
        FROM ({_sessionized(cond)}) AS s""", {**params, "gap": gap}).iloc[0]
    return summary, f"inter-event sessionization (gap > {int(gap.total_seconds() // 60)} min)"


def _games(games: Sequence[str]) -> tuple[str, dict[str, Any]]:
    return clauses(Filters(games=tuple(games)), "e", prefix="s")


def logins_by_region(bind: Bind, as_of: datetime, games: Sequence[str] = ()) -> list[tuple[str, str, int]]:
    """Sessions started (``login`` events) up to ``as_of`` (inclusive): ``(game, region or "unknown", count)``
    rows ordered by game and region, none with a zero count (module docstring: read after a catch-up)."""
    more, params = _games(games)
    return list(fetch_frame(bind, f"""
        SELECT game, region, sum(n)::bigint AS n FROM (
            SELECT e.game, e.region, e.logins AS n FROM session_logins e WHERE TRUE{more}
            UNION ALL
            SELECT e.game, coalesce(e.region, 'unknown'), -count(*) FROM events e
            WHERE e.event_type = 'login' AND e.occurred_at > :as_of{more} GROUP BY 1, 2
        ) AS t GROUP BY 1, 2 HAVING sum(n) > 0 ORDER BY 1, 2""",
        {**params, "as_of": as_of}).itertuples(index=False, name=None))  # fmt: skip


def logout_seconds_buckets(bind: Bind, as_of: datetime, bounds: Sequence[float],
                           games: Sequence[str] = ()) -> list[tuple[str, int, int, float]]:  # fmt: skip
    """Lengths of finished sessions (``logout`` events' numeric ``session_seconds`` up to ``as_of``) per game as
    ``(game, width_bucket(-seconds, negated reversed bounds), count, sum of seconds)`` rows, the form
    upper-inclusive (``le``) histogram buckets are cumulated from (module docstring: read after a catch-up).
    ``bounds`` must be whole seconds: ``seconds <= b`` is then ``ceil(seconds) <= b``, which the counts hold.

    Raises:
        ValueError: a bound is not a whole number."""
    if any(float(b) != int(b) for b in bounds):
        raise ValueError(f"session-length bounds must be whole seconds, got {list(bounds)}")
    more, params = _games(games)
    rows = fetch_frame(bind, f"""
        SELECT game, width_bucket(-s, CAST(:bounds AS float8[])) AS b, sum(n)::bigint AS n, sum(total) AS total
        FROM (
            SELECT e.game, e.seconds_ceil::float8 AS s, e.sessions AS n, e.seconds AS total
            FROM session_lengths e WHERE TRUE{more}
            UNION ALL
            SELECT e.game, ceil((e.payload->>'session_seconds')::float8), -1, -(e.payload->>'session_seconds')::float8
            FROM events e WHERE e.event_type = 'logout' AND jsonb_typeof(e.payload->'session_seconds') = 'number'
              AND e.occurred_at > :as_of{more}
        ) AS x GROUP BY 1, 2 HAVING sum(n) <> 0""", {**params, "as_of": as_of,
                                                    "bounds": [-float(b) for b in reversed(bounds)]})  # fmt: skip
    return list(rows.itertuples(index=False, name=None))
