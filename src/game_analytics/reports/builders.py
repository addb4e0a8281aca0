"""Report builders: one function per :class:`~game_analytics.api.scheduledreport.ReportType`.

Each builder runs a handful of aggregate SQL queries against the analytics store (PostgreSQL, schema in
:mod:`game_analytics.storage.models`) for one :class:`~game_analytics.reports.model.ReportPeriod` and the report
filters, and turns the rows into a :class:`~game_analytics.reports.model.Report`.  Filters are bound as SQL
parameters (see :mod:`game_analytics.storage.queries.filters`).  All times are UTC; periods are half-open ``[start, end)``.

Definitions used throughout (also in docs/reports.md):

* **active player**: a player with at least one event matching the filters in the period;
* **total players**: players with a matching event before the period's end;
* **new player**: a player whose first matching event falls in the period;
* **churned player**: active in the previous period of equal length but not in this one;
  churn rate = churned / active in the previous period;
* **session**: from ``logout`` events' ``session_seconds`` when there are any; otherwise each player's events are
  split at gaps longer than :data:`SESSION_GAP` (inter-event sessionization) and a session lasts from its first to
  its last event.

The definitions of an active player and of a session are those of the query layer
(:mod:`game_analytics.storage.queries.activity`, :mod:`game_analytics.storage.queries.sessions`), which also
holds the filter type every query here binds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from ..analytics.economy import inflation_rate, wealth_summary
from ..api.scheduledreport import FunnelReport, ReportFilters, ReportType
from ..storage.queries import Filters, clauses, fetch_frame
from ..storage.queries.activity import player_counts
from ..storage.queries.sessions import SESSION_GAP, session_summary
from .compute import churn_rate, cohort_matrix, lorenz_curve, retention_curve
from .context import UNIT_LABEL, BuildContext, bucket_series, naive_utc, number
from .forecasts import add_forecast
from .funnel import build_funnel
from .model import ChartSpec, Figure, Report, ReportPeriod, Table, bucket_unit, validate_filters
from .operations import build_rankings, build_security
from .player_value import add_churn_risk, add_clv, add_kpis, customer_scores

__all__ = ["BUILDERS", "SESSION_GAP", "BuildContext", "build_report"]


# ------------------------------------------------------------------------------------------- player activity


def build_player_activity(ctx: BuildContext) -> Report:
    """Player activity: total / active / new / churned players, sessions, top performers, activity by type and
    by hour, active players per bucket."""
    report = ctx.new_report(ReportType.PLAYER_ACTIVITY, "Player activity")
    f, fp = clauses(Filters.of(ctx.filters))
    unit = bucket_unit(ctx.period)
    p = ctx.params(unit=unit, **fp)
    with ctx.connect() as conn:
        counts = player_counts(conn, Filters.of(ctx.filters, ctx.period.start, ctx.period.end), p["prev_start"])
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
        sessions, method = session_summary(conn, Filters.of(ctx.filters, ctx.period.start, ctx.period.end))

    active_prev, churned = int(counts["active_prev"]), int(counts["churned"])
    rate = churn_rate(active_prev, churned)
    n_sessions, session_players = int(sessions["sessions"]), int(sessions["players"])
    mean_s, median_s = number(sessions["mean_seconds"]), number(sessions["median_seconds"])
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

    series = bucket_series(by_bucket, ctx, unit, ["active_players", "events"])
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
                  ("active_players",), UNIT_LABEL[unit], "Active players"),
        ChartSpec("activity_by_type", "Events by type", "bar", "activity_by_type", "event_type", ("events",),
                  "Event type", "Events", horizontal=True),
        ChartSpec("hourly_distribution", "Events by hour of day", "bar", "hourly_distribution", "hour", ("events",),
                  "Hour of day (UTC)", "Events"),
        ChartSpec("top_performers", f"Top {ctx.filters.top_n} players by events", "bar", "top_performers",
                  "player_id", ("events",), "Player", "Events", horizontal=True),
    ]  # fmt: skip
    add_kpis(report, ctx)
    add_forecast(report, ctx, "dau")
    return report


# ------------------------------------------------------------------------------------------- economic health


def build_economic_health(ctx: BuildContext) -> Report:
    """Economic health: per-player spend distribution and Gini, currency balances, price inflation, currency
    faucets/sinks, trade flow, top spenders."""
    report = ctx.new_report(ReportType.ECONOMIC_HEALTH, "Economic health")
    f, fp = clauses(Filters.of(ctx.filters))
    unit = bucket_unit(ctx.period)
    p = ctx.params(unit=unit, **fp)
    in_period = f"e.occurred_at >= :start AND e.occurred_at < :end{f}"
    with ctx.connect() as conn:
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

    price = bucket_series(prices, ctx, unit, ["purchases", "units", "revenue"])
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
    flow = bucket_series(flows, ctx, unit, ["faucets", "sinks"])
    flow["net"] = flow["faucets"] + flow["sinks"]

    trade = bucket_series(trades, ctx, unit, ["trades", "value"])
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
        ChartSpec("revenue", f"Revenue per {unit}", "line", "prices", "bucket", ("revenue",), UNIT_LABEL[unit],
                  "Revenue (USD)"),
        ChartSpec("unit_price", f"Average unit price per {unit}", "line", "prices", "bucket", ("unit_price_usd",),
                  UNIT_LABEL[unit], "Unit price (USD)"),
        ChartSpec("top_spenders", f"Top {ctx.filters.top_n} spenders", "bar", "top_spenders", "player_id",
                  ("spend",), "Player", "Spend (USD)", horizontal=True),
    ]  # fmt: skip
    if trade["trades"].sum():
        report.charts.append(ChartSpec("trade_flow", f"Trades per {unit}", "line", "trade_flow", "bucket",
                                       ("trades",), UNIT_LABEL[unit], "Trades"))  # fmt: skip
    if not flows.empty:
        report.charts.append(ChartSpec("currency_flow", f"Currency faucets and sinks per {unit}", "line",
                                       "currency_flow", "bucket", ("faucets", "sinks", "net"), UNIT_LABEL[unit],
                                       "Currency (coins)"))  # fmt: skip
    add_kpis(report, ctx, revenue_only=True)
    add_clv(report, ctx, customer_scores(ctx))
    add_forecast(report, ctx, "revenue")
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
    f, fp = clauses(Filters.of(ctx.filters))
    unit = bucket_unit(ctx.period)
    p = ctx.params(unit=unit, **fp)
    with ctx.connect() as conn:
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
        activity["cohort"] = naive_utc(activity["cohort"])
        activity["bucket"] = naive_utc(activity["bucket"])
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
    add_churn_risk(report, ctx, customer_scores(ctx))
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


BUILDERS: dict[ReportType, Callable[[BuildContext], Report]] = {
    ReportType.PLAYER_ACTIVITY: build_player_activity,
    ReportType.ECONOMIC_HEALTH: build_economic_health,
    ReportType.RETENTION: build_retention,
    ReportType.RANKINGS: build_rankings,
    ReportType.SECURITY: build_security,
    ReportType.FUNNEL: build_funnel,
}


def build_report(
    engine: Engine, report_type: ReportType | str, period: ReportPeriod, filters: ReportFilters,
    now: datetime | None = None, *, funnel: FunnelReport | None = None,
) -> Report:  # fmt: skip
    """Build one report (``funnel``: the ScheduledReport's ``spec.funnel``, needed by the funnel type).

    Raises:
        ValueError: unknown report type or invalid filter values (see
            :func:`~game_analytics.reports.model.validate_filters`).
        sqlalchemy.exc.SQLAlchemyError: database errors.
    """
    rtype = ReportType(report_type)
    ctx = BuildContext(engine, period, validate_filters(filters), (now or datetime.now(UTC)).astimezone(UTC), funnel)
    return BUILDERS[rtype](ctx)
