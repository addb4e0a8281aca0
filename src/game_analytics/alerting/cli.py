"""``game-analytics alerts backtest -f ALERTRULE.yaml --from T1 --to T2 [--step 1m] [--dsn ...] [--prometheus URL]
[--output table|json|html]``: how often an AlertRule would have paged over the stored history (see
:mod:`game_analytics.alerting.backtest`).  Worker-evaluated detectors are replayed over the stored events
(:mod:`.replay`), PromQL-evaluated ones with Prometheus ``query_range`` over its TSDB (:mod:`.prometheus`).

Exit codes (:mod:`game_analytics.console`): 0 done, 1 a PromQL-evaluated rule without ``--prometheus``, or the
database, Prometheus or file cannot be read, 2 bad arguments or an invalid AlertRule.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from game_analytics.alerting.backtest import Backtest, backtest, backtest_alerts
from game_analytics.alerting.replay import NotBacktestable, replay, steps
from game_analytics.alerting.routing import DEFAULT_ROUTE, RouteTiming
from game_analytics.api.alertrule import WORKER_EVALUATED, AlertRuleSpec
from game_analytics.api.common import parse_duration
from game_analytics.console import (
    EXIT_FAILED,
    EXIT_OK,
    ArgumentParser,
    UsageError,
    parse_when,
    run_database_command,
)
from game_analytics.monitoring.promql import rule_id

__all__ = ["backtest_rule", "build_parser", "load_alertrule", "main", "render_table"]


def load_alertrule(path: str | Path) -> tuple[str, AlertRuleSpec]:
    """``(rule id, spec)`` of the first AlertRule document in ``path`` (namespace ``default`` unless set).

    Raises:
        OSError, yaml.YAMLError: unreadable file. ValueError: no AlertRule in it. pydantic.ValidationError: bad spec.
    """
    for doc in yaml.safe_load_all(Path(path).read_text()):
        if isinstance(doc, dict) and doc.get("kind") == "AlertRule":
            meta = doc.get("metadata") or {}
            return (rule_id(meta.get("namespace", "default"), meta.get("name", "unnamed")),
                    AlertRuleSpec.model_validate(doc.get("spec") or {}))  # fmt: skip
    raise ValueError(f"{path}: no AlertRule document")


def _t(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def render_table(result: Backtest, limit: int = 50) -> str:
    """The human summary: totals, then one row per incident (at most ``limit``), then the top subjects."""
    d = result.to_dict()
    busiest = d["busiest_hour_of_week"]
    lines = [
        f"AlertRule {result.rule} ({result.detector}) from {_t(result.start)} to {_t(result.end)} UTC, "
        f"step {d['step_seconds']:g}s, for {d['for_seconds']:g}s, {d['evaluated_steps']} steps",
        f"route: group_wait {result.route.group_wait}, group_interval {result.route.group_interval}, "
        f"repeat_interval {result.route.repeat_interval}",
        f"pages: {d['pages']} in {d['incidents']} incidents ({d['unpaged_incidents']} resolved before "
        f"group_wait); {d['pages_per_week']:.2f} pages/week",
        "busiest hour of week (UTC): " + ("-" if busiest is None else
                                          f"{busiest['weekday']} {busiest['hour_utc']:02d}:00 ({busiest['pages']} pages)"),
        "",
        f"{'first page':<19} {'resolved':<19} {'pages':>5}  subjects",
    ]  # fmt: skip
    paged = [i for i in result.incidents if i.pages]
    for incident in paged[:limit]:
        subjects = sorted(incident.subjects)
        shown = ", ".join(subjects[:3]) + (f" (+{len(subjects) - 3})" if len(subjects) > 3 else "")
        lines.append(f"{_t(incident.pages[0]):<19} {_t(incident.resolved_at):<19} {len(incident.pages):>5}  {shown}")
    if len(paged) > limit:
        lines.append(f"... {len(paged) - limit} more incidents (--output json lists all)")
    lines += ["", "top subjects (paged incidents, firing steps):"]
    lines += [f"  {s}: {n}, {k}" for s, n, k in result.top_subjects()] or ["  -"]
    return "\n".join(lines) + "\n"


def _time(value: str) -> datetime:
    try:
        return parse_when(value)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser(default_dsn: str | None = None) -> argparse.ArgumentParser:
    """Flags of ``game-analytics alerts``; ``--dsn`` defaults to ``default_dsn`` (``GAME_ANALYTICS_DSN``)."""
    parser = ArgumentParser(prog="game-analytics alerts", description="AlertRule tools.")
    sub = parser.add_subparsers(dest="action", required=True, parser_class=ArgumentParser)
    bt = sub.add_parser("backtest", help="how often an AlertRule would have paged over the stored events")
    bt.add_argument("-f", "--file", required=True, help="AlertRule YAML")
    bt.add_argument("--from", dest="start", required=True, type=_time,
                    help="start: ISO 8601 (UTC if naive) or a duration ago (7d)")
    bt.add_argument("--to", dest="end", required=True, type=_time, help="end: ISO 8601 or a duration ago")
    bt.add_argument("--step", default="1m", help="evaluation step, e.g. 1m (the detection worker's interval)")
    bt.add_argument("--dsn", default=default_dsn, help="PostgreSQL URL (env GAME_ANALYTICS_DSN)")
    bt.add_argument("--games", default="", help="comma-separated games (default: all)")
    bt.add_argument("--prometheus", default=None,
                    help="Prometheus base URL: PromQL-evaluated detectors are replayed with its query_range")
    for flag in ("group-wait", "group-interval", "repeat-interval"):
        bt.add_argument(f"--{flag}", default=None,
                        help=f"Alertmanager {flag.replace('-', '_')} to try instead of the rule's route")
    bt.add_argument("--output", choices=["table", "json", "html"], default="table")
    return parser


def route_of(args: argparse.Namespace) -> RouteTiming:
    """The rule's route (:data:`DEFAULT_ROUTE`) with the ``--group-wait/--group-interval/--repeat-interval``
    overrides.  Raises ValueError: an override is not a duration."""
    route = replace(DEFAULT_ROUTE, **{k: v for k in ("group_wait", "group_interval", "repeat_interval")
                                      if (v := getattr(args, k, None))})  # fmt: skip
    route.durations()
    return route


def run_backtest(args: argparse.Namespace, rule: str, spec: AlertRuleSpec, route: RouteTiming) -> Backtest:
    """The backtest the flags ask for (worker detectors over ``args.dsn``, PromQL ones over ``args.prometheus``).

    Raises:
        NotBacktestable: a PromQL-evaluated detector without ``--prometheus``.
        PrometheusError, sqlalchemy.exc.SQLAlchemyError: the source cannot be read.
    """
    return backtest_rule(rule, spec, args.start, args.end, parse_duration(args.step), dsn=args.dsn,
                         prometheus=args.prometheus, games=[g for g in args.games.split(",") if g], route=route)


def backtest_rule(rule: str, spec: AlertRuleSpec, start: datetime, end: datetime, step: timedelta, *,
                  dsn: str | None, prometheus: str | None, games: Sequence[str] = (), route: RouteTiming = DEFAULT_ROUTE,
                  progress: Callable[[int, int], None] | None = None, timeout: float = 60.0,
                  engine_options: dict[str, Any] | None = None) -> Backtest:
    """Backtest ``rule`` (``namespace/name``) over ``start``..``end`` at ``step``: worker-evaluated detectors
    replayed over the store at ``dsn`` (:func:`.replay.replay`, ``progress`` called after each evaluated step;
    ``engine_options`` go to the engine), PromQL ones with ``query_range`` of ``prometheus`` (``timeout`` seconds
    per request).  The one path of the CLI and of the operator's ``status.backtest``.

    Raises:
        NotBacktestable: a PromQL-evaluated detector without ``prometheus``, or a worker-evaluated one without
            ``dsn``.
        ValueError: see :func:`.replay.steps`.
        PrometheusError, sqlalchemy.exc.SQLAlchemyError: the source cannot be read; whatever ``progress`` raises.
    """
    for_ = parse_duration(spec.for_, allow_zero=True)
    times = steps(start, end, step)
    kind = spec.detector.kind()
    common = {"rule": rule, "detector": kind, "start": start, "end": end, "step": step, "for_": for_,
              "route": route}  # fmt: skip
    if kind not in WORKER_EVALUATED:
        if not prometheus:
            raise NotBacktestable(f"detector {kind} is evaluated by Prometheus (PromQL): pass --prometheus URL")
        from game_analytics.alerting.prometheus import alert_samples

        return backtest_alerts(alert_samples(prometheus, rule, spec, times, timeout=timeout),
                               evaluated_steps=len(times), **common)  # fmt: skip
    if not dsn:
        raise NotBacktestable(f"detector {kind} is replayed over the store: no PostgreSQL DSN")
    from game_analytics.storage.engine import make_engine

    engine = make_engine(dsn, pool_size=1, max_overflow=0, **(engine_options or {}))
    try:
        samples = replay(engine, rule, spec, times, games=games, progress=progress)
    finally:
        engine.dispose()
    return backtest(samples, **common)


def _backtest(args: argparse.Namespace) -> int:
    from game_analytics.alerting.prometheus import PrometheusError

    try:
        rule, spec = load_alertrule(args.file)
        steps(args.start, args.end, parse_duration(args.step))
        parse_duration(spec.for_, allow_zero=True)
        route = route_of(args)
    except (yaml.YAMLError, ValueError, ValidationError) as exc:
        raise UsageError(" ".join(str(exc).split())) from None
    try:
        result = run_backtest(args, rule, spec, route)
    except (NotBacktestable, PrometheusError) as exc:
        if args.output == "json":
            print(json.dumps({"rule": rule, "detector": spec.detector.kind(), "backtested": False,
                              "reason": str(exc)}, indent=2))  # fmt: skip
        else:
            print(f"AlertRule {rule}: not backtested: {exc}")
        return EXIT_FAILED
    if args.output == "json":
        print(json.dumps({**result.to_dict(), "backtested": True}, indent=2))
    elif args.output == "html":
        from game_analytics.alerting.html import render_html

        sys.stdout.write(render_html(result))
    else:
        sys.stdout.write(render_table(result))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``game-analytics alerts ...``; returns the exit code (see the module docstring)."""
    return run_database_command("game-analytics alerts", argv, build_parser, _backtest,
                                needs_dsn=lambda args: not getattr(args, "prometheus", None))


if __name__ == "__main__":
    raise SystemExit(main())
