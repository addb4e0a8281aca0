"""ScheduledReport: analytics reports rendered on a cron schedule and delivered by webhook or email."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from ..events import EVENT_TYPES
from .common import (
    PRINTABLE,
    TIME_ZONE_PATTERN,
    BaseStatus,
    CronSchedule,
    Duration,
    EmailAddress,
    GameName,
    LocalObjectReference,
    Model,
    SecretKeyRef,
    cel,
)


class ReportType(StrEnum):
    PLAYER_ACTIVITY = "playerActivity"
    ECONOMIC_HEALTH = "economicHealth"
    RETENTION = "retention"
    RANKINGS = "rankings"
    SECURITY = "security"
    DASHBOARD = "dashboard"
    FUNNEL = "funnel"


class ReportFormat(StrEnum):
    HTML = "html"
    CSV = "csv"
    JSON = "json"
    PDF = "pdf"


class WebhookStyle(StrEnum):
    SLACK = "slack"
    DISCORD = "discord"
    GENERIC = "generic"


class TimeRange(Model):
    """The period a report covers, ending at the run's start."""

    lookback: Duration = Field(default="7d", description="How far back the report looks, e.g. 24h, 7d, 30d.")


class DashboardReport(Model):
    """The dashboard a ``dashboard`` report renders, its variables and the Prometheus it queries (docs/reports.md).

    The time range is ``timeRange.lookback`` ending at the run's start; SQL panels query the GameDataSource's
    database.
    """

    uid: str = Field(pattern=r"^game-analytics-[a-z0-9-]+$", max_length=64,
                     description="uid of one of the product's dashboards, e.g. game-analytics-activity.")
    variables: dict[str, list[str]] = Field(
        default_factory=dict, max_length=20,
        description="Template variable values, e.g. {game: [cdnow]}; a variable not given keeps its default (All).",
    )
    prometheus_url: str = Field(
        default="http://prometheus-operated.monitoring.svc:9090", pattern=f"^https?://[{PRINTABLE}]+$", max_length=512,
        description="Base URL of the Prometheus the panels query (default: the prometheus-operated Service of "
                    "kube-prometheus-stack in namespace monitoring).",
    )  # fmt: skip
    scrape_interval: Duration = Field(
        default="30s", description="The data source's scrape interval: Grafana's minimum $__interval and the "
                                   "base of $__rate_interval.")  # fmt: skip


#: a payload field name of a funnel step filter (a JSON key, no path)
PAYLOAD_KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
PayloadKey = Annotated[str, Field(pattern=PAYLOAD_KEY_PATTERN, max_length=64)]
PayloadValue = Annotated[str, Field(max_length=256)]


class FunnelStep(Model):
    """One step of a funnel: an event of ``eventType`` whose payload holds every ``payload`` entry."""

    event_type: str = Field(pattern=f"^({'|'.join(EVENT_TYPES)})$", max_length=32,
                            description=f"Event type of the step: one of {', '.join(EVENT_TYPES)}.")
    payload: dict[PayloadKey, PayloadValue] = Field(
        default_factory=dict, max_length=10,
        description="Payload filter: each key is a payload field, its value the field's text (payload->>key), "
                    "e.g. {item_id: starter-pack}; all must match. Empty: any event of the type.",
    )  # fmt: skip
    name: str | None = Field(default=None, max_length=64, description="Label of the step in the report "
                             "(default: the event type and its filter).")  # fmt: skip

    def label(self) -> str:
        """The step's name, else ``event_type`` followed by its payload filter, e.g. ``purchase[item_id=a]``."""
        if self.name:
            return self.name
        where = ",".join(f"{k}={v}" for k, v in sorted(self.payload.items()))
        return f"{self.event_type}[{where}]" if where else self.event_type


class FunnelReport(Model):
    """The funnel a ``funnel`` report measures (docs/reports.md): ordered steps and a conversion window.

    A player enters at their first step-1 event in the report period and reaches step ``i`` with the first
    matching event after the one that reached step ``i - 1``, at most ``conversionWindow`` after entering.
    """

    steps: list[FunnelStep] = Field(min_length=2, max_length=10, description="The ordered steps (2 to 10).")
    conversion_window: Duration = Field(
        default="7d", description="Longest time from entering the funnel (step 1) to any later step, e.g. 1h, 7d, "
                                  "30d; not 0.")  # fmt: skip


class ReportFilters(Model):
    """Filters applied to every query of the report. Values are bound as SQL parameters, never pasted into SQL."""

    games: list[GameName] = Field(default_factory=list, max_length=50, description="Only these games (all when empty).")
    regions: list[str] = Field(default_factory=list, max_length=50, description="Only these regions (all when empty).")
    event_types: list[str] = Field(default_factory=list, max_length=50, description="Only these event types.")
    top_n: int = Field(default=10, ge=1, le=1000, description="Rows in top-N tables.")


