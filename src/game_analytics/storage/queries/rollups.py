"""The exporter's figures from the hourly rollups instead of ``events`` and its payloads.

``market_hourly`` gives the price index and the trade volume (same columns and meaning as
:func:`.economy.price_index_at` and :func:`.economy.trade_volume_since`; float sums may differ from those in the
last bits, another summation order), ``activity_hourly`` the events per period (as
:func:`.activity.events_by_period`) and ``last_activity_hourly`` the active players per period (as
:func:`.activity.active_players_by_period`).

Exact, not approximate: whole UTC hours inside a window come from the rollup, the partial hours at its edges from
``events`` (a BRIN/partition-pruned scan of at most two hours).  When nothing is stored after ``as_of``
(:func:`events_after`; always so for ``--as-of latest``) the hour holding ``as_of`` is complete in the rollup and
is read from it too, so only the lower edge is read from ``events``.  The rollups must be current for the caller's
snapshot, i.e. read in the transaction that ran :func:`game_analytics.storage.derived.catch_up` (the exporter
does).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from .activity import ACTIVITY_PERIODS
from .events import latest_event_time
from .filters import Bind, Filters, clauses, fetch_frame

__all__ = ["active_players_by_period", "events_after", "events_by_period", "price_index_at", "trade_volume_since"]

_CURRENCY = "coalesce(e.payload->>'currency', 'USD')"
_MONTH = "date_trunc('month', {} AT TIME ZONE 'UTC')"


def _top(as_of: datetime, complete: bool) -> datetime:
    """The end of the rollup hours to read: the hour holding ``as_of`` is included when ``complete``."""
    hour = as_of.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return hour + timedelta(hours=1) if complete else hour


def events_after(bind: Bind, as_of: datetime, games: Sequence[str] = ()) -> bool:
    """Whether any event (of ``games``; all when empty) is stored after ``as_of`` -- if not, the rollup row of
    ``as_of``'s hour holds exactly the events up to ``as_of`` (one backward index probe per event type)."""
    latest = latest_event_time(bind, Filters(games=tuple(games)))
    return latest is not None and latest > as_of


def _complete(bind: Bind, as_of: datetime, games: Sequence[str], complete: bool | None) -> bool:
    return not events_after(bind, as_of, games) if complete is None else complete


def _hours(since: datetime, as_of: datetime, complete: bool = False) -> tuple[datetime, datetime]:
    """``(lo, hi)``: the rollup hours ``[lo, hi)`` to read for ``(since, as_of]``; the rest of the window is
    ``(since, lo)`` and ``[hi, as_of]`` (:data:`_EDGES`; empty when ``complete``: nothing is stored after
    ``as_of``, so the hour holding it is whole in the rollup)."""
    hi = _top(as_of, complete)
    # the first hour starting after since: an hour starting AT since holds events at since, outside the window
    lo = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return (as_of, as_of) if lo > hi else (lo, hi)  # none: the edges (since, as_of) and [as_of, as_of]


#: the events outside the rollup's whole hours: two ranges an index on (event_type, occurred_at) serves
_EDGES = "((e.occurred_at > :since AND e.occurred_at < :lo) OR (e.occurred_at >= :hi AND e.occurred_at <= :as_of))"


def _games(games: Sequence[str], params: dict[str, Any], alias: str) -> str:
    """The game condition of :func:`.filters.clauses` on the rows aliased ``alias`` (its parameter into
    ``params``)."""
    sql, more = clauses(Filters(games=tuple(games)), alias, times=False)
    params.update(more)
    return sql


