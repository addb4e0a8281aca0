"""Exporter scrape time with many players: refreshes (all aggregate queries) and scrapes served from the cache.

Generates ``--players`` synthetic players in PostgreSQL with ``generate_series`` (``--events-per-player`` purchases
each, spread over 40 days, three regions, and one leaderboard row each), then times

  * backfill    - the first refresh on a store whose running per-player aggregates are empty: it folds in every
                  event (once per deployment; a restarted exporter finds them up to date);
  * cold        - ``AnalyticsCollector.refresh()`` with the aggregates up to date: every query, per section too
                  (what one refresh per TTL costs, in the background);
  * incremental - a refresh after ``--new-events`` more events (the catch-up and the whole refresh);
  * scrape      - HTTP GETs of ``/metrics`` from prometheus_client's server: the first one after the start-up
                  warm-up, then p50/p95 while the snapshot is valid.

Prints the figures (goal: a scrape < 100 ms).  Figures only, no assertions.  Starts its own throwaway PostgreSQL unless ``--dsn`` is given
(then that database must be migrated and should be empty).

    .venv/bin/python benchmarks/bench_exporter.py                    # 1,000,000 players
    .venv/bin/python benchmarks/bench_exporter.py --players 100000
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import benchargs
import httpx
from prometheus_client import CollectorRegistry, start_http_server
from sqlalchemy import Engine, text

from devtools.postgres import start_postgres
from game_analytics.storage import derived
from game_analytics.storage.engine import make_engine
from game_analytics.storage.migrate import upgrade
from game_analytics.storage.queries import economy, rollups
from game_analytics.workers import exporter
from game_analytics.workers.exporter import AnalyticsCollector
from game_analytics.workers.runtime import resolve_as_of


@contextlib.contextmanager
def database(dsn: str | None) -> Iterator[str]:
    if dsn:
        yield dsn
        return
    server = start_postgres()
    try:
        url = server.create_database("bench_exporter")
        upgrade(url)
        yield url
    finally:
        server.stop()


def generate(engine: Engine, players: int, per_player: int) -> float:
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text("""
            INSERT INTO events (event_id, event_type, occurred_at, player_id, game, region, payload)
            SELECT 'b-' || g || '-' || k, 'purchase',
                   timestamptz '2024-01-01' - (g % 40) * interval '1 day' - k * interval '1 minute',
                   'p' || g, 'bench', (ARRAY['EU', 'US', 'AS'])[1 + (g + k) % 3],
                   jsonb_build_object('quantity', 1 + g % 5, 'amount', ((g::bigint * 7919 + k) % 100000) / 100.0,
                                      'currency', 'USD')
            FROM generate_series(1, :n) AS g, generate_series(1, :k) AS k"""), {"n": players, "k": per_player})
        conn.execute(text("""
            INSERT INTO leaderboard_entries (board, season, player_id, rating, rank, percentile, league)
            SELECT 'bench-elo', '2024', 'p' || g, 400 + (g * 37) % 2800, g, 100.0 * (:n - g) / :n,
                   (ARRAY['bronze', 'silver', 'gold', 'platinum'])[1 + g % 4]
            FROM generate_series(1, :n) AS g"""), {"n": players})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    return time.perf_counter() - started


def add_events(engine: Engine, n: int) -> None:
    """``n`` more purchases at the newest time, by existing players (the incremental refresh's input)."""
    with engine.begin() as conn:
        conn.execute(text("""
            INSERT INTO events (event_id, event_type, occurred_at, player_id, game, region, payload)
            SELECT 'n-' || g, 'purchase', timestamptz '2024-01-01', 'p' || (g * 97), 'bench', 'EU',
                   jsonb_build_object('quantity', 1, 'amount', 9.99, 'currency', 'USD')
            FROM generate_series(1, :n) AS g"""), {"n": n})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--players", type=int, default=1_000_000)
    parser.add_argument("--events-per-player", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--new-events", type=int, default=10_000, help="events added before the incremental refresh")
    parser.add_argument("--dsn", help="an existing, migrated, empty database")
    parser.add_argument("--skip-slow-section", action="store_true",
                        help="leave out the slow KPI/CLV section (refreshed every 10 min on its own)")
    args = benchargs.parse(parser, None, {"players": 20_000, "repeat": 1, "new_events": 1_000})

    with database(args.dsn) as dsn:
        engine = make_engine(dsn)
        took = generate(engine, args.players, args.events_per_player)
        print(f"generated {args.players:,} players, {args.players * args.events_per_player:,} events, "
              f"{args.players:,} leaderboard rows in {took:.1f} s")

        collector = AnalyticsCollector(engine, as_of="latest", ttl=3600)
        if args.skip_slow_section:
            collector._player_value.families = lambda *_: []
        started = time.perf_counter()
        collector.refresh()
        print(f"backfill refresh (aggregates empty): {time.perf_counter() - started:,.1f} s, of which catch-up of "
              f"{collector.last_catch_up_events:,} events {collector.last_catch_up_seconds:,.1f} s")

        cold = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            families = collector.refresh()
            cold.append(time.perf_counter() - started)
        series = sum(len(f.samples) for f in families)
        print(f"cold refresh (all queries, aggregates up to date): median {statistics.median(cold) * 1000:,.0f} ms, "
              f"min {min(cold) * 1000:,.0f} ms over {args.repeat} runs; {len(families)} families, {series} series")
        before = []
        exporter.rollups = economy  # before the hourly rollups: price index and trade volume over the payloads
        try:
            for _ in range(args.repeat):
                started = time.perf_counter()
                collector.refresh()
                before.append(time.perf_counter() - started)
        finally:
            exporter.rollups = rollups
        print(f"full refresh before/after the rollups (price index, trade volume over payloads vs market_hourly): "
              f"{statistics.median(before) * 1000:,.0f} ms -> {statistics.median(cold) * 1000:,.0f} ms")
        with engine.connect() as conn:
            conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            conn.execute(text("SELECT set_config('work_mem', :mem, true)"), {"mem": collector.work_mem})
            derived.catch_up(conn.connection.driver_connection)
            as_of = resolve_as_of(conn, "latest")
            for name in ("_activity", "_sessions", "_economy", "_rankings", "_detections", "_scheduled"):
                started = time.perf_counter()
                getattr(collector, name)(conn, as_of)
                print(f"  {name[1:]:<11} {(time.perf_counter() - started) * 1000:8,.0f} ms")
            for label, module in (("payloads", economy), ("rollups", rollups)):
                started = time.perf_counter()
                module.price_index_at(conn, as_of)
                module.trade_volume_since(conn, as_of - timedelta(days=1), as_of)
                print(f"  price index + trade volume from {label:<8} {(time.perf_counter() - started) * 1000:8,.0f} ms")
            conn.commit()

        add_events(engine, args.new_events)
        started = time.perf_counter()
        collector.refresh()
        print(f"incremental refresh after {args.new_events:,} new events: {(time.perf_counter() - started) * 1000:,.0f}"
              f" ms, of which catch-up of {collector.last_catch_up_events:,} events "
              f"{collector.last_catch_up_seconds * 1000:,.0f} ms")

        fresh = AnalyticsCollector(engine, as_of="latest", ttl=3600)  # a restarted exporter
        if args.skip_slow_section:
            fresh._player_value.families = lambda *_: []
        registry = CollectorRegistry()
        registry.register(fresh)
        started = time.perf_counter()
        fresh.warm_up().join()
        warm = time.perf_counter() - started
        server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        try:
            with httpx.Client(timeout=600) as client:
                started = time.perf_counter()
                client.get(url).raise_for_status()
                first = time.perf_counter() - started
                cached = []
                for _ in range(100):
                    started = time.perf_counter()
                    client.get(url).raise_for_status()
                    cached.append(time.perf_counter() - started)
        finally:
            server.shutdown()
        cached.sort()
        p50, p95 = statistics.median(cached), cached[int(len(cached) * 0.95) - 1]
        print(f"start-up warm-up refresh {warm * 1000:,.0f} ms; first scrape after it {first * 1000:.1f} ms; "
              f"scrape p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms over {len(cached)} scrapes")
        print(f"goal < 100 ms per scrape: {'met' if p95 < 0.1 and first < 0.1 else 'NOT met'} "
              f"(refreshes run in the background, {statistics.median(cold):.1f} s each at this size)")
        engine.dispose()
        print(f"done at {datetime.now():%H:%M:%S}")


if __name__ == "__main__":
    main()
