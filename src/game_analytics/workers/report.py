"""The report worker: renders ScheduledReport runs and delivers them; also ``game-analytics report run``.

Two entry points:

* :func:`main` is the CronJob's container command (``game-analytics worker report --config
  /etc/game-analytics/report.json``).  It reads the report document rendered by the operator
  (:func:`game_analytics.controller.scheduledreport.render.report_document`: the ScheduledReport spec in camelCase plus
  ``name`` and ``namespace``), builds every report type of the spec over ``timeRange.lookback`` ending now, writes
  the formats into ``--output-dir``, delivers them, records each report type in ``report_runs`` and exits non-zero
  when any report or any delivery failed, so that the Job fails and Kubernetes' CronJob history shows it.
  Secrets come from the environment: ``GAME_ANALYTICS_REPORT_WEBHOOK_URL`` and
  ``GAME_ANALYTICS_REPORT_SMTP_PASSWORD``; the database from ``GAME_ANALYTICS_DSN`` (or ``--dsn``).
* :func:`game_analytics.workers.report_cli.cli_main` runs one report by hand: ``game-analytics report run --type playerActivity --format html
  [--format csv] [--from 1997-01-01 --to 1998-07-01 | --as-of latest [--lookback 30d]] [--output DIR]
  [--dsn URL]`` and prints the artefact paths; ``game-analytics report history`` lists recent runs.

Exit codes: 0 success, 1 a report or a delivery failed (recorded as failed), 2 bad flags, config or environment.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError
from rich.progress import Progress
from sqlalchemy import Engine
from sqlalchemy.exc import ArgumentError

from ..api.scheduledreport import (
    EmailDelivery,
    FunnelReport,
    ReportFilters,
    ReportFormat,
    ReportType,
    ScheduledReportSpec,
    WebhookStyle,
)
from ..console import EXIT_USAGE, UsageError
from ..reports.builders import build_report
from ..reports.dashboard.preview import DashboardTarget, dashboard_target
from ..reports.delivery import RetryPolicy, RunSummary, deliver_channels
from ..reports.funnel import funnel_result
from ..reports.history import (
    FAILED,
    SENT,
    SUCCEEDED,
    delivered_channels,
    finish_run,
    record_parameters,
    start_run,
)
from ..reports.model import ReportPeriod, validate_filters
from ..reports.render import write_report
from ..settings import ENV_PREFIX
from ..storage import derived
from ..storage.engine import make_engine
from . import runtime
from .jobs import job_name

__all__ = ["ENV_SMTP_PASSWORD", "ENV_WEBHOOK_URL", "RunConfig", "RunResult", "engine_for", "load_report_document", "main",
           "parse_time", "run_reports"]

log = logging.getLogger(__name__)

ENV_WEBHOOK_URL = f"{ENV_PREFIX}REPORT_WEBHOOK_URL"
ENV_SMTP_PASSWORD = f"{ENV_PREFIX}REPORT_SMTP_PASSWORD"
DEFAULT_CONFIG = "/etc/game-analytics/report.json"
DEFAULT_OUTPUT = "/tmp/reports"


@dataclass
class RunConfig:
    """Everything one run needs.

    Attributes:
        name, namespace: the ScheduledReport (``cli`` for hand-made runs), recorded in ``report_runs``.
        reports: report types, built in this order.
        period: the period every report covers.
        filters: filters bound into every query.
        formats: output formats; one file per report and format.
        output_dir: where files are written.
        webhook: ``(url, style)``, or None; a configured webhook whose URL is missing is ``("", style)`` and fails
            the delivery (never skipped silently).
        email: email delivery, or None.
        smtp_password: SMTP password from the environment.
        funnel: what the ``funnel`` report type measures (``spec.funnel``; required when it is in ``reports``).
        retry: webhook retry policy.
        schedule: ``(cron expression, time zone)`` of the ScheduledReport, recorded so that the exporter can tell
            a missed schedule; None for hand-made runs.
        dashboard: what the ``dashboard`` report type renders (required when it is in ``reports``).
        run_key: what identifies this scheduled run across retries of its Job (the Job name,
            :func:`game_analytics.workers.jobs.job_name`): a channel that delivered an earlier attempt of the
            same key is not sent to again.  None (hand-made runs): every channel is sent to.
    """

    name: str
    namespace: str
    reports: list[ReportType]
    period: ReportPeriod
    filters: ReportFilters
    formats: list[ReportFormat]
    output_dir: Path
    webhook: tuple[str, WebhookStyle] | None = None
    email: EmailDelivery | None = None
    smtp_password: str | None = None
    funnel: FunnelReport | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    schedule: tuple[str, str] | None = None
    run_key: str | None = None
    dashboard: DashboardTarget | None = None

    def parameters(self) -> dict[str, object]:
        """The run parameters stored in ``report_runs.parameters`` (no secrets)."""
        return {
            "period": {"start": self.period.start.isoformat(), "end": self.period.end.isoformat()},
            "filters": self.filters.to_api(),
            "formats": [f.value for f in self.formats],
            "delivery": {"webhook": self.webhook[1].value if self.webhook else None,
                         "email": list(self.email.to) if self.email else None},
            **({"schedule": self.schedule[0], "timeZone": self.schedule[1]} if self.schedule else {}),
            **({"runKey": self.run_key} if self.run_key else {}),
            **({"dashboard": {"uid": self.dashboard.uid, "variables": self.dashboard.variables}}
               if self.dashboard else {}),
        }  # fmt: skip


@dataclass
class RunResult:
    """Outcome of :func:`run_reports`: the summary (reports, failures, artefacts), delivery errors, run ids."""

    summary: RunSummary
    delivery_errors: list[str]
    run_ids: dict[str, int]

    @property
    def ok(self) -> bool:
        return self.summary.ok and not self.delivery_errors

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


def run_reports(engine: Engine, config: RunConfig, *, now: datetime | None = None,
                progress: Progress | None = None) -> RunResult:  # fmt: skip
    """Build, write, deliver and record every report of ``config``.

    Each report type gets a ``report_runs`` row before it is built (a funnel's step results go into its
    ``parameters.funnel``, which the exporter publishes).  A report that fails is recorded as failed at
    once and the others still run; delivery then reports the successes and the failures, and when delivery fails
    every report of the run is recorded as failed with the delivery error.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the run history cannot be written (database down).
    """
    summary = RunSummary(config.name, config.namespace)
    pending: list[tuple[int, list[Path], dict[str, object]]] = []  # run id, artefacts, results to record
    run_ids: dict[str, int] = {}
    params = config.parameters()
    derived.catch_up_engine(engine)  # matches and players are derived from events: fold in the new ones
    for rtype in config.reports:
        run_id = start_run(engine, name=config.name, namespace=config.namespace, report_type=rtype.value,
                           parameters=params)  # fmt: skip
        run_ids[rtype.value] = run_id
        task = progress.add_task(f"{rtype.value}", total=None) if progress else None
        try:
            report = (build_report(engine, rtype, config.period, config.filters, now, funnel=config.funnel)
                      if rtype is not ReportType.DASHBOARD else _dashboard_report(engine, config, now))
            paths = write_report(report, config.formats, config.output_dir, prefix=f"{config.name}-")
        except Exception as exc:  # noqa: BLE001 - any failure of one report is recorded and fails the run
            log.exception("report %s failed", rtype.value)
            error = f"{type(exc).__name__}: {exc}"
            summary.failures[rtype.value] = error
            finish_run(engine, run_id, outcome=FAILED, error=error)
        else:
            summary.reports.append(report)
            summary.artifacts += paths
            result = funnel_result(report)  # the exporter publishes a funnel run's steps from its row
            pending.append((run_id, paths, {} if result is None else {"funnel": result}))
        finally:
            if progress is not None and task is not None:
                progress.update(task, total=1, completed=1)

    delivery_errors, channels, outcomes = _deliver(engine, config, summary)
    if channels:
        params = {**params, "delivery": {**params["delivery"], "channels": channels}}  # type: ignore[dict-item]
        for run_id in run_ids.values():  # failed reports too: their row carries the run's delivery record
            if all(run_id != pending_id for pending_id, _, _ in pending):
                record_parameters(engine, run_id, params)
    for run_id, paths, results in pending:
        size = sum(p.stat().st_size for p in paths)
        run_params = {**params, **results, "artifacts": [str(p) for p in paths]}
        if delivery_errors:
            finish_run(engine, run_id, outcome=FAILED, artifact_bytes=size, parameters=run_params,
                       error="delivery failed: " + "; ".join(delivery_errors))  # fmt: skip
        else:
            finish_run(engine, run_id, outcome=SUCCEEDED, artifact_bytes=size, parameters=run_params)
    result = RunResult(summary, delivery_errors, run_ids)
    _audit(engine, config, result, channels, outcomes)
    return result


def _dashboard_report(engine: Engine, config: RunConfig, now: datetime | None):  # type: ignore[no-untyped-def]
    from ..reports.dashboard import build_dashboard_report

    if config.dashboard is None:
        raise ValueError("report type dashboard needs spec.dashboard")
    return build_dashboard_report(config.dashboard, config.period, engine=engine, now=now)


#: Audit actor of the report runs and deliveries (source ``worker`` for scheduled runs, ``cli`` by hand).
REPORT_ACTOR = "report-worker"


def _audit(engine: Engine, config: RunConfig, result: RunResult, channels: dict[str, str],
           errors: dict[str, str | None]) -> None:  # fmt: skip
    """One ``report.run`` entry for the run and one ``report.delivery`` per channel (target
    ``ScheduledReport/<ns>/<name>``), appended in one transaction after the run is recorded."""
    from ..audit import append_entry

    target = f"ScheduledReport/{config.namespace}/{config.name}"
    context = {"run_key": config.run_key, "run_ids": result.run_ids}
    source = "worker" if config.schedule else "cli"
    run = {"outcome": SUCCEEDED if result.ok else FAILED, "reports": list(result.run_ids),
           "failures": result.summary.failures, "artifacts": len(result.summary.artifacts),
           "period": config.parameters()["period"]}  # fmt: skip
    with engine.begin() as conn:
        append_entry(conn, REPORT_ACTOR, "report.run", target, None, run, source=source, context=context)
        for channel, state in sorted(channels.items()):
            after = {"channel": channel, "outcome": state, "error": errors.get(channel)}
            if channel not in errors and state == SENT:
                after["outcome"] = "already-sent"  # an earlier attempt of this run key delivered it
            append_entry(conn, REPORT_ACTOR, "report.delivery", target, None, after, source=source, context=context)


def _deliver(engine: Engine, config: RunConfig,
             summary: RunSummary) -> tuple[list[str], dict[str, str], dict[str, str | None]]:  # fmt: skip
    """Deliver to every configured channel that has not delivered this run already (``config.run_key``).

    Returns:
        the delivery errors, the per-channel record (``{"webhook": "sent" | "failed", ...}``) to store, and the
        error (None = sent) of each channel attempted now.
    """
    if config.webhook is None and config.email is None:
        return [], {}, {}
    done = (delivered_channels(engine, name=config.name, namespace=config.namespace, run_key=config.run_key)
            if config.run_key else set())  # fmt: skip
    errors: list[str] = []
    webhook = config.webhook
    if webhook is not None and not webhook[0] and "webhook" not in done:
        errors.append(f"webhook configured but {ENV_WEBHOOK_URL} is not set")
        webhook = None
    outcomes = deliver_channels(summary, webhook=webhook, email=config.email, smtp_password=config.smtp_password,
                                policy=config.retry, skip=done)  # fmt: skip
    for channel in sorted(done):
        log.info("channel %s already delivered run %s: not sent again", channel, config.run_key)
    errors += [error for error in outcomes.values() if error is not None]
    channels = {ch: SENT for ch in done} | {ch: SENT if err is None else FAILED for ch, err in outcomes.items()}
    if config.webhook is not None and "webhook" not in channels:
        channels["webhook"] = FAILED  # configured without its URL
        outcomes = {**outcomes, "webhook": f"webhook configured but {ENV_WEBHOOK_URL} is not set"}
    return errors, channels, outcomes


# --------------------------------------------------------------------------------------------- helpers


def parse_time(value: str, flag: str) -> datetime:
    """ISO 8601 date or datetime as an aware UTC datetime; naive values are UTC.

    Raises:
        UsageError: not ISO 8601, naming ``flag``.
    """
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{flag}: {value!r} is not an ISO 8601 date or datetime (e.g. 1997-01-01)") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def engine_for(dsn: str | None) -> Engine:
    """The engine for ``dsn``.

    Raises:
        UsageError: no DSN, or not a database URL.
    """
    if not dsn:
        raise UsageError(f"no database: pass --dsn or set {ENV_PREFIX}DSN")
    try:
        return make_engine(dsn)
    except ArgumentError as exc:
        raise UsageError(f"--dsn / {ENV_PREFIX}DSN: not a database URL ({exc})") from None


def load_report_document(path: Path) -> tuple[str, str, ScheduledReportSpec]:
    """Read a ``report.json`` document: ``(name, namespace, spec)``.

    Raises:
        UsageError: unreadable file, invalid JSON, or a spec that does not validate (naming the file and field).
    """
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise UsageError(f"--config {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"--config {path}: invalid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise UsageError(f"--config {path}: expected a JSON object")
    name, namespace = document.pop("name", None), document.pop("namespace", None)
    if not name or not namespace:
        raise UsageError(f"--config {path}: 'name' and 'namespace' are required")
    try:
        spec = ScheduledReportSpec.model_validate(document)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"--config {path}: {where}: {first['msg']}") from None
    return str(name), str(namespace), spec


# --------------------------------------------------------------------------------------------- CronJob worker


def _worker_parser() -> argparse.ArgumentParser:
    return runtime.parser("report", "Render a ScheduledReport run, deliver it and record it.")


def main(argv: Sequence[str] | None = None) -> int:
    """CronJob entry point (see the module docstring); returns the exit code: 0, 1 (a report or a delivery
    failed) or 2 (usage: flags, settings or the --config document)."""
    parser = _worker_parser()
    _, settings = runtime.start(parser, argv, "report", need_dsn=False)
    try:
        name, namespace, spec = load_report_document(settings.config or Path(DEFAULT_CONFIG))
        now = parse_time(settings.now, "--now") if settings.now else datetime.now(UTC)
        filters = validate_filters(spec.filters)
        webhook = None
        if spec.delivery.webhook is not None:
            webhook = (settings.report_webhook_url or "", spec.delivery.webhook.style)
        config = RunConfig(
            dashboard=dashboard_target(spec.dashboard), name=name, namespace=namespace, reports=list(spec.reports),
            period=ReportPeriod.lookback(now, spec.time_range.lookback), filters=filters, funnel=spec.funnel,
            formats=list(spec.formats), output_dir=settings.output_dir, webhook=webhook, email=spec.delivery.email,
            smtp_password=settings.report_smtp_password, schedule=(spec.schedule, spec.time_zone),
            run_key=settings.run_key or job_name(),
        )  # fmt: skip
        engine = engine_for(settings.dsn)
    except (UsageError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    port = settings.port(default=0)
    server = runtime.serve(port, addr=settings.listen) if port else None
    started = time.monotonic()
    try:
        result = run_reports(engine, config, now=now)
    finally:
        engine.dispose()
        if server is not None:
            server.shutdown()
    for path in result.summary.artifacts:
        log.info("wrote %s (%d bytes)", path, path.stat().st_size)
    for kind, error in result.summary.failures.items():
        log.error("report %s failed: %s", kind, error)
    for error in result.delivery_errors:
        log.error("delivery failed: %s", error)
    log.info("run %s/%s %s in %.2f s", namespace, name, "succeeded" if result.ok else "FAILED",
             time.monotonic() - started)  # fmt: skip
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
