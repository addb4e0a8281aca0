"""Player activity in SQL on the ``events`` table: active players, DAU/WAU/MAU, cohort retention, funnels.

Every query runs in PostgreSQL (SQLAlchemy ``text`` with bound parameters; no value is ever formatted into SQL)
and returns a pandas DataFrame.  The functions take a SQLAlchemy ``Connection`` (or ``Engine``) and a
:class:`Filters` selecting a half-open time range ``[start, end)`` and optionally games and regions.

Conventions:

* **Active player** (the one definition, used by the exporter, the reports and the detectors alike): a player
  with at least one event matching the filters in the window (any type, or the types in
  ``Filters.event_types``); events without a player (``player_id IS NULL``) never count.  :func:`player_counts`
  adds total, new and churned players on the same definition.
* Days, weeks and months are calendar buckets in UTC (``date_trunc`` on ``occurred_at AT TIME ZONE 'UTC'``;
  weeks start on Monday, ISO 8601).
* DAU/WAU/MAU for day ``d``: distinct players active on ``d`` / in the 7 / 30 days ending with ``d``
  (trailing windows, ``d`` included).
* Sessions: :mod:`.sessions` (the one definition).
* Cohort retention: a player's cohort is the period (week or month) of their first activity within the
  filters; ``retention[c][k]`` is the share of cohort ``c`` active in period ``c + k`` (so ``retention[c][0]``
  is 1).
* Funnels: see :func:`funnel`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from game_analytics.events import EVENT_TYPES

from .filters import ALL, Bind, Filters, clauses, fetch_frame, where

__all__ = [
    "ACTIVITY_PERIODS",
    "active_players_by_period",
    "daily_active_players",
    "daily_players",
    "active_players_by_region",
    "events_by_hour",
    "events_by_period",
    "events_by_type",
    "funnel",
    "player_counts",
    "retention_matrix",
]

PERIODS: dict[str, str] = {"day": "day", "week": "week", "month": "month"}


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
    # Linear, not days x player-days: a player active on day p, next active on day q, counts for DAU on p, for
    # WAU on [p, min(p + 7, q)) and for MAU on [p, min(p + 30, q)). These spans of one player never overlap, so
    # each day's count is a running sum of +1 at every span's start and -1 at its end. (A join of every day to
    # its 30-day window of player-days and count(DISTINCT) took 10.5 s over the CDNOW log: 37M joined rows.)
    sql = f"""
    WITH player_days AS (
        SELECT DISTINCT {game_col} AS game, e.player_id, {_utc('day', 'e.occurred_at')}::date AS day
        FROM events e WHERE {cond}
    ), spans AS (
        SELECT game, day, lead(day) OVER (PARTITION BY game, player_id ORDER BY day) AS next FROM player_days
    ), steps AS (
        SELECT game, day AS at, 1 AS dau, 1 AS wau, 1 AS mau FROM spans
        UNION ALL SELECT game, day + 1, -1, 0, 0 FROM spans
        UNION ALL SELECT game, least(day + 7, coalesce(next, day + 7)), 0, -1, 0 FROM spans
        UNION ALL SELECT game, least(day + 30, coalesce(next, day + 30)), 0, 0, -1 FROM spans
    ), per_day AS (
        SELECT game, at, sum(dau) AS dau, sum(wau) AS wau, sum(mau) AS mau FROM steps GROUP BY game, at
    ), days AS (
        SELECT g.game, d::date AS day
        FROM (SELECT game, min(day) AS lo, max(day) AS hi FROM player_days GROUP BY game) g,
             generate_series(g.lo, g.hi, interval '1 day') AS d
    )
    SELECT d.day, d.game,
           sum(coalesce(s.dau, 0)) OVER w AS dau, sum(coalesce(s.wau, 0)) OVER w AS wau,
           sum(coalesce(s.mau, 0)) OVER w AS mau
    FROM days d LEFT JOIN per_day s ON s.game = d.game AND s.at = d.day
    WINDOW w AS (PARTITION BY d.game ORDER BY d.day ROWS UNBOUNDED PRECEDING)
    ORDER BY d.game, d.day
    """
    frame = fetch_frame(bind, sql, params)
    frame["day"] = pd.to_datetime(frame["day"])
    frame[["dau", "wau", "mau"]] = frame[["dau", "wau", "mau"]].astype("int64")
    return frame if by_game else frame.drop(columns="game")


def daily_players(bind: Bind, filters: Filters = ALL) -> pd.Series:
    """DAU alone: distinct players active on each UTC day in ``filters`` (what a forecast is fitted on).

    Equal to :func:`daily_active_players`' ``dau`` on the active days, for a fraction of its cost: one count of the
    distinct (day, player) pairs, without the spans the 7- and 30-day windows need (10M-event scale run, whole
    120 days: see docs/scaling.md).

    Returns:
        int Series of the players per day, indexed by day (datetime64, naive UTC midnight); days without
        activity are absent.
    """
    cond, params = where(filters)
    frame = fetch_frame(bind, f"""
        SELECT {_utc('day', 'e.occurred_at')}::date AS day, count(DISTINCT e.player_id) AS dau
        FROM events e WHERE {cond} GROUP BY 1 ORDER BY 1""", params)
    return pd.Series(frame["dau"].astype("int64").to_numpy(), index=pd.to_datetime(frame["day"]), name="dau")


def player_counts(bind: Bind, filters: Filters, previous_start: datetime) -> pd.Series:
    """Players of ``filters``' window ``[start, end)`` (both set) and of the previous window
    ``[previous_start, start)``, on the games/regions/event types of ``filters``.

    Returns:
        ``total`` (a matching event before ``end``), ``active`` (in the window), ``new_players`` (first
        matching event in the window), ``active_prev`` (in the previous window) and ``churned`` (active in the
        previous window, not in this one), as ints.

    Raises:
        ValueError: ``filters.start`` or ``filters.end`` is None.
    """
    if filters.start is None or filters.end is None:
        raise ValueError("player_counts needs a window: filters.start and filters.end")
    cond, params = where(filters.between(None, filters.end))
    params.update(c_start=filters.start, c_prev=previous_start)
    row = fetch_frame(bind, f"""
        WITH p AS (
            SELECT e.player_id, min(e.occurred_at) AS first_at,
                   bool_or(e.occurred_at >= :c_start) AS active_now,
                   bool_or(e.occurred_at >= :c_prev AND e.occurred_at < :c_start) AS active_prev
            FROM events e WHERE {cond} GROUP BY e.player_id)
        SELECT count(*) AS total, count(*) FILTER (WHERE active_now) AS active,
               count(*) FILTER (WHERE first_at >= :c_start) AS new_players,
               count(*) FILTER (WHERE active_prev) AS active_prev,
               count(*) FILTER (WHERE active_prev AND NOT active_now) AS churned
        FROM p""", params).iloc[0]
    return row.astype("int64")


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
    wide = fetch_frame(bind, sql, params)
    rows = [
        (game, label, int(wide.iloc[r][f"p{i}"]))
        for r, game in enumerate(wide["game"])
        for i, label in enumerate(periods)
    ]
    return pd.DataFrame(rows, columns=["game", "period", "players"])


def events_by_period(bind: Bind, as_of: datetime, games: Sequence[str] = (),
                     periods: dict[str, timedelta] | None = None) -> list[tuple[Any, ...]]:  # fmt: skip
    """Events per game and type in ``(as_of - period, as_of]`` for each period (default 1h/1d/7d/30d): rows
    ``(game, event_type, count per period in the order of periods...)`` ordered by game and type; one scan of
    the longest window."""
    span = ACTIVITY_PERIODS if periods is None else periods
    more, params = clauses(Filters(games=tuple(games)), "e")
    params.update({f"since_{i}": as_of - d for i, d in enumerate(span.values())}, as_of=as_of)
    counts = ", ".join(f"count(*) FILTER (WHERE e.occurred_at > :since_{i}) AS n{i}" for i in range(len(span)))
    frame = fetch_frame(bind, f"""
        SELECT e.game, e.event_type, {counts} FROM events e
        WHERE e.occurred_at > :since_{len(span) - 1} AND e.occurred_at <= :as_of{more}
        GROUP BY 1, 2 ORDER BY 1, 2""", params)
    return list(frame.itertuples(index=False, name=None))


def active_players_by_region(bind: Bind, since: datetime, as_of: datetime,
                             games: Sequence[str] = ()) -> list[tuple[str, str, int]]:  # fmt: skip
    """Active players per game and region (``"unknown"`` when absent) in ``(since, as_of]``: rows ``(game,
    region, players)`` ordered by game, then most players first.  One ``(event_type, occurred_at)`` index range
    per event type (no index leads with the time), so meant for short windows."""
    more, params = clauses(Filters(games=tuple(games)), "e")
    frame = fetch_frame(bind, f"""
        SELECT game, coalesce(region, 'unknown') AS region, count(DISTINCT player_id) AS players
        FROM unnest(CAST(:types AS text[])) AS et CROSS JOIN LATERAL (
            SELECT e.game, e.region, e.player_id FROM events e
            WHERE e.event_type = et AND e.occurred_at > :since AND e.occurred_at <= :as_of
              AND e.player_id IS NOT NULL{more}
        ) AS recent
        GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2""", {**params, "since": since, "as_of": as_of, "types": list(EVENT_TYPES)})
    return [(g, r, int(n)) for g, r, n in frame.itertuples(index=False, name=None)]


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
    long = fetch_frame(bind, sql, params)
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


#: a funnel step: an event type, or (event type, payload filter {field: text of payload->>field})
FunnelStep = str | tuple[str, dict[str, str]]


def funnel(
    bind: Bind, steps: Sequence[FunnelStep], filters: Filters = ALL, *, window: timedelta = timedelta(days=1)
) -> pd.DataFrame:
    """Ordered funnel over event types, each optionally filtered on payload fields.

    A player enters at their first event matching ``steps[0]`` (time ``t0``); step ``i`` is reached by the first
    event matching ``steps[i]`` strictly after the event that reached step ``i - 1`` (ordered by time, then by
    storage order) and no later than ``t0 + window``.  The same step may repeat (``purchase, purchase`` = a
    repeat purchase within the window).  A step ``(event_type, {field: value})`` matches events of that type
    whose ``payload->>field`` equals ``value`` for every entry (text comparison: the number 1 is ``"1"``).

    Returns:
        Columns ``step`` (0-based int), ``event_type``, ``players`` (int, reaching the step), ``conversion``
        (share of step 0), ``step_conversion`` (share of the previous step; 1 for step 0) and
        ``median_seconds``/``mean_seconds`` (float: time from reaching the previous step to reaching this one,
        over the players reaching this one; NaN for step 0 and for steps nobody reached).

    Raises:
        ValueError: no steps or a non-positive window.
    """
    if not steps or window <= timedelta(0):
        raise ValueError("need at least one step and a positive window")
    cond, params = where(filters)
    params["window"] = window
    ctes, types = [], []
    for i, step in enumerate(steps):
        event_type, payload = (step, {}) if isinstance(step, str) else step
        types.append(event_type)
        params[f"step_{i}"] = event_type
        match = f"e.event_type = :step_{i}"
        for j, (key, value) in enumerate(sorted(payload.items())):
            params[f"step_{i}_key_{j}"], params[f"step_{i}_value_{j}"] = key, str(value)
            match += f" AND e.payload->>:step_{i}_key_{j} = :step_{i}_value_{j}"
        if i == 0:
            ctes.append(f"""s0 AS (SELECT DISTINCT ON (e.player_id) e.player_id, e.occurred_at AS t0,
                                          e.occurred_at AS t, e.id, 0::float8 AS dt
                       FROM events e WHERE {cond} AND {match}
                       ORDER BY e.player_id, e.occurred_at, e.id)""")
            continue
        ctes.append(f"""s{i} AS (SELECT DISTINCT ON (p.player_id) p.player_id, p.t0, e.occurred_at AS t, e.id,
                                        extract(epoch FROM e.occurred_at - p.t)::float8 AS dt
                   FROM s{i - 1} p JOIN events e ON e.player_id = p.player_id
                   WHERE {cond} AND {match}
                     AND (e.occurred_at, e.id) > (p.t, p.id) AND e.occurred_at <= p.t0 + :window
                   ORDER BY p.player_id, e.occurred_at, e.id)""")
    counts = " UNION ALL ".join(
        f"SELECT {i} AS step, count(*) AS players, percentile_cont(0.5) WITHIN GROUP (ORDER BY dt) AS median_seconds, "
        f"avg(dt) AS mean_seconds FROM s{i}" for i in range(len(steps))
    )
    sql = f"WITH {', '.join(ctes)} {counts} ORDER BY step"
    frame = fetch_frame(bind, sql, params)
    frame["players"] = frame["players"].astype("int64")
    frame.insert(1, "event_type", [types[i] for i in frame["step"]])
    first = frame["players"].iloc[0]
    frame["conversion"] = frame["players"] / first if first else 0.0
    previous = frame["players"].shift(1, fill_value=first).astype(float)
    frame["step_conversion"] = (frame["players"] / previous.where(previous > 0)).fillna(0.0)
    for column in ("median_seconds", "mean_seconds"):
        frame[column] = frame[column].astype(float)
        frame.loc[0, column] = float("nan")
    return frame[["step", "event_type", "players", "conversion", "step_conversion", "median_seconds",
                  "mean_seconds"]]  # fmt: skip


# --- activity by type and hour ----------------------------------------------------------------------------------


def events_by_type(bind: Bind, filters: Filters = ALL) -> pd.DataFrame:
    """Events and distinct players per game and event type: columns ``game``, ``event_type``, ``events``,
    ``players`` (ints), ordered by game then most events first."""
    cond, params = where(filters)
    sql = f"""
    SELECT e.game, e.event_type, count(*) AS events, count(DISTINCT e.player_id) AS players
    FROM events e WHERE {cond} GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2
    """
    return fetch_frame(bind, sql, params)


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
    return fetch_frame(bind, sql, params)