def price_index_at(bind: Bind, as_of: datetime, games: Sequence[str] = (), *,
                   window: timedelta = timedelta(days=30), complete: bool | None = None) -> pd.DataFrame:  # fmt: skip
    """Unit price in ``(as_of - window, as_of]`` over the unit price of the market's first UTC month, per
    (game, currency).  Columns ``game``, ``currency``, ``unit_price``, ``base_price``, ``index``.
    ``complete``: ``not events_after(bind, as_of, games)`` if the caller knows it (probed when None)."""
    since = as_of - window
    complete = _complete(bind, as_of, games, complete)
    lo, hi = _hours(since, as_of, complete)
    top = _top(as_of, complete)  # the rollup's hours before this; the events from it on
    params: dict[str, Any] = {"as_of": as_of, "since": since, "lo": lo, "hi": hi, "top": top}
    g_roll, g_raw = _games(games, params, "m"), _games(games, params, "e")
    sql = f"""
    WITH r AS (
        SELECT m.game, m.currency, m.hour AS t, m.quantity AS q, m.value AS a FROM market_hourly m
        WHERE m.kind = 'purchase' AND m.hour < :top {g_roll}
        UNION ALL
        SELECT e.game, {_CURRENCY}, e.occurred_at, (e.payload->>'quantity')::float8, (e.payload->>'amount')::float8
        FROM events e WHERE e.event_type = 'purchase' AND e.occurred_at >= :top AND e.occurred_at <= :as_of {g_raw}
    ), first_month AS (
        SELECT game, currency, min({_MONTH.format('t')}) AS m FROM r GROUP BY 1, 2
    ), base AS (
        SELECT r.game, r.currency, sum(r.a) / nullif(sum(r.q), 0) AS base_price
        FROM r JOIN first_month f USING (game, currency) WHERE {_MONTH.format('r.t')} = f.m GROUP BY 1, 2
    ), window_rows AS (
        SELECT m.game, m.currency, m.quantity AS q, m.value AS a FROM market_hourly m
        WHERE m.kind = 'purchase' AND m.hour >= :lo AND m.hour < :hi {g_roll}
        UNION ALL
        SELECT e.game, {_CURRENCY}, (e.payload->>'quantity')::float8, (e.payload->>'amount')::float8
        FROM events e WHERE e.event_type = 'purchase' AND {_EDGES} {g_raw}
    ), cur AS (
        SELECT game, currency, sum(a) / nullif(sum(q), 0) AS unit_price FROM window_rows GROUP BY 1, 2
    )
    SELECT cur.game, cur.currency, cur.unit_price, base.base_price, cur.unit_price / nullif(base.base_price, 0) AS index
    FROM cur JOIN base USING (game, currency) WHERE cur.unit_price IS NOT NULL ORDER BY 1, 2
    """
    return fetch_frame(bind, sql, params)


def trade_volume_since(bind: Bind, since: datetime, as_of: datetime, games: Sequence[str] = (), *,
                       complete: bool | None = None) -> pd.DataFrame:  # fmt: skip
    """Transactions in ``(since, as_of]`` per (game, currency): columns ``game``, ``currency``, ``trades``,
    ``value`` (trades in the game's item value under currency ``item``, purchases in their currency).
    ``complete`` as in :func:`price_index_at`."""
    lo, hi = _hours(since, as_of, _complete(bind, as_of, games, complete))
    params: dict[str, Any] = {"as_of": as_of, "since": since, "lo": lo, "hi": hi}
    g_roll, g_raw = _games(games, params, "m"), _games(games, params, "e")
    sql = f"""
    SELECT game, currency, sum(n) AS trades, coalesce(sum(v), 0) AS value FROM (
        SELECT m.game, m.currency, m.events AS n, m.value AS v FROM market_hourly m
        WHERE m.hour >= :lo AND m.hour < :hi {g_roll}
        UNION ALL
        SELECT e.game, CASE e.event_type WHEN 'purchase' THEN {_CURRENCY} ELSE 'item' END, 1,
               CASE e.event_type WHEN 'purchase' THEN (e.payload->>'amount')::float8
                                 ELSE coalesce((e.payload->>'value')::float8, 0) END
        FROM events e WHERE e.event_type IN ('trade', 'purchase') {g_raw}
          AND {_EDGES}
    ) AS t GROUP BY 1, 2 ORDER BY 1, 2
    """
    frame = fetch_frame(bind, sql, params)
    if not frame.empty:
        frame["trades"] = frame["trades"].astype("int64")
    return frame


def events_by_period(bind: Bind, as_of: datetime, games: Sequence[str] = (),
                     periods: dict[str, timedelta] | None = None, *,
                     complete: bool | None = None) -> list[tuple[Any, ...]]:  # fmt: skip
    """Events per game and type in ``(as_of - period, as_of]`` for each period (default 1h/1d/7d/30d), from
    ``activity_hourly`` and the edge hours of ``events``: rows ``(game, event_type, count per period in the order
    of periods...)`` ordered by game and type, as :func:`.activity.events_by_period`.  ``complete`` as in
    :func:`price_index_at`."""
    span = ACTIVITY_PERIODS if periods is None else periods
    complete = _complete(bind, as_of, games, complete)
    params: dict[str, Any] = {"as_of": as_of}
    rolled, raw, edges = [], [], []
    for i, d in enumerate(span.values()):
        lo, hi = _hours(as_of - d, as_of, complete)
        params.update({f"since_{i}": as_of - d, f"lo_{i}": lo, f"hi_{i}": hi})
        rolled.append(f"coalesce(sum(h.events) FILTER (WHERE h.hour >= :lo_{i} AND h.hour < :hi_{i}), 0) AS n{i}")
        edge = _EDGES.replace(":since", f":since_{i}").replace(":lo", f":lo_{i}").replace(":hi", f":hi_{i}")
        raw.append(f"count(*) FILTER (WHERE {edge}) AS n{i}")
        edges.append(edge)
    params["first"] = min(params[f"lo_{i}"] for i in range(len(span)))
    params["last"] = max(params[f"hi_{i}"] for i in range(len(span)))
    g_roll, g_raw = _games(games, params, "h"), _games(games, params, "e")
    sums = ", ".join(f"sum(n{i})::bigint" for i in range(len(span)))
    frame = fetch_frame(bind, f"""
        SELECT game, event_type, {sums} FROM (
            SELECT h.game, h.event_type, {', '.join(rolled)} FROM activity_hourly h
            WHERE h.hour >= :first AND h.hour < :last {g_roll} GROUP BY 1, 2
            UNION ALL
            SELECT e.game, e.event_type, {', '.join(raw)} FROM events e
            WHERE ({' OR '.join(edges)}) {g_raw} GROUP BY 1, 2
        ) AS t GROUP BY 1, 2 HAVING sum(n{len(span) - 1}) > 0 ORDER BY 1, 2""", params)
    return list(frame.itertuples(index=False, name=None))


