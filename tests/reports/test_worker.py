"""The CronJob worker and the CLI end to end: real PostgreSQL, real loopback webhook and SMTP servers."""

from __future__ import annotations

import base64
import json
import re
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import select, text

from game_analytics.api.scheduledreport import ScheduledReportSpec
from game_analytics.controller.common.render import Owner
from game_analytics.controller.scheduledreport.render import report_document
from game_analytics.storage.engine import make_engine, session_scope
from game_analytics.storage.models import ReportRun
from game_analytics.workers import report as worker
from game_analytics.workers import report_cli

from .servers import smtp_server, webhook_server


def _config(tmp_path: Path, spec: dict, name: str) -> Path:
    owner = Owner(api_version="gameanalytics.io/v1alpha1", kind="ScheduledReport", name=name, namespace="games",
                  uid="1234")
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(report_document(owner, ScheduledReportSpec.model_validate(spec))))
    return path


def _audit(dsn: str, name: str) -> list[tuple]:
    """(actor, action, source, after) of the audit entries of ScheduledReport games/<name>, in chain order."""
    engine = make_engine(dsn)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(
                "SELECT actor, action, source, after FROM audit_log WHERE object_ref = :ref ORDER BY seq"),
                {"ref": f"ScheduledReport/games/{name}"})]  # fmt: skip
    finally:
        engine.dispose()


def _runs(dsn: str, name: str) -> list[ReportRun]:
    engine = make_engine(dsn)
    try:
        with session_scope(engine) as session:
            return list(session.scalars(select(ReportRun).where(ReportRun.report_name == name).order_by(ReportRun.id)))
    finally:
        engine.dispose()


SPEC = {"reports": ["playerActivity", "economicHealth"], "schedule": "0 6 * * 1", "timeRange": {"lookback": "30d"},
        "formats": ["html", "csv", "json"], "filters": {"games": ["cdnow"], "topN": 5},
        "delivery": {"webhook": {"urlSecretRef": {"name": "hooks", "key": "url"}, "style": "discord"}}}


