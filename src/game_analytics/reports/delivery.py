"""Deliver finished reports: a webhook (Slack, Discord or generic JSON) and/or an email with the files attached.

Webhooks are posted with httpx; a POST is retried with exponential backoff (``backoff * 2**k`` seconds) on
transport errors, timeouts, 5xx and 429 (Too Many Requests) responses, but not on other 4xx responses (the request
itself is wrong: retrying cannot help).  A 429 or 503 with ``Retry-After`` (delay-seconds or an HTTP-date) waits
at least that long before the next attempt; a wait beyond ``RetryPolicy.max_wait_seconds`` ends the attempts at
once (the next run of the Job retries that channel: see :mod:`game_analytics.workers.report`).  Email goes through :mod:`smtplib`, upgraded with STARTTLS when configured (implicit TLS on port 465).
Every failure raises :class:`DeliveryError` with a message naming the channel and the last status or error, so the
worker can record it and fail the run.

Payload shapes (pure functions, tested on their own):

* Slack incoming webhook: ``{"text": <fallback>, "blocks": [header, section per report with fields, context]}``
  (Block Kit; at most 10 fields per section);
* Discord webhook: ``{"content": <one line>, "embeds": [{"title", "description", "fields", "timestamp"}]}``
  (at most 10 embeds, 25 fields each);
* generic: ``{"event": "report.finished", "report": ..., "namespace": ..., "ok": bool, "reports": [{"type",
  "title", "period", "figures": {key: value}, "notes"}], "failures": {type: error}, "artifacts": [{"name",
  "bytes", "sha256"}]}``.

Webhooks receive the key figures and the artefact names, not the files (incoming webhooks accept no uploads).
"""

from __future__ import annotations

import hashlib
import mimetypes
import smtplib
import ssl
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx

from ..api.scheduledreport import EmailDelivery, WebhookStyle
from .model import Report

__all__ = [
    "DeliveryError",
    "RetryPolicy",
    "RunSummary",
    "CHANNELS",
    "build_email",
    "deliver_channels",
    "discord_payload",
    "generic_payload",
    "post_webhook",
    "retry_after_seconds",
    "send_email",
    "slack_payload",
    "webhook_payload",
]


class DeliveryError(RuntimeError):
    """A delivery channel failed for good (after retries where they apply)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Webhook timeouts and retries.

    Attributes:
        attempts: total POST attempts (>= 1).
        backoff_seconds: delay before the first retry; doubled before each further retry.
        timeout_seconds: connect/read/write timeout of one attempt.
        max_wait_seconds: the longest ``Retry-After`` honoured; a server asking for more ends the attempts.
    """

    attempts: int = 4
    backoff_seconds: float = 1.0
    timeout_seconds: float = 10.0
    max_wait_seconds: float = 120.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff_seconds < 0 or self.timeout_seconds <= 0 or self.max_wait_seconds < 0:
            raise ValueError("need attempts >= 1, backoff_seconds >= 0, timeout_seconds > 0, max_wait_seconds >= 0")


#: Statuses worth retrying besides 5xx; 429 and 503 may say when in ``Retry-After``.
_RETRY_STATUSES = frozenset({429})
_RETRY_AFTER_STATUSES = frozenset({429, 503})


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds (``"120"``) or an HTTP-date (``"Wed, 21 Oct
    2026 07:28:00 GMT"``, relative to ``now``, default the current time; a past date is 0).  None when absent or
    unparseable."""
    if value is None or not (value := value.strip()):
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


@dataclass
class RunSummary:
    """What one worker run produced, for the messages: the reports, failures by report type, and artefacts."""

    name: str
    namespace: str
    reports: list[Report] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    artifacts: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def headline(self) -> str:
        """One line: ``game-analytics report ns/name: playerActivity, retention (1997-01-01 – ...)``."""
        kinds = ", ".join(r.report_type.value for r in self.reports) or "no report"
        period = f" ({self.reports[0].period.label()})" if self.reports else ""
        failed = f"; FAILED: {', '.join(self.failures)}" if self.failures else ""
        return f"game-analytics report {self.namespace}/{self.name}: {kinds}{period}{failed}"


def _figure_lines(report: Report, limit: int) -> list[tuple[str, str]]:
    return [(f.label, f.formatted()) for f in report.figures[:limit]]


def slack_payload(summary: RunSummary) -> dict[str, Any]:
    """Slack Block Kit message (see the module docstring)."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"Report {summary.name}"[:150]}},
    ]
    for report in summary.reports[:10]:
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                   "text": f"*{report.title}* · {report.period.label()}"}})  # fmt: skip
        fields = [{"type": "mrkdwn", "text": f"*{label}*\n{value}"} for label, value in _figure_lines(report, 10)]
        if fields:
            blocks.append({"type": "section", "fields": fields})
    for kind, error in summary.failures.items():
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f":x: *{kind} failed*: {error[:500]}"}})
    if summary.artifacts:
        names = ", ".join(p.name for p in summary.artifacts)
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"Files: {names}"[:2000]}]})
    return {"text": summary.headline(), "blocks": blocks}


