"""Time ``game-analytics audit search`` at 1 million audit rows (goal: every search answered in < 100 ms).

Fills ``audit_log`` of a throwaway PostgreSQL (migrated to head) with ``--rows`` entries in one
``INSERT ... SELECT generate_series`` (a year of activity: 40 admins, the workers and the operator; 200,000 cases;
the actions of the interventions, operator and report writers; JSON before/after like the real ones), runs
``ANALYZE``, then times each kind of search through :func:`game_analytics.audit.query.search` (the query the
command runs, rows fetched) ``--repeat`` times with varying values, and prints p50 / p99 per kind and overall.
Figures only, no assertions.

    .venv/bin/python benchmarks/bench_audit.py [--rows 1000000] [--repeat 50] [--dsn postgresql://...]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import benchargs
from sqlalchemy import text

from devtools.postgres import start_postgres
from game_analytics.audit.query import AuditQuery, search
from game_analytics.storage.engine import make_engine
from game_analytics.storage.migrate import upgrade

GOAL_MS = 100.0
END = datetime(2026, 12, 1, tzinfo=UTC)
ADMINS = 40
CASES = 200_000

FILL = """
INSERT INTO audit_log (seq, at, actor, action, object_ref, before, after, prev_hash, hash, justification, approver,
                       source, context)
SELECT i,
       :end - make_interval(secs => (:rows - i) * 31536000.0 / :rows),
       CASE WHEN i % 10 < 5 THEN 'admin-' || ((i / 10) % :admins)
            WHEN i % 10 < 8 THEN 'detection-worker'
            WHEN i % 10 < 9 THEN 'game-analytics-operator' ELSE 'report-worker' END,
       CASE WHEN i % 10 < 5 THEN (ARRAY['intervention.assign', 'intervention.ack', 'intervention.resolve',
                                        'intervention.comment', 'intervention.reopen'])[1 + i % 5]
            WHEN i % 10 < 8 THEN (ARRAY['intervention.open', 'intervention.occurrence'])[1 + i % 2]
            WHEN i % 10 < 9 THEN (ARRAY['operator.children.apply', 'operator.spec.update'])[1 + i % 2]
            ELSE (ARRAY['report.run', 'report.delivery'])[1 + i % 2] END,
       CASE WHEN i % 10 < 8 THEN 'intervention/' || (1 + (i * 7919) % :cases)
            WHEN i % 10 < 9 THEN 'AlertRule/games/rule-' || (i % 60)
            ELSE 'ScheduledReport/games/report-' || (i % 12) END,
       jsonb_build_object('status', 'open', 'version', i % 7),
       jsonb_build_object('status', 'in_progress', 'version', i % 7 + 1, 'assignee', 'admin-' || (i % :admins)),
       encode(sha256(convert_to((i - 1)::text, 'UTF8')), 'hex'),
       encode(sha256(convert_to(i::text, 'UTF8')), 'hex'),
       CASE WHEN i % 10 < 5 THEN 'checked the evidence' END,
       CASE WHEN i % 50 = 0 THEN 'admin-' || ((i + 1) % :admins) END,
       CASE WHEN i % 10 < 5 THEN 'cli' WHEN i % 10 < 8 THEN 'worker' WHEN i % 10 < 9 THEN 'operator'
            ELSE 'worker' END,
       jsonb_build_object('host', 'bench')
FROM generate_series(CAST(1 AS bigint), :rows) AS i
"""


@contextlib.contextmanager
def _database(dsn: str | None) -> Iterator[str]:
    if dsn:
        yield dsn
        return
    server = start_postgres()
    try:
        url = server.create_database("bench_audit")
        upgrade(url)
        yield url
    finally:
        server.stop()


def _searches(rng: random.Random) -> dict[str, Callable[[], AuditQuery]]:
    """Kind of search -> a factory of one such query with fresh values (what on-call people type)."""
    def ago(days: float) -> datetime:
        return END - timedelta(days=days)

    return {
        "--target intervention/N": lambda: AuditQuery(target=f"intervention/{rng.randint(1, CASES)}"),
        "--target 'AlertRule/games/*'": lambda: AuditQuery(target="AlertRule/games/*"),
        "--actor admin-N": lambda: AuditQuery(actor=f"admin-{rng.randrange(ADMINS)}"),
        "--actor admin-N --since 7d": lambda: AuditQuery(actor=f"admin-{rng.randrange(ADMINS)}", since=ago(7)),
        "--action intervention.resolve --since 30d": lambda: AuditQuery(action="intervention.resolve",
                                                                        since=ago(30)),
        "--action 'report.*'": lambda: AuditQuery(action="report.*"),
        "--source operator --since 1d": lambda: AuditQuery(source="operator", since=ago(1)),
        "--since/--until one day, 3 months ago": lambda: AuditQuery(since=ago(91), until=ago(90)),
        "--actor admin-N, one day 6 months ago": lambda: AuditQuery(actor=f"admin-{rng.randrange(ADMINS)}",
                                                                     since=ago(183), until=ago(182)),
        "--target intervention/N --until 300d ago": lambda: AuditQuery(target=f"intervention/{rng.randint(1, CASES)}",
                                                                       until=ago(300)),
        "(no filter)": lambda: AuditQuery(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="a migrated database whose audit_log may be filled (default: a throwaway one)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=50)
    args = benchargs.parse(parser, None, {"rows": 50_000, "repeat": 10})
    rng = random.Random(16)
    with _database(args.dsn) as dsn:
        engine = make_engine(dsn)
        t = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(text(FILL), {"rows": args.rows, "end": END, "admins": ADMINS, "cases": CASES})
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE audit_log"))
        print(f"audit_log: {args.rows:,} rows generated in {time.perf_counter() - t:.1f} s")
        everything: list[float] = []
        print(f"audit search, {args.repeat} runs per kind (limit 100, newest first, rows fetched):")
        with engine.connect() as conn:
            for kind, make in _searches(rng).items():
                list(search(conn, make()))  # warm the cache once
                times, found = [], []
                for _ in range(args.repeat):
                    query = make()
                    t0 = time.perf_counter()
                    found.append(len(list(search(conn, query))))
                    times.append((time.perf_counter() - t0) * 1000)
                everything += times
                p99 = statistics.quantiles(times, n=100, method="inclusive")[98]
                print(f"  {kind:<42} p50 {statistics.median(times):7.2f} ms   p99 {p99:7.2f} ms   "
                      f"rows {min(found)}..{max(found)}")
        engine.dispose()
    p50 = statistics.median(everything)
    p99 = statistics.quantiles(everything, n=100, method="inclusive")[98]
    print(f"  all searches: p50 {p50:.2f} ms, p99 {p99:.2f} ms at {args.rows:,} rows")
    print(f"  goal: p99 < {GOAL_MS:.0f} ms -> {'met' if p99 < GOAL_MS else 'NOT met'}")


if __name__ == "__main__":
    main()
