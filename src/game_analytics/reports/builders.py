"""Report builders: one function per :class:`~game_analytics.api.scheduledreport.ReportType`.

Each builder runs a handful of aggregate SQL queries against the analytics store (PostgreSQL, schema in
:mod:`game_analytics.storage.models`) for one :class:`~game_analytics.reports.model.ReportPeriod` and the report
filters, and turns the rows into a :class:`~game_analytics.reports.model.Report`.  Filters are bound as SQL
parameters (see :mod:`game_analytics.reports.sql`).  All times are UTC; periods are half-open ``[start, end)``.

Definitions used throughout (also in docs/reports.md):

* **active player**: a player with at least one event matching the filters in the period;
* **total players**: players with a matching event before the period's end;
* **new player**: a player whose first matching event falls in the period;
* **churned player**: active in the previous period of equal length but not in this one;
  churn rate = churned / active in the previous period;
* **session**: from ``logout`` events' ``session_seconds`` when there are any; otherwise each player's events are
  split at gaps longer than :data:`SESSION_GAP` (inter-event sessionization) and a session lasts from its first to
  its last event.

The SQL for DAU/active/new/churned players, sessions and cohorts is written here because no shared SQL module
(``analytics/activity.py``) existed when this package was written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from ..analytics.economy import inflation_rate, wealth_summary
from ..api.scheduledreport import ReportFilters, ReportType
from ..audit import AuditLog
from .compute import bucket_starts, churn_rate, cohort_matrix, lorenz_curve, retention_curve
from .model import ChartSpec, Figure, Report, ReportPeriod, Table, bucket_unit, validate_filters
from .sql import event_filter_sql, fetch_frame, player_filter_sql

__all__ = ["BUILDERS", "SESSION_GAP", "BuildContext", "build_report", "latest_event_time"]

#: Inactivity gap that ends a derived session (the common 30-minute web-analytics convention).
SESSION_GAP = timedelta(minutes=30)

_UNIT_LABEL = {"day": "Day (UTC)", "week": "Week starting (UTC)", "month": "Month (UTC)"}


@dataclass(frozen=True)
class BuildContext:
    """Inputs shared by all builders.

    Attributes:
        engine: the analytics store.
        period: the reporting period.
        filters: validated filters (see :func:`~game_analytics.reports.model.validate_filters`).
        now: generation time (UTC), written into the report.
    """

    engine: Engine
    period: ReportPeriod
    filters: ReportFilters
    now: datetime

    def params(self, **extra: Any) -> dict[str, Any]:
        """Base SQL parameters: ``start``, ``end``, ``prev_start``, ``top_n`` plus ``extra``."""
        return {
            "start": self.period.start, "end": self.period.end, "prev_start": self.period.previous().start,
            "top_n": self.filters.top_n, **extra,
        }  # fmt: skip

    def new_report(self, report_type: ReportType, title: str) -> Report:
        return Report(report_type, title, self.period, self.filters, self.now)


def _num(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else float(value)


def _naive_utc(series: pd.Series) -> pd.Series:
    s = pd.to_datetime(series, utc=True)
    return s.dt.tz_convert("UTC").dt.tz_localize(None)


def _series(frame: pd.DataFrame, ctx: BuildContext, unit: str, columns: list[str]) -> pd.DataFrame:
    """Reindex a per-bucket frame (column ``bucket``) on every bucket of the period, missing buckets = 0."""
    index = bucket_starts(ctx.period.start, ctx.period.end, unit)
    if frame.empty:
        out = pd.DataFrame(0, index=index, columns=columns)
    else:
        f = frame.assign(bucket=_naive_utc(frame["bucket"])).set_index("bucket")[columns]
        f.index = f.index.astype(index.dtype)
        out = f.reindex(index, fill_value=0)
    out.index.name = "bucket"
    return out.reset_index()


# ------------------------------------------------------------------------------------------- player activity


def build_player_activity(ctx: BuildContext) -> Report:
    """Player activity: total / active / new / churned players, sessions, top performers, activity by type and
    by hour, active players per bucket."""
    report = ctx.new_report(ReportType.PLAYER_ACTIVITY, "Player activity")
    f, fp = event_filter_sql(ctx.filters)
    unit = bucket_unit(ctx.period)
    p = ctx.params(unit=unit, gap=SESSION_GAP, **fp)
    with ctx.engine.connect() as conn:
        counts = fetch_frame(conn, f"""
            WITH p AS (
                SELECT e.player_id, min(e.occurred_at) AS first_at,
                       bool_or(e.occurred_at >= :start) AS active_now,
                       bool_or(e.occurred_at >= :prev_start AND e.occurred_at < :start) AS active_prev
                FROM events e
                WHERE e.player_id IS NOT NULL AND e.occurred_at < :end{f}
                GROUP BY e.player_id)
            SELECT count(*) AS total, count(*) FILTER (WHERE active_now) AS active,
                   count(*) FILTER (WHERE first_at >= :start) AS new_players,
                   count(*) FILTER (WHERE active_prev) AS active_prev,
                   count(*) FILTER (WHERE active_prev AND NOT active_now) AS churned
            FROM p""", p).iloc[0]
        in_period = f"e.occurred_at >= :start AND e.occurred_at < :end{f}"
        overview = fetch_frame(conn, f"""
            SELECT count(*) AS events,
                   coalesce(bool_and(e.occurred_at = date_trunc('day', e.occurred_at)), false) AS day_resolution
            FROM events e WHERE {in_period}""", p).iloc[0]
        by_bucket = fetch_frame(conn, f"""
            SELECT date_trunc(:unit, e.occurred_at, 'UTC') AS bucket, count(DISTINCT e.player_id) AS active_players,
                   count(*) AS events
            FROM events e WHERE {in_period} GROUP BY 1 ORDER BY 1""", p)
        by_type = fetch_frame(conn, f"""
            SELECT e.event_type, count(*) AS events, count(DISTINCT e.player_id) AS players
            FROM events e WHERE {in_period} GROUP BY 1 ORDER BY 2 DESC, 1""", p)
        by_hour = fetch_frame(conn, f"""
            SELECT extract(hour FROM e.occurred_at AT TIME ZONE 'UTC')::int AS hour, count(*) AS events
            FROM events e WHERE {in_period} GROUP BY 1 ORDER BY 1""", p)
        top = fetch_frame(conn, f"""
            SELECT e.player_id, count(*) AS events,
                   count(DISTINCT date_trunc('day', e.occurred_at, 'UTC')) AS active_days,
                   coalesce(sum(CASE WHEN e.event_type = 'purchase'
                                     THEN (e.payload->>'amount')::double precision END), 0) AS spend
            FROM events e WHERE e.player_id IS NOT NULL AND {in_period}
            GROUP BY 1 ORDER BY events DESC, spend DESC, e.player_id LIMIT :top_n""", p)
        logout = fetch_frame(conn, f"""
            SELECT count(*) AS sessions, avg((e.payload->>'session_seconds')::double precision) AS mean_seconds,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY (e.payload->>'session_seconds')::double precision)
                       AS median_seconds,
                   count(DISTINCT e.player_id) AS players
            FROM events e
            WHERE e.event_type = 'logout' AND e.payload ? 'session_seconds' AND {in_period}""", p).iloc[0]
        if int(logout["sessions"]) > 0:
            sessions, method = logout, "logout events (payload.session_seconds)"
        else:
            sessions = fetch_frame(conn, f"""
                WITH o AS (
                    SELECT e.player_id, e.occurred_at,
                           CASE WHEN lag(e.occurred_at) OVER w IS NULL
                                  OR e.occurred_at - lag(e.occurred_at) OVER w > :gap THEN 1 ELSE 0 END AS starts
                    FROM events e WHERE e.player_id IS NOT NULL AND {in_period}
                    WINDOW w AS (PARTITION BY e.player_id ORDER BY e.occurred_at)),
                s AS (
                    SELECT player_id, occurred_at,
                           sum(starts) OVER (PARTITION BY player_id ORDER BY occurred_at ROWS UNBOUNDED PRECEDING) AS sid
                    FROM o),
                d AS (
                    SELECT player_id, extract(epoch FROM max(occurred_at) - min(occurred_at)) AS seconds
                    FROM s GROUP BY player_id, sid)
                SELECT count(*) AS sessions, avg(seconds) AS mean_seconds,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS median_seconds,
                       count(DISTINCT player_id) AS players
                FROM d""", p).iloc[0]
            method = f"inter-event sessionization (gap > {int(SESSION_GAP.total_seconds() // 60)} min)"

    active_prev, churned = int(counts["active_prev"]), int(counts["churned"])
    rate = churn_rate(active_prev, churned)
    n_sessions, session_players = int(sessions["sessions"]), int(sessions["players"])
    mean_s, median_s = _num(sessions["mean_seconds"]), _num(sessions["median_seconds"])
    report.figures += [
        Figure("total_players", "Total players (up to period end)", int(counts["total"]), "players"),
        Figure("active_players", "Active players", int(counts["active"]), "players"),
        Figure("new_players", "New players", int(counts["new_players"]), "players"),
        Figure("active_previous_period", "Active in previous period", active_prev, "players"),
        Figure("churned_players", "Churned players", churned, "players"),
        Figure("churn_rate", "Churn rate", None if rate is None else 100.0 * rate, "%"),
        Figure("events", "Events", int(overview["events"]), "events"),
        Figure("sessions", "Sessions", n_sessions, "sessions"),
        Figure("mean_session_minutes", "Average session length", None if mean_s is None else mean_s / 60, "min"),
        Figure("median_session_minutes", "Median session length", None if median_s is None else median_s / 60,
               "min"),
        Figure("mean_play_minutes_per_player", "Average play time per active player",
               None if mean_s is None or not session_players else mean_s * n_sessions / session_players / 60, "min"),
    ]  # fmt: skip
    report.notes.append(f"Sessions and play time from {method}.")
    if "inter-event" in method and bool(overview["day_resolution"]) and int(overview["events"]):
        report.notes.append(
            "The events in this period carry dates only (every timestamp is midnight UTC), e.g. the CDNOW purchase "
            "log: derived sessions are purchase days, their length is 0 and the hourly distribution is not "
            "meaningful."
        )
    report.notes.append(
        "Churn: players active in the previous period of equal length "
        f"({ctx.period.previous().label()}) without any matching event in this period."
    )

    series = _series(by_bucket, ctx, unit, ["active_players", "events"])
    hours = pd.DataFrame({"hour": range(24)}).merge(by_hour, on="hour", how="left").fillna(0).astype(int)
    report.tables += [
        Table("active_players", f"Active players per {unit}", series),
        Table("activity_by_type", "Activity by event type", by_type),
        Table("hourly_distribution", "Events by hour of day (UTC)", hours),
        Table("top_performers", f"Top {ctx.filters.top_n} players by events", top,
              "Ordered by events, then spend (USD, purchases only), then player id."),
    ]  # fmt: skip
    report.charts += [
        ChartSpec("active_players", f"Active players per {unit}", "line", "active_players", "bucket",
                  ("active_players",), _UNIT_LABEL[unit], "Active players"),
        ChartSpec("activity_by_type", "Events by type", "bar", "activity_by_type", "event_type", ("events",),
                  "Event type", "Events", horizontal=True),
        ChartSpec("hourly_distribution", "Events by hour of day", "bar", "hourly_distribution", "hour", ("events",),
                  "Hour of day (UTC)", "Events"),
        ChartSpec("top_performers", f"Top {ctx.filters.top_n} players by events", "bar", "top_performers",
                  "player_id", ("events",), "Player", "Events", horizontal=True),
    ]  # fmt: skip
    return report


# ------------------------------------------------------------------------------------------- economic health


def build_economic_health(ctx: BuildContext) -> Report:
    """Economic health: per-player spend distribution and Gini, currency balances, price inflation, currency
    faucets/sinks, trade flow, top spenders."""
    report = ctx.new_report(ReportType.ECONOMIC_HEALTH, "Economic health")
    f, fp = event_filter_sql(ctx.filters)
    unit = bucket_unit(ctx.period)
    p = ctx.params(unit=unit, **fp)
    in_period = f"e.occurred_at >= :start AND e.occurred_at < :end{f}"
    with ctx.engine.connect() as conn:
        spend = fetch_frame(conn, f"""
            SELECT e.player_id, sum((e.payload->>'amount')::double precision) AS spend,
                   sum((e.payload->>'quantity')::bigint) AS units, count(*) AS purchases
            FROM events e WHERE e.event_type = 'purchase' AND e.player_id IS NOT NULL AND {in_period}
            GROUP BY 1""", p)
        prices = fetch_frame(conn, f"""
            SELECT date_trunc(:unit, e.occurred_at, 'UTC') AS bucket, count(*) AS purchases,
                   sum((e.payload->>'quantity')::bigint) AS units,
                   sum((e.payload->>'amount')::double precision) AS revenue
            FROM events e WHERE e.event_type = 'purchase' AND {in_period} GROUP BY 1 ORDER BY 1""", p)
        balances = fetch_frame(conn, f"""
            SELECT DISTINCT ON (e.player_id, e.payload->>'currency') e.player_id, e.payload->>'currency' AS currency,
                   (e.payload->>'balance_after')::double precision AS balance
            FROM events e
            WHERE e.event_type = 'currency_change' AND e.payload ? 'balance_after' AND e.occurred_at < :end{f}
            ORDER BY e.player_id, e.payload->>'currency', e.occurred_at DESC, e.id DESC""", p)
        flows = fetch_frame(conn, f"""
            SELECT date_trunc(:unit, e.occurred_at, 'UTC') AS bucket,
                   coalesce(sum(greatest((e.payload->>'delta')::double precision, 0)), 0) AS faucets,
                   coalesce(sum(least((e.payload->>'delta')::double precision, 0)), 0) AS sinks
            FROM events e WHERE e.event_type = 'currency_change' AND {in_period} GROUP BY 1 ORDER BY 1""", p)
        trades = fetch_frame(conn, f"""
            SELECT date_trunc(:unit, e.occurred_at, 'UTC') AS bucket, count(*) AS trades,
                   coalesce(sum((e.payload->>'value')::double precision), 0) AS value
            FROM events e WHERE e.event_type = 'trade' AND {in_period} GROUP BY 1 ORDER BY 1""", p)
        pairs = fetch_frame(conn, f"""
            SELECT e.player_id AS seller, e.payload->>'counterparty_id' AS buyer, count(*) AS trades,
                   coalesce(sum((e.payload->>'value')::double precision), 0) AS value
            FROM events e WHERE e.event_type = 'trade' AND {in_period}
            GROUP BY 1, 2 ORDER BY value DESC, trades DESC, 1, 2 LIMIT :top_n""", p)

    figures = report.figures
    values = spend["spend"].astype(float).to_numpy() if not spend.empty else np.zeros(0)
    if values.size:
        ws = wealth_summary(values, quantiles=(0.1, 0.25, 0.5, 0.75, 0.9, 0.99))
        figures += [
            Figure("paying_players", "Paying players", ws.count, "players"),
            Figure("revenue", "Revenue", ws.total, "USD"),
            Figure("mean_spend", "Average spend per paying player", ws.mean, "USD"),
            Figure("median_spend", "Median spend per paying player", ws.quantiles[0.5], "USD"),
            Figure("spend_gini", "Gini coefficient of spend", ws.gini, ""),
            Figure("top_1pct_share", "Spend share of the top 1 %", 100 * ws.top_1_share, "%"),
            Figure("top_10pct_share", "Spend share of the top 10 %", 100 * ws.top_10_share, "%"),
        ]
        quantiles = pd.DataFrame({"quantile": list(ws.quantiles), "spend_usd": list(ws.quantiles.values())})
    else:
        figures += [Figure("paying_players", "Paying players", 0, "players"), Figure("revenue", "Revenue", 0.0, "USD"),
                    Figure("spend_gini", "Gini coefficient of spend", None, "")]  # fmt: skip
        quantiles = pd.DataFrame(columns=["quantile", "spend_usd"])
        report.notes.append("No purchases in this period.")

    price = _series(prices, ctx, unit, ["purchases", "units", "revenue"])
    price["unit_price_usd"] = np.where(price["units"] > 0, price["revenue"] / price["units"].where(price["units"] > 0, 1),
                                       np.nan)  # fmt: skip
    level = price["unit_price_usd"].where(price["unit_price_usd"] > 0)
    price["inflation_pct"] = np.nan
    valid = level.dropna()
    if len(valid) >= 2:
        price.loc[valid.index[1:], "inflation_pct"] = 100 * inflation_rate(valid.to_numpy())
        figures.append(Figure("price_inflation", f"Average unit price change, first to last {unit}",
                              100 * (valid.iloc[-1] / valid.iloc[0] - 1), "%"))  # fmt: skip
    report.notes.append(
        f"Inflation: change of the average unit price (revenue / units bought) from one {unit} to the next "
        "(a unit-value index; the data carry no per-item prices)."
    )

    if not balances.empty:
        ws_b = wealth_summary(balances["balance"].clip(lower=0).to_numpy())
        figures += [Figure("currency_holders", "Players holding currency", ws_b.count, "players"),
                    Figure("money_supply", "Money supply (all currencies)", ws_b.total, "coins"),
                    Figure("wealth_gini", "Gini coefficient of balances", ws_b.gini, "")]  # fmt: skip
    else:
        report.notes.append("No in-game currency balances (currency_change events) up to the period end.")
    flow = _series(flows, ctx, unit, ["faucets", "sinks"])
    flow["net"] = flow["faucets"] + flow["sinks"]

    trade = _series(trades, ctx, unit, ["trades", "value"])
    figures += [Figure("trades", "Trades", int(trade["trades"].sum()), "trades"),
                Figure("trade_value", "Traded value", float(trade["value"].sum()), "coins")]  # fmt: skip
    if trade["trades"].sum() == 0:
        report.notes.append("No trade events in this period: trade flow tables are empty.")

    top = spend.sort_values(["spend", "player_id"], ascending=[False, True]).head(ctx.filters.top_n)
    total = float(values.sum()) if values.size else 0.0
    top = top.assign(share_pct=100 * top["spend"] / total if total else 0.0).reset_index(drop=True)
    hist = _spend_histogram(values)
    lorenz = lorenz_curve(values)
    report.tables += [
        Table("spend_quantiles", "Spend per paying player: quantiles (USD)", quantiles),
        Table("spend_histogram", "Paying players by spend (USD)", hist),
        Table("spend_lorenz", "Lorenz curve of spend", lorenz, percent_columns=tuple(lorenz.columns)),
        Table("top_spenders", f"Top {ctx.filters.top_n} spenders", top, "Spend in USD; share of period revenue."),
        Table("prices", f"Purchases and average unit price per {unit}", price),
        Table("currency_flow", f"Currency faucets and sinks per {unit}", flow),
        Table("trade_flow", f"Trades per {unit}", trade),
        Table("top_trade_pairs", f"Top {ctx.filters.top_n} trading pairs by value", pairs),
    ]
    report.charts += [
        ChartSpec("spend_histogram", "Distribution of spend per paying player", "bar", "spend_histogram", "spend_usd",
                  ("players",), "Spend in period (USD)", "Paying players"),
        ChartSpec("spend_lorenz", "Lorenz curve of spend", "line", "spend_lorenz", "population_share",
                  ("amount_share",), "Share of paying players (poorest first)", "Share of revenue",
                  diagonal=True, percent=True),
        ChartSpec("revenue", f"Revenue per {unit}", "line", "prices", "bucket", ("revenue",), _UNIT_LABEL[unit],
                  "Revenue (USD)"),
        ChartSpec("unit_price", f"Average unit price per {unit}", "line", "prices", "bucket", ("unit_price_usd",),
                  _UNIT_LABEL[unit], "Unit price (USD)"),
        ChartSpec("top_spenders", f"Top {ctx.filters.top_n} spenders", "bar", "top_spenders", "player_id",
                  ("spend",), "Player", "Spend (USD)", horizontal=True),
    ]  # fmt: skip
    if trade["trades"].sum():
        report.charts.append(ChartSpec("trade_flow", f"Trades per {unit}", "line", "trade_flow", "bucket",
                                       ("trades",), _UNIT_LABEL[unit], "Trades"))  # fmt: skip
    if not flows.empty:
        report.charts.append(ChartSpec("currency_flow", f"Currency faucets and sinks per {unit}", "line",
                                       "currency_flow", "bucket", ("faucets", "sinks", "net"), _UNIT_LABEL[unit],
                                       "Currency (coins)"))  # fmt: skip
    return report


def _spend_histogram(values: np.ndarray) -> pd.DataFrame:
    """Players per spend bin: 0-10, 10-20, ... with a last open bin at the 99th percentile (labels in USD)."""
    if values.size == 0:
        return pd.DataFrame(columns=["spend_usd", "players"])
    cap = max(float(np.quantile(values, 0.99)), 1.0)
    step = 10 ** np.floor(np.log10(cap / 10)) if cap >= 10 else 1.0
    step = step * (5 if cap / step > 50 else 2 if cap / step > 20 else 1)
    edges = np.arange(0, cap + step, step)
    counts = np.histogram(np.minimum(values, edges[-1] - 1e-9), bins=edges)[0]
    labels = [f"{lo:,.0f}–{hi:,.0f}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    labels[-1] = f"≥ {edges[-2]:,.0f}"
    return pd.DataFrame({"spend_usd": labels, "players": counts.astype(int)})


# ------------------------------------------------------------------------------------------- retention


def build_retention(ctx: BuildContext) -> Report:
    """Cohort retention: players grouped by the bucket of their first matching event (inside the period), and the
    share of each cohort active in each later bucket of the period."""
    report = ctx.new_report(ReportType.RETENTION, "Retention")
    f, fp = event_filter_sql(ctx.filters)
    unit = bucket_unit(ctx.period)
    p = ctx.params(unit=unit, **fp)
    with ctx.engine.connect() as conn:
        activity = fetch_frame(conn, f"""
            WITH first AS (
                SELECT e.player_id, date_trunc(:unit, min(e.occurred_at), 'UTC') AS cohort
                FROM events e WHERE e.player_id IS NOT NULL AND e.occurred_at < :end{f}
                GROUP BY e.player_id HAVING min(e.occurred_at) >= :start),
            act AS (
                SELECT DISTINCT e.player_id, date_trunc(:unit, e.occurred_at, 'UTC') AS bucket
                FROM events e JOIN first USING (player_id)
                WHERE e.occurred_at >= :start AND e.occurred_at < :end{f})
            SELECT first.cohort, act.bucket, count(*) AS players
            FROM act JOIN first USING (player_id) GROUP BY 1, 2 ORDER BY 1, 2""", p)
    if not activity.empty:
        activity["cohort"] = _naive_utc(activity["cohort"])
        activity["bucket"] = _naive_utc(activity["bucket"])
    matrix = cohort_matrix(activity, unit)
    curve = retention_curve(matrix)
    new_players = int(matrix["size"].sum()) if not matrix.empty else 0
    report.figures += [
        Figure("cohorts", f"Cohorts ({unit}ly)" if unit != "day" else "Cohorts (daily)", len(matrix), "cohorts"),
        Figure("new_players", "New players in period", new_players, "players"),
    ]
    for age in (1, 2, 3):
        row = curve[curve["age"] == age]
        value = None if row.empty else 100 * float(row["retention"].iloc[0])
        report.figures.append(Figure(f"retention_{unit}_{age}", f"Retention after {age} {unit}(s)", value, "%"))
    if matrix.empty:
        report.notes.append("No player had a first matching event in this period: no cohorts.")
    report.notes.append(
        f"A cohort is the players whose first matching event falls in a {unit}; cell k is the share of the cohort "
        f"active k {unit}s later. Empty cells are not yet observable; the last {unit} may be partial."
    )
    shown = matrix.copy()
    if not shown.empty:
        shown["cohort"] = shown["cohort"].dt.strftime("%Y-%m-%d")
    shown.columns = [f"{unit}_{c}" if isinstance(c, int | np.integer) else c for c in shown.columns]
    curves = _cohort_curves(matrix, unit)
    report.tables += [
        Table("cohort_matrix", f"Cohort retention by {unit} (share of cohort active)", shown,
              percent_columns=tuple(c for c in shown.columns if c.startswith(f"{unit}_"))),
        Table("retention_curve", "Average retention by cohort age (weighted by cohort size)", curve,
              percent_columns=("retention",)),
        Table("cohort_curves", "Retention curve per cohort", curves,
              percent_columns=tuple(c for c in curves.columns if c != "age")),
    ]
    value_cols = tuple(c for c in shown.columns if c.startswith(f"{unit}_"))
    report.charts += [
        ChartSpec("cohort_matrix", f"Cohort retention by {unit}", "heatmap", "cohort_matrix", "cohort", value_cols,
                  f"{unit.capitalize()}s since first activity", "Cohort (first activity)", percent=True),
        ChartSpec("cohort_curves", "Retention curves", "line", "cohort_curves", "age",
                  tuple(c for c in curves.columns if c != "age"), f"{unit.capitalize()}s since first activity",
                  "Share of cohort active", percent=True),
    ]  # fmt: skip
    return report


def _cohort_curves(matrix: pd.DataFrame, unit: str, max_lines: int = 12) -> pd.DataFrame:
    """Wide table: ``age`` and one column per cohort (the largest ``max_lines`` cohorts) plus ``average``."""
    ages = [c for c in matrix.columns if isinstance(c, int | np.integer)]
    out = pd.DataFrame({"age": ages})
    if matrix.empty:
        return out.assign(average=[])
    biggest = matrix.nlargest(max_lines, "size").sort_values("cohort")
    for _, row in biggest.iterrows():
        out[f"cohort {row['cohort']:%Y-%m-%d}"] = [row[a] for a in ages]
    curve = retention_curve(matrix).set_index("age")["retention"]
    out["average"] = out["age"].map(curve)
    return out


# ------------------------------------------------------------------------------------------- rankings


def build_rankings(ctx: BuildContext) -> Report:
    """Rankings: the newest season of every leaderboard (top N, league sizes) and the biggest rating movers
    between the two newest rating periods of every (job, algorithm), as computed before the period's end."""
    report = ctx.new_report(ReportType.RANKINGS, "Rankings")
    lf, lp = player_filter_sql(ctx.filters, "l.player_id")
    hf, hp = player_filter_sql(ctx.filters, "h.player_id")
    mf, mp = "", {}
    if ctx.filters.games:
        mf, mp = " AND m.game = ANY(CAST(:f_games AS text[]))", {"f_games": list(ctx.filters.games)}
    p = ctx.params(**{**lp, **hp, **mp})  # the same filter values under the same names
    with ctx.engine.connect() as conn:
        board = fetch_frame(conn, f"""
            WITH latest AS (
                SELECT DISTINCT ON (board) board, season FROM leaderboard_entries
                WHERE computed_at < :end ORDER BY board, computed_at DESC, season DESC),
            rows AS (
                SELECT l.board, l.season, l.rank, l.player_id, l.rating, l.percentile, l.league,
                       row_number() OVER (PARTITION BY l.board ORDER BY l.rank, l.player_id) AS n
                FROM leaderboard_entries l JOIN latest USING (board, season)
                WHERE l.computed_at < :end{lf})
            SELECT board, season, rank, player_id, rating, percentile, league FROM rows
            WHERE n <= :top_n ORDER BY board, rank, player_id""", p)
        leagues = fetch_frame(conn, f"""
            WITH latest AS (
                SELECT DISTINCT ON (board) board, season FROM leaderboard_entries
                WHERE computed_at < :end ORDER BY board, computed_at DESC, season DESC)
            SELECT l.board, l.season, coalesce(l.league, '(none)') AS league, count(*) AS players,
                   min(l.rating) AS min_rating, max(l.rating) AS max_rating
            FROM leaderboard_entries l JOIN latest USING (board, season)
            WHERE l.computed_at < :end{lf}
            GROUP BY 1, 2, 3 ORDER BY 1, min(l.rating)""", p)
        movers = fetch_frame(conn, f"""
            WITH h AS (
                SELECT DISTINCT ON (h.player_id, h.algorithm, coalesce(h.job, ''), h.period)
                       h.player_id, h.algorithm, coalesce(h.job, '') AS job, h.period, h.rating
                FROM rating_history h WHERE h.computed_at < :end{hf}
                ORDER BY h.player_id, h.algorithm, coalesce(h.job, ''), h.period, h.computed_at DESC, h.id DESC),
            periods AS (
                SELECT job, algorithm, period, dense_rank() OVER (PARTITION BY job, algorithm ORDER BY period DESC) AS r
                FROM (SELECT DISTINCT job, algorithm, period FROM h) x)
            SELECT cur.job, cur.algorithm, cur.player_id, prev.period AS from_period, cur.period AS to_period,
                   prev.rating AS rating_before, cur.rating AS rating_after, cur.rating - prev.rating AS change
            FROM h cur
            JOIN periods pc ON pc.job = cur.job AND pc.algorithm = cur.algorithm AND pc.period = cur.period AND pc.r = 1
            JOIN periods pp ON pp.job = cur.job AND pp.algorithm = cur.algorithm AND pp.r = 2
            JOIN h prev ON prev.job = cur.job AND prev.algorithm = cur.algorithm AND prev.period = pp.period
                       AND prev.player_id = cur.player_id
            ORDER BY abs(cur.rating - prev.rating) DESC, cur.player_id LIMIT :top_n""", p)
        matches = fetch_frame(conn, f"""
            SELECT count(*) AS matches, count(DISTINCT m.game) AS games
            FROM matches m WHERE m.occurred_at >= :start AND m.occurred_at < :end{mf}""", p).iloc[0]
    report.figures += [
        Figure("leaderboards", "Leaderboards", int(board["board"].nunique()) if not board.empty else 0, "boards"),
        Figure("ranked_players", "Ranked players (newest seasons)", int(leagues["players"].sum()) if not leagues.empty
               else 0, "players"),
        Figure("matches", "Matches in period", int(matches["matches"]), "matches"),
    ]  # fmt: skip
    if not movers.empty:
        top = movers.iloc[0]
        report.figures.append(Figure("biggest_move", f"Biggest move ({top['player_id']})", float(top["change"]),
                                     "rating points"))  # fmt: skip
    else:
        report.notes.append("Fewer than two rating periods stored: no movers.")
    if board.empty:
        report.notes.append("No leaderboard entries computed before the period end.")
    report.notes.append(
        "Leaderboards show each board's newest season computed before the period end; movers compare each "
        "player's rating in the two newest rating periods of the same job and algorithm."
    )
    report.tables += [
        Table("leaderboard", f"Leaderboards: top {ctx.filters.top_n} per board", board),
        Table("league_sizes", "League sizes", leagues),
        Table("biggest_movers", f"Top {ctx.filters.top_n} rating movers", movers, "Change in rating points."),
    ]
    first_board = board[board["board"] == board["board"].iloc[0]] if not board.empty else board
    report.tables.append(Table("leaderboard_chart", "Top of the first leaderboard", first_board))
    report.charts += [
        ChartSpec("leaderboard", "Leaderboard (first board, newest season)", "bar", "leaderboard_chart", "player_id",
                  ("rating",), "Player", "Rating (points)", horizontal=True, zero_based=False),
        ChartSpec("league_sizes", "Players per league", "bar", "league_sizes", "league", ("players",), "League",
                  "Players"),
        ChartSpec("biggest_movers", "Biggest rating movers", "bar", "biggest_movers", "player_id", ("change",),
                  "Player", "Rating change (points)", horizontal=True),
    ]  # fmt: skip
    return report