def discord_payload(summary: RunSummary) -> dict[str, Any]:
    """Discord webhook message (see the module docstring)."""
    embeds = []
    for report in summary.reports[:9]:
        embeds.append({
            "title": report.title[:256],
            "description": report.period.label(),
            "fields": [{"name": label[:256], "value": value[:1024], "inline": True}
                       for label, value in _figure_lines(report, 25)],
            "timestamp": report.generated_at.isoformat(),
            "color": 0x2F6DB5,
        })  # fmt: skip
    if summary.failures:
        embeds.append({"title": "Failed reports", "color": 0xC0392B,
                       "description": "\n".join(f"{k}: {v}" for k, v in summary.failures.items())[:4096]})
    footer = f" Files: {', '.join(p.name for p in summary.artifacts)}" if summary.artifacts else ""
    return {"content": (summary.headline() + footer)[:2000], "embeds": embeds}


def generic_payload(summary: RunSummary) -> dict[str, Any]:
    """Generic JSON document (see the module docstring)."""
    from .render import _plain

    return {
        "event": "report.finished",
        "report": summary.name,
        "namespace": summary.namespace,
        "ok": summary.ok,
        "reports": [
            {"type": r.report_type.value, "title": r.title,
             "period": {"start": _plain(r.period.start), "end": _plain(r.period.end)},
             "figures": {f.key: _plain(f.value) for f in r.figures}, "notes": list(r.notes)}
            for r in summary.reports
        ],
        "failures": dict(summary.failures),
        "artifacts": [{"name": p.name, "bytes": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
                      for p in summary.artifacts],
    }  # fmt: skip


def webhook_payload(style: WebhookStyle | str, summary: RunSummary) -> dict[str, Any]:
    """The payload for ``style`` (``slack``, ``discord`` or ``generic``)."""
    builders: dict[WebhookStyle, Callable[[RunSummary], dict[str, Any]]] = {
        WebhookStyle.SLACK: slack_payload, WebhookStyle.DISCORD: discord_payload, WebhookStyle.GENERIC: generic_payload,
    }  # fmt: skip
    return builders[WebhookStyle(style)](summary)


def _redact(url: str) -> str:
    """Scheme, host and port only: webhook URLs carry their secret in the path."""
    u = httpx.URL(url)
    return f"{u.scheme}://{u.host}{f':{u.port}' if u.port else ''}/…"


def post_webhook(
    url: str, payload: dict[str, Any], policy: RetryPolicy = RetryPolicy(), *,
    sleep: Callable[[float], None] = time.sleep, client: httpx.Client | None = None,
) -> int:  # fmt: skip
    """POST ``payload`` as JSON to ``url``, retrying as described in the module docstring.

    Returns:
        The number of attempts used (1 = first try succeeded).

    Raises:
        DeliveryError: a 4xx response other than 429 (at once), a ``Retry-After`` longer than
            ``policy.max_wait_seconds`` (at once), or the last attempt ended in a 5xx or 429 response, timeout or
            transport error. The message names the (redacted) URL and the status or error.
        ValueError: ``url`` is not an http(s) URL.
    """
    if not url.startswith(("http://", "https://")):
        raise ValueError("webhook URL must start with http:// or https://")
    own = client is None
    client = client or httpx.Client(timeout=policy.timeout_seconds, follow_redirects=False)
    last = ""
    try:
        for attempt in range(1, policy.attempts + 1):
            try:
                response = client.post(url, json=payload)
            except httpx.TransportError as exc:  # includes timeouts and refused connections
                last = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if status < 300:
                    return attempt
                last = f"HTTP {status}: {response.text[:200]}"
                if status < 500 and status not in _RETRY_STATUSES:
                    raise DeliveryError(f"webhook {_redact(url)} rejected the report ({last}); not retried")
                if status in _RETRY_AFTER_STATUSES:
                    wait = retry_after_seconds(response.headers.get("Retry-After"))
                    if wait is not None and wait > policy.max_wait_seconds:
                        raise DeliveryError(f"webhook {_redact(url)} asked to retry after {wait:.0f} s ({last}), "
                                            f"more than {policy.max_wait_seconds:.0f} s; not retried now")  # fmt: skip
                    if wait is not None and attempt < policy.attempts:
                        sleep(max(wait, policy.backoff_seconds * 2 ** (attempt - 1)))
                        continue
            if attempt < policy.attempts:
                sleep(policy.backoff_seconds * 2 ** (attempt - 1))
    finally:
        if own:
            client.close()
    raise DeliveryError(f"webhook {_redact(url)} failed after {policy.attempts} attempts (last: {last})")


def build_email(config: EmailDelivery, summary: RunSummary) -> EmailMessage:
    """The email: subject = headline, plain-text body with the key figures, every artefact attached."""
    msg = EmailMessage()
    msg["Subject"] = summary.headline()
    msg["From"] = config.from_
    msg["To"] = ", ".join(config.to)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=config.from_.rpartition("@")[2] or None)
    lines = [summary.headline(), ""]
    for report in summary.reports:
        lines += [f"{report.title} — {report.period.label()}", *[f"  {k}: {v}" for k, v in _figure_lines(report, 50)]]
        lines += [f"  note: {n}" for n in report.notes] + [""]
    lines += [f"FAILED {k}: {v}" for k, v in summary.failures.items()]
    if summary.artifacts:
        lines += ["Attached: " + ", ".join(p.name for p in summary.artifacts)]
    msg.set_content("\n".join(lines))
    for path in summary.artifacts:
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        maintype, subtype = ctype.split("/", 1)
        msg.add_attachment(path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name)
    return msg


