"""A dashboard the report cannot fully draw, through the CLI preview against a real Prometheus (Debian package).

Panel types without a renderer are listed (notes, table ``panels``, the page itself), never dropped; an empty panel
shows "no data" and is counted; the preview writes HTML (the pages as images) as well as PDF. The product's own
dashboards: test_dashboard_report.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from pypdf import PdfReader

from devtools.monitoring_stack import Prometheus
from game_analytics.monitoring import dashboards
from game_analytics.reports.dashboard.build import dashboard_rows
from game_analytics.workers import report_cli


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory) -> Iterator[Prometheus]:
    """A real Prometheus with no targets: ``vector(1)`` has data, any metric name has none."""
    server = Prometheus(tmp_path_factory.mktemp("probe-prometheus"), {}, [])
    try:
        yield server
    finally:
        server.stop()


def _probe_dashboard() -> dict:
    """Two rows: a stat with data, then two panel types without a renderer and a series nothing exports."""
    def at(x: int, y: int, w: int = 8, h: int = 6) -> dict:
        return {"x": x, "y": y, "w": w, "h": h}

    return {
        "uid": "game-analytics-probe", "title": "Game analytics / Probe", "templating": {"list": []},
        "panels": [
            {"type": "row", "title": "Data", "collapsed": False, "panels": [], "gridPos": at(0, 0, 24, 1)},
            {"type": "stat", "title": "One", "targets": [{"refId": "A", "expr": "vector(1)", "instant": True}],
             "gridPos": at(0, 1)},
            {"type": "row", "title": "Probe", "collapsed": False, "panels": [], "gridPos": at(0, 7, 24, 1)},
            {"type": "text", "title": "Read me", "options": {"content": "hello"}, "gridPos": at(0, 8)},
            {"type": "piechart", "title": "Share by game", "targets": [{"refId": "A", "expr": "vector(2)"}],
             "gridPos": at(8, 8)},
            {"type": "timeseries", "title": "Nothing exported", "fieldConfig": {"defaults": {"unit": "s"}},
             "targets": [{"refId": "A", "expr": "game_analytics_no_such_metric"}], "gridPos": at(16, 8)},
        ],
    }  # fmt: skip


def test_unrendered_types_are_listed_and_empty_panels_counted(prometheus, tmp_path, monkeypatch):
    monkeypatch.setitem(dashboards.DASHBOARDS, "probe", _probe_dashboard)
    argv = ["run", "--type", "dashboard", "--dashboard", "game-analytics-probe", "--prometheus", prometheus.url,
            "--format", "html", "--format", "pdf", "--format", "json", "--lookback", "2m", "--scrape-interval", "1s",
            "--output", str(tmp_path)]  # fmt: skip
    assert report_cli.cli_main(argv) == 0  # no query failed
    (html,) = tmp_path.glob("probe-dashboard-*.html")
    doc = json.loads(html.with_suffix(".json").read_text())
    status = {p["panel"]: (p["status"], p["detail"]) for p in doc["tables"]["panels"]}
    assert status == {"One": ("ok", ""), "Read me": ("unsupported", "panel type 'text'"),
                      "Share by game": ("unsupported", "panel type 'piechart'"), "Nothing exported": ("no data", "")}
    figures = {f["key"]: f["value"] for f in doc["figures"]}
    assert (figures["panels"], figures["panels_with_data"], figures["panels_no_data"], figures["panels_failed"],
            figures["panels_not_rendered"], figures["rows"]) == (4, 1, 1, 0, 2, 2)  # fmt: skip
    assert "Not rendered (panel type): Read me (text); Share by game (piechart)" in doc["notes"]
    assert "No data in this range (1): Nothing exported" in doc["notes"]
    assert [v["shown"] for v in doc["tables"]["values"]] == ["1"]
    page = html.read_text()
    assert len(re.findall(r'src="data:image/png;base64,', page)) == len(dashboard_rows(_probe_dashboard())) == 2
    assert "Not rendered (panel type): Read me (text); Share by game (piechart)" in page
    texts = [" ".join(p.extract_text().split()) for p in PdfReader(html.with_suffix(".pdf")).pages]
    (probe,) = [t for t in texts if "is not rendered in reports" in t]  # messages wrap inside the panel
    assert "Read me" in probe and "panel type 'text' is not rendered in reports" in probe
    assert "Share by game" in probe and "panel type 'piechart' is not rendered in reports" in probe
    assert "Nothing exported" in probe and "no data" in probe
