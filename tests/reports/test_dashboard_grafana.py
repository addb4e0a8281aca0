"""Grafana's query rules as the dashboard report applies them (pure): intervals, variables, legends, units,
thresholds, the layout into pages, the report of a dashboard whose Prometheus cannot be reached, and the
admission of a ScheduledReport of type dashboard (offline, against the checked-in CRD)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import yaml

from devtools import REPO_ROOT as REPO
from game_analytics.monitoring import dashboards
from game_analytics.reports.dashboard.build import (
    PAGE_UNITS,
    DashboardTarget,
    _pages_of_row,
    build_dashboard_report,
    dashboard_rows,
    load_dashboard,
)
from game_analytics.reports.dashboard.fetch import Series, _buckets
from game_analytics.reports.dashboard.grafana import (
    QueryWindow,
    format_value,
    legend,
    round_interval,
    substitute,
    threshold_color,
    variable_values,
)
from game_analytics.reports.model import ReportPeriod
from game_analytics.reports.pdf import render_pdf

END = datetime(2026, 1, 1, 12, tzinfo=UTC)


def _window(hours: float, width: int, scrape: float) -> QueryWindow:
    return QueryWindow.for_panel({"gridPos": {"w": width}}, END - timedelta(hours=hours), END, scrape)


def test_interval_is_range_over_width_rounded_and_bounded_by_the_scrape_interval():
    # 6 h over a half-width panel (944 px): 22.9 s raw -> 20 s, below a 30 s scrape interval -> 30 s
    window = _window(6, 12, 30)
    assert window.interval == 30 and window.rate_interval == 120 and window.step == 30
    # 7 days over a full-width panel (1904 px): 317.6 s raw -> 5 min; $__rate_interval = 5 min + 15 s
    window = _window(24 * 7, 24, 15)
    assert window.interval == 300 and window.rate_interval == 315
    assert window.builtins()["__rate_interval"] == "315s" and window.builtins()["__range"] == "604800s"
    assert round_interval(12) == 10 and round_interval(40_000) == 30_000 and round_interval(1e12) == 31_536_000_000


def test_range_queries_are_aligned_to_the_step():
    start, end = _window(6, 12, 30).aligned()
    assert start % 30 == 0 and end % 30 == 0 and end <= END.timestamp()


def test_variables_are_formatted_per_data_source():
    model = dashboards.DASHBOARDS["interventions"]()
    variables = variable_values(model, {"game": ["cdnow", "a.b"]})
    window = _window(1, 12, 30)
    expr = 'x{namespace=~"$namespace", game=~"$game"}[$__rate_interval]'
    assert substitute(expr, variables, window) == 'x{namespace=~".*", game=~"(cdnow|a\\\\.b)"}[120s]'
    assert substitute("priority IN ($priority) AND g IN (${game})", variables, window, sql=True) == \
        "priority IN (1,2,3) AND g IN ('cdnow','a.b')"
    assert substitute("$unknown", variables, window) == "$unknown"
    with pytest.raises(ValueError, match="no variable nope"):
        variable_values(model, {"nope": ["x"]})


def test_legends_units_and_thresholds():
    assert legend("{{game}} {{kpi}}", {"game": "cdnow", "kpi": "d1"}) == "cdnow d1"
    assert legend("", {"__name__": "up", "pod": "p"}) == 'up{pod="p"}'
    assert [format_value(v, u) for v, u in [(1234, "short"), (10.0, "short"), (0.526, "percentunit"),
                                             (90, "s"), (0.02, "s"), (2048, "bytes"), (3.5, "ops"),
                                             (41.36, "currencyUSD"), (None, "short"), (0x22389E1B9F8B9, "hex"),
                                             (255.4, "hex0x")]] == \
        ["1.23 K", "10", "52.6%", "1.50 min", "20 ms", "2 KiB", "3.50 ops/s", "$41.36", "-", "22389E1B9F8B9", "0xFF"]
    steps = {"defaults": {"thresholds": {"steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}]}}}
    assert threshold_color(0, steps) == "#73bf69" and threshold_color(1, steps) == "#f2495c"
    assert threshold_color(81, {}) == "#f2495c"  # Grafana's default: red from 80


def test_cumulative_buckets_become_counts_per_bucket():
    times = np.array([1.0])
    cumulative = [Series(le, {"le": le}, times, np.array([v])) for le, v in (("+Inf", 10), ("10.0", 4), ("1.0", 1))]
    assert [(s.name, float(s.values[0])) for s in _buckets(cumulative)] == [("≤ 1", 1), ("≤ 10", 3), ("+Inf", 6)]


def test_every_row_gets_a_page_and_tall_rows_continue():
    for slug in dashboards.DASHBOARDS:
        for _, panels in dashboard_rows(dashboards.DASHBOARDS[slug]()):
            pages = _pages_of_row(panels)
            assert pages and sum(len(p) for p in pages) == len(panels)
            for page in pages:
                top = min(p["gridPos"]["y"] for p in page)
                assert all(p["gridPos"]["y"] + p["gridPos"]["h"] - top <= PAGE_UNITS or p is page[0] for p in page)
    assert load_dashboard("activity")["uid"] == load_dashboard("game-analytics-activity")["uid"]
    with pytest.raises(ValueError, match="game-analytics-activity"):
        load_dashboard("game-analytics-nope")


def test_unreachable_prometheus_fails_every_panel_visibly():
    target = DashboardTarget("game-analytics-rankings", prometheus_url="http://127.0.0.1:9", scrape_interval=15)
    report = build_dashboard_report(target, ReportPeriod(END - timedelta(hours=1), END), now=END)
    assert report.figure("panels_failed") == report.figure("panels") > 0
    assert any("Query failed" in n for n in report.notes)
    assert render_pdf(report).startswith(b"%PDF")


def test_regex_format_of_the_alerts_dashboards_rule_variable():
    """``${rule:regex}`` (the alerts dashboard's SQL panel): regex-escaped once, in SQL too; All = ``.*``."""
    model = dashboards.DASHBOARDS["alerts"]()
    window = _window(1, 12, 30)
    one = variable_values(model, {"rule": ["games/whale.jump"]})
    assert substitute("d.rule ~ '^(${rule:regex})'", one, window, sql=True) == r"d.rule ~ '^(games\/whale\.jump)'"
    two = variable_values(model, {"rule": ["games/a", "games/b"]})
    assert substitute("${rule:regex}", two, window, sql=True) == r"(games\/a|games\/b)"
    assert substitute("${rule:regex}", variable_values(model, {}), window, sql=True) == ".*"
    assert substitute('rule=~"$rule"', two, window) == 'rule=~"(games/a|games/b)"'


def test_a_dashboard_report_is_admitted_only_with_its_spec():
    """Offline admission (the checked-in CRD's schema and CEL): type ``dashboard`` needs ``spec.dashboard``; with a
    uid alone it is admitted, in PDF, with the default Prometheus and scrape interval."""
    from controller import crd_fuzz  # tests/ is on sys.path

    obj = yaml.safe_load((REPO / "examples" / "scheduledreport.yaml").read_text())
    obj["spec"].update(reports=["dashboard"], formats=["pdf", "html"])
    admitted, refusals = crd_fuzz.admit(obj)
    assert admitted is None and refusals == [
        ".spec.dashboard: a dashboard report needs spec.dashboard (uid, variables, prometheusUrl) (False)"]
    obj["spec"]["dashboard"] = {"uid": "game-analytics-activity"}
    admitted, refusals = crd_fuzz.admit(obj)
    assert refusals == [] and admitted["spec"]["dashboard"] == {
        "uid": "game-analytics-activity", "variables": {}, "scrapeInterval": "30s",
        "prometheusUrl": "http://prometheus-operated.monitoring.svc:9090"}
    obj["spec"]["dashboard"] = {"uid": "grafana-home"}  # not one of the product's
    admitted, refusals = crd_fuzz.admit(obj)
    assert admitted is None and refusals[0].startswith(".spec.dashboard.uid: ")


def test_time_axes_span_the_dashboards_range_with_distinct_tick_labels():
    """As in Grafana, a time series spans the dashboard's time range even where its data cover two seconds of it
    (the rendered operator page showed 02:09:12 02:09:12 02:09:13 02:09:13 under a p99 of two points)."""
    import matplotlib.dates as mdates

    from game_analytics.reports.dashboard.build import PanelOutcome, _draw_page
    from game_analytics.reports.dashboard.fetch import PanelData, Series

    period = ReportPeriod(END - timedelta(minutes=2), END)
    t0 = END.timestamp() - 70
    short = Series("p99", {}, np.array([t0, t0 + 1, t0 + 2]), np.array([0.005, 0.005, 0.005]))
    panel = {"type": "timeseries", "title": "Reconcile duration p99", "gridPos": {"x": 0, "y": 0, "w": 8, "h": 8},
             "fieldConfig": {"defaults": {"unit": "s"}}}
    fig = _draw_page("Dash", "Row", "", [PanelOutcome("Row", panel, "ok", PanelData([short]))], period)
    fig.canvas.draw()
    (ax,) = fig.axes
    assert ax.get_xlim() == pytest.approx(tuple(mdates.date2num([period.start, period.end])))
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert len(labels) >= 3 and len(set(labels)) == len(labels), labels