# ------------------------------------------------------------------------------------------- security


def build_security(ctx: BuildContext) -> Report:
    """Security: detections in the period, open and resolved interventions, and an audit-log summary with a full
    hash-chain verification (:meth:`game_analytics.audit.AuditLog.verify`)."""
    report = ctx.new_report(ReportType.SECURITY, "Security")
    df, dp = player_filter_sql(ctx.filters, "d.player_id")
    p = ctx.params(**dp)
    with ctx.engine.connect() as conn:
        by_kind = fetch_frame(conn, f"""
            SELECT d.category, d.severity, count(*) AS detections, count(DISTINCT d.player_id) AS players
            FROM detections d WHERE d.detected_at >= :start AND d.detected_at < :end{df}
            GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2""", p)
        top = fetch_frame(conn, f"""
            SELECT d.id, d.detected_at, d.rule, d.category, d.severity, d.player_id, d.score
            FROM detections d WHERE d.detected_at >= :start AND d.detected_at < :end{df}
            ORDER BY d.score DESC, d.detected_at DESC, d.id LIMIT :top_n""", p)
        daily = fetch_frame(conn, f"""
            SELECT date_trunc(:unit, d.detected_at, 'UTC') AS bucket, count(*) AS detections
            FROM detections d WHERE d.detected_at >= :start AND d.detected_at < :end{df} GROUP BY 1 ORDER BY 1""",
                            {**p, "unit": bucket_unit(ctx.period)})  # fmt: skip
        interventions = fetch_frame(conn, f"""
            SELECT
              count(*) FILTER (WHERE i.status IN ('open', 'in_progress') AND i.created_at < :end) AS open_now,
              count(*) FILTER (WHERE i.created_at >= :start AND i.created_at < :end) AS created,
              count(*) FILTER (WHERE i.status IN ('resolved', 'dismissed')
                               AND i.resolved_at >= :start AND i.resolved_at < :end) AS resolved,
              percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM i.resolved_at - i.created_at))
                FILTER (WHERE i.resolved_at >= :start AND i.resolved_at < :end) AS median_resolve_seconds
            FROM interventions i JOIN detections d ON d.id = i.detection_id WHERE true{df}""", p).iloc[0]
        queue = fetch_frame(conn, f"""
            SELECT i.priority, i.status::text AS status, count(*) AS interventions
            FROM interventions i JOIN detections d ON d.id = i.detection_id
            WHERE i.created_at < :end AND (i.status IN ('open', 'in_progress')
                  OR (i.resolved_at >= :start AND i.resolved_at < :end)){df}
            GROUP BY 1, 2 ORDER BY 1, 2""", p)
        flagged = fetch_frame(conn, f"""
            SELECT count(DISTINCT d.player_id) AS players
            FROM detections d WHERE d.detected_at >= :start AND d.detected_at < :end{df}""", p).iloc[0]
        audit = fetch_frame(conn, """
            SELECT action, count(*) AS entries, count(DISTINCT actor) AS actors, min(at) AS first_at, max(at) AS last_at
            FROM audit_log WHERE at >= :start AND at < :end GROUP BY 1 ORDER BY 2 DESC, 1""", p)
    verify = AuditLog(ctx.engine).verify()
    median_h = _num(interventions["median_resolve_seconds"])
    report.figures += [
        Figure("detections", "Detections", int(by_kind["detections"].sum()) if not by_kind.empty else 0, "detections"),
        Figure("flagged_players", "Players with a detection", int(flagged["players"]), "players"),
        Figure("interventions_open", "Open interventions (at period end)", int(interventions["open_now"]),
               "interventions"),
        Figure("interventions_created", "Interventions created", int(interventions["created"]), "interventions"),
        Figure("interventions_resolved", "Interventions resolved or dismissed", int(interventions["resolved"]),
               "interventions"),
        Figure("median_resolve_hours", "Median time to resolve", None if median_h is None else median_h / 3600, "h"),
        Figure("audit_entries", "Audit log entries", int(audit["entries"].sum()) if not audit.empty else 0, "entries"),
        Figure("audit_chain", "Audit hash chain", "intact" if verify.ok else "BROKEN", ""),
        Figure("audit_rows_verified", "Audit rows verified", verify.checked, "rows"),
    ]  # fmt: skip
    if not verify.ok:
        report.notes.append(f"AUDIT CHAIN BROKEN at seq {verify.first_bad_seq}: {verify.problem}")
    report.notes.append("The audit chain is verified over the whole log, not only this period. Audit figures are "
                        "not filtered by games/regions.")
    daily = _series(daily, ctx, bucket_unit(ctx.period), ["detections"])
    unit = bucket_unit(ctx.period)
    report.tables += [
        Table("detections_by_kind", "Detections by category and severity", by_kind),
        Table("top_detections", f"Top {ctx.filters.top_n} detections by score", top),
        Table("detections_over_time", f"Detections per {unit}", daily),
        Table("intervention_queue", "Interventions open or closed in the period, by priority and status", queue),
        Table("audit_summary", "Audit log entries by action", audit),
        Table("audit_verification", "Audit chain verification",
              pd.DataFrame([{"ok": verify.ok, "rows_checked": verify.checked, "first_bad_seq": verify.first_bad_seq,
                             "problem": verify.problem}])),
    ]  # fmt: skip
    report.charts += [
        ChartSpec("detections_over_time", f"Detections per {unit}", "line", "detections_over_time", "bucket",
                  ("detections",), _UNIT_LABEL[unit], "Detections"),
        ChartSpec("audit_summary", "Audit entries by action", "bar", "audit_summary", "action", ("entries",),
                  "Action", "Entries", horizontal=True),
    ]  # fmt: skip
    return report


