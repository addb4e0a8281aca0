"""The ``dashboard`` report: one of the product's Grafana dashboards run and drawn outside Grafana.

:func:`build_dashboard_report` reads the dashboard model the product generates (by uid, from
:data:`game_analytics.monitoring.dashboards.DASHBOARDS`, the same models as ``grafana_dashboards/*.json``), runs
every panel's targets (:mod:`.fetch`, with the variables and intervals of :mod:`.grafana`) and returns a
:class:`~game_analytics.reports.model.Report` whose ``pages`` draw the panels laid out by their ``gridPos``: one
page or more per dashboard row (a row taller than :data:`PAGE_UNITS` grid units continues on the next page).

The report's figures count the panels (rendered, no data, errors, not rendered); table ``panels`` lists every panel
with its status, table ``values`` the last value of every series (what a stat panel shows). Panel types
:data:`~.draw.RENDERERS` cannot draw are listed in the notes, never dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as MplFigure

from ...api.scheduledreport import ReportFilters, ReportType
from ..model import Figure, Page, Report, ReportPeriod, Table
from .draw import RENDERERS, draw_panel, unit_of
from .fetch import PanelData, Prometheus, QueryError, run_targets
from .grafana import GRID_COLUMNS, QueryWindow, format_value, variable_values

__all__ = ["PAGE_UNITS", "DashboardTarget", "PanelOutcome", "build_dashboard_report", "dashboard_rows",
           "load_dashboard"]  # fmt: skip

#: A4 landscape, inches (as the other PDF reports)
PAGE_SIZE = (11.69, 8.27)
#: most grid units of height on one page; a page of fewer units is scaled up to at most MIN_UNITS
PAGE_UNITS = 24
MIN_UNITS = 12
_AREA = (0.025, 0.03, 0.95, 0.85)  # x, y, width, height of the panel grid on a page (figure fractions)
_GAP = 0.004


@dataclass(frozen=True)
class DashboardTarget:
    """What a dashboard report runs.

    Attributes:
        uid: the dashboard's uid (``game-analytics-activity``; the slug ``activity`` is accepted too).
        variables: template variable values (``{"game": ["cdnow"]}``); missing ones keep the dashboard's current
            value (All).
        prometheus_url: base URL of the Prometheus to query, or None (every Prometheus panel then fails).
        scrape_interval: the data source's scrape interval in seconds (Grafana's minimum interval and the base of
            ``$__rate_interval``).
    """

    uid: str
    variables: dict[str, list[str]] = field(default_factory=dict)
    prometheus_url: str | None = None
    scrape_interval: float = 30.0


@dataclass
class PanelOutcome:
    """One panel: its row, model, status (``ok``, ``no data``, ``error``, ``unsupported``), data and detail."""

    row: str
    panel: dict[str, Any]
    status: str
    data: PanelData | None = None
    detail: str = ""


def load_dashboard(uid: str) -> dict[str, Any]:
    """The generated dashboard model with this uid (or slug).

    Raises:
        ValueError: no dashboard of the product has it (the message lists the uids).
    """
    from ...monitoring.dashboards import DASHBOARDS, UID_PREFIX

    slug = uid.removeprefix(UID_PREFIX)
    if slug not in DASHBOARDS:
        known = ", ".join(UID_PREFIX + s for s in DASHBOARDS)
        raise ValueError(f"no dashboard with uid {uid!r}; the product's dashboards are: {known}")
    return DASHBOARDS[slug]()


def dashboard_rows(dashboard: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """``[(row title, panels)]`` in layout order; panels above the first row go under the dashboard's title, and
    the panels of a collapsed row are its nested ``panels``."""
    rows: list[tuple[str, list[dict[str, Any]]]] = []
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            rows.append((panel.get("title", ""), list(panel.get("panels") or [])))
        elif rows:
            rows[-1][1].append(panel)
        else:
            rows.append((dashboard.get("title", ""), [panel]))
    return [(title, panels) for title, panels in rows if panels]


def _pages_of_row(panels: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    top = None
    for panel in sorted(panels, key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"])):
        pos = panel["gridPos"]
        if top is None or pos["y"] + pos["h"] - top > PAGE_UNITS and pos["y"] > top:
            pages.append([])
            top = pos["y"]
        pages[-1].append(panel)
    return pages


def _run(panel: dict[str, Any], row: str, target: DashboardTarget, period: ReportPeriod,
         variables: dict[str, tuple[list[str], dict]], prometheus: Prometheus | None, engine: Any) -> PanelOutcome:
    if panel.get("type") not in RENDERERS:
        return PanelOutcome(row, panel, "unsupported", detail=f"panel type {panel.get('type')!r}")
    window = QueryWindow.for_panel(panel, period.start, period.end, target.scrape_interval)
    try:
        data = run_targets(panel, window, variables, prometheus=prometheus, engine=engine)
    except QueryError as exc:
        return PanelOutcome(row, panel, "error", detail=str(exc))
    return PanelOutcome(row, panel, "no data" if data.empty else "ok", data)


def _draw_page(title: str, row: str, subtitle: str, outcomes: list[PanelOutcome],
               period: ReportPeriod | None = None) -> MplFigure:
    with matplotlib.rc_context({"text.parse_math": False}):  # "$" in titles and queries is text, not TeX
        return _draw_grid(title, row, subtitle, outcomes, period)


def _draw_grid(title: str, row: str, subtitle: str, outcomes: list[PanelOutcome],
               period: ReportPeriod | None = None) -> MplFigure:
    fig = MplFigure(figsize=PAGE_SIZE)
    FigureCanvasAgg(fig)
    fig.text(0.025, 0.965, title, fontsize=14, fontweight="bold", va="top")
    fig.text(0.025, 0.928, row, fontsize=11, va="top", color="#1f60c4")
    fig.text(0.975, 0.965, subtitle, fontsize=7, va="top", ha="right", color="#555", linespacing=1.4)
    ax0, ay0, aw, ah = _AREA
    top = min(o.panel["gridPos"]["y"] for o in outcomes)
    units = max(MIN_UNITS, max(o.panel["gridPos"]["y"] + o.panel["gridPos"]["h"] for o in outcomes) - top)
    unit_h = ah / units
    time_range = (period.start.timestamp(), period.end.timestamp()) if period else None
    for outcome in outcomes:
        pos = outcome.panel["gridPos"]
        x = ax0 + aw * pos["x"] / GRID_COLUMNS
        w = aw * pos["w"] / GRID_COLUMNS
        h = unit_h * pos["h"]
        y = ay0 + ah - unit_h * (pos["y"] - top) - h
        draw_panel(fig, (x + _GAP / 2, y + _GAP / 2, w - _GAP, h - _GAP), outcome.panel, outcome.status,
                   outcome.data, outcome.detail, time_range)  # fmt: skip
    return fig


def _tables(outcomes: list[PanelOutcome]) -> list[Table]:
    panels = pd.DataFrame([{
        "row": o.row, "panel": o.panel.get("title", ""), "type": o.panel.get("type"), "unit": unit_of(o.panel),
        "status": o.status, "series": len(o.data.series) if o.data else 0,
        "table_rows": sum(len(t) for t in o.data.tables) if o.data else 0, "detail": o.detail,
    } for o in outcomes], columns=["row", "panel", "type", "unit", "status", "series", "table_rows", "detail"])
    values = []
    for o in outcomes:
        for s in (o.data.series if o.data else []):
            finite = s.values[np.isfinite(s.values)]
            last = float(finite[-1]) if finite.size else None
            values.append({"row": o.row, "panel": o.panel.get("title", ""), "type": o.panel.get("type"),
                           "series": s.name, "value": last, "unit": unit_of(o.panel),
                           "shown": format_value(last, unit_of(o.panel))})  # fmt: skip
    return [
        Table("panels", "Panels", panels, "Every panel of the dashboard with the outcome of its queries."),
        Table("values", "Last values", pd.DataFrame(values, columns=["row", "panel", "type", "series", "value", "unit",
                                                                    "shown"]),
              "The last value of every series, as a stat panel shows it."),
    ]  # fmt: skip


def build_dashboard_report(target: DashboardTarget, period: ReportPeriod, *, engine: Any = None,
                           now: datetime | None = None) -> Report:  # fmt: skip
    """Run and draw the dashboard of ``target`` over ``period`` (see the module docstring).

    ``engine`` (SQLAlchemy) runs the SQL panels; without it they are errors.

    Raises:
        ValueError: unknown dashboard uid or variable name.
    """
    dashboard = load_dashboard(target.uid)
    variables = variable_values(dashboard, target.variables)
    prometheus = Prometheus(target.prometheus_url) if target.prometheus_url else None
    rows = dashboard_rows(dashboard)
    outcomes = {id(p): _run(p, title, target, period, variables, prometheus, engine) for title, ps in rows for p in ps}
    chosen = ", ".join(f"{name}={'|'.join(v) if v != ['$__all'] else 'All'}" for name, (v, _) in variables.items())
    subtitle = f"{period.label()}\n{chosen}\nPrometheus: {target.prometheus_url or '-'}"
    report = Report(ReportType.DASHBOARD, dashboard["title"], period, ReportFilters(),
                    (now or datetime.now(UTC)).astimezone(UTC))  # fmt: skip
    ordered = [outcomes[id(p)] for _, ps in rows for p in ps]
    for title, panels in rows:
        for i, page in enumerate(_pages_of_row(panels)):
            label = title + (" (continued)" if i else "")
            page_outcomes = [outcomes[id(p)] for p in page]

            def draw(label: str = label, page_outcomes: list[PanelOutcome] = page_outcomes) -> MplFigure:
                return _draw_page(dashboard["title"], label, subtitle, page_outcomes, period)

            report.pages.append(Page(f"{dashboard['title']}: {label}", draw))
    counts = {s: sum(o.status == s for o in ordered) for s in ("ok", "no data", "error", "unsupported")}
    report.figures += [
        Figure("dashboard", "Dashboard uid", dashboard["uid"]),
        Figure("panels", "Panels", len(ordered), "panels"),
        Figure("panels_with_data", "Panels with data", counts["ok"], "panels"),
        Figure("panels_no_data", "Panels with no data", counts["no data"], "panels"),
        Figure("panels_failed", "Panels whose queries failed", counts["error"], "panels"),
        Figure("panels_not_rendered", "Panels of a type not rendered", counts["unsupported"], "panels"),
        Figure("rows", "Dashboard rows", len(rows), "rows"),
    ]
    report.tables += _tables(ordered)
    report.notes.append(f"Variables: {chosen or 'none'}. Scrape interval {target.scrape_interval:g} s; "
                        "$__interval and $__rate_interval as Grafana computes them for each panel's width.")
    unsupported = [o for o in ordered if o.status == "unsupported"]
    if unsupported:
        report.notes.append("Not rendered (panel type): " + "; ".join(
            f"{o.panel.get('title')} ({o.panel.get('type')})" for o in unsupported))
    empty = [o.panel.get("title", "") for o in ordered if o.status == "no data"]
    if empty:
        report.notes.append(f"No data in this range ({len(empty)}): " + "; ".join(empty))
    for o in ordered:
        if o.status == "error":
            report.notes.append(f"Query failed: {o.panel.get('title')}: {o.detail}")
    return report
