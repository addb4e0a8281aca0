"""Webhook and email delivery against real loopback servers."""

from __future__ import annotations

import zipfile
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

import pandas as pd
import pytest

from game_analytics.api.scheduledreport import EmailDelivery, ReportFilters, ReportType
from game_analytics.reports.delivery import (
    DeliveryError,
    RetryPolicy,
    RunSummary,
    build_email,
    post_webhook,
    send_email,
    webhook_payload,
)
from game_analytics.reports.model import Figure, Report, ReportPeriod, Table

from .servers import smtp_server, webhook_server

FAST = RetryPolicy(attempts=3, backoff_seconds=0.05, timeout_seconds=2.0)


def _summary(tmp_path: Path) -> RunSummary:
    period = ReportPeriod(datetime(1997, 3, 1, tzinfo=UTC), datetime(1997, 4, 1, tzinfo=UTC))
    report = Report(ReportType.PLAYER_ACTIVITY, "Player activity", period, ReportFilters(),
                    datetime(2024, 1, 1, tzinfo=UTC),
                    figures=[Figure("active_players", "Active players", 9524, "players"),
                             Figure("churn_rate", "Churn rate", 12.5, "%")],
                    tables=[Table("t", "T", pd.DataFrame({"a": [1]}))])
    html = tmp_path / "weekly-playerActivity-19970401T000000Z.html"
    html.write_text("<html>report</html>")
    archive = tmp_path / "weekly-playerActivity-19970401T000000Z.zip"
    buf = BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("summary.csv", "key,label,value,unit\n")
    archive.write_bytes(buf.getvalue())
    return RunSummary("weekly", "games", [report], {}, [html, archive])


def test_payload_shapes(tmp_path: Path) -> None:
    summary = _summary(tmp_path)
    slack = webhook_payload("slack", summary)
    assert "games/weekly" in slack["text"] and slack["blocks"][0]["type"] == "header"
    fields = [f["text"] for b in slack["blocks"] if "fields" in b for f in b["fields"]]
    assert "*Active players*\n9,524 players" in fields
    discord = webhook_payload("discord", summary)
    assert discord["content"].startswith("game-analytics report games/weekly")
    assert {"name": "Churn rate", "value": "12.5 %", "inline": True} in discord["embeds"][0]["fields"]
    generic = webhook_payload("generic", summary)
    assert generic["ok"] is True and generic["reports"][0]["figures"]["active_players"] == 9524
    assert [a["name"] for a in generic["artifacts"]] == [p.name for p in summary.artifacts]


def test_webhook_arrives(tmp_path: Path) -> None:
    with webhook_server([200]) as hook:
        assert post_webhook(hook.url, webhook_payload("slack", _summary(tmp_path)), FAST) == 1
    assert len(hook.received) == 1 and hook.received[0]["blocks"][0]["type"] == "header"


def test_webhook_retries_5xx_then_succeeds(tmp_path: Path) -> None:
    sleeps: list[float] = []
    with webhook_server([500, 503, 200]) as hook:
        attempts = post_webhook(hook.url, {"content": "x"}, FAST, sleep=sleeps.append)
    assert attempts == 3 and len(hook.received) == 3
    assert sleeps == [0.05, 0.1]  # exponential backoff


def test_webhook_retries_a_timeout() -> None:
    with webhook_server([200], delays=[1.5]) as hook:
        attempts = post_webhook(hook.url, {"content": "x"}, RetryPolicy(3, 0.01, timeout_seconds=0.5))
    assert attempts == 2 and len(hook.received) == 2


def test_webhook_always_500_fails() -> None:
    with webhook_server([500]) as hook, pytest.raises(DeliveryError, match=r"failed after 3 attempts.*HTTP 500"):
        post_webhook(hook.url, {"content": "x"}, FAST)
    assert len(hook.received) == 3


def test_webhook_4xx_is_not_retried() -> None:
    with webhook_server([400]) as hook, pytest.raises(DeliveryError, match="not retried") as err:
        post_webhook(hook.url, {"content": "x"}, FAST)
    assert len(hook.received) == 1
    assert "secret-token" not in str(err.value)  # the URL's secret path is redacted


def test_webhook_connection_refused_fails() -> None:
    from devtools.waiting import free_port

    with pytest.raises(DeliveryError, match="ConnectError"):
        post_webhook(f"http://127.0.0.1:{free_port()}/x", {}, RetryPolicy(2, 0.01, 1.0))


def test_email_with_attachments(tmp_path: Path) -> None:
    summary = _summary(tmp_path)
    with smtp_server() as box:
        config = EmailDelivery.model_validate({"to": ["ops@example.org", "lead@example.org"],
                                               "from": "reports@example.org",
                                               "smtp": {"host": box.host, "port": box.port, "startTLS": False}})
        send_email(config, build_email(config, summary))
    assert len(box.messages) == 1
    sender, recipients, msg = box.messages[0]
    assert sender == "reports@example.org" and recipients == ["ops@example.org", "lead@example.org"]
    assert msg["Subject"].startswith("game-analytics report games/weekly: playerActivity")
    body = msg.get_body(("plain",)).get_content()
    assert "Active players: 9,524 players" in body
    attachments = {a.get_filename(): a.get_content() for a in msg.iter_attachments()}
    assert set(attachments) == {p.name for p in summary.artifacts}
    assert attachments[summary.artifacts[0].name] == "<html>report</html>"
    assert zipfile.ZipFile(BytesIO(attachments[summary.artifacts[1].name])).namelist() == ["summary.csv"]


def test_email_failure_is_a_delivery_error(tmp_path: Path) -> None:
    from devtools.waiting import free_port

    config = EmailDelivery.model_validate({"to": ["a@example.org"], "from": "r@example.org",
                                           "smtp": {"host": "127.0.0.1", "port": free_port(), "startTLS": False}})
    with pytest.raises(DeliveryError, match="SMTP 127.0.0.1"):
        send_email(config, build_email(config, _summary(tmp_path)), timeout=2)
    with pytest.raises(DeliveryError, match="no password"):
        config.smtp.username = "bot"
        send_email(config, build_email(config, _summary(tmp_path)))
