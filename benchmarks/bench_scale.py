"""The scale run (``make bench ARGS=--scale``): a partitioned store of ``--events`` events of ``--players`` players
over ``--days`` days, and the figures that size one PostgreSQL node (docs/scaling.md).

Generates the events in PostgreSQL (``generate_series``: 40 % logins, 20 % logouts with session lengths, 30 %
purchases, 10 % trades, ending at the current hour, one month partition per month), then prints one table:

  * generate (SQL INSERT ... SELECT) and the first catch-up of the derived tables and rollups;
  * ingest events/s through the stream worker, 1 and 2 replicas, into this store (``--ingest-events``);
  * the exporter's full (cold) refresh and an incremental one after 10,000 new events (without the KPI/CLV
    section, which refreshes on its own 10-minute cycle);
  * each report type over the whole period;
  * each worker-evaluated detector's evaluation at the newest hour (the rule parameters of the detector-quality
    harness, ``alerting.harness.MEASURED``), and the operator's backtest of one rule (rapidAssetTransfer over the
    chart's default window and step, 7d at 5m);
  * the retention drop of the oldest partition (``maintain`` with a retention just past it);
  * database size per million events (events partitions with their indexes; the rollups).

Without ``--scale`` (e.g. ``make bench``) it runs at 200,000 events / 20,000 players, with ``--quick`` (CI) at 20,000
/ 2,000 (the reports' customer-model fits grow with the players: 12 s of its 24 s at 5,000), so that the benchmark
cannot rot; the full size is 10M / 1M / 120 days.  Figures only, no assertions.

    .venv/bin/python benchmarks/bench_scale.py --scale
    .venv/bin/python benchmarks/bench_scale.py --events 2000000 --players 200000 --days 120
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bench_ingest
import benchargs
import psycopg
from sqlalchemy import text

from devtools.postgres import start_postgres
from devtools.redis import start_redis
from game_analytics.alerting.cli import backtest_rule
from game_analytics.alerting.harness import MEASURED, spec_of
from game_analytics.api.common import parse_duration
from game_analytics.api.scheduledreport import ReportFilters, ReportType
from game_analytics.config import BacktestSettings
from game_analytics.reports import ReportPeriod, build_report
from game_analytics.storage import derived
from game_analytics.storage.engine import libpq_dsn, make_engine
from game_analytics.storage.migrate import upgrade
from game_analytics.storage.partitions import ensure_partition, list_partitions, maintain, partition_for
from game_analytics.workers.detectors import DETECTORS, Context
from game_analytics.workers.exporter import AnalyticsCollector

FULL = {"events": 10_000_000, "players": 1_000_000, "days": 120}

GENERATE = """
INSERT INTO events (event_id, event_type, occurred_at, player_id, game, region, payload)
SELECT 's-' || i, t.kind, :end - (i::float8 / :n) * :days * interval '1 day', 'p' || (i * 7919 % :players),
       'scale', (ARRAY['EU', 'US', 'AS'])[1 + i % 3],
       CASE t.kind
         WHEN 'purchase' THEN jsonb_build_object('quantity', 1 + i % 4, 'amount', (i % 9973) / 100.0 + 0.99,
                                                 'currency', 'USD')
         WHEN 'trade' THEN jsonb_build_object('item_id', 'item-' || i % 500, 'quantity', 1,
                                              'counterparty_id', 'p' || (i * 31 % :players), 'value', i % 300 + 1)
         WHEN 'logout' THEN jsonb_build_object('session_seconds', 60 + i % 5400)
         ELSE '{}'::jsonb END
FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS i,
     LATERAL (SELECT CASE WHEN i % 10 < 4 THEN 'login' WHEN i % 10 < 6 THEN 'logout'
                          WHEN i % 10 < 9 THEN 'purchase' ELSE 'trade' END AS kind) AS t
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--players", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--ingest-events", type=int, default=50_000, help="events through the stream worker")
    parser.add_argument("--report-timeout", type=int, default=60, help="seconds a report's statement may run")
    args = benchargs.parse(parser, argv, {"events": 20_000, "players": 2_000, "ingest_events": 10_000},
                           scale=FULL)  # fmt: skip
    figures: list[tuple[str, str]] = []

    def figure(name: str, value: str) -> None:
        figures.append((name, value))
        print(f"  {name:58} {value}", flush=True)

    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    pg, rd = start_postgres(), start_redis()
    try:
        dsn = pg.create_database("bench_scale")
        upgrade(dsn)
        engine = make_engine(dsn)
        with psycopg.connect(libpq_dsn(dsn), autocommit=True) as admin:
            at = end - timedelta(days=args.days)
            while at <= end + timedelta(days=31):
                with admin.transaction():
                    ensure_partition(admin, partition_for(at))
                at = partition_for(at).end
        print(f"scale run: {args.events:,} events, {args.players:,} players, {args.days} days, {os.cpu_count()} CPUs")
        started, chunk = time.perf_counter(), 1_000_000
        for lo in range(1, args.events + 1, chunk):
            with engine.begin() as conn:
                conn.execute(text(GENERATE), {"end": end, "n": args.events, "days": args.days,
                                              "players": args.players, "lo": lo,
                                              "hi": min(lo + chunk - 1, args.events)})  # fmt: skip
        figure("generate (INSERT ... SELECT)", f"{time.perf_counter() - started:,.1f} s")
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        with psycopg.connect(libpq_dsn(dsn)) as conn:
            started = time.perf_counter()
            derived.catch_up_now(conn)
            figure("first catch-up (derived tables + hourly rollups)", f"{time.perf_counter() - started:,.1f} s")

        with psycopg.connect(libpq_dsn(dsn)) as conn:
            size = conn.execute("""SELECT sum(pg_total_relation_size(c.oid)) FROM pg_inherits i
                                   JOIN pg_class c ON c.oid = i.inhrelid
                                   WHERE i.inhparent = 'events'::regclass""").fetchone()[0] or 0  # fmt: skip
            rollup = conn.execute("SELECT pg_total_relation_size('activity_hourly') + "
                                  "pg_total_relation_size('market_hourly')").fetchone()[0]  # fmt: skip
        figure("events size per million events (heap + indexes)", f"{float(size) / args.events * 1e6 / 2**20:,.0f} MiB")
        figure("hourly rollups, whole store", f"{float(rollup) / 2**20:,.1f} MiB")

        ingest = [dict(e, occurred_at=(end - timedelta(minutes=i % 600)).isoformat())
                  for i, e in enumerate(bench_ingest.synthetic_events(args.ingest_events))]  # fmt: skip
        _, one = bench_ingest.stream_worker(dsn, rd.url, ingest, 5000)
        figure("ingest, stream worker, 1 replica", f"{len(ingest) / one:,.0f} events/s")
        again = [dict(e, event_id="r2-" + e["event_id"]) for e in ingest]
        two = bench_ingest.stream_replicas(dsn, rd.url, again, 5000, replicas=2)
        figure("ingest, stream worker, 2 replicas", f"{len(again) / two:,.0f} events/s")

        collector = AnalyticsCollector(engine, as_of="latest", ttl=3600)
        collector._player_value.families = lambda *_: []  # the KPI/CLV section: own 10-min cycle, not timed here
        collector.refresh()  # folds the ingested events in
        started = time.perf_counter()
        collector.refresh()
        figure("exporter full refresh", f"{(time.perf_counter() - started) * 1000:,.0f} ms")
        bench_exporter_add(engine, end, 10_000)
        started = time.perf_counter()
        collector.refresh()
        figure("exporter incremental refresh (10,000 new events)", f"{(time.perf_counter() - started) * 1000:,.0f} ms")

        period = ReportPeriod(end - timedelta(days=args.days), end + timedelta(hours=1))
        limited = make_engine(dsn, connect_args={"options": f"-c statement_timeout={args.report_timeout * 1000}"})
        # dashboard (Prometheus panels) and funnel (its own steps) need more than a period: bench_report and the
        # funnel tests time those
        for report_type in (t for t in ReportType if t not in (ReportType.DASHBOARD, ReportType.FUNNEL)):
            started = time.perf_counter()
            try:
                build_report(limited, report_type, period, ReportFilters(), now=end)
                figure(f"report {report_type.value}", f"{time.perf_counter() - started:,.2f} s")
            except Exception as exc:  # noqa: BLE001 - a figure, not a test: say what failed and go on
                figure(f"report {report_type.value}", f"failed: {type(exc).__name__}: {exc}"[:80])

        bench_detectors(limited, dsn, end, figure, args.report_timeout)
        limited.dispose()

        with psycopg.connect(libpq_dsn(dsn), autocommit=True) as admin:
            oldest = list_partitions(admin)[0]
            done = maintain(admin, now=end, retention=end - oldest.end)
            figure(f"retention drop of {', '.join(done.dropped) or 'nothing'}",
                   f"{sum(done.drop_seconds) * 1000:,.0f} ms")  # fmt: skip
        engine.dispose()
    finally:
        rd.stop()
        pg.stop()
    print("goals: exporter full refresh < 1 s, each report < 10 s, retention drop < 1 s (at 10M events / 1M players)")


def bench_detectors(engine, dsn: str, end: datetime, figure, timeout: int) -> None:
    """Each worker-evaluated detector once at ``end`` (a cold model: anomalyScore fits its forest), then the
    operator's backtest of one rule over the chart's default window and step (each statement ``timeout`` s)."""
    with tempfile.TemporaryDirectory(prefix="bench-models-") as models, engine.connect() as conn:
        for kind, detect in DETECTORS.items():
            spec = spec_of(kind, MEASURED[kind].params)
            ctx = Context(conn, end, [], f"bench/{kind}", Path(models), float("inf"))
            started = time.perf_counter()
            try:
                found = detect(ctx, spec.detector.params())
                figure(f"detector {kind}", f"{time.perf_counter() - started:,.2f} s ({len(found)} flagged)")
            except Exception as exc:  # noqa: BLE001 - a figure, not a test
                conn.rollback()
                figure(f"detector {kind}", f"failed: {type(exc).__name__}: {exc}"[:80])
    settings, kind = BacktestSettings(), "rapidAssetTransfer"
    started = time.perf_counter()
    result = backtest_rule(f"bench/{kind}", spec_of(kind, MEASURED[kind].params),
                           end - parse_duration(settings.window), end, parse_duration(settings.step),
                           dsn=dsn, prometheus=None,
                           engine_options={"connect_args": {"options": f"-c statement_timeout={timeout * 1000}"}})
    figure(f"backtest {kind}, {settings.window} at {settings.step}",
           f"{time.perf_counter() - started:,.1f} s ({len(result.incidents)} incidents)")


def bench_exporter_add(engine, end: datetime, n: int) -> None:
    """``n`` more purchases at the newest hour by existing players (the incremental refresh's input)."""
    with engine.begin() as conn:
        conn.execute(text("""
            INSERT INTO events (event_id, event_type, occurred_at, player_id, game, region, payload)
            SELECT 'n-' || g, 'purchase', :end, 'p' || (g * 97), 'scale', 'EU',
                   jsonb_build_object('quantity', 1, 'amount', 9.99, 'currency', 'USD')
            FROM generate_series(1, :n) AS g"""), {"n": n, "end": end})


if __name__ == "__main__":
    main()