#: ReportType -> builder.
BUILDERS: dict[ReportType, Callable[[BuildContext], Report]] = {
    ReportType.PLAYER_ACTIVITY: build_player_activity,
    ReportType.ECONOMIC_HEALTH: build_economic_health,
    ReportType.RETENTION: build_retention,
    ReportType.RANKINGS: build_rankings,
    ReportType.SECURITY: build_security,
}


def build_report(
    engine: Engine, report_type: ReportType | str, period: ReportPeriod, filters: ReportFilters,
    now: datetime | None = None,
) -> Report:  # fmt: skip
    """Build one report.

    Raises:
        ValueError: unknown report type or invalid filter values (see
            :func:`~game_analytics.reports.model.validate_filters`).
        sqlalchemy.exc.SQLAlchemyError: database errors.
    """
    rtype = ReportType(report_type)
    ctx = BuildContext(engine, period, validate_filters(filters), (now or datetime.now(UTC)).astimezone(UTC))
    return BUILDERS[rtype](ctx)


def latest_event_time(engine: Engine, filters: ReportFilters) -> datetime | None:
    """Time of the newest event matching the filters (UTC), or None when there is none."""
    f, fp = event_filter_sql(validate_filters(filters))
    with engine.connect() as conn:
        row = fetch_frame(conn, f"SELECT max(e.occurred_at) AS latest FROM events e WHERE true{f}", fp).iloc[0]
    value = row["latest"]
    return None if value is None or pd.isna(value) else pd.Timestamp(value).to_pydatetime().astimezone(UTC)