def active_players_by_period(bind: Bind, as_of: datetime, games: Sequence[str] = (),
                             periods: dict[str, timedelta] | None = None) -> pd.DataFrame:  # fmt: skip
    """Distinct players per game active in ``(as_of - period, as_of]`` (default 1h/1d/7d/30d), as
    :func:`.activity.active_players_by_period` (same columns ``game``, ``period``, ``players``), without reading a
    row per player.

    ``last_activity_hourly`` counts the players whose newest event is in each UTC hour; per period: its hours
    ``[lo, hi)`` (``hi`` = the end of ``as_of``'s hour), plus the players of ``player_activity`` whose newest event
    is in the partial hour ``(since, lo)``, minus those whose newest event is in ``(as_of, hi)`` (after ``as_of``
    in its hour), plus the players with events after ``as_of`` whose newest event up to ``as_of`` is in the window
    (one index probe each in ``events``; none when ``as_of`` is the newest event).  Both edge ranges are index
    ranges on ``player_activity (game, last_at)``, one per game.
    """
    span = ACTIVITY_PERIODS if periods is None else periods
    hi = _top(as_of, True)
    params: dict[str, Any] = {"as_of": as_of, "hi": hi}
    rolled, edge_counts, edges, late = [], [], ["(a.last_at > :as_of AND a.last_at < :hi)"], []
    for i, d in enumerate(span.values()):
        since = as_of - d
        lo, _ = _hours(since, as_of, True)
        params.update({f"since_{i}": since, f"lo_{i}": lo})
        rolled.append(f"coalesce(sum(l.players) FILTER (WHERE l.hour >= :lo_{i}), 0) AS p{i}")
        edge = f"(a.last_at > :since_{i} AND a.last_at < :lo_{i})"
        edge_counts.append(f"count(*) FILTER (WHERE {edge}) - count(*) FILTER (WHERE a.last_at > :as_of) AS p{i}")
        edges.append(edge)
        late.append(f"count(*) FILTER (WHERE late.last_at > :since_{i}) AS p{i}")
    params["first"] = min(params[f"lo_{i}"] for i in range(len(span)))
    params["lo_late"] = as_of - max(span.values())
    g_roll = _games(games, params, "l")  # player_activity joins these games
    n = len(span)
    sums = ", ".join(f"sum(p{i})::bigint AS p{i}" for i in range(n))
    wide = fetch_frame(bind, f"""
        WITH games AS (SELECT DISTINCT l.game FROM last_activity_hourly l WHERE TRUE {g_roll})
        SELECT game, {sums} FROM (
            SELECT l.game, {', '.join(rolled)} FROM last_activity_hourly l
            WHERE l.hour >= :first AND l.hour < :hi {g_roll} GROUP BY 1
            UNION ALL
            SELECT g.game, x.* FROM games g CROSS JOIN LATERAL (
                SELECT {', '.join(edge_counts)} FROM player_activity a
                WHERE a.game = g.game AND ({' OR '.join(edges)})) AS x
            UNION ALL
            SELECT late.game, {', '.join(late)} FROM (
                SELECT a.game, (SELECT max(e.occurred_at) FROM events e
                                WHERE e.player_id = a.player_id AND e.game = a.game
                                  AND e.occurred_at > :lo_late AND e.occurred_at <= :as_of) AS last_at
                FROM games g JOIN player_activity a ON a.game = g.game AND a.last_at > :as_of
            ) AS late WHERE late.last_at IS NOT NULL GROUP BY 1
        ) AS t GROUP BY 1 HAVING sum(p{n - 1}) > 0 ORDER BY 1""", params)
    rows = [(game, label, int(wide.iloc[r][f"p{i}"])) for r, game in enumerate(wide["game"])
            for i, label in enumerate(span)]  # fmt: skip
    return pd.DataFrame(rows, columns=["game", "period", "players"])
