"""The ``dashboard`` report on a real stack: every shipped dashboard run against a real Prometheus and drawn.

One module-scoped stack: real data in a real PostgreSQL (a CDNOW subset, the Bundesliga matches since 2000 and a
Glicko-2 ranking over them, an injected wealth jump and the case it opens), then as real processes the exporter,
the ingest worker (real events and one malformed entry through a Redis stream) and the detection worker, plus the
operator's metrics after two reconciles, all scraped every second by a real Prometheus (Debian package).

Each dashboard is rendered through the CLI preview (``game-analytics report run --type dashboard``) as PDF and JSON:
no panel fails, every panel has data except those :data:`NO_DATA` names with the reason, three stat panels equal
the same PromQL run directly, and the PDF (read with pypdf) has a page or more per dashboard row. One page of each
is converted to PNG with pdftoppm (kept in ``$GA_PDF_OUT`` when set, to look at).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
import yaml
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics import MetricWrapperBase
from pypdf import PdfReader
from sqlalchemy import text

from devtools import REPO_ROOT as REPO
from devtools.alert_path import example_rule
from devtools.monitoring_stack import Prometheus
from devtools.waiting import free_port
from game_analytics.api.alertrule import AlertRuleSpec
from game_analytics.api.scheduledreport import FunnelReport, ReportFilters, ReportFormat, ReportType
from game_analytics.controller import metrics as operator_metrics
from game_analytics.controller.alertrule import render as alertrule
from game_analytics.controller.common.render import Owner
from game_analytics.data.events import match_events
from game_analytics.monitoring import dashboards
from game_analytics.reports import ReportPeriod
from game_analytics.reports.dashboard.build import dashboard_rows
from game_analytics.storage.engine import make_engine
from game_analytics.workers import report as worker
from game_analytics.workers import report_cli
from game_analytics.workers.load import copy_events, publish_events, to_event
from monitoring.test_live_scrape import (  # tests/ is on sys.path
    Worker,
    http_scrape,
    load_real_data,
    operator_exposition,
)

STREAM = "dashboard-report-events"
NAMESPACE = "games"

_NO_SESSIONS = "CDNOW and Bundesliga have no login/logout events, so no sessions"
_NO_REDIS = "no redis_exporter, mongodb_exporter or kube-state-metrics runs in this test"
#: panel titles per dashboard slug that may show "no data" here, with the reason
_NO_CHANGE = "a rate of a counter no process increments here (no errors): Grafana shows no data too"
_NO_STREAMING = ("the detection worker here runs without Alertmanager URLs, so its streaming path is off "
                 "(tests/monitoring/test_stream_alert_path.py covers it)")
NO_DATA: dict[str, dict[str, str]] = {
    "activity": {"Sessions started per second": _NO_SESSIONS, "Session length": _NO_SESSIONS,
                 "Classic retention": "no player is new in the trailing 30 days of the data, so D1/D7/D30 are "
                                      "undefined and the exporter leaves them out"},
    "economy": {"Inflation (day over day)": "compares with the price index a day earlier (offset 1d): "
                                            "Prometheus holds minutes of history here"},
    "rankings": {},
    "alerts": {},
    "interventions": {
        "Time to acknowledge": "no case is acknowledged in this test",
        "Time to resolve": "no case is resolved in this test",
        "Resolutions": "no case is resolved in this test",
    },
    "audit": {},
    "operator": {
        "Reconcile duration p99": "the quantile of a histogram rate: the reconciles may fall between steps",
        "Exporter query errors per second": _NO_CHANGE,
        "Rule evaluation errors per second": _NO_CHANGE,
        "Streaming path: alerts posted per second": _NO_STREAMING,
        "Streaming path: event to evaluation, p99": _NO_STREAMING,
    },
    "ml": {"Churn classifier ROC AUC": "the CDNOW subset's last 56 days give a single churn class, so the time "
                                       "split's AUC is undefined and the exporter leaves it out"},
    "security": {title: "the login events are replayed 1998 history, outside the report's 2-minute wall-clock "
                        "range (the SQL is checked in tests/monitoring/test_platform_dashboards.py)"
                 for title in ("Failed logins", "Players with the most failed logins")},
    "platform": {"Redis cache hit rate": _NO_REDIS},
    "topology": {title: _NO_REDIS for title in (
        "Ready Sentinels", "Roles", "Connected replicas", "Memory used", "Replication link up",
        "Commands per second", "Connected clients", "Healthy Sentinels per master", "mongod / mongos up",
        "Shard members up", "Chunks per shard")},
}


@pytest.fixture(scope="module")
def stack(postgres_server, _migrated_template, redis_server, tmp_path_factory) -> Iterator[dict]:
    """``{"prometheus": Prometheus, "dsn": str, "workdir": Path}`` with at least 20 s of scrapes of every target."""
    workdir = tmp_path_factory.mktemp("dashboard-report")
    dsn = postgres_server.create_database("ga_dashboard_report", template=_migrated_template)
    client = redis.Redis.from_url(redis_server.url)
    client.delete(STREAM)
    processes: list[Worker] = []
    servers: list = []
    prometheus = None
    engine = make_engine(dsn)
    try:
        matches = load_real_data(dsn, NAMESPACE)
        owner, spec = example_rule()
        children = {m["kind"]: m for m in alertrule.render(owner, spec)}
        rules = workdir / "rules"
        rules.mkdir()
        document = json.loads(children["ConfigMap"]["data"][alertrule.DETECTOR_CONFIG_KEY])
        (rules / "wealth.json").write_text(json.dumps(document))
        anomaly_doc = yaml.safe_load((REPO / "examples" / "alertrule-anomaly.yaml").read_text())
        anomaly_doc["spec"]["detector"]["anomalyScore"]["threshold"] = 0.55  # flag a few, for the distribution
        anomaly_doc["spec"]["channels"] = [c for c in anomaly_doc["spec"]["channels"] if "webhook" in c]
        anomaly_owner = Owner(anomaly_doc["apiVersion"], anomaly_doc["kind"], anomaly_doc["metadata"]["name"],
                              NAMESPACE, "uid-anomaly", 1)
        anomaly_children = {m["kind"]: m for m in alertrule.render(
            anomaly_owner, AlertRuleSpec.model_validate(anomaly_doc["spec"]))}
        (rules / "anomaly.json").write_text(anomaly_children["ConfigMap"]["data"][alertrule.DETECTOR_CONFIG_KEY])
        (rules / "invalid.json").write_text(json.dumps({**document, "rule": "games/bad", "detector": "nope"}))
        with engine.connect() as conn:
            latest = conn.execute(text("SELECT max(occurred_at) FROM events")).scalar_one()
            player = conn.execute(text(
                "SELECT player_id FROM events WHERE event_type = 'purchase' GROUP BY player_id "
                "HAVING sum((payload->>'amount')::numeric) BETWEEN 150 AND 400 ORDER BY player_id LIMIT 1")
            ).scalar_one()
        copy_events([{"event_id": str(uuid.uuid4()), "event_type": "purchase", "player_id": player, "game": "cdnow",
                      "occurred_at": (latest + timedelta(minutes=30)).isoformat(), "region": "US",
                      "payload": {"quantity": 1, "amount": 25_000.0, "currency": "USD"}}], dsn)

        with engine.begin() as conn:  # statement statistics for the platform dashboard
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
        logins = [{"event_id": str(uuid.uuid4()), "event_type": "login", "player_id": f"bruteforce-{i % 3}",
                   "game": "cdnow", "occurred_at": (latest + timedelta(minutes=i)).isoformat(), "region": "US",
                   "payload": {"success": i % 4 != 0}} for i in range(12)]
        copy_events(logins, dsn)
        # a funnel ScheduledReport run (first purchase -> a repeat within 90 days), for the funnel panels
        funnel = FunnelReport.model_validate({"steps": [{"eventType": "purchase"}, {"eventType": "purchase"}],
                                              "conversionWindow": "90d"})
        assert worker.run_reports(engine, worker.RunConfig(
            name="repeat-purchase", namespace=NAMESPACE, reports=[ReportType.FUNNEL],
            period=ReportPeriod(latest - timedelta(days=365), latest), filters=ReportFilters(),
            formats=[ReportFormat.JSON], output_dir=workdir / "funnel", funnel=funnel)).ok
        ports = {job: free_port() for job in ("ingest", "exporter", "detection", "operator")}
        processes.append(Worker("ingest", [
            "--redis-url", redis_server.url, "--dsn", dsn, "--stream", STREAM, "--group", "ingest",
            "--block-ms", "100", "--metrics-port", str(ports["ingest"])], workdir / "ingest.log"))
        extra = [to_event(e) for e in match_events(matches[matches["Year"] == 1999])][:50]
        publish_events([*extra, b"{not json"], redis_server.url, stream=STREAM)
        processes.append(Worker("detection", ["--dsn", dsn, "--rules-dir", str(rules), "--detection-interval-seconds", "5",
                                              "--as-of", "latest", "--model-dir", str(workdir / "models"),
                                              "--port", str(ports["detection"])], workdir / "detection.log"))
        processes.append(Worker("exporter", ["--dsn", dsn, "--as-of", "latest", "--ttl", "1", "--port",
                                             str(ports["exporter"]), "--listen", "127.0.0.1"],
                                workdir / "exporter.log",
                                env={"GAME_ANALYTICS_REDIS_URL": redis_server.url, "GAME_ANALYTICS_STREAM": STREAM}))
        operator_exposition()  # reconciles once (a success and a rejected apply) into the operator's collectors
        registry = CollectorRegistry()
        for collector in vars(operator_metrics).values():
            if isinstance(collector, MetricWrapperBase):
                registry.register(collector)
        servers.append(start_http_server(ports["operator"], addr="127.0.0.1", registry=registry))
        for job in ("ingest", "exporter", "detection"):
            http_scrape(ports[job], timeout=120)  # up, and the exporter's first refresh done
        prometheus = Prometheus(
            workdir / "prometheus", {job: [f"127.0.0.1:{port}"] for job, port in ports.items()}, [],
            target_labels={"namespace": NAMESPACE},
            job_labels={job: {"container": job, "pod": f"{job}-0"} for job in ports})
        def scraped(times: int) -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                counts = prometheus.query('count_over_time(up{namespace="games"}[1m])')
                if len(counts) == len(ports) and min(float(c["value"][1]) for c in counts) >= times:
                    return
                time.sleep(1)
            pytest.fail(f"Prometheus did not scrape every target {times} times: {counts}")

        scraped(8)
        # activity inside the scraped window, so that rates and histogram quantiles have data: more events
        # through the stream, and one more round of reconciles
        later = [to_event(e) for e in match_events(matches[matches["Year"] == 1998])][:50]
        publish_events(later, redis_server.url, stream=STREAM)
        operator_exposition()
        scraped(25)
        yield {"prometheus": prometheus, "dsn": dsn, "workdir": workdir}
    finally:
        if prometheus is not None:
            prometheus.stop()
        for server in servers:
            server[0].shutdown()
        for process in processes:
            process.stop()
        client.delete(STREAM)
        client.close()
        engine.dispose()
        postgres_server.drop_database("ga_dashboard_report")


@pytest.fixture(scope="module")
def rendered(stack, tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """``{slug: (pdf path, JSON document)}`` of every dashboard, rendered through the CLI preview."""
    out = Path(os.environ.get("GA_PDF_OUT") or tmp_path_factory.mktemp("dashboards"))
    result = {}
    for slug in dashboards.DASHBOARDS:
        argv = ["run", "--type", "dashboard", "--dashboard", f"game-analytics-{slug}", "--prometheus",
                stack["prometheus"].url, "--format", "pdf", "--format", "json", "--lookback", "2m",
                "--scrape-interval", "1s", "--dsn", stack["dsn"], "--output", str(out)]
        assert report_cli.cli_main(argv) in (0, 1)
        pdf = next(out.glob(f"{slug}-dashboard-*.pdf"))
        result[slug] = (pdf, json.loads(pdf.with_suffix(".json").read_text()))
    return result


@pytest.mark.parametrize("slug", list(dashboards.DASHBOARDS))
def test_every_dashboard_renders_without_panel_errors(rendered, slug):
    _, doc = rendered[slug]
    panels = doc["tables"]["panels"]
    failed = [(p["panel"], p["detail"]) for p in panels if p["status"] in ("error", "unsupported")]
    assert not failed, failed
    empty = {p["panel"] for p in panels if p["status"] == "no data"}
    unexplained = sorted(empty - set(NO_DATA[slug]))
    assert not unexplained, f"{slug}: panels without data and no reason named in NO_DATA: {unexplained}"
    counted = sum(p["status"] == "no data" for p in panels)  # a stat and a time series may share a title
    print(f"\n{slug}: {len(panels)} panels, {counted} no data: {sorted(empty)}")


def test_stat_panels_equal_the_same_promql(rendered, stack):
    """DAU, WAU and MAU as the report shows them equal the expression run directly at the report's end."""
    _, doc = rendered["activity"]
    end = doc["period"]["end"]
    model = dashboards.DASHBOARDS["activity"]()
    panels = {p["title"]: p for p in model["panels"]}
    values = {v["panel"]: v["value"] for v in doc["tables"]["values"]}
    for title in ("DAU", "WAU", "MAU"):
        expr = panels[title]["targets"][0]["expr"].replace("$namespace", ".*").replace("$game", ".*")
        url = f"{stack['prometheus'].url}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": end})
        with urllib.request.urlopen(url, timeout=10) as response:
            (sample,) = json.loads(response.read())["data"]["result"]
        assert values[title] == pytest.approx(float(sample["value"][1])), title
        assert values[title] > 0


