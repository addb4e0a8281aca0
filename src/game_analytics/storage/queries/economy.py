"""Economy aggregates in SQL on the ``events`` table: spend, wealth, Gini, wealth histograms, price index, volume.

The pure formulas live in :mod:`game_analytics.analytics.economy`; this module of the query layer fetches (or aggregates in
PostgreSQL) the inputs.  Definitions:

* **Wealth** of a player in a (game, currency) at time ``t``: the cumulative net flow up to ``t`` =
  sum of ``purchase.amount`` (real money spent, in the purchase's currency, default USD) plus the sum of
  ``currency_change.delta`` (in-game currency, in its own currency code).  For a shop log such as CDNOW this is
  the customer's cumulative spend; for a game with currency events it is the balance implied by the deltas.
  Negative net flows are clipped to 0 where a distribution is computed (Gini, histogram).
* **Price index** per period: the *unit value index* = ``sum(amount) / sum(quantity)`` of the period's purchases,
  divided by that of the first period (base = 1).  CDNOW sells one kind of item (CDs) and records the number of
  CDs per purchase, so this is the average price per CD per month relative to January 1997.  For games with
  several items priced per trade, a fixed-basket index is :func:`game_analytics.analytics.economy.laspeyres_price_index`.
* **Trade volume** per period: the number and total value of the market's transactions - ``trade`` events
  (``payload.value``, 0 when absent) and ``purchase`` events (``payload.amount``).

All queries use bound parameters only.  Functions take a SQLAlchemy ``Connection`` or ``Engine``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from .activity import _utc
from .filters import ALL, Bind, Filters, fetch_frame, where

__all__ = [
    "balances_sql",
    "gini_by_market",
    "price_index",
    "price_index_at",
    "spend_per_player",
    "trade_volume",
    "trade_volume_since",
    "wealth_distribution",
    "wealth_histogram",
    "wealth_per_player",
    "wealth_values",
]

_CURRENCY = "coalesce(e.payload->>'currency', 'USD')"
_FLOW = (
    "CASE e.event_type WHEN 'purchase' THEN (e.payload->>'amount')::float8 "
    "ELSE (e.payload->>'delta')::float8 END"
)


def _market_filter(as_of: datetime | None, games: Sequence[str],
                   players: Sequence[str] | None = None) -> tuple[str, dict[str, Any]]:
    clauses = ["e.event_type IN ('purchase', 'currency_change')", "e.player_id IS NOT NULL"]
    params: dict[str, Any] = {}
    if players is not None:
        clauses.append("e.player_id = ANY(:wealth_players)")
        params["wealth_players"] = list(players)
    if as_of is not None:
        clauses.append("e.occurred_at <= :as_of")
        params["as_of"] = as_of
    if games:
        clauses.append("e.game = ANY(:games)")
        params["games"] = list(games)
    return " AND ".join(clauses), params


def wealth_sql(as_of: datetime | None = None, games: Sequence[str] = (),
               players: Sequence[str] | None = None, *, exact: bool = False) -> tuple[str, dict[str, Any]]:
    """SQL (a SELECT with columns ``game, currency, player_id, wealth``) and parameters of per-player wealth at
    ``as_of`` (inclusive; None = all events), for use as a CTE; only of ``players`` when given (None = all).

    ``wealth`` is ``float8``, or with ``exact`` ``numeric``: a float sum depends on the order the rows are added
    in, which a parallel plan does not fix, so only the numeric sum is the same in every pass (the detectors
    compare a pass's evidence with the last one)."""
    cond, params = _market_filter(as_of, games, players)
    flow = _FLOW.replace("::float8", "::numeric") if exact else _FLOW
    sql = f"""
    SELECT e.game, {_CURRENCY} AS currency, e.player_id, sum({flow}) AS wealth
    FROM events e WHERE {cond} GROUP BY 1, 2, 3
    """
    return sql, params


def spend_per_player(bind: Bind, filters: Filters = ALL) -> pd.DataFrame:
    """Purchases per player: columns ``game``, ``currency``, ``player_id``, ``purchases`` (int), ``quantity``
    (int, items bought), ``amount`` (float, money spent), ordered by amount descending."""
    cond, params = where(filters)
    sql = f"""
    SELECT e.game, {_CURRENCY} AS currency, e.player_id, count(*) AS purchases,
           sum((e.payload->>'quantity')::bigint) AS quantity, sum((e.payload->>'amount')::float8) AS amount
    FROM events e WHERE {cond} AND e.event_type = 'purchase'
    GROUP BY 1, 2, 3 ORDER BY amount DESC, player_id
    """
    frame = fetch_frame(bind, sql, params)
    if not frame.empty:
        frame["amount"] = frame["amount"].astype(float)
        frame["quantity"] = frame["quantity"].astype("int64")
    return frame


def wealth_per_player(bind: Bind, as_of: datetime | None = None, games: Sequence[str] = ()) -> pd.DataFrame:
    """Wealth (see module docstring) per player at ``as_of``: columns ``game``, ``currency``, ``player_id``,
    ``wealth`` (float, may be negative for net currency sinks)."""
    sql, params = wealth_sql(as_of, games)
    frame = fetch_frame(bind, sql + " ORDER BY 1, 2, 3", params)
    if not frame.empty:
        frame["wealth"] = frame["wealth"].astype(float)
    return frame


def wealth_values(bind: Bind, game: str, currency: str = "USD", as_of: datetime | None = None) -> NDArray[np.float64]:
    """Wealth of every player of one market, clipped at 0, shape (players,) - the input of
    :func:`game_analytics.analytics.economy.gini` and ``wealth_summary``."""
    frame = wealth_per_player(bind, as_of, [game])
    frame = frame[frame["currency"] == currency]
    return frame["wealth"].clip(lower=0).to_numpy(dtype=np.float64)


def gini_by_market(bind: Bind, as_of: datetime | None = None, games: Sequence[str] = ()) -> pd.DataFrame:
    """Gini coefficient of wealth (clipped at 0) per (game, currency), computed in PostgreSQL with the same
    sorted-rank formula as :func:`game_analytics.analytics.economy.gini` (Damgaard and Weiner 2000, eq. 2).

    Returns columns ``game``, ``currency``, ``players`` (int), ``total`` (float), ``gini`` (float; 0 when all
    wealth is 0).
    """
    wealth, params = wealth_sql(as_of, games)
    sql = f"""
    WITH w AS (SELECT game, currency, greatest(wealth, 0) AS x FROM ({wealth}) AS raw),
    ranked AS (SELECT game, currency, x, row_number() OVER (PARTITION BY game, currency ORDER BY x) AS i FROM w)
    SELECT game, currency, count(*) AS players, sum(x) AS total,
           CASE WHEN sum(x) = 0 THEN 0.0
                ELSE 2.0 * sum(i * x) / (count(*) * sum(x)) - (count(*) + 1.0) / count(*) END AS gini
    FROM ranked GROUP BY game, currency ORDER BY game, currency
    """
    frame = fetch_frame(bind, sql, params)
    if not frame.empty:
        frame[["total", "gini"]] = frame[["total", "gini"]].astype(float)
    return frame


def wealth_histogram(
    bind: Bind, buckets: Sequence[float], as_of: datetime | None = None, games: Sequence[str] = ()
) -> dict[tuple[str, str], tuple[list[int], float]]:
    """Cumulative histogram of wealth (clipped at 0) per (game, currency) over FIXED upper bounds ``buckets``.

    Returns ``{(game, currency): (counts, total)}`` where ``counts[i]`` = players with wealth <= ``buckets[i]``
    (Prometheus ``le`` semantics, upper bound inclusive) for each bucket, plus a last entry for ``+Inf`` (= all
    players), and ``total`` is the summed wealth.  The output size depends only on ``len(buckets)`` and the
    number of markets, never on the number of players.

    Raises:
        ValueError: ``buckets`` empty or not strictly increasing.
    """
    bounds = [float(b) for b in buckets]
    if not bounds or any(b >= c for b, c in zip(bounds, bounds[1:], strict=False)):
        raise ValueError("buckets must be a non-empty strictly increasing sequence")
    wealth, params = wealth_sql(as_of, games)
    # width_bucket(-x, [-b_n .. -b_1]) = number of bounds >= x; upper-inclusive bucket index = n - that.
    params["neg_bounds"] = [-b for b in reversed(bounds)]
    sql = f"""
    SELECT game, currency, width_bucket(-greatest(wealth, 0), CAST(:neg_bounds AS float8[])) AS ge,
           count(*) AS players, sum(greatest(wealth, 0)) AS total
    FROM ({wealth}) AS w GROUP BY 1, 2, 3
    """
    frame = fetch_frame(bind, sql, params)
    n = len(bounds)
    out: dict[tuple[str, str], tuple[list[int], float]] = {}
    for (game, currency), rows in frame.groupby(["game", "currency"], sort=True):
        per_bucket = np.zeros(n + 1, dtype=np.int64)  # index j: smallest bound >= x is bounds[j] (n = +Inf)
        for ge, players in zip(rows["ge"], rows["players"], strict=True):
            per_bucket[n - int(ge)] += int(players)
        out[(str(game), str(currency))] = (np.cumsum(per_bucket).tolist(), float(rows["total"].sum()))
    return out


def balances_sql(as_of: datetime | None = None, games: Sequence[str] = ()) -> tuple[str, dict[str, Any]]:
    """Like :func:`wealth_sql`, from the running ``player_balances`` (see
    :func:`game_analytics.storage.derived.catch_up`) instead of all events: the balance minus the
    flows of the events after ``as_of`` (an index range scan; none when ``as_of`` is the newest event).  Players
    whose every flow is after ``as_of`` are absent, as in :func:`wealth_sql`.  ``wealth`` is ``float8``."""
    late_cond, params = _market_filter(None, games)
    game_cond = "AND b.game = ANY(:games)" if games else ""
    if as_of is None:
        sql = f"SELECT game, currency, player_id, wealth::float8 AS wealth FROM player_balances b WHERE TRUE {game_cond}"
        return sql, params
    params["as_of"] = as_of
    flow = _FLOW.replace("::float8", "::numeric")
    sql = f"""
    SELECT b.game, b.currency, b.player_id, (b.wealth - coalesce(l.flow, 0))::float8 AS wealth
    FROM player_balances b LEFT JOIN (
        SELECT e.game, {_CURRENCY} AS currency, e.player_id, sum({flow}) AS flow, count(*) AS n
        FROM events e WHERE {late_cond} AND e.occurred_at > :as_of GROUP BY 1, 2, 3
    ) AS l USING (game, currency, player_id)
    WHERE b.events > coalesce(l.n, 0) {game_cond}
    """
    return sql, params


def _flows_after(bind: Bind, as_of: datetime, games: Sequence[str]) -> bool:
    """Whether any wealth flow (purchase, currency change) occurred after ``as_of`` (an index probe)."""
    cond, params = _market_filter(None, games)
    sql = f"SELECT EXISTS (SELECT FROM events e WHERE {cond} AND e.occurred_at > :as_of)"
    return bool(fetch_frame(bind, sql, {**params, "as_of": as_of}).iloc[0, 0])


def wealth_distribution(
    bind: Bind, buckets: Sequence[float], as_of: datetime | None = None, games: Sequence[str] = (),
    *, aggregates: bool = False,
) -> tuple[pd.DataFrame, dict[tuple[str, str], tuple[list[int], float]]]:
    """:func:`gini_by_market` and :func:`wealth_histogram` in ONE statement, aggregating the wealth once (the
    exporter's path).  Returns ``(gini_frame, histogram)`` with the same shapes as those two functions.

    With ``aggregates`` the wealth comes from the derived tables (exact when ``derived.catch_up`` ran in the same
    REPEATABLE READ transaction): when no flow is stored after ``as_of`` from ``wealth_values`` (the balances
    counted by value: one row per distinct wealth, not per player), else from ``player_balances`` minus the
    later flows (:func:`balances_sql`, one row per player); without it from every event.

    Raises:
        ValueError: ``buckets`` empty or not strictly increasing.
    """
    bounds = [float(b) for b in buckets]
    if not bounds or any(b >= c for b, c in zip(bounds, bounds[1:], strict=False)):
        raise ValueError("buckets must be a non-empty strictly increasing sequence")
    if aggregates and as_of is not None and not _flows_after(bind, as_of, games):
        as_of = None  # nothing to take back out of the balances: skip the join
    params: dict[str, Any] = {f"le_{k}": b for k, b in enumerate(bounds)}
    le = ", ".join(f"coalesce(sum(c) FILTER (WHERE x <= :le_{k}), 0)::bigint AS le_{k}" for k in range(len(bounds)))
    if aggregates and as_of is None:
        # the balances counted by value (wealth_values, kept by the catch-up): one row per distinct wealth in the
        # order of its key, no sort; a value held by c players at ranks before+1 .. before+c adds
        # x * (c * before + c (c + 1) / 2) to sum(rank * x)
        game_cond = "AND v.game = ANY(:games)" if games else ""
        if games:
            params["games"] = list(games)
        ranked = f"""SELECT v.game, v.currency, greatest(v.wealth::float8, 0) AS x, v.players::float8 AS c,
                        (sum(v.players) OVER (PARTITION BY v.game, v.currency ORDER BY v.wealth
                                              ROWS UNBOUNDED PRECEDING) - v.players)::float8 AS before
                     FROM wealth_values v WHERE v.players > 0 {game_cond}"""
    else:
        wealth, more = (balances_sql if aggregates else wealth_sql)(as_of, games)
        params.update(more)
        ranked = f"""SELECT game, currency, x, 1.0::float8 AS c,
                        (row_number() OVER (PARTITION BY game, currency ORDER BY x) - 1)::float8 AS before
                     FROM (SELECT game, currency, greatest(wealth, 0) AS x FROM ({wealth}) AS raw) AS w"""
    rows = fetch_frame(bind, f"""
    SELECT game, currency, n, total,
           CASE WHEN total = 0 THEN 0.0 ELSE 2.0 * ix / (n * total) - (n + 1.0) / n END AS gini,
           {', '.join(f'le_{k}' for k in range(len(bounds)))}
    FROM (SELECT game, currency, sum(c)::bigint AS n, sum(c * x) AS total,
                 sum(x * (c * before + c * (c + 1) / 2)) AS ix, {le}
          FROM ({ranked}) AS ranked GROUP BY 1, 2) AS markets""", params)
    gini = pd.DataFrame({
        "game": rows["game"], "currency": rows["currency"], "players": rows["n"].astype("int64"),
        "total": rows["total"].astype(float), "gini": rows["gini"].astype(float),
    }).sort_values(["game", "currency"]).reset_index(drop=True)  # fmt: skip
    histogram: dict[tuple[str, str], tuple[list[int], float]] = {}
    for row in rows.itertuples(index=False):
        counts = [int(getattr(row, f"le_{k}")) for k in range(len(bounds))] + [int(row.n)]
        histogram[(str(row.game), str(row.currency))] = (counts, float(row.total))
    return gini, histogram


def price_index(bind: Bind, filters: Filters = ALL, *, period: str = "month") -> pd.DataFrame:
    """Unit value price index per (game, currency, period) (see module docstring).

    Returns columns ``game``, ``currency``, ``period`` (datetime64, naive UTC), ``quantity`` (int), ``amount``
    (float), ``unit_price`` (float) and ``index`` (unit price / the first period's unit price of that market).
    Inflation per period is ``economy.inflation_rate(index)``.
    """
    cond, params = where(filters)
    sql = f"""
    SELECT e.game, {_CURRENCY} AS currency, {_utc(period, 'e.occurred_at')} AS period,
           sum((e.payload->>'quantity')::bigint) AS quantity, sum((e.payload->>'amount')::float8) AS amount
    FROM events e WHERE {cond} AND e.event_type = 'purchase'
    GROUP BY 1, 2, 3 HAVING sum((e.payload->>'quantity')::bigint) > 0 ORDER BY 1, 2, 3
    """
    frame = fetch_frame(bind, sql, params)
    if frame.empty:
        return frame
    frame["period"] = pd.to_datetime(frame["period"])
    frame["amount"] = frame["amount"].astype(float)
    frame["quantity"] = frame["quantity"].astype("int64")
    frame["unit_price"] = frame["amount"] / frame["quantity"]
    frame["index"] = frame["unit_price"] / frame.groupby(["game", "currency"])["unit_price"].transform("first")
    return frame


def price_index_at(
    bind: Bind, as_of: datetime, games: Sequence[str] = (), *, window: timedelta = timedelta(days=30)
) -> pd.DataFrame:
    """The current price level per market: unit price of the purchases in ``(as_of - window, as_of]`` divided by
    the unit price of the market's first calendar month (UTC).  Markets without purchases in the window are
    absent.  Columns ``game``, ``currency``, ``unit_price``, ``base_price``, ``index``."""
    params: dict[str, Any] = {"as_of": as_of, "since": as_of - window}
    game_cond = ""
    if games:
        game_cond = "AND e.game = ANY(:games)"
        params["games"] = list(games)
    sql = f"""
    WITH p AS (
        SELECT e.game, {_CURRENCY} AS currency, e.occurred_at,
               (e.payload->>'quantity')::float8 AS q, (e.payload->>'amount')::float8 AS a
        FROM events e WHERE e.event_type = 'purchase' AND e.occurred_at <= :as_of {game_cond}
    ), first_month AS (
        SELECT game, currency, min({_utc('month', 'occurred_at')}) AS m FROM p GROUP BY 1, 2
    ), base AS (
        SELECT p.game, p.currency, sum(p.a) / nullif(sum(p.q), 0) AS base_price
        FROM p JOIN first_month f USING (game, currency)
        WHERE {_utc('month', 'p.occurred_at')} = f.m GROUP BY 1, 2
    ), cur AS (
        SELECT game, currency, sum(a) / nullif(sum(q), 0) AS unit_price FROM p WHERE occurred_at > :since GROUP BY 1, 2
    )
    SELECT cur.game, cur.currency, cur.unit_price, base.base_price, cur.unit_price / nullif(base.base_price, 0) AS index
    FROM cur JOIN base USING (game, currency) WHERE cur.unit_price IS NOT NULL ORDER BY 1, 2
    """
    return fetch_frame(bind, sql, params)


def trade_volume(
    bind: Bind, filters: Filters = ALL, *, period: str = "month", event_types: Sequence[str] = ("trade", "purchase")
) -> pd.DataFrame:
    """Transactions and traded value per (game, period): columns ``game``, ``period`` (datetime64, naive UTC),
    ``trades`` (int), ``value`` (float).  Periods without transactions are absent."""
    cond, params = where(filters)
    params["types"] = list(event_types)
    sql = f"""
    SELECT e.game, {_utc(period, 'e.occurred_at')} AS period, count(*) AS trades,
           coalesce(sum(CASE e.event_type WHEN 'purchase' THEN (e.payload->>'amount')::float8
                                          ELSE coalesce((e.payload->>'value')::float8, 0) END), 0) AS value
    FROM events e WHERE {cond} AND e.event_type = ANY(:types)
    GROUP BY 1, 2 ORDER BY 1, 2
    """
    frame = fetch_frame(bind, sql, params)
    if not frame.empty:
        frame["period"] = pd.to_datetime(frame["period"])
        frame["value"] = frame["value"].astype(float)
        frame["trades"] = frame["trades"].astype("int64")
    return frame


def trade_volume_since(bind: Bind, since: datetime, as_of: datetime, games: Sequence[str] = ()) -> pd.DataFrame:
    """Transactions in ``(since, as_of]`` per (game, currency): columns ``game``, ``currency``, ``trades``,
    ``value`` (trade value in the game's trade unit, purchases in their currency)."""
    params: dict[str, Any] = {"since": since, "as_of": as_of}
    game_cond = ""
    if games:
        game_cond = "AND e.game = ANY(:games)"
        params["games"] = list(games)
    sql = f"""
    SELECT e.game, CASE e.event_type WHEN 'purchase' THEN {_CURRENCY} ELSE 'item' END AS currency,
           count(*) AS trades,
           coalesce(sum(CASE e.event_type WHEN 'purchase' THEN (e.payload->>'amount')::float8
                                          ELSE coalesce((e.payload->>'value')::float8, 0) END), 0) AS value
    FROM events e
    WHERE e.event_type IN ('trade', 'purchase') AND e.occurred_at > :since AND e.occurred_at <= :as_of {game_cond}
    GROUP BY 1, 2 ORDER BY 1, 2
    """
    return fetch_frame(bind, sql, params)
