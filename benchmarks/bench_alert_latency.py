"""Event-to-page latency of the real alert path: Redis stream -> ingest worker -> PostgreSQL -> detection worker ->
Prometheus (1 s scrape and evaluation) -> Alertmanager (group_wait 0 s) -> webhook.

Starts a throwaway PostgreSQL and Redis, then the path of ``devtools.alert_path`` configured from
``examples/alertrule-wealth-jump.yaml`` on a CDNOW subset, and runs ``--runs`` cycles on it: publish a sudden
wealth jump, wait for the firing page, publish a later event so the jump leaves the 1 h window, wait for the
resolved page. Prints each cycle and p50 / max of event-to-page and clear-to-resolved latency (goal: page < 5 s).
With ``--fresh``, every run starts the whole stack again on a new database (slower; start-up time is printed
apart and is not part of the latency figures). Figures only, no assertions.

    .venv/bin/python benchmarks/bench_alert_latency.py               # 5 cycles on one stack
    .venv/bin/python benchmarks/bench_alert_latency.py --runs 5 --fresh --interval 0.5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import benchargs

from devtools import alert_path
from devtools.postgres import start_postgres
from devtools.redis import start_redis
from game_analytics.storage.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="jump/page/resolve cycles (default 5)")
    parser.add_argument("--interval", type=float, default=0.5, help="detection --interval in seconds (default 0.5)")
    parser.add_argument("--fresh", action="store_true", help="start the whole stack again for every run")
    args = benchargs.parse(parser, argv, {"runs": 2})
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    postgres, redis_server = start_postgres(), start_redis()
    workdir = Path(tempfile.mkdtemp(prefix="bench-alert-latency-"))
    cycles = []
    try:
        template = postgres.create_database("bench_alert_template")
        upgrade(template)
        batches = [1] * args.runs if args.fresh else [args.runs]
        for number, count in enumerate(batches, 1):
            dsn = postgres.create_database(f"bench_alert_{number}", template="bench_alert_template")
            started = time.monotonic()
            result = alert_path.run(workdir / f"run-{number}", dsn, redis_server.url, cycles=count, interval=args.interval)
            print(f"stack {number}: {result['events']:,} CDNOW events, ready in {result['ready_seconds']:.1f} s, "
                  f"{count} cycle(s) in {time.monotonic() - started:.1f} s total")
            for cycle in result["cycles"]:
                cycles.append(cycle)
                print(f"  cycle {len(cycles)}: event-to-page {cycle['latency']:.2f} s, "
                      f"clear-to-resolved {cycle['resolve_latency']:.2f} s ({cycle['player']})")
    finally:
        redis_server.stop()
        postgres.stop()

    pages = [c["latency"] for c in cycles]
    resolves = [c["resolve_latency"] for c in cycles]
    print(f"event-to-page over {len(pages)} runs: p50 {statistics.median(pages):.2f} s, "
          f"p90 {percentile(pages, 90):.2f} s, max {max(pages):.2f} s (goal < 5 s)")
    print(f"clear-to-resolved over {len(resolves)} runs: p50 {statistics.median(resolves):.2f} s, "
          f"max {max(resolves):.2f} s")
    print(f"(detection interval {args.interval} s, Prometheus scrape/evaluation 1 s, Alertmanager group_wait 0 s, "
          f"group_interval 1 s; logs under {workdir})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
