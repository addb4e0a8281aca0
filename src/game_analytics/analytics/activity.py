"""Player activity analytics in SQL on the ``events`` table: DAU/WAU/MAU, sessions, cohort retention, funnels.

Every query runs in PostgreSQL (SQLAlchemy ``text`` with bound parameters; no value is ever formatted into SQL)
and returns a pandas DataFrame.  The functions take a SQLAlchemy ``Connection`` (or ``Engine``) and a
:class:`Filters` selecting a half-open time range ``[start, end)`` and optionally games and regions.

Conventions:

* "Active" means "has at least one event" (any type, or the types in ``Filters.event_types``); events without a
  player (``player_id IS NULL``) never count.
* Days, weeks and months are calendar buckets in UTC (``date_trunc`` on ``occurred_at AT TIME ZONE 'UTC'``;
  weeks start on Monday, ISO 8601).
* DAU/WAU/MAU for day ``d``: distinct players active on ``d`` / in the 7 / 30 days ending with ``d``
  (trailing windows, ``d`` included).
* Sessions: the event model has ``login``/``logout`` events, but most sources (e.g. the CDNOW purchase log) have
  neither, so sessions are *sessionized*: a player's events ordered by time belong to one session until a gap
  longer than ``gap`` (default 30 minutes, the usual web-analytics convention) or a ``login`` event starts a new
  one; an event following a ``logout`` also starts a new session.  Done in SQL with ``lag()`` and a running
  ``sum()`` window.
* Cohort retention: a player's cohort is the period (week or month) of their first activity within the
  filters; ``retention[c][k]`` is the share of cohort ``c`` active in period ``c + k`` (so ``retention[c][0]``
  is 1).
* Funnels: see :func:`funnel`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, text

__all__ = [
    "ALL",
    "Filters",
    "active_players_by_period",
    "daily_active_players",
    "events_by_hour",
    "events_by_type",
    "funnel",
    "retention_matrix",
    "sessions",
    "where",
]

Bind = Connection | Engine

PERIODS: dict[str, str] = {"day": "day", "week": "week", "month": "month"}


@dataclass(frozen=True)
class Filters:
    """Which events a query looks at.

    Attributes:
        start, end: half-open range ``[start, end)`` of ``occurred_at`` (timezone-aware); None = unbounded.
        games: only these games (empty = all).
        regions: only these regions (empty = all).
        event_types: only these event types (empty = all).
    """

    start: datetime | None = None
    end: datetime | None = None
    games: Sequence[str] = field(default_factory=tuple)
    regions: Sequence[str] = field(default_factory=tuple)
    event_types: Sequence[str] = field(default_factory=tuple)


#: no filter: every event with a player
ALL = Filters()


def where(filters: Filters, alias: str = "e", *, prefix: str = "f") -> tuple[str, dict[str, Any]]:
    """SQL condition (``"TRUE"`` when unfiltered) and its bound parameters for ``filters`` on table ``alias``.

    Parameters are named ``<prefix>_start`` etc.; lists are bound as PostgreSQL arrays (``= ANY(:p)``).
    """
    clauses = [f"{alias}.player_id IS NOT NULL"]
    params: dict[str, Any] = {}
    if filters.start is not None:
        clauses.append(f"{alias}.occurred_at >= :{prefix}_start")
        params[f"{prefix}_start"] = filters.start
    if filters.end is not None:
        clauses.append(f"{alias}.occurred_at < :{prefix}_end")
        params[f"{prefix}_end"] = filters.end
    for column, values in (("game", filters.games), ("region", filters.regions), ("event_type", filters.event_types)):
        if values:
            clauses.append(f"{alias}.{column} = ANY(:{prefix}_{column})")
            params[f"{prefix}_{column}"] = list(values)
    return " AND ".join(clauses), params


def _frame(bind: Bind, sql: str, params: dict[str, Any]) -> pd.DataFrame:
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return _frame(conn, sql, params)
    result = bind.execute(text(sql), params)
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def _utc(period: str, column: str) -> str:
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, got {period!r}")
    return f"date_trunc('{PERIODS[period]}', {column} AT TIME ZONE 'UTC')"


# --- DAU / WAU / MAU --------------------------------------------------------------------------------------------


def daily_active_players(bind: Bind, filters: Filters = ALL, *, by_game: bool = False) -> pd.DataFrame:
    """DAU, WAU and MAU for every day from the first to the last active day in ``filters``.

    Returns:
        DataFrame with columns ``day`` (datetime64, UTC midnight, naive), [``game``], ``dau``, ``wau``, ``mau``
        (int): distinct players active on the day, in the 7 and in the 30 days ending with it.  Days without
        activity inside the range are present (``dau`` 0; ``wau``/``mau`` count the trailing windows).
    """
    cond, params = where(filters)
    game_col = "game" if by_game else "'all'::text"
    sql = f"""
    WITH player_days AS (
        SELECT DISTINCT {game_col} AS game, e.player_id, {_utc('day', 'e.occurred_at')}::date AS day
        FROM events e WHERE {cond}
    ), days AS (
        SELECT g.game, d::date AS day
        FROM (SELECT game, min(day) AS lo, max(day) AS hi FROM player_days GROUP BY game) g,
             generate_series(g.lo, g.hi, interval '1 day') AS d
    )
    SELECT d.day, d.game,
           count(DISTINCT p.player_id) FILTER (WHERE p.day = d.day) AS dau,
           count(DISTINCT p.player_id) FILTER (WHERE p.day > d.day - 7) AS wau,
           count(DISTINCT p.player_id) AS mau
    FROM days d
    LEFT JOIN player_days p ON p.game = d.game AND p.day > d.day - 30 AND p.day <= d.day
    GROUP BY d.game, d.day
    ORDER BY d.game, d.day
    """
    frame = _frame(bind, sql, params)
    frame["day"] = pd.to_datetime(frame["day"])
    frame[["dau", "wau", "mau"]] = frame[["dau", "wau", "mau"]].astype("int64")
    return frame if by_game else frame.drop(columns="game")


#: exporter periods: label value -> look-back
ACTIVITY_PERIODS: dict[str, timedelta] = {
    "1h": timedelta(hours=1), "1d": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30),
}  # fmt: skip


def active_players_by_period(
    bind: Bind, as_of: datetime, games: Sequence[str] = (), periods: dict[str, timedelta] | None = None,
    *, aggregates: bool = False,
) -> pd.DataFrame:
    """Distinct players per game active in ``(as_of - period, as_of]`` for each period (default 1h/1d/7d/30d).

    With ``aggregates`` the per-player last activity comes from ``player_activity`` (one row per player; see
    :func:`game_analytics.storage.derived.catch_up`, which must have run in the same transaction for exact
    figures), else from one
    scan of the longest window of ``events``.  Returns columns ``game``, ``period`` (label), ``players`` (int);
    games with no activity in the longest window are absent.
    """
    periods = ACTIVITY_PERIODS if periods is None else periods
    params: dict[str, Any] = {"as_of": as_of, "lo": as_of - max(periods.values())}
    columns = []
    for i, span in enumerate(periods.values()):
        params[f"since_{i}"] = as_of - span
        columns.append(f"count(*) FILTER (WHERE last_at > :since_{i}) AS p{i}")
    game_cond, late_game_cond = "", ""
    if games:
        game_cond, late_game_cond = "AND game = ANY(:games)", "AND a.game = ANY(:games)"
        params["games"] = list(games)
    # a player is active in (as_of - p, as_of] iff their last event in the longest window is
    if aggregates:
        # player_activity holds each player's newest event; only players with events after as_of (none when
        # as_of is the newest event) need their last event <= as_of looked up in events (index player_id, time)
        per_player = f"""
        SELECT game, last_at FROM player_activity
        WHERE last_at > :lo AND last_at <= :as_of {game_cond}
        UNION ALL
        SELECT a.game, (SELECT max(e.occurred_at) FROM events e
                        WHERE e.player_id = a.player_id AND e.game = a.game
                          AND e.occurred_at > :lo AND e.occurred_at <= :as_of) AS last_at
        FROM player_activity a WHERE a.last_at > :as_of {late_game_cond}
        """
    else:  # one hash aggregate per (game, player) instead of one DISTINCT sort per period
        per_player = f"""
        SELECT game, max(occurred_at) AS last_at FROM events
        WHERE occurred_at > :lo AND occurred_at <= :as_of AND player_id IS NOT NULL {game_cond}
        GROUP BY game, player_id
        """
    sql = f"""
    SELECT game, {', '.join(columns)} FROM ({per_player}) AS per_player
    WHERE last_at IS NOT NULL GROUP BY game ORDER BY game
    """
    wide = _frame(bind, sql, params)
    rows = [
        (game, label, int(wide.iloc[r][f"p{i}"]))
        for r, game in enumerate(wide["game"])
        for i, label in enumerate(periods)
    ]
    return pd.DataFrame(rows, columns=["game", "period", "players"])


# --- sessions ---------------------------------------------------------------------------------------------------


def sessions(bind: Bind, filters: Filters = ALL, *, gap: timedelta = timedelta(minutes=30)) -> pd.DataFrame:
    """Sessionize the events (see the module docstring) and return one row per session.

    Returns:
        Columns ``player_id``, ``game``, ``session`` (1-based per player and game), ``started_at``,
        ``ended_at`` (timestamps of its first and last event), ``events`` (int) and ``duration_seconds``
        (``ended_at - started_at``, or the logout's ``session_seconds`` when that is larger).
    """
    if gap <= timedelta(0):
        raise ValueError("gap must be positive")
    cond, params = where(filters)
    params["gap"] = gap
    sql = f"""
    WITH ordered AS (
        SELECT e.id, e.player_id, e.game, e.occurred_at, e.event_type, e.payload,
               lag(e.occurred_at) OVER w AS prev_at, lag(e.event_type) OVER w AS prev_type
        FROM events e WHERE {cond}
        WINDOW w AS (PARTITION BY e.player_id, e.game ORDER BY e.occurred_at, e.id)
    ), marked AS (
        SELECT *, sum(CASE WHEN prev_at IS NULL OR occurred_at - prev_at > :gap
                                OR event_type = 'login' OR prev_type = 'logout' THEN 1 ELSE 0 END)
                  OVER (PARTITION BY player_id, game ORDER BY occurred_at, id ROWS UNBOUNDED PRECEDING) AS session
        FROM ordered
    )
    SELECT player_id, game, session::int AS session, min(occurred_at) AS started_at, max(occurred_at) AS ended_at,
           count(*) AS events,
           greatest(extract(epoch FROM max(occurred_at) - min(occurred_at)),
                    coalesce(max((payload->>'session_seconds')::float8) FILTER (WHERE event_type = 'logout'), 0))
             AS duration_seconds
    FROM marked GROUP BY player_id, game, session ORDER BY player_id, game, session
    """
    frame = _frame(bind, sql, params)
    if not frame.empty:
        frame["events"] = frame["events"].astype("int64")
        frame["duration_seconds"] = frame["duration_seconds"].astype(float)
    return frame


# --- cohort retention -------------------------------------------------------------------------------------------


def retention_matrix(bind: Bind, filters: Filters = ALL, *, period: str = "month") -> tuple[pd.DataFrame, pd.Series]:
    """Cohort retention: the share of each first-activity cohort active ``k`` periods later.

    Args:
        period: ``"week"`` (ISO weeks) or ``"month"``.

    Returns:
        ``(matrix, sizes)``: ``matrix`` is indexed by cohort start (datetime64, naive UTC) with integer columns
        ``k = 0, 1, ...`` and values in [0, 1] (NaN where period ``c + k`` is past the last active period);
        ``sizes`` is the number of players per cohort.

    Raises:
        ValueError: ``period`` is not week or month.
    """
    if period not in ("week", "month"):
        raise ValueError(f"period must be week or month, got {period!r}")
    cond, params = where(filters)
    offset = (
        "((extract(year FROM a.p) - extract(year FROM f.c)) * 12 + extract(month FROM a.p) - extract(month FROM f.c))"
        if period == "month"
        else "((a.p::date - f.c::date) / 7)"
    )
    sql = f"""
    WITH active AS (
        SELECT DISTINCT e.player_id, {_utc(period, 'e.occurred_at')} AS p FROM events e WHERE {cond}
    ), first AS (
        SELECT player_id, min(p) AS c FROM active GROUP BY player_id
    )
    SELECT f.c AS cohort, ({offset})::int AS k, count(*) AS players
    FROM active a JOIN first f USING (player_id)
    GROUP BY 1, 2 ORDER BY 1, 2
    """
    long = _frame(bind, sql, params)
    if long.empty:
        return pd.DataFrame(dtype=float), pd.Series(dtype="int64", name="players")
    long["cohort"] = pd.to_datetime(long["cohort"])
    counts = long.pivot(index="cohort", columns="k", values="players").fillna(0).astype("int64")
    sizes = counts[0].rename("players")
    matrix = counts.div(sizes, axis=0)
    # periods after the last observed one are unknown, not zero
    step = pd.DateOffset(months=1) if period == "month" else pd.DateOffset(weeks=1)
    last = max(c + step * int(k) for c, k in zip(long["cohort"], long["k"], strict=True))
    horizon = {c: _periods_between(c, last, period) for c in matrix.index}
    for cohort, h in horizon.items():
        matrix.loc[cohort, [k for k in matrix.columns if k > h]] = float("nan")
    matrix.columns.name = "k"
    return matrix, sizes


def _periods_between(first: pd.Timestamp, last: pd.Timestamp, period: str) -> int:
    if period == "month":
        return (last.year - first.year) * 12 + last.month - first.month
    return (last - first).days // 7


# --- funnels ----------------------------------------------------------------------------------------------------


def funnel(
    bind: Bind, steps: Sequence[str], filters: Filters = ALL, *, window: timedelta = timedelta(days=1)
) -> pd.DataFrame:
    """Ordered funnel over event types.

    A player enters at their first event of type ``steps[0]`` (time ``t0``); step ``i`` is reached by the first
    event of type ``steps[i]`` strictly after the event that reached step ``i - 1`` (ordered by time, then by
    storage order) and no later than ``t0 + window``.  The same type may repeat (``purchase, purchase`` = a
    repeat purchase within the window).

    Returns:
        Columns ``step`` (0-based int), ``event_type``, ``players`` (int, reaching the step) and ``conversion``
        (share of step 0).

    Raises:
        ValueError: no steps or a non-positive window.
    """
    if not steps or window <= timedelta(0):
        raise ValueError("need at least one step and a positive window")
    cond, params = where(filters)
    params["window"] = window
    ctes = [
        f"""s0 AS (SELECT DISTINCT ON (e.player_id) e.player_id, e.occurred_at AS t0, e.occurred_at AS t, e.id
                   FROM events e WHERE {cond} AND e.event_type = :step_0
                   ORDER BY e.player_id, e.occurred_at, e.id)"""
    ]
    params["step_0"] = steps[0]
    for i in range(1, len(steps)):
        params[f"step_{i}"] = steps[i]
        ctes.append(
            f"""s{i} AS (SELECT DISTINCT ON (p.player_id) p.player_id, p.t0, e.occurred_at AS t, e.id
                   FROM s{i - 1} p JOIN events e ON e.player_id = p.player_id
                   WHERE {cond} AND e.event_type = :step_{i}
                     AND (e.occurred_at, e.id) > (p.t, p.id) AND e.occurred_at <= p.t0 + :window
                   ORDER BY p.player_id, e.occurred_at, e.id)"""
        )
    counts = " UNION ALL ".join(f"SELECT {i} AS step, count(*) AS players FROM s{i}" for i in range(len(steps)))
    sql = f"WITH {', '.join(ctes)} {counts} ORDER BY step"
    frame = _frame(bind, sql, params)
    frame["players"] = frame["players"].astype("int64")
    frame.insert(1, "event_type", [steps[i] for i in frame["step"]])
    first = frame["players"].iloc[0]
    frame["conversion"] = frame["players"] / first if first else 0.0
    return frame


# --- activity by type and hour ----------------------------------------------------------------------------------


def events_by_type(bind: Bind, filters: Filters = ALL) -> pd.DataFrame:
    """Events and distinct players per game and event type: columns ``game``, ``event_type``, ``events``,
    ``players`` (ints), ordered by game then most events first."""
    cond, params = where(filters)
    sql = f"""
    SELECT e.game, e.event_type, count(*) AS events, count(DISTINCT e.player_id) AS players
    FROM events e WHERE {cond} GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2
    """
    return _frame(bind, sql, params)


def events_by_hour(bind: Bind, filters: Filters = ALL) -> pd.DataFrame:
    """Events and distinct players by UTC hour of day: columns ``hour`` (0..23, every hour present), ``events``,
    ``players``."""
    cond, params = where(filters)
    sql = f"""
    SELECT h AS hour, count(e.id) AS events, count(DISTINCT e.player_id) AS players
    FROM generate_series(0, 23) AS h
    LEFT JOIN events e ON extract(hour FROM e.occurred_at AT TIME ZONE 'UTC') = h AND {cond}
    GROUP BY h ORDER BY h
    """
    return _frame(bind, sql, params)
