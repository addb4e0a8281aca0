"""``game-analytics alerts backtest -f ALERTRULE.yaml --from T1 --to T2 [--step 1m] [--dsn ...] [--output ...]``:
how often an AlertRule would have paged over the stored events (see :mod:`game_analytics.alerting.backtest`).

Exit codes: 0 done, 1 the rule's detector is PromQL-evaluated (not backtested yet), 2 bad arguments or file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import yaml
from pydantic import ValidationError

from game_analytics.alerting.backtest import Backtest, backtest
from game_analytics.alerting.replay import NotBacktestable, replay, steps
from game_analytics.alerting.routing import DEFAULT_ROUTE
from game_analytics.api.alertrule import AlertRuleSpec
from game_analytics.api.common import parse_duration
from game_analytics.monitoring.promql import rule_id
from game_analytics.settings import WorkerSettings

__all__ = ["load_alertrule", "main", "parse_time", "render_table"]


def parse_time(value: str) -> datetime:
    """An ISO 8601 time (``1998-01-01``, ``1998-01-01T12:00:00Z``); naive times are UTC.

    Raises:
        argparse.ArgumentTypeError: not an ISO 8601 time.
    """
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


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
        f"{'first page':<17} {'resolved':<17} {'pages':>5}  subjects",
    ]  # fmt: skip
    paged = [i for i in result.incidents if i.pages]
    for incident in paged[:limit]:
        subjects = sorted(incident.subjects)
        shown = ", ".join(subjects[:3]) + (f" (+{len(subjects) - 3})" if len(subjects) > 3 else "")
        lines.append(f"{_t(incident.pages[0]):<17} {_t(incident.resolved_at):<17} {len(incident.pages):>5}  {shown}")
    if len(paged) > limit:
        lines.append(f"... {len(paged) - limit} more incidents (--output json lists all)")
    lines += ["", "top subjects (paged incidents, firing steps):"]
    lines += [f"  {s}: {n}, {k}" for s, n, k in result.top_subjects()] or ["  -"]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    """Flags of ``game-analytics alerts``."""
    parser = argparse.ArgumentParser(prog="game-analytics alerts", description="AlertRule tools.")
    sub = parser.add_subparsers(dest="action", required=True)
    bt = sub.add_parser("backtest", help="how often an AlertRule would have paged over the stored events")
    bt.add_argument("-f", "--file", required=True, help="AlertRule YAML")
    bt.add_argument("--from", dest="start", required=True, type=parse_time, help="start (ISO 8601, UTC if naive)")
    bt.add_argument("--to", dest="end", required=True, type=parse_time, help="end (ISO 8601, UTC if naive)")
    bt.add_argument("--step", default="1m", help="evaluation step, e.g. 1m (the detection worker's interval)")
    bt.add_argument("--dsn", default=None, help="PostgreSQL URL (env GAME_ANALYTICS_DSN)")
    bt.add_argument("--games", default="", help="comma-separated games (default: all)")
    bt.add_argument("--output", choices=["table", "json"], default="table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``game-analytics alerts ...``; returns the exit code (see the module docstring)."""
    args = build_parser().parse_args(argv)
    try:
        rule, spec = load_alertrule(args.file)
        step = parse_duration(args.step)
        for_ = parse_duration(spec.for_, allow_zero=True)
        times = steps(args.start, args.end, step)
        DEFAULT_ROUTE.durations()
    except (OSError, yaml.YAMLError, ValueError, ValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from game_analytics.storage.engine import make_engine

    engine = make_engine(args.dsn or WorkerSettings.from_env().dsn, pool_size=1, max_overflow=0)
    try:
        samples = replay(engine, rule, spec, times, games=[g for g in args.games.split(",") if g])
    except NotBacktestable as exc:
        if args.output == "json":
            print(json.dumps({"rule": rule, "detector": spec.detector.kind(), "backtested": False,
                              "reason": str(exc)}, indent=2))  # fmt: skip
        else:
            print(f"AlertRule {rule}: not backtested: {exc}")
        return 1
    finally:
        engine.dispose()
    result = backtest(samples, rule=rule, detector=spec.detector.kind(), start=args.start, end=args.end, step=step,
                      for_=for_, route=DEFAULT_ROUTE)  # fmt: skip
    if args.output == "json":
        print(json.dumps({**result.to_dict(), "backtested": True}, indent=2))
    else:
        sys.stdout.write(render_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
