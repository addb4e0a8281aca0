"""The ``funnel`` report: step counts, conversion and time between steps of a ScheduledReport's ``spec.funnel``.

The counting is :func:`game_analytics.storage.queries.activity.funnel` (SQL, one definition): a player enters at
their first step-1 event in the report period (after the report filters) and reaches each later step with the
first matching event after the previous step's, within ``conversionWindow`` of entering. Later steps are looked
for in the same period, so players who enter near the period's end have less time to convert (docs/reports.md).
"""

from __future__ import annotations

import math

from ..api.common import parse_duration
from ..api.scheduledreport import FunnelReport, ReportType
from ..storage.queries import Filters
from ..storage.queries.activity import funnel
from .context import BuildContext
from .model import ChartSpec, Figure, Report, Table

__all__ = ["build_funnel", "funnel_result", "funnel_steps"]


def funnel_steps(spec: FunnelReport) -> list[tuple[str, dict[str, str]]]:
    """The query layer's steps of ``spec``: ``(event type, payload filter)`` per step, in order."""
    return [(step.event_type, dict(step.payload)) for step in spec.steps]


def funnel_result(report: Report) -> dict[str, object] | None:
    """The step results of a funnel ``report`` as stored in ``report_runs.parameters.funnel`` (read by the
    exporter, :mod:`game_analytics.workers.exporter_funnel`): ``{"steps": [{"step", "name", "event_type",
    "players", "conversion", "step_conversion"}, ...]}`` (step 1-based, conversions as shares); None for any
    other report."""
    table = next((t for t in report.tables if t.name == "funnel_steps"), None)
    if report.report_type is not ReportType.FUNNEL or table is None:
        return None
    return {"steps": [
        {"step": int(row.step), "name": str(row.name), "event_type": str(row.event_type), "players": int(row.players),
         "conversion": float(row.conversion), "step_conversion": float(row.step_conversion)}
        for row in table.frame.itertuples(index=False)
    ]}  # fmt: skip


def _hours(seconds: float) -> float | None:
    return None if seconds is None or math.isnan(seconds) else seconds / 3600.0


def build_funnel(ctx: BuildContext) -> Report:
    """The funnel report of ``ctx.funnel`` over ``ctx.period``: a table (one row per step: players, conversion
    from step 1 and from the previous step, median and mean hours from the previous step), a bar chart of the
    players per step and headline figures (entered, completed, overall conversion).

    Raises:
        ValueError: ``ctx.funnel`` is None (the ScheduledReport has no ``spec.funnel``) or its window is 0.
    """
    spec = ctx.funnel
    if spec is None:
        raise ValueError("report type funnel needs spec.funnel (steps, conversionWindow)")
    window = parse_duration(spec.conversion_window)
    report = ctx.new_report(ReportType.FUNNEL, "Funnel")
    with ctx.connect() as conn:
        frame = funnel(conn, funnel_steps(spec), Filters.of(ctx.filters, ctx.period.start, ctx.period.end),
                       window=window)  # fmt: skip
    table = frame.assign(
        step=frame["step"] + 1,
        name=[f"{i}. {step.label()}" for i, step in enumerate(spec.steps, 1)],
        median_hours_from_previous=[_hours(s) for s in frame["median_seconds"]],
        mean_hours_from_previous=[_hours(s) for s in frame["mean_seconds"]],
    )[["step", "name", "event_type", "players", "conversion", "step_conversion", "median_hours_from_previous",
       "mean_hours_from_previous"]]  # fmt: skip
    entered, completed = int(table["players"].iloc[0]), int(table["players"].iloc[-1])
    report.figures += [
        Figure("funnel_entered", f"Entered ({table['name'].iloc[0]})", entered, "players"),
        Figure("funnel_completed", f"Completed ({table['name'].iloc[-1]})", completed, "players"),
        Figure("funnel_conversion", "Overall conversion", 100.0 * completed / entered if entered else None, "%"),
        Figure("funnel_window", "Conversion window", spec.conversion_window),
    ]  # fmt: skip
    report.tables.append(Table(
        "funnel_steps", "Funnel steps", table,
        "players: reached the step within the conversion window of entering; conversion: share of step 1; "
        "step_conversion: share of the previous step; hours from the previous step over the players reaching "
        "this one.", percent_columns=("conversion", "step_conversion"),
    ))  # fmt: skip
    report.charts.append(ChartSpec("funnel_steps", "Players reaching each step", "bar", "funnel_steps", "name",
                                   ("players",), "Step", "Players", horizontal=True))  # fmt: skip
    report.notes.append(
        f"Players enter at their first {table['name'].iloc[0]} event in the period; later steps count within "
        f"{spec.conversion_window} of entering and inside the period."
    )
    return report
