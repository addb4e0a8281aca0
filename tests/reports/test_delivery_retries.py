"""Delivery retries (issue 15): 429 is retryable, ``Retry-After`` (seconds or HTTP-date) is honoured on 429 and
503, and a retried Job sends only to the channels that failed (per-channel record in ``report_runs``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from game_analytics.api.scheduledreport import ScheduledReportSpec
from game_analytics.controller.common.render import Owner
from game_analytics.controller.scheduledreport.render import report_document
from game_analytics.reports.delivery import DeliveryError, RetryPolicy, post_webhook, retry_after_seconds
from game_analytics.storage.engine import make_engine, session_scope
from game_analytics.storage.models import ReportRun
from game_analytics.workers import report as worker
from game_analytics.workers.jobs import ENV_JOB_NAME, job_name, scheduled_time

from .servers import smtp_server, webhook_server

FAST = RetryPolicy(attempts=3, backoff_seconds=0.05, timeout_seconds=2.0, max_wait_seconds=30)


def test_retry_after_parses_seconds_and_http_dates() -> None:
    now = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
    assert retry_after_seconds("7", now) == 7.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90.0
    assert retry_after_seconds("Wed, 02 Dec 2026 05:00:00 GMT", now) == 0.0  # in the past
    assert retry_after_seconds(None, now) is None and retry_after_seconds("soon", now) is None


def test_429_is_retried_after_its_retry_after_seconds() -> None:
    """Defect: 429 was treated as permanent and Retry-After ignored."""
    sleeps: list[float] = []
    with webhook_server([429, 200], headers=[{"Retry-After": "3"}]) as hook:
        assert post_webhook(hook.url, {"content": "x"}, FAST, sleep=sleeps.append) == 2
    assert len(hook.received) == 2 and sleeps == [3.0]


def test_503_honours_an_http_date_retry_after() -> None:
    sleeps: list[float] = []
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=12), usegmt=True)
    with webhook_server([503, 200], headers=[{"Retry-After": when}]) as hook:
        assert post_webhook(hook.url, {"content": "x"}, FAST, sleep=sleeps.append) == 2
    assert len(sleeps) == 1 and 9.0 <= sleeps[0] <= 12.0


def test_429_without_retry_after_backs_off_and_fails_after_the_attempts() -> None:
    sleeps: list[float] = []
    with webhook_server([429]) as hook, pytest.raises(DeliveryError, match=r"after 3 attempts.*HTTP 429"):
        post_webhook(hook.url, {"content": "x"}, FAST, sleep=sleeps.append)
    assert len(hook.received) == 3 and sleeps == [0.05, 0.1]


def test_a_retry_after_beyond_the_limit_ends_the_attempts_at_once() -> None:
    sleeps: list[float] = []
    with webhook_server([429], headers=[{"Retry-After": "3600"}]) as hook, \
            pytest.raises(DeliveryError, match="retry after 3600 s"):  # fmt: skip
        post_webhook(hook.url, {"content": "x"}, FAST, sleep=sleeps.append)
    assert len(hook.received) == 1 and sleeps == []


def test_job_name_and_scheduled_time() -> None:
    assert job_name({ENV_JOB_NAME: "weekly-29000000"}, "ignored") == "weekly-29000000"
    assert job_name({}, "weekly-report-29412345-x7k2q") == "weekly-report-29412345"
    assert job_name({}, "vm") is None and job_name({}, "weekly-2941234-x7k2q") is None  # truncated minutes
    assert scheduled_time("weekly-report-29412345") == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(minutes=29412345)
    assert scheduled_time("manual-run") is None and scheduled_time(None) is None


# --- a retried Job -----------------------------------------------------------------------------------------------

SPEC = {"reports": ["playerActivity"], "schedule": "0 6 * * 1", "timeRange": {"lookback": "30d"},
        "formats": ["json"], "filters": {"games": ["cdnow"], "topN": 5},
        "delivery": {"webhook": {"urlSecretRef": {"name": "hooks", "key": "url"}, "style": "generic"}}}  # fmt: skip


def _config(tmp_path: Path, spec: dict, name: str) -> Path:
    owner = Owner(api_version="gameanalytics.io/v1alpha1", kind="ScheduledReport", name=name, namespace="games",
                  uid="1234")  # fmt: skip
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(report_document(owner, ScheduledReportSpec.model_validate(spec))))
    return path


def _channels(dsn: str, name: str) -> list[dict]:
    engine = make_engine(dsn)
    try:
        with session_scope(engine) as session:
            runs = session.scalars(select(ReportRun).where(ReportRun.report_name == name).order_by(ReportRun.id))
            return [r.parameters["delivery"].get("channels") for r in runs]
    finally:
        engine.dispose()


def test_a_retried_job_sends_only_to_the_channels_that_failed(tmp_path: Path, sample_dsn: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Defect: a retried Job re-sent the report to channels that had already succeeded."""
    monkeypatch.setenv(ENV_JOB_NAME, "retried-29412345")
    monkeypatch.setattr(worker, "RunConfig", _fast_retry(worker.RunConfig))
    with smtp_server() as box:
        spec = {**SPEC, "delivery": {**SPEC["delivery"], "email": {
            "to": ["ops@example.org"], "from": "reports@example.org",
            "smtp": {"host": box.host, "port": box.port, "startTLS": False}}}}  # fmt: skip
        config = _config(tmp_path, spec, "retried")
        argv = ["--config", str(config), "--dsn", sample_dsn, "--output-dir", str(tmp_path / "out"),
                "--now", "1997-04-01T00:00:00Z"]  # fmt: skip
        with webhook_server([500]) as down:  # first attempt: the webhook is down, email works
            monkeypatch.setenv(worker.ENV_WEBHOOK_URL, down.url)
            assert worker.main(argv) == 1
        assert len(down.received) == 2 and len(box.messages) == 1
        with webhook_server([200]) as up:  # the Job's retry: only the webhook again
            monkeypatch.setenv(worker.ENV_WEBHOOK_URL, up.url)
            assert worker.main(argv) == 0
            assert worker.main(argv) == 0  # and once more: nothing left to send
        assert len(up.received) == 1 and len(box.messages) == 1
        with webhook_server([200]) as hook:  # another scheduled run (another Job): every channel
            monkeypatch.setenv(worker.ENV_WEBHOOK_URL, hook.url)
            monkeypatch.setenv(ENV_JOB_NAME, "retried-29422425")
            assert worker.main(argv) == 0
        assert len(hook.received) == 1 and len(box.messages) == 2
    assert _channels(sample_dsn, "retried") == [
        {"webhook": "failed", "email": "sent"}, {"webhook": "sent", "email": "sent"},
        {"webhook": "sent", "email": "sent"}, {"webhook": "sent", "email": "sent"},
    ]


def _fast_retry(cls):  # type: ignore[no-untyped-def]
    def make(*args, **kwargs):  # type: ignore[no-untyped-def]
        kwargs["retry"] = RetryPolicy(attempts=2, backoff_seconds=0.01, timeout_seconds=2)
        return cls(*args, **kwargs)

    return make
