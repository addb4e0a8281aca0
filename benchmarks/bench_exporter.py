"""Exporter scrape time with many players: refreshes (all aggregate queries) and scrapes served from the cache.

Generates ``--players`` synthetic players in PostgreSQL with ``generate_series`` (``--events-per-player`` purchases
each, spread over the 40 days up to the current hour, three regions, and one leaderboard row each), stored in time
order in the month partitions as the ingest stores them, then times

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
from datetime import UTC, datetime, timedelta

import benchargs
import httpx
import psycopg
from prometheus_client import CollectorRegistry, start_http_server
from sqlalchemy import Engine, text

from devtools.postgres import start_postgres
from game_analytics.leaderboard import Entry, write_entries
from game_analytics.monitoring import names
from game_analytics.storage import derived
from game_analytics.storage.engine import libpq_dsn, make_engine
from game_analytics.storage.migrate import upgrade
from game_analytics.storage.partitions import ensure_partition, partition_for
from game_analytics.storage.queries import activity, economy, ratings, rollups
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


def generate(engine: Engine, players: int, per_player: int, end: datetime) -> float:
    """The purchases and leaderboard rows (see the module docstring), the newest events at ``end``; seconds."""
    started = time.perf_counter()
    with psycopg.connect(libpq_dsn(engine.url.render_as_string(hide_password=False))) as admin:
        at = end - timedelta(days=41)
        while at <= end:  # the month partitions of the 40 days, as the ingest's maintenance creates them
            with admin.transaction():
                ensure_partition(admin, partition_for(at))
            at = partition_for(at).end
    with engine.begin() as conn:
        conn.execute(text("""
            INSERT INTO events (event_id, event_type, occurred_at, player_id, game, region, payload)
            SELECT * FROM (
                SELECT 'b-' || g || '-' || k, 'purchase',
                       CAST(:end AS timestamptz) - (g % 40) * interval '1 day' - k * interval '1 minute' AS at,
                       'p' || g, 'bench', (ARRAY['EU', 'US', 'AS'])[1 + (g + k) % 3],
                       jsonb_build_object('quantity', 1 + g % 5, 'amount', ((g::bigint * 7919 + k) % 100000) / 100.0,
                                          'currency', 'USD')
                FROM generate_series(1, :n) AS g, generate_series(1, :k) AS k) AS rows
            ORDER BY at"""), {"n": players, "k": per_player, "end": end})
        conn.execute(text("""
            INSERT INTO leaderboard_entries (board, season, player_id, rating, rank, percentile, league)
            SELECT 'bench-elo', '2024', 'p' || g, 400 + (g * 37) % 2800, g, 100.0 * (:n - g) / :n,
                   (ARRAY['bronze', 'silver', 'gold', 'platinum'])[1 + g % 4]
            FROM generate_series(1, :n) AS g"""), {"n": players})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    return time.perf_counter() - started


def rating_buckets_from_entries(conn, bounds: list[float]) -> list:
    """The rating buckets as before migration 0009: one scan of the newest season's leaderboard rows."""
    return conn.execute(text("""
        SELECT l.board, width_bucket(-l.rating, CAST(:bounds AS float8[])), count(*), sum(l.rating), l.league
        FROM leaderboard_entries l
        WHERE (l.board, l.season) IN (SELECT DISTINCT ON (board) board, season FROM leaderboard_entries
                                      ORDER BY board, computed_at DESC, season DESC)
        GROUP BY 1, 2, 5"""), {"bounds": [-b for b in reversed(bounds)]}).all()


