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

from .activity import daily_active_players
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
    days = math.ceil((filters.end - filters.start).total_seconds() / 86_400)
    cond, params = where(filters)
    all_cond, all_params = where(filters.between(None, None), prefix="g")
    retention = ", ".join(f"({n})" for n in RETENTION_DAYS)
    sql = f"""
    WITH win AS (
        SELECT e.player_id, (e.occurred_at AT TIME ZONE 'UTC')::date AS day,
               CASE WHEN e.event_type = 'purchase' AND coalesce(e.payload->>'currency', 'USD') = :currency
                    THEN coalesce((e.payload->>'amount')::float8, 0) ELSE 0 END AS revenue
        FROM events e WHERE {cond}
    ), alltime AS (
        SELECT DISTINCT e.player_id, (e.occurred_at AT TIME ZONE 'UTC')::date AS day FROM events e WHERE {all_cond}
    ), firsts AS (
        SELECT e.player_id, min(e.occurred_at) AS first_seen, (min(e.occurred_at) AT TIME ZONE 'UTC')::date AS first_day
        FROM events e WHERE {all_cond} GROUP BY e.player_id
    ), cohort AS (
        SELECT * FROM firsts WHERE first_seen >= :kpi_start AND first_seen < :kpi_end
    ), retained AS (
        -- a hash join, not EXISTS: the CTE has no index, so EXISTS scanned it once per cohort row (quadratic);
        -- alltime holds each (player, day) once, so the join matches at most one row
        SELECT k.n, count(*) AS eligible, count(a.player_id) AS kept
        FROM cohort c CROSS JOIN (VALUES {retention}) AS k(n)
        LEFT JOIN alltime a ON a.player_id = c.player_id AND a.day = c.first_day + k.n
        WHERE c.first_day + k.n <= (SELECT max(day) FROM alltime)
        GROUP BY k.n
    )
    SELECT (SELECT count(DISTINCT player_id) FROM win) AS active_players,
           (SELECT count(*) FROM (SELECT DISTINCT player_id, day FROM win) AS d) AS player_days,
           (SELECT coalesce(sum(revenue), 0) FROM win) AS revenue,
           (SELECT count(DISTINCT player_id) FROM win WHERE revenue > 0) AS paying_players,
           (SELECT count(*) FROM cohort) AS new_players,
           (SELECT coalesce(json_object_agg(n, json_build_array(eligible, kept)), '{{}}') FROM retained) AS retention
    """
    row = fetch_frame(bind, sql, {**params, **all_params, "currency": currency,
                                  "kpi_start": filters.start, "kpi_end": filters.end}).iloc[0]  # fmt: skip
    active, player_days = int(row["active_players"]), int(row["player_days"])
    revenue, paying, new = float(row["revenue"]), int(row["paying_players"]), int(row["new_players"])
    out: dict[str, Any] = {
        "days": days, "active_players": active, "player_days": player_days,
        "mean_dau": player_days / days, "stickiness": _ratio(player_days / days, active),
        "revenue": revenue, "paying_players": paying, "arpdau": _ratio(revenue, player_days),
        "arppu": _ratio(revenue, paying), "conversion": _ratio(paying, active),
        "new_players": new, "returning_players": active - new,
    }  # fmt: skip
    kept = row["retention"] or {}
    for n in RETENTION_DAYS:
        eligible, retained = kept.get(str(n), (0, 0))
        out[f"d{n}_cohort"] = int(eligible)
        out[f"d{n}"] = _ratio(retained, eligible)
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
    :func:`.activity.daily_active_players`) or "revenue" (:func:`daily_revenue`), as a float Series indexed by
    day (datetime64, naive UTC midnight); days without activity are absent.  Raises ``ValueError`` for another
    metric."""
    if metric == "revenue":
        return daily_revenue(bind, filters)
    if metric != "dau":
        raise ValueError(f"metric must be 'dau' or 'revenue', not {metric!r}")
    frame = daily_active_players(bind, filters)
    if frame.empty:
        return pd.Series(dtype=float)
    return pd.Series(frame["dau"].astype(float).to_numpy(), index=pd.to_datetime(frame["day"]))
