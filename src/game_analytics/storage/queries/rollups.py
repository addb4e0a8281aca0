"""Economy figures of the exporter from the hourly rollup ``market_hourly`` instead of event payloads.

Exact, not approximate: whole UTC hours inside a window come from the rollup, the partial hours at its edges from
``events`` (a BRIN/partition-pruned scan of at most two hours).  The rollup must be current for the caller's
snapshot, i.e. read in the transaction that ran :func:`game_analytics.storage.derived.catch_up` (the exporter
does).  Same columns and meaning as :func:`.economy.price_index_at` and :func:`.economy.trade_volume_since`;
float sums may differ from those in the last bits (another summation order).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from .filters import Bind, Filters, clauses, fetch_frame

__all__ = ["price_index_at", "trade_volume_since"]

_CURRENCY = "coalesce(e.payload->>'currency', 'USD')"
_MONTH = "date_trunc('month', {} AT TIME ZONE 'UTC')"


def _hours(since: datetime, as_of: datetime) -> tuple[datetime, datetime]:
    """``(lo, hi)``: the whole hours ``[lo, hi)`` inside ``(since, as_of]``; the rest of the window is
    ``(since, lo)`` and ``[hi, as_of]`` (:data:`_EDGES`)."""
    hi = as_of.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
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
                   window: timedelta = timedelta(days=30)) -> pd.DataFrame:  # fmt: skip
    """Unit price in ``(as_of - window, as_of]`` over the unit price of the market's first UTC month, per
    (game, currency).  Columns ``game``, ``currency``, ``unit_price``, ``base_price``, ``index``."""
    since = as_of - window
    lo, hi = _hours(since, as_of)
    top = as_of.astimezone(UTC).replace(minute=0, second=0, microsecond=0)  # the rollup's hours before as_of's
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


def trade_volume_since(bind: Bind, since: datetime, as_of: datetime, games: Sequence[str] = ()) -> pd.DataFrame:
    """Transactions in ``(since, as_of]`` per (game, currency): columns ``game``, ``currency``, ``trades``,
    ``value`` (trades in the game's item value under currency ``item``, purchases in their currency)."""
    lo, hi = _hours(since, as_of)
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
