"""``game-analytics report run|history``: run reports by hand and list recent runs.

``report run --type playerActivity --format html [--format csv] [--from 1997-01-01 --to 1998-07-01 | --as-of latest
[--lookback 30d]] [--output-dir DIR] [--output table|json] [--dsn URL]`` builds the reports with the ScheduledReport worker's
:func:`~game_analytics.workers.report.run_reports` and prints the artefact paths; ``report run --type dashboard``
is a local preview (:mod:`game_analytics.reports.dashboard.preview`); ``report history`` lists recent runs.

Exit codes: 0 success, 1 a report or a delivery failed (recorded as failed), 2 bad flags or environment.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ..api.scheduledreport import ReportFilters, ReportFormat, ReportType, WebhookStyle
from ..console import (
    EXIT_USAGE,
    UsageError,
    add_output_flags,
    dump_json,
    fail,
    output_and_folder,
    print_files,
)
from ..reports.dashboard.preview import preview_main
from ..reports.history import recent_runs
from ..reports.model import ReportPeriod, validate_filters
from ..settings import ENV_PREFIX, LOG_LEVELS, configure_logging, environment
from ..storage.queries import Filters, latest_event_time
from .report import DEFAULT_OUTPUT, RunConfig, engine_for, parse_time, run_reports

__all__ = ["cli_main"]


def _console_progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=False)  # fmt: skip


def _cli_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="game-analytics report", description="Run analytics reports by hand.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run one or more reports once and print the file paths")
    run.add_argument("--type", dest="types", action="append", required=True, choices=[t.value for t in ReportType],
                     help="report type (repeatable)")
    run.add_argument("--format", dest="formats", action="append", choices=[f.value for f in ReportFormat],
                     help="output format (repeatable; default: html)")
    run.add_argument("--from", dest="start", help="period start, ISO 8601 (inclusive; UTC if no offset)")
    run.add_argument("--to", dest="end", help="period end, ISO 8601 (exclusive; UTC if no offset)")
    run.add_argument("--as-of", help="period end: 'latest' (midnight UTC after the newest matching event) or ISO 8601")
    run.add_argument("--lookback", default="7d", help="period length with --as-of or without dates (default: 7d)")
    run.add_argument("--game", dest="games", action="append", default=[], help="only this game (repeatable)")
    run.add_argument("--region", dest="regions", action="append", default=[], help="only this region (repeatable)")
    run.add_argument("--event-type", dest="event_types", action="append", default=[],
                     help="only this event type (repeatable)")
    run.add_argument("--top-n", type=int, default=10, help="rows of top-N tables (1-1000, default: 10)")
    add_output_flags(run, DEFAULT_OUTPUT)
    run.add_argument("--dsn", help=f"database URL (default: ${ENV_PREFIX}DSN)")
    run.add_argument("--name", default="cli", help="name recorded in report_runs (default: cli)")
    run.add_argument("--namespace", default=None, help="namespace recorded in report_runs")
    run.add_argument("--webhook-url", help="also post the summary to this webhook")
    run.add_argument("--webhook-style", default="generic", choices=[s.value for s in WebhookStyle])
    run.add_argument("--log-level", default="warning", choices=LOG_LEVELS, type=str.lower)
    hist = sub.add_parser("history", help="list recent report runs")
    hist.add_argument("--dsn", help=f"database URL (default: ${ENV_PREFIX}DSN)")
    hist.add_argument("--name")
    hist.add_argument("--limit", type=int, default=20)
    hist.add_argument("--output", choices=["table", "json"], default="table", help="table (default) or json")
    return p  # fmt: skip


def _cli_period(args: argparse.Namespace, engine: Engine | None, filters: ReportFilters) -> ReportPeriod:
    if args.as_of and (args.start or args.end):
        raise UsageError("--as-of cannot be combined with --from/--to")
    if args.start or args.end:
        if not (args.start and args.end):
            raise UsageError("--from and --to go together")
        start, end = parse_time(args.start, "--from"), parse_time(args.end, "--to")
        if end <= start:
            raise UsageError(f"--to {args.end} must be after --from {args.start}")
        return ReportPeriod(start, end)
    if args.as_of == "latest":
        assert engine is not None
        latest = latest_event_time(engine, Filters.of(validate_filters(filters)))
        if latest is None:
            raise UsageError("--as-of latest: no event matches the filters")
        end = datetime(latest.year, latest.month, latest.day, tzinfo=UTC) + timedelta(days=1)
    elif args.as_of:
        end = parse_time(args.as_of, "--as-of")
    else:
        end = datetime.now(UTC)
    try:
        return ReportPeriod.lookback(end, args.lookback)
    except ValueError as exc:
        raise UsageError(f"--lookback: {exc}") from None


def _cli_run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    settings = environment(parser)
    try:
        filters = validate_filters(ReportFilters(games=args.games, regions=args.regions,
                                                 event_types=args.event_types, top_n=args.top_n))  # fmt: skip
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise UsageError(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}") from None
    if args.start or args.end or args.as_of not in (None, "latest"):
        _cli_period(args, None, filters)  # flag errors before connecting
    output, folder = output_and_folder(args, DEFAULT_OUTPUT)
    engine = engine_for(args.dsn or settings.dsn)
    try:
        period = _cli_period(args, engine, filters)
        config = RunConfig(
            name=args.name, namespace=args.namespace or settings.namespace,
            reports=list(dict.fromkeys(ReportType(t) for t in args.types)), period=period, filters=filters,
            formats=[ReportFormat(f) for f in (args.formats or ["html"])], output_dir=folder,
            webhook=(args.webhook_url, WebhookStyle(args.webhook_style)) if args.webhook_url else None,
        )  # fmt: skip
        with _console_progress() as progress:
            result = run_reports(engine, config, progress=progress)
    finally:
        engine.dispose()
    print_files(result.summary.artifacts, output)
    for kind, error in result.summary.failures.items():
        print(f"error: report {kind} failed: {error}", file=sys.stderr)
    for error in result.delivery_errors:
        print(f"error: delivery failed: {error}", file=sys.stderr)
    return result.exit_code


def _cli_history(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    engine = engine_for(args.dsn or environment(parser).dsn)
    try:
        runs = recent_runs(engine, name=args.name, limit=args.limit)
    finally:
        engine.dispose()
    if args.output == "json":
        print(dump_json([{"id": r.id, "started_at": r.started_at, "namespace": r.namespace, "name": r.report_name,
                          "type": r.report_type, "outcome": r.outcome, "duration_seconds": r.duration_seconds,
                          "artifact_bytes": r.artifact_bytes, "error": r.error} for r in runs]))  # fmt: skip
        return 0
    for r in runs:
        duration = "-" if r.duration_seconds is None else f"{r.duration_seconds:.2f}s"
        size = "-" if r.artifact_bytes is None else f"{r.artifact_bytes}B"
        print(f"{r.id}\t{r.started_at:%Y-%m-%dT%H:%M:%SZ}\t{r.namespace}/{r.report_name}\t{r.report_type}\t"
              f"{r.outcome}\t{duration}\t{size}\t{r.error or ''}")  # fmt: skip
    return 0


PROG = "game-analytics report"


def cli_main(argv: Sequence[str] | None = None) -> int:
    """``game-analytics report run|history ...`` (see the module docstring); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"] and ("dashboard" in argv or "--type=dashboard" in argv):
        return preview_main(argv[1:])  # `report run --type dashboard ...`: a local preview (reports/dashboard)
    parser = _cli_parser()
    args = parser.parse_args(argv)
    configure_logging(getattr(args, "log_level", "WARNING"))
    try:
        return _cli_run(args, parser) if args.command == "run" else _cli_history(args, parser)
    except UsageError as exc:
        return fail(PROG, str(exc), EXIT_USAGE)
    except (SQLAlchemyError, OSError) as exc:  # the database (or the output folder) failed: one line, exit 1
        return fail(PROG, (str(getattr(exc, "orig", None) or exc).splitlines() or [type(exc).__name__])[0])


if __name__ == "__main__":
    sys.exit(cli_main())