def leaderboard_write_seconds(engine: Engine, players: int) -> tuple[float, float]:
    """Seconds of ``write_entries`` re-rating every player of the bench board, with the ``leaderboard_rating_counts``
    triggers (committed) and without them (the same write with the triggers disabled, rolled back)."""
    dsn = libpq_dsn(engine.url.render_as_string(hide_password=False))
    took = []
    for shift, triggers in ((1.5, True), (3.0, False)):
        entries = [Entry(g, f"p{g}", 400 + (g * 37) % 2800 + shift, 100.0 * (players - g) / players,
                         ("bronze", "silver", "gold", "platinum")[(g + 1) % 4]) for g in range(1, players + 1)]
        with psycopg.connect(dsn) as conn:
            if not triggers:
                conn.execute("ALTER TABLE leaderboard_entries DISABLE TRIGGER USER")
            started = time.perf_counter()
            write_entries(conn, "bench-elo", 2024, entries)
            took.append(time.perf_counter() - started)
            (conn.commit if triggers else conn.rollback)()
    return took[0], took[1]


def add_events(engine: Engine, n: int, end: datetime) -> None:
    """``n`` more purchases at ``end``, by existing players (the incremental refresh's input)."""
    with engine.begin() as conn:
        conn.execute(text("""
            INSERT INTO events (event_id, event_type, occurred_at, player_id, game, region, payload)
            SELECT 'n-' || g, 'purchase', :end, 'p' || (g * 97), 'bench', 'EU',
                   jsonb_build_object('quantity', 1, 'amount', 9.99, 'currency', 'USD')
            FROM generate_series(1, :n) AS g"""), {"n": n, "end": end})


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
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        took = generate(engine, args.players, args.events_per_player, end)
        print(f"generated {args.players:,} players, {args.players * args.events_per_player:,} events, "
              f"{args.players:,} leaderboard rows in {took:.1f} s")

        with_counts, without = leaderboard_write_seconds(engine, args.players)
        print(f"leaderboard write of {args.players:,} re-rated rows (write_entries): {with_counts:.2f} s with the "
              f"rating-count triggers, {without:.2f} s without")

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
        with engine.connect() as conn:
            conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            conn.execute(text("SELECT set_config('work_mem', :mem, true), set_config('jit', 'off', true)"),
                         {"mem": collector.work_mem})
            derived.catch_up(conn.connection.driver_connection)
            as_of = resolve_as_of(conn, "latest")
            collector._complete = True
            for name in ("_activity", "_sessions", "_economy", "_rankings", "_detections", "_scheduled"):
                started = time.perf_counter()
                getattr(collector, name)(conn, as_of)
                print(f"  {name[1:]:<11} {(time.perf_counter() - started) * 1000:8,.0f} ms")
            print("  side by side, per figure: before (events, payloads, a row per player) -> after (rollups)")
            day, buckets = as_of - timedelta(days=1), names.WEALTH_BUCKETS
            bounds = [float(b) for b in names.RATING_BUCKETS]
            pairs = (
                ("active players per period", lambda: activity.active_players_by_period(conn, as_of, aggregates=True),
                 lambda: rollups.active_players_by_period(conn, as_of)),
                ("events per period", lambda: activity.events_by_period(conn, as_of),
                 lambda: rollups.events_by_period(conn, as_of, complete=True)),
                ("price index", lambda: economy.price_index_at(conn, as_of),
                 lambda: rollups.price_index_at(conn, as_of, complete=True)),
                ("trade volume", lambda: economy.trade_volume_since(conn, day, as_of),
                 lambda: rollups.trade_volume_since(conn, day, as_of, complete=True)),
                # a minute before the newest flows: the balances minus the later flows, one row per player
                ("Gini + wealth histogram", lambda: economy.wealth_distribution(
                    conn, buckets, as_of - timedelta(minutes=1), aggregates=True),
                 lambda: economy.wealth_distribution(conn, buckets, as_of, aggregates=True)),
                ("rating buckets (entries -> counts)", lambda: rating_buckets_from_entries(conn, bounds),
                 lambda: ratings.rating_buckets(conn, bounds)),
            )  # fmt: skip
            for label, before, after in pairs:
                took = []
                for run in (before, after):
                    started = time.perf_counter()
                    run()
                    took.append((time.perf_counter() - started) * 1000)
                print(f"    {label:<34} {took[0]:8,.0f} ms -> {took[1]:6,.0f} ms")
            conn.commit()

        add_events(engine, args.new_events, end)
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
