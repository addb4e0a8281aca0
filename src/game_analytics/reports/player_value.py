"""Report sections of the game KPIs, customer lifetime value and churn risk (definitions: docs/analytics.md).

Called by the builders of :mod:`.builders`: :func:`add_kpis` (player activity: every KPI; economic health: the
revenue KPIs), :func:`add_clv` (economic health) and :func:`add_churn_risk` (retention). The figures come from
the query layer (:func:`game_analytics.storage.queries.kpis.kpis`,
:func:`game_analytics.storage.queries.customers.purchase_days`) and the pure models of
:mod:`game_analytics.analytics.churn.value`.
"""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pandas as pd

from ..analytics.churn.classifier import FEATURES
from ..analytics.churn.value import RISK_TIERS, CustomerScores, score_customers
from ..storage.queries import Filters
from ..storage.queries.customers import purchase_days
from ..storage.queries.kpis import RETENTION_DAYS, kpis
from .context import BuildContext
from .model import ChartSpec, Figure, Report, Table

__all__ = ["CLV_BINS", "add_churn_risk", "add_clv", "add_kpis", "customer_scores"]

#: CLV histogram bin edges of the report (USD); the last bin is open
CLV_BINS = (0, 5, 10, 20, 50, 100, 200, 500, 1000)

#: the KPIs the economic-health report adds (it has its own revenue and paying-player figures)
_REVENUE_KPIS = ("arpdau", "arppu", "conversion")


def _value(v: float | int) -> float | int | None:
    return None if isinstance(v, float) and math.isnan(v) else v


def add_kpis(report: Report, ctx: BuildContext, *, revenue_only: bool = False) -> None:
    """Append the KPI figures, a ``kpis`` table and (unless ``revenue_only``) the classic-retention and
    new-vs-returning charts for the report period to ``report``."""
    with ctx.connect() as conn:
        k = kpis(conn, Filters.of(ctx.filters, ctx.period.start, ctx.period.end))
    pct = {"conversion", "stickiness", *(f"d{n}" for n in RETENTION_DAYS)}
    labels = {
        "arpdau": ("ARPDAU (revenue per daily active user)", "USD"), "arppu": ("ARPPU (revenue per paying user)", "USD"),
        "conversion": ("Paying-user conversion", "%"), "paying_players": ("Paying players", "players"),
        "revenue": ("Revenue", "USD"), "stickiness": ("Stickiness (DAU/MAU)", "%"),
        "mean_dau": ("Average DAU", "players"), "new_players": ("New players", "players"),
        "returning_players": ("Returning players", "players"), "sessions_per_dau": ("Sessions per DAU", "sessions"),
        **{f"d{n}": (f"D{n} retention (classic)", "%") for n in RETENTION_DAYS},
    }  # fmt: skip
    keys = _REVENUE_KPIS if revenue_only else tuple(labels)
    for key in keys:
        label, unit = labels[key]
        value = _value(k[key])
        if value is not None and key in pct:
            value = 100.0 * value
        if key in ("new_players", "returning_players") and not revenue_only:
            key = f"kpi_{key}"  # the activity report already has its own new_players figure
        report.figures.append(Figure(key, label, value, unit))
    shown = dict.fromkeys((*keys, "revenue", "paying_players", "active_players", "player_days", "days"))
    rows = [{"kpi": key, "value": _value(k[key])} for key in shown]
    report.tables.append(Table("kpis", "Game KPIs of the period", pd.DataFrame(rows),
                               "Definitions in docs/analytics.md; ratios of 0/0 are empty."))  # fmt: skip
    if revenue_only:
        return
    report.notes.append(f"Session KPIs from {k['session_method']}.")
    retention = pd.DataFrame({"day": [f"D{n}" for n in RETENTION_DAYS],
                              "retention": [_value(k[f"d{n}"]) for n in RETENTION_DAYS],
                              "eligible_players": [k[f"d{n}_cohort"] for n in RETENTION_DAYS]})  # fmt: skip
    mix = pd.DataFrame({"players": ["new", "returning"], "count": [k["new_players"], k["returning_players"]]})
    report.tables += [
        Table("classic_retention", "Classic D1/D7/D30 retention of the period's new players", retention,
              "Share active on exactly day N after their first day; only players whose day N has data.",
              percent_columns=("retention",)),
        Table("new_vs_returning", "New and returning active players", mix),
    ]
    report.charts += [
        ChartSpec("classic_retention", "Classic retention", "bar", "classic_retention", "day", ("retention",),
                  "Days after the first day", "Share of new players active", percent=True),
        ChartSpec("new_vs_returning", "New vs returning players", "bar", "new_vs_returning", "players", ("count",),
                  "Players", "Active players"),
    ]  # fmt: skip