class WebhookDelivery(Model):
    """A Slack-, Discord- or generic JSON webhook."""

    url_secret_ref: SecretKeyRef = Field(alias="urlSecretRef", description="Secret key holding the webhook URL.")
    style: WebhookStyle = Field(default=WebhookStyle.SLACK, description="Payload shape: slack, discord or generic JSON.")


class SMTPServer(Model):
    """An SMTP server."""

    host: str = Field(min_length=1, max_length=253, description="SMTP server host name.")
    port: int = Field(default=587, ge=1, le=65535, description="SMTP server port.")
    starttls: bool = Field(default=True, alias="startTLS", description="Upgrade the connection with STARTTLS.")
    username: str | None = Field(default=None, max_length=254, description="SMTP user name.")
    password_secret_ref: SecretKeyRef | None = Field(default=None, description="Secret key holding the SMTP password.")


class EmailDelivery(Model):
    """Email with the report files attached."""

    to: list[EmailAddress] = Field(min_length=1, max_length=50, description="Recipient addresses, e.g. leads@example.com.")
    from_: EmailAddress = Field(alias="from", description="Sender address, e.g. reports@example.com.")
    smtp: SMTPServer = Field(description="The SMTP server to send through.")


class Delivery(Model):
    """Where finished reports go. At least one of webhook or email should be set; with neither, reports are only stored."""

    webhook: WebhookDelivery | None = Field(default=None, description="Post a summary with a link or attachment to a webhook.")
    email: EmailDelivery | None = Field(default=None, description="Email the report files as attachments.")


class ScheduledReportSpec(Model):
    """Desired state of a ScheduledReport."""

    model_config = Model.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    "self.reports.all(r, self.reports.exists_one(s, s == r))",
                    "report types must not repeat",
                    ".reports",
                ),
                cel(
                    "!self.reports.exists(r, r == 'dashboard') || has(self.dashboard)",
                    "a dashboard report needs spec.dashboard (uid, variables, prometheusUrl)",
                    ".dashboard",
                ),
                cel(
                    "!self.reports.exists(r, r == 'funnel') || has(self.funnel)",
                    "a funnel report needs spec.funnel (steps, conversionWindow)",
                    ".funnel",
                ),
                cel(
                    "!has(self.funnel) || !has(self.funnel.conversionWindow) || "
                    "!(self.funnel.conversionWindow in ['', '0'])",
                    "the conversion window must be longer than 0",
                    ".funnel.conversionWindow",
                ),
            ]
        }
    }

    reports: list[ReportType] = Field(min_length=1, max_length=len(ReportType),
                                      description="Report types to render in each run.")
    schedule: CronSchedule = Field(description="Cron schedule, e.g. '0 6 * * 1'.")
    time_zone: str = Field(default="UTC", pattern=TIME_ZONE_PATTERN, max_length=64, description="IANA time zone of the schedule.")
    time_range: TimeRange = Field(default_factory=TimeRange, description="Period each report covers.")
    filters: ReportFilters = Field(default_factory=ReportFilters, description="Filters bound into every query.")
    formats: list[ReportFormat] = Field(
        default_factory=lambda: [ReportFormat.HTML], min_length=1, max_length=4,
        description="Output formats: html, csv (a zip of CSV files), json, pdf.",
    )
    delivery: Delivery = Field(default_factory=Delivery, description="Where finished reports are sent.")
    dashboard: DashboardReport | None = Field(default=None, description="What the dashboard report type renders.")
    funnel: FunnelReport | None = Field(default=None, description="What the funnel report type measures.")
    starting_deadline_seconds: int = Field(
        default=300, ge=10, le=86_400, description="A run that cannot start within this many seconds counts as missed."
    )
    successful_runs_history_limit: int = Field(default=3, ge=0, le=100, description="Finished Jobs to keep.")
    failed_runs_history_limit: int = Field(default=3, ge=0, le=100, description="Failed Jobs to keep.")
    data_source_ref: LocalObjectReference = Field(
        default_factory=lambda: LocalObjectReference(name="default"), description="The GameDataSource to report on."
    )
    suspend: bool = Field(default=False, description="Pause the schedule without deleting the report.")


class RunOutcome(StrEnum):
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class ScheduledReportStatus(BaseStatus):
    last_schedule_time: datetime | None = Field(default=None, description="When a run was last started.")
    last_successful_time: datetime | None = Field(default=None, description="When a run last succeeded.")
    last_outcome: RunOutcome | None = Field(default=None, description="Outcome of the last finished run.")
    consecutive_failures: int = Field(default=0, ge=0, description="Failed runs since the last success.")