@pytest.mark.parametrize("slug", list(dashboards.DASHBOARDS))
def test_pdf_has_a_page_per_dashboard_row(rendered, slug):
    pdf, doc = rendered[slug]
    reader = PdfReader(pdf)
    texts = [page.extract_text() for page in reader.pages]
    rows = dashboard_rows(dashboards.DASHBOARDS[slug]())
    assert len(reader.pages) >= 1 + len(rows)
    for title, _ in rows:
        assert any(title in t for t in texts[1:]), f"row {title!r} is on no page"
    assert doc["title"] in texts[0]


def test_pages_convert_to_png(rendered, tmp_path):
    assert shutil.which("pdftoppm"), "pdftoppm is not installed: make test installs poppler-utils"
    for slug, (pdf, _) in rendered.items():
        prefix = pdf.with_name(f"{slug}-page")
        subprocess.run(["pdftoppm", "-png", "-r", "70", "-f", "2", "-l", "2", str(pdf), str(prefix)], check=True)
        (png,) = pdf.parent.glob(f"{slug}-page*.png")
        assert png.stat().st_size > 10_000, png


def test_scheduled_dashboard_report_is_delivered_as_pdf(stack, tmp_path, monkeypatch):
    """The CronJob path: the operator's report.json of a ScheduledReport of type dashboard, rendered by the worker
    to PDF, e-mailed through a real SMTP server, announced to a real webhook (name, size and SHA-256 of the PDF, as
    of every format) and recorded in report_runs."""
    from game_analytics.api.scheduledreport import ScheduledReportSpec
    from game_analytics.controller.common.render import Owner
    from game_analytics.controller.scheduledreport.render import report_document

    from .servers import smtp_server, webhook_server

    with smtp_server() as box, webhook_server([200]) as hook:
        spec = ScheduledReportSpec.model_validate({
            "reports": ["dashboard"], "schedule": "0 6 * * 1", "timeRange": {"lookback": "2m"}, "formats": ["pdf"],
            "dashboard": {"uid": "game-analytics-rankings", "prometheusUrl": stack["prometheus"].url,
                          "scrapeInterval": "1s", "variables": {"namespace": [NAMESPACE]}},
            "delivery": {"email": {"to": ["ops@example.org"], "from": "reports@example.org",
                                   "smtp": {"host": box.host, "port": box.port, "startTLS": False}},
                         "webhook": {"urlSecretRef": {"name": "hooks", "key": "url"}, "style": "generic"}}})
        owner = Owner(api_version="gameanalytics.io/v1alpha1", kind="ScheduledReport", name="rankings-board",
                      namespace=NAMESPACE, uid="1234")
        document = report_document(owner, spec)
        assert document["dashboard"]["prometheusUrl"] == stack["prometheus"].url  # what the CronJob reads
        config = tmp_path / "report.json"
        config.write_text(json.dumps(document))
        monkeypatch.setenv("GAME_ANALYTICS_DSN", stack["dsn"])
        monkeypatch.setenv(worker.ENV_WEBHOOK_URL, hook.url)
        code = worker.main(["--config", str(config), "--output-dir", str(tmp_path / "out")])
    assert code == 0
    (pdf,) = (tmp_path / "out").glob("rankings-board-dashboard-*.pdf")
    _, _, msg = box.messages[0]
    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_content_type() == "application/pdf" and attachment.get_content() == pdf.read_bytes()
    (posted,) = hook.received
    assert posted["ok"] is True and posted["artifacts"] == [
        {"name": pdf.name, "bytes": pdf.stat().st_size, "sha256": hashlib.sha256(pdf.read_bytes()).hexdigest()}]
    assert posted["reports"][0]["figures"]["panels_failed"] == 0
    texts = [p.extract_text() for p in PdfReader(pdf).pages]
    assert "Game analytics / Rankings" in texts[0] and "namespace=games" in texts[1]
    engine = make_engine(stack["dsn"])
    try:
        with engine.connect() as conn:
            outcome, parameters = conn.execute(text(
                "SELECT outcome, parameters FROM report_runs WHERE report_name = 'rankings-board'")).one()
    finally:
        engine.dispose()
    assert outcome == "succeeded" and parameters["dashboard"]["uid"] == "game-analytics-rankings"