def customer_scores(ctx: BuildContext) -> CustomerScores | None:
    """The customer-base models fitted on the purchase days up to the period's end (all history of the filters'
    games and regions); None with fewer than 2 purchasing players or a failed fit."""
    with ctx.connect() as conn:
        days = purchase_days(conn, Filters.of(ctx.filters, None, ctx.period.end))
    if days["player_id"].nunique() < 2:
        return None
    until = pd.Timestamp(ctx.period.end).tz_convert("UTC").tz_localize(None) - timedelta(microseconds=1)
    try:
        return score_customers(days, until)
    except ValueError:
        return None


def _clv_histogram(values: np.ndarray) -> pd.DataFrame:
    edges = np.asarray(CLV_BINS, dtype=float)
    idx = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 1)
    counts = np.bincount(idx, minlength=len(edges))
    labels = [f"{lo:,.0f}–{hi:,.0f}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)] + [f"≥ {edges[-1]:,.0f}"]
    return pd.DataFrame({"clv_usd": labels, "players": counts.astype(int)})


def add_clv(report: Report, ctx: BuildContext, scores: CustomerScores | None) -> None:
    """Append the CLV figures, its distribution (table + chart) and the top players by CLV to ``report``."""
    if scores is None or scores.gammagamma is None or scores.players["clv"].isna().all():
        report.notes.append("No customer lifetime value: too few purchasing players with repeat purchases.")
        return
    players, gg, b = scores.players, scores.gammagamma, scores.bgnbd
    clv = players["clv"].to_numpy()
    report.figures += [
        Figure("clv_mean", "Average customer lifetime value (12 months, discounted)", float(np.mean(clv)), "USD"),
        Figure("clv_median", "Median customer lifetime value", float(np.median(clv)), "USD"),
        Figure("clv_total", "Customer base value (sum of CLV)", float(np.sum(clv)), "USD"),
    ]
    top = players.nlargest(ctx.filters.top_n, "clv").reset_index()[
        ["player_id", "clv", "expected_purchases", "expected_spend", "p_alive", "x", "zbar"]]
    report.tables += [
        Table("clv_distribution", "Players by customer lifetime value", _clv_histogram(clv)),
        Table("top_clv", f"Top {ctx.filters.top_n} players by customer lifetime value", top,
              percent_columns=("p_alive",)),
        Table("clv_models", "Fitted customer-base models", pd.DataFrame([
            {"model": "BG/NBD", "parameters": f"r={b.r:.4g} alpha={b.alpha:.4g} a={b.a:.4g} b={b.b:.4g}",
             "log_likelihood": b.log_likelihood},
            {"model": "Gamma-Gamma", "parameters": f"p={gg.p:.4g} q={gg.q:.4g} v={gg.v:.4g}",
             "log_likelihood": gg.log_likelihood}])),
    ]  # fmt: skip
    report.charts += [
        ChartSpec("clv_distribution", "Distribution of customer lifetime value", "bar", "clv_distribution",
                  "clv_usd", ("players",), "CLV, next 12 months discounted (USD)", "Players"),
        ChartSpec("top_clv", f"Top {ctx.filters.top_n} players by CLV", "bar", "top_clv", "player_id", ("clv",),
                  "Player", "CLV (USD)", horizontal=True),
    ]  # fmt: skip
    report.notes.append("CLV = BG/NBD expected purchase days x Gamma-Gamma expected spend per day, 12 periods of 28 "
                        "days discounted at 1 % per period (time unit: weeks).")


def add_churn_risk(report: Report, ctx: BuildContext, scores: CustomerScores | None) -> None:
    """Append the churn-risk tiers (table + chart) and the highest-risk players with their features."""
    if scores is None:
        report.notes.append("No churn risk: fewer than 2 purchasing players.")
        return
    players = scores.players
    counts = players["tier"].value_counts()
    tiers = pd.DataFrame({"tier": [t for t, _ in RISK_TIERS], "min_risk": [low for _, low in RISK_TIERS],
                          "players": [int(counts.get(t, 0)) for t, _ in RISK_TIERS]})  # fmt: skip
    report.figures.append(Figure("high_risk_players", "Players at high churn risk", int(counts.get("high", 0)),
                                 "players"))  # fmt: skip
    columns = ["player_id", "risk", "tier", "p_alive", "churn_probability", *FEATURES]
    top = players.nlargest(ctx.filters.top_n, "risk").reset_index()[columns]
    report.tables += [
        Table("churn_risk_tiers", "Players by churn-risk tier", tiers),
        Table("highest_risk", f"The {ctx.filters.top_n} players at highest churn risk, with the features behind it",
              top, "risk = mean of 1 - P(alive) (BG/NBD) and the classifier's churn probability; features as of "
              "the period end (days).", percent_columns=("risk", "p_alive", "churn_probability")),
    ]  # fmt: skip
    report.charts.append(ChartSpec("churn_risk_tiers", "Churn-risk tiers", "bar", "churn_risk_tiers", "tier",
                                   ("players",), "Tier", "Players"))  # fmt: skip
    report.notes += scores.notes
