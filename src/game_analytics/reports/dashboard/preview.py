"""``game-analytics report run --type dashboard``: render a dashboard locally, before Grafana is involved.

``game-analytics report run --type dashboard --dashboard UID --prometheus URL [--format pdf|html|json|csv ...]
[--var NAME=VALUE ...] [--lookback 6h | --from T1 --to T2] [--scrape-interval 30s] [--dsn URL] [--output-dir DIR]
[--output table|json]`` writes ``<slug>-dashboard-<end>.<ext>`` into ``--output-dir`` and prints the paths
(``--output DIR`` is the older spelling of ``--output-dir``). Nothing is recorded in ``report_runs`` and nothing is
delivered; ``--dsn`` (or ``GAME_ANALYTICS_DSN``) is only needed by SQL panels.
Exit codes: 0 written (panels without data included), 1 a panel's query failed, 2 bad flags.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from ...api.common import parse_duration
from ...api.scheduledreport import DashboardReport, ReportFormat
from ...console import UsageError, add_output_flags, output_and_folder, print_files
from ..model import ReportPeriod
from .build import DashboardTarget, build_dashboard_report, load_dashboard

#: where the files go without --output-dir
DEFAULT_FOLDER = "/tmp/reports"

__all__ = ["DashboardTarget", "dashboard_target", "preview_main"]


def dashboard_target(spec: DashboardReport | None) -> DashboardTarget | None:
    """The :class:`DashboardTarget` of a ScheduledReport's ``spec.dashboard`` (None when unset)."""
    if spec is None:
        return None
    return DashboardTarget(spec.uid, dict(spec.variables), spec.prometheus_url,
                           parse_duration(spec.scrape_interval).total_seconds())  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="game-analytics report run --type dashboard",
                                description="Render one of the product's dashboards from Prometheus, locally.")
    p.add_argument("--type", dest="types", action="append", required=True, help="dashboard")
    p.add_argument("--dashboard", required=True, help="dashboard uid (game-analytics-activity) or slug (activity)")
    p.add_argument("--prometheus", required=True, help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    p.add_argument("--format", dest="formats", action="append", choices=[f.value for f in ReportFormat],
                   help="output format (repeatable; default: pdf)")
    p.add_argument("--var", dest="variables", action="append", default=[], metavar="NAME=VALUE",
                   help="template variable value (repeat a name for several values)")
    p.add_argument("--lookback", default="6h", help="time range ending now or at --to (default: 6h)")
    p.add_argument("--from", dest="start", help="range start, ISO 8601 (with --to)")
    p.add_argument("--to", dest="end", help="range end, ISO 8601 (default: now)")
    p.add_argument("--scrape-interval", default="30s", help="the data source's scrape interval (default: 30s)")
    p.add_argument("--dsn", help="PostgreSQL URL for SQL panels (default: $GAME_ANALYTICS_DSN)")
    add_output_flags(p, DEFAULT_FOLDER)
    return p  # fmt: skip


def _time(value: str, flag: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise SystemExit(f"error: {flag}: {value!r} is not ISO 8601") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def preview_main(argv: list[str]) -> int:
    """Parse ``argv`` (after ``report run``), render and write; returns the exit code (see the module docstring)."""
    from ...settings import WorkerSettings
    from ..render import write_report

    args = _parser().parse_args(argv)
    try:
        output, folder = output_and_folder(args, DEFAULT_FOLDER)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if set(args.types) != {"dashboard"}:
        print("error: --type dashboard cannot be combined with other report types in one run", file=sys.stderr)
        return 2
    variables: dict[str, list[str]] = {}
    for item in args.variables:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"error: --var {item!r}: expected NAME=VALUE", file=sys.stderr)
            return 2
        variables.setdefault(name, []).append(value)
    try:
        end = _time(args.end, "--to") if args.end else datetime.now(UTC)
        period = (ReportPeriod(_time(args.start, "--from"), end) if args.start
                  else ReportPeriod.lookback(end, args.lookback))  # fmt: skip
        target = DashboardTarget(args.dashboard, variables, args.prometheus,
                                 parse_duration(args.scrape_interval).total_seconds())  # fmt: skip
        slug = load_dashboard(target.uid)["uid"].removeprefix("game-analytics-")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    dsn = args.dsn or WorkerSettings.from_env().dsn
    engine = None
    if dsn:
        from ...storage.engine import make_engine

        engine = make_engine(dsn)
    try:
        report = build_dashboard_report(target, period, engine=engine)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if engine is not None:
            engine.dispose()
    formats = [ReportFormat(f) for f in (args.formats or ["pdf"])]
    print_files(write_report(report, formats, folder, prefix=f"{slug}-"), output)
    failed = report.figure("panels_failed")
    for note in report.notes:
        print(note, file=sys.stderr)
    return 1 if failed else 0