def send_email(
    config: EmailDelivery, message: EmailMessage, password: str | None = None, *, timeout: float = 30.0,
    ssl_context: ssl.SSLContext | None = None,
) -> None:  # fmt: skip
    """Send ``message`` through ``config.smtp``: STARTTLS when ``startTLS`` is set (implicit TLS on port 465),
    then LOGIN when a username is configured.

    Raises:
        DeliveryError: connection, TLS, authentication or refusal of any recipient, naming the server.
    """
    smtp = config.smtp
    where = f"SMTP {smtp.host}:{smtp.port}"
    if smtp.username and password is None:
        raise DeliveryError(f"{where}: username {smtp.username!r} is set but no password was given "
                            "(GAME_ANALYTICS_REPORT_SMTP_PASSWORD)")  # fmt: skip
    context = ssl_context or ssl.create_default_context()
    try:
        if smtp.port == 465:
            client: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=timeout)
        with client:
            client.ehlo()
            if smtp.starttls and smtp.port != 465:
                client.starttls(context=context)
                client.ehlo()
            if smtp.username:
                client.login(smtp.username, password or "")
            refused = client.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"{where}: {type(exc).__name__}: {exc}") from exc
    if refused:
        raise DeliveryError(f"{where} refused recipients: {', '.join(sorted(refused))}")


#: The delivery channels, as recorded per run (``report_runs.parameters.delivery.channels``).
CHANNELS = ("webhook", "email")


def deliver_channels(
    summary: RunSummary, *, webhook: tuple[str, WebhookStyle] | None, email: EmailDelivery | None,
    smtp_password: str | None, policy: RetryPolicy = RetryPolicy(), ssl_context: ssl.SSLContext | None = None,
    skip: Collection[str] = (),
) -> dict[str, str | None]:  # fmt: skip
    """Run every configured channel not in ``skip`` (each is tried even if another fails).

    Returns:
        ``{channel: None (delivered) or the error message}`` for the channels tried (names from :data:`CHANNELS`).
    """
    outcomes: dict[str, str | None] = {}
    if webhook is not None and "webhook" not in skip:
        try:
            post_webhook(webhook[0], webhook_payload(webhook[1], summary), policy)
            outcomes["webhook"] = None
        except (DeliveryError, ValueError) as exc:
            outcomes["webhook"] = str(exc)
    if email is not None and "email" not in skip:
        try:
            send_email(email, build_email(email, summary), smtp_password, ssl_context=ssl_context)
            outcomes["email"] = None
        except DeliveryError as exc:
            outcomes["email"] = str(exc)
    return outcomes
