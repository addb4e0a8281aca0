"""The standard game KPIs of one window, in SQL on ``events`` (definitions: docs/analytics.md).

Built on the query layer's one definition of an active player (:mod:`.activity`: at least one event matching
the filters) and of a session (:mod:`.sessions`). For a window ``[start, end)`` of ``days`` calendar days:

* ``active_players``: distinct active players in the window (the MAU for a month window);
  ``player_days``: sum over the window's days of DAU; ``mean_dau = player_days / days``;
  ``stickiness = mean_dau / active_players`` (DAU/MAU).
* ``revenue``: sum of ``purchase.amount`` in ``currency`` (default USD); ``paying_players``: players with a
  purchase of amount > 0 in that currency; ``arpdau = revenue / player_days``; ``arppu = revenue /
  paying_players``; ``conversion = paying_players / active_players``.
* ``new_players``: active players whose first event (within the filters' games/regions/types, all time) is in the
  window; ``returning_players = active_players - new_players``.
* ``d1``/``d7``/``d30``: classic (exact-day) retention of the window's new players: the share active on the UTC
  day ``first day + N``, over the new players whose day ``first day + N`` is not after the last day with data.
* ``sessions`` (sessions of the window's events), ``sessions_per_dau = sessions / player_days``,
  ``session_mean_seconds``, ``session_median_seconds`` and ``session_method`` from
  :func:`.sessions.session_summary`.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from .activity import daily_players
from .filters import Bind, Filters, fetch_frame, where
from .sessions import session_summary

__all__ = ["RETENTION_DAYS", "daily_revenue", "kpis"]

#: the classic retention days
RETENTION_DAYS = (1, 7, 30)


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else math.nan


def kpis(bind: Bind, filters: Filters, *, currency: str = "USD") -> dict[str, Any]:
    """The KPIs of the module docstring for the window of ``filters`` (``start`` and ``end`` both set).

    Returns:
        A dict of the names in the module docstring plus ``days`` and ``d1_cohort``/``d7_cohort``/``d30_cohort``
        (new players eligible for each retention day); ratios are NaN when their denominator is 0.

    Raises:
        ValueError: ``filters.start`` or ``filters.end`` is missing, or ``end <= start``.
    """
    if filters.start is None or filters.end is None or filters.end <= filters.start:
        raise ValueError("KPIs need a window: filters.start < filters.end")
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return kpis(conn, filters, currency=currency)
    days = math.ceil((filters.end - filters.start).total_seconds() / 86_400)
    cond, params = where(filters)
    all_cond, all_params = where(filters.between(None, None), prefix="g")
    first_day = "(first_at AT TIME ZONE 'UTC')::date"
    kept = ", ".join(f"count(*) FILTER (WHERE {first_day} + {n} = ANY(days)) AS k{n}" for n in RETENTION_DAYS)
    retention = ", ".join(f"coalesce(sum(players) FILTER (WHERE first_day + {n} <= last_day), 0) AS eligible{n}, "
                          f"coalesce(sum(k{n}) FILTER (WHERE first_day + {n} <= last_day), 0) AS kept{n}"
                          for n in RETENTION_DAYS)  # fmt: skip
    # One pass in player order over the (player_id, occurred_at) index: the DISTINCT aggregate rules out a hash
    # aggregate, so each player's events stream through one group (nothing materialised, no spill); a player's
    # days are kept in a small array only to test "active on first day + N". The groups are then summed by
    # cohort day (NULL: not new in the window), at most one row per day of the window.
    sql = f"""
    WITH per_player AS (
        SELECT min(e.occurred_at) AS first_at, max(e.occurred_at) AS last_at,
               count(DISTINCT (e.occurred_at AT TIME ZONE 'UTC')::date)
                   FILTER (WHERE e.occurred_at >= :kpi_start AND e.occurred_at < :kpi_end) AS win_days,
               array_agg((e.occurred_at AT TIME ZONE 'UTC')::date) AS days
        FROM events e WHERE {all_cond} GROUP BY e.player_id
    ), by_cohort AS (
        SELECT CASE WHEN first_at >= :kpi_start AND first_at < :kpi_end THEN {first_day} END AS first_day,
               count(*) AS players, count(*) FILTER (WHERE win_days > 0) AS active, sum(win_days) AS player_days,
               max(last_at) AS last_at, {kept}
        FROM per_player GROUP BY 1
    ), dated AS (
        SELECT b.*, (max(last_at) OVER () AT TIME ZONE 'UTC')::date AS last_day FROM by_cohort b
    )
    SELECT coalesce(sum(active), 0) AS active_players, coalesce(sum(player_days), 0) AS player_days,
           coalesce(sum(players) FILTER (WHERE first_day IS NOT NULL), 0) AS new_players, {retention}
    FROM dated
    """
    row = fetch_frame(bind, sql, {**all_params, "kpi_start": filters.start, "kpi_end": filters.end}).iloc[0]
    money = fetch_frame(bind, f"""
        SELECT coalesce(sum(amount), 0) AS revenue, count(DISTINCT player_id) FILTER (WHERE amount > 0) AS paying
        FROM (SELECT e.player_id, coalesce((e.payload->>'amount')::float8, 0) AS amount FROM events e
              WHERE {cond} AND e.event_type = 'purchase' AND coalesce(e.payload->>'currency', 'USD') = :currency) AS p
        """, {**params, "currency": currency}).iloc[0]  # fmt: skip
    active, player_days, new = int(row["active_players"]), int(row["player_days"]), int(row["new_players"])
    revenue, paying = float(money["revenue"]), int(money["paying"])
    out: dict[str, Any] = {
        "days": days, "active_players": active, "player_days": player_days,
        "mean_dau": player_days / days, "stickiness": _ratio(player_days / days, active),
        "revenue": revenue, "paying_players": paying, "arpdau": _ratio(revenue, player_days),
        "arppu": _ratio(revenue, paying), "conversion": _ratio(paying, active),
        "new_players": new, "returning_players": active - new,
    }  # fmt: skip
    for n in RETENTION_DAYS:
        eligible = int(row[f"eligible{n}"])
        out[f"d{n}_cohort"] = eligible
        out[f"d{n}"] = _ratio(int(row[f"kept{n}"]), eligible)
    summary, method = session_summary(bind, filters)
    sessions = int(summary["sessions"])
    out.update(sessions=sessions, sessions_per_dau=_ratio(sessions, player_days), session_method=method,
               session_mean_seconds=float(summary["mean_seconds"]) if sessions else math.nan,
               session_median_seconds=float(summary["median_seconds"]) if sessions else math.nan)  # fmt: skip
    return out


def daily_revenue(bind: Bind, filters: Filters, *, currency: str = "USD") -> pd.Series:
    """Revenue (sum of ``purchase.amount`` in ``currency``) per UTC day of the events matching ``filters``:
    a float Series indexed by day (datetime64, naive UTC midnight), days without purchases absent."""
    cond, params = where(filters)
    frame = fetch_frame(bind, f"""
        SELECT (e.occurred_at AT TIME ZONE 'UTC')::date AS day, coalesce(sum((e.payload->>'amount')::float8), 0) AS revenue
        FROM events e
        WHERE {cond} AND e.event_type = 'purchase' AND coalesce(e.payload->>'currency', 'USD') = :currency
        GROUP BY 1 ORDER BY 1""", {**params, "currency": currency})
    if frame.empty:
        return pd.Series(dtype=float)
    return pd.Series(frame["revenue"].astype(float).to_numpy(), index=pd.to_datetime(frame["day"]), name="revenue")


def daily_series(bind: Bind, filters: Filters, metric: str) -> pd.Series:
    """The daily series a forecast is fitted on: ``metric`` "dau" (distinct active players per UTC day, from
    :func:`.activity.daily_players`) or "revenue" (:func:`daily_revenue`), as a float Series indexed by
    day (datetime64, naive UTC midnight); days without activity are absent.  Raises ``ValueError`` for another
    metric."""
    if metric == "revenue":
        return daily_revenue(bind, filters)
    if metric != "dau":
        raise ValueError(f"metric must be 'dau' or 'revenue', not {metric!r}")
    return daily_players(bind, filters).astype(float).rename(None)
