"""Report sections of the 30-day forecasts: DAU (player activity) and revenue (economic health), with prediction
intervals and the backtest error (:mod:`game_analytics.analytics.forecast`)."""

from __future__ import annotations

import pandas as pd

from ..analytics.forecast import backtest, ets_forecast
from ..storage.queries import Filters
from ..storage.queries.kpis import daily_series
from .context import BuildContext
from .model import ChartSpec, Figure, Report, Table

__all__ = ["HORIZON_DAYS", "add_forecast"]

HORIZON_DAYS = 30


def add_forecast(report: Report, ctx: BuildContext, metric: str) -> None:
    """Append the ``metric`` ("dau" or "revenue") forecast of the 30 days after the period end, from the daily
    history up to the period end: a table and chart (history of the last 90 days, forecast, 95 % interval), the
    backtest MAPE over the last 30 observed days and a figure with the forecast total/mean."""
    filters = Filters.of(ctx.filters, None, ctx.period.end)
    with ctx.connect() as conn:
        series = daily_series(conn, filters, metric)
    label = "DAU" if metric == "dau" else "Revenue (USD)"
    try:
        forecast = ets_forecast(series, HORIZON_DAYS)
        error, _ = backtest(series, HORIZON_DAYS)
    except ValueError:
        report.notes.append(f"No {label} forecast: fewer than 44 days of history before the period end.")
        return
    history = series.asfreq("D", fill_value=0.0).iloc[-90:]
    table = pd.concat([
        pd.DataFrame({"day": history.index, "actual": history.to_numpy()}),
        forecast.frame.rename(columns={"lower": "lower_95", "upper": "upper_95"}),
    ], ignore_index=True)  # fmt: skip
    name = f"{metric}_forecast"
    total = float(forecast.frame["forecast"].sum() if metric == "revenue" else forecast.frame["forecast"].mean())
    report.figures += [
        Figure(f"{metric}_forecast_{'total' if metric == 'revenue' else 'mean'}",
               f"{label} forecast, next {HORIZON_DAYS} days ({'total' if metric == 'revenue' else 'mean'})",
               total, "USD" if metric == "revenue" else "players"),
        Figure(f"{metric}_forecast_mape", f"{label} forecast backtest MAPE (last {HORIZON_DAYS} observed days)",
               100.0 * error, "%"),
    ]  # fmt: skip
    report.tables.append(Table(name, f"{label}: last 90 days and the {HORIZON_DAYS}-day forecast", table,
                               f"{forecast.model}, fitted on the daily history up to the period end; lower_95/upper_95 "
                               "is the 95 % prediction interval (clipped at 0)."))  # fmt: skip
    report.charts.append(ChartSpec(name, f"{label} forecast (95 % interval)", "line", name, "day",
                                   ("actual", "forecast", "lower_95", "upper_95"), "Day (UTC)", label))  # fmt: skip
