"""Dashboard rows of the game KPIs, player value, forecasts and outcome-model quality (docs/analytics.md), placed into
the Activity, Economy and Rankings dashboards of :mod:`.dashboards`."""

from __future__ import annotations

from typing import Any

from . import names
from .panels import GAME, NS, bargauge_panel, distribution_panel, stat_panel, timeseries_panel

__all__ = ["REPORT_VARIABLE", "activity_forecast", "activity_funnels", "activity_kpis", "economy_forecast", "economy_value", "ranking_model_quality"]


def activity_kpis() -> tuple[str, list[Any]]:
    """Activity row: classic retention, new vs returning players, sessions per DAU and stickiness."""
    return ("KPIs (trailing 30 days)", [
        timeseries_panel("Classic retention", "D1, D7 and D30 retention of the players new in the last 30 days "
                         "(docs/analytics.md).", [(f'max by (kpi) ({names.KPI}{{{GAME}, kpi=~"d1|d7|d30"}})',
                                                   "{{kpi}}")], unit="percentunit", span=8),
        timeseries_panel("New vs returning players", "Active players of the last 30 days by first activity.",
                         [(f'sum by (kpi) ({names.KPI}{{{GAME}, kpi=~"new_players|returning_players"}})',
                           "{{kpi}}")], span=8),
        timeseries_panel("Sessions per DAU and stickiness", "Sessions per daily active player; average DAU over "
                         "the 30-day actives.", [(f'max by (kpi) ({names.KPI}{{{GAME}, '
                                                  f'kpi=~"sessions_per_dau|stickiness"}})', "{{kpi}}")], span=8),
    ])


#: the Activity dashboard's ``report`` variable: the funnel ScheduledReports (``<namespace>/<name>``) with a run
REPORT_VARIABLE = ("report", "Funnel report", f"label_values({names.FUNNEL_STEP_PLAYERS}{{{NS}}}, report)")


def activity_funnels() -> tuple[str, list[Any]]:
    """Activity row: players per step and conversion from step 1 of the latest run of the ``report`` funnels."""
    where = f'{NS}, report=~"$report"'
    return ("Funnels (latest run of each funnel ScheduledReport)", [
        bargauge_panel("Funnel: players per step", "Players reaching each step within the conversion window, in "
                       "the latest succeeded run of the selected funnel reports (docs/reports.md).",
                       f"max by (report, step, event_type) ({names.FUNNEL_STEP_PLAYERS}{{{where}}})",
                       "{{report}} {{step}}. {{event_type}}", span=12),
        bargauge_panel("Funnel: conversion from step 1", "Share of the funnel's entrants reaching each step.",
                       f"max by (report, step, event_type) ({names.FUNNEL_STEP_CONVERSION}{{{where}}})",
                       "{{report}} {{step}}. {{event_type}}", span=12, unit="percentunit"),
    ])


def economy_value() -> tuple[str, list[Any]]:
    """Economy row: ARPDAU/ARPPU, paying-user conversion, churn-risk tiers, the CLV distribution."""
    return ("Revenue KPIs and player value", [
        timeseries_panel("ARPDAU and ARPPU", "Revenue per daily active and per paying player, last 30 days.",
                         [(f'max by (game, kpi) ({names.KPI}{{{GAME}, kpi=~"arpdau|arppu"}})',
                           "{{game}} {{kpi}}")], unit="currencyUSD", span=8),
        timeseries_panel("Paying-user conversion", "Paying players over active players, last 30 days.",
                         [(f'max by (game) ({names.KPI}{{{GAME}, kpi="conversion"}})', "{{game}}")],
                         unit="percentunit", span=8),
        bargauge_panel("Churn-risk tiers", "Players per risk tier (BG/NBD P(alive) and the churn classifier).",
                       f"sum by (tier) ({names.CHURN_RISK_PLAYERS}{{{GAME}}})", "{{tier}}", span=8),
        distribution_panel("Players by lifetime value", "Discounted 12-month CLV (BG/NBD x Gamma-Gamma, fixed "
                           "buckets, USD).", f"sum by (le) ({names.PLAYER_CLV}_bucket{{{GAME}}})", span=24),
    ])


def _forecast_row(metric: str, label: str, unit: str, horizon: str) -> tuple[str, list[Any]]:
    """A row of the ``metric`` forecast: today's forecast with its 95 % interval and the 30-day figure (the backtest
    MAPE of both forecasts is on the ML performance dashboard)."""
    where = f'{GAME}, metric="{metric}"'
    return (f"{label} forecast (ETS, 95 % interval)", [
        timeseries_panel(f"{label} forecast for today", f"The exporter's ETS forecast of the current UTC day's "
                         f"{label} from the complete days before it, with the 95 % prediction interval "
                         "(docs/analytics.md).", [(f"max by (game, bound) ({names.FORECAST}{{{where}}})",
                                                   "{{game}} {{bound}}")], unit=unit, span=16),
        stat_panel(f"{label} forecast, next 30 days ({horizon})", f"The forecast's {horizon} over the 30 days from "
                   "today.", f"sum({names.FORECAST_30D}{{{where}}})", unit=unit, span=8),
    ])


def activity_forecast() -> tuple[str, list[Any]]:
    """Activity row: the DAU forecast (:func:`_forecast_row`)."""
    return _forecast_row("dau", "DAU", "short", "mean")


def economy_forecast() -> tuple[str, list[Any]]:
    """Economy row: the revenue forecast (:func:`_forecast_row`)."""
    return _forecast_row("revenue", "Revenue", "currencyUSD", "total")


def ranking_model_quality() -> tuple[str, list[Any]]:
    """Rankings row: held-out log loss and Brier of the outcome model vs the baseline, match quality."""
    return ("Outcome model quality (held-out season)", [
        timeseries_panel("Log loss: ratings vs baseline", "Win/draw/loss log loss of each RankingJob's game on "
                         "its most recent held-out season; lower is better.",
                         [(f"max by (ranking, model) ({names.RANKING_MODEL_LOG_LOSS}{{{GAME}}})",
                           "{{ranking}} {{model}}")], span=8),
        timeseries_panel("Brier score: ratings vs baseline", "Multi-category Brier score (0 best, 2 worst).",
                         [(f"max by (ranking, model) ({names.RANKING_MODEL_BRIER}{{{GAME}}})",
                           "{{ranking}} {{model}}")], span=8),
        timeseries_panel("Match quality of recent pairings", "Mean normalised outcome entropy of the held-out "
                         "season's pairings (1 = balanced).",
                         [(f"max by (ranking) ({names.RANKING_MATCH_QUALITY}{{{GAME}}})", "{{ranking}}")],
                         unit="percentunit", span=8),
    ])