def test_worker_run_delivers_and_records(tmp_path: Path, sample_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with webhook_server([502, 200]) as hook, smtp_server() as box:
        spec = {**SPEC, "delivery": {**SPEC["delivery"], "email": {
            "to": ["ops@example.org"], "from": "reports@example.org",
            "smtp": {"host": box.host, "port": box.port, "startTLS": False}}}}
        monkeypatch.setenv(worker.ENV_WEBHOOK_URL, hook.url)
        monkeypatch.setenv("GAME_ANALYTICS_DSN", sample_dsn)
        monkeypatch.setattr(worker, "RunConfig", _fast_retry(worker.RunConfig))
        code = worker.main(["--config", str(_config(tmp_path, spec, "weekly")), "--output-dir", str(tmp_path / "out"),
                            "--now", "1997-04-01T00:00:00Z"])
    assert code == 0
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == sorted(f"weekly-{t}-19970401T000000Z.{s}" for t in ("playerActivity", "economicHealth")
                           for s in ("html", "zip", "json"))
    assert len(hook.received) == 2  # 502 then 200: retried once
    assert hook.received[-1]["embeds"][0]["title"] == "Player activity"
    _, _, msg = box.messages[0]
    assert sorted(a.get_filename() for a in msg.iter_attachments()) == files
    runs = _runs(sample_dsn, "weekly")
    assert [r.report_type for r in runs] == ["playerActivity", "economicHealth"]
    for r in runs:
        assert r.outcome == "succeeded" and r.namespace == "games" and r.error is None
        assert r.artifact_bytes == sum((tmp_path / "out" / Path(a).name).stat().st_size
                                       for a in r.parameters["artifacts"])
        assert r.parameters["period"] == {"start": "1997-03-02T00:00:00+00:00", "end": "1997-04-01T00:00:00+00:00"}
        assert r.parameters["filters"]["games"] == ["cdnow"] and r.duration_seconds > 0
    trail = _audit(sample_dsn, "weekly")  # one entry for the run, one per channel
    assert [(a, act, src) for a, act, src, _ in trail] == [("report-worker", "report.run", "worker")] + [
        ("report-worker", "report.delivery", "worker")] * 2
    assert trail[0][3]["outcome"] == "succeeded" and trail[0][3]["reports"] == ["playerActivity", "economicHealth"]
    assert [t[3] for t in trail[1:]] == [{"channel": "email", "outcome": "sent", "error": None},
                                         {"channel": "webhook", "outcome": "sent", "error": None}]
    document = json.loads((tmp_path / "out" / "weekly-playerActivity-19970401T000000Z.json").read_text())
    active = next(f["value"] for f in document["figures"] if f["key"] == "active_players")
    assert active > 0 and len(document["tables"]["top_performers"]) == 5
    archive = zipfile.ZipFile(tmp_path / "out" / "weekly-economicHealth-19970401T000000Z.zip")
    assert "summary.csv" in archive.namelist() and "top_spenders.csv" in archive.namelist()
    html = (tmp_path / "out" / "weekly-playerActivity-19970401T000000Z.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    # 4 activity charts + the KPI section's classic retention and new-vs-returning charts + the DAU forecast
    assert len(images) == 7 and all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert not re.search(r'(src|href)="(https?:)?//', html)  # self-contained


def test_failed_delivery_fails_the_run(tmp_path: Path, sample_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "RunConfig", _fast_retry(worker.RunConfig))
    with webhook_server([500]) as hook:
        monkeypatch.setenv(worker.ENV_WEBHOOK_URL, hook.url)
        code = worker.main(["--config", str(_config(tmp_path, SPEC, "failing")), "--dsn", sample_dsn,
                            "--output-dir", str(tmp_path / "out"), "--now", "1997-04-01"])
    assert code == 1 and len(hook.received) == 2
    runs = _runs(sample_dsn, "failing")
    assert len(runs) == 2 and all(r.outcome == "failed" and "HTTP 500" in r.error for r in runs)
    run, delivery = _audit(sample_dsn, "failing")
    assert run[1] == "report.run" and run[3]["outcome"] == "failed"
    assert delivery[1] == "report.delivery" and delivery[3]["outcome"] == "failed" and "HTTP 500" in delivery[3]["error"]


def test_missing_webhook_secret_fails_the_run(tmp_path: Path, sample_dsn: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(worker.ENV_WEBHOOK_URL, raising=False)
    code = worker.main(["--config", str(_config(tmp_path, SPEC, "nosecret")), "--dsn", sample_dsn,
                        "--output-dir", str(tmp_path / "out"), "--now", "1997-04-01"])
    assert code == 1
    assert all(r.outcome == "failed" and worker.ENV_WEBHOOK_URL in r.error for r in _runs(sample_dsn, "nosecret"))


def test_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"name": "x", "namespace": "y", "reports": ["bogus"], "schedule": "@daily"}))
    assert worker.main(["--config", str(path), "--dsn", "postgresql://u@127.0.0.1:1/db"]) == 2
    assert f"--config {path}: reports.0:" in capsys.readouterr().err
    assert worker.main(["--config", str(tmp_path / "missing.json")]) == 2


def test_cli_run_prints_paths(tmp_path: Path, sample_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = report_cli.cli_main(["run", "--type", "retention", "--type", "rankings", "--format", "json", "--format",
                            "csv", "--as-of", "latest", "--lookback", "90d", "--output", str(tmp_path),
                            "--dsn", sample_dsn])
    out = capsys.readouterr().out.split()
    assert code == 0
    assert out == [str(tmp_path / f"cli-{t}-19980701T000000Z.{s}") for t in ("retention", "rankings")
                   for s in ("json", "zip")]
    assert report_cli.cli_main(["run", "--type", "retention", "--from", "1998-01-01", "--dsn", sample_dsn]) == 2
    assert "--from and --to go together" in capsys.readouterr().err
    json_dir = tmp_path / "json"  # --output json lists them; --output-dir is the folder (docs/cli.md)
    assert report_cli.cli_main(["run", "--type", "retention", "--format", "csv", "--as-of", "latest", "--lookback",
                                "90d", "--output", "json", "--output-dir", str(json_dir), "--dsn", sample_dsn]) == 0
    assert json.loads(capsys.readouterr().out) == {"files": [str(json_dir / "cli-retention-19980701T000000Z.zip")]}


def _fast_retry(cls):  # type: ignore[no-untyped-def]
    from game_analytics.reports.delivery import RetryPolicy

    def make(*args, **kwargs):  # type: ignore[no-untyped-def]
        kwargs["retry"] = RetryPolicy(attempts=2, backoff_seconds=0.01, timeout_seconds=2)
        return cls(*args, **kwargs)

    return make
