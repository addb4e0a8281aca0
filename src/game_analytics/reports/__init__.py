"""Analytics reports: builders (SQL -> :class:`Report`), charts, HTML/CSV/JSON rendering, delivery and run history.

The ScheduledReport worker (:mod:`game_analytics.workers.report`) ties them together; see docs/reports.md.
"""

from .builders import BUILDERS, build_report
from .model import ChartSpec, Figure, Report, ReportPeriod, Table, parse_duration, validate_filters
from .render import render_csv_zip, render_html, render_json, write_report

__all__ = [
    "BUILDERS",
    "ChartSpec",
    "Figure",
    "Report",
    "ReportPeriod",
    "Table",
    "build_report",
    "parse_duration",
    "render_csv_zip",
    "render_html",
    "render_json",
    "validate_filters",
    "write_report",
]
