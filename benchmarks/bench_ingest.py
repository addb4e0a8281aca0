"""Ingest throughput: our validated, idempotent paths vs a raw COPY of the same rows.

Prints events/s for
  * raw COPY          - pre-built rows binary-COPY-ed straight into ``events`` (no validation, not idempotent):
                        the ceiling; the synthetic rows' 1963-2008 times fall into ``events_default``, so the
                        same rows are also timed re-dated into the current month's partition (where live ingest
                        writes: the production table's hot path)
  * copy_events       - dicts -> pydantic validation (a batch ahead, in a thread) -> binary COPY into
                        ``event_ids`` and ``events`` (idempotent by event_id: a batch meeting a stored event_id
                        falls back to INSERT ... ON CONFLICT),
                        one transaction per batch
  * stream worker     - entries already in a Redis Stream -> XREADGROUP -> validation (ahead, in a thread) -> the
                        same write path -> XACK; also two worker processes in one consumer group (two replicas
                        of the ingest Deployment), which puts both cores to work on validation
and each path's ratio to raw COPY (goal: >= 0.9 and >= 100k events/s), then the cost of the derived tables'
catch-up (players, matches, per-player aggregates; run by their readers, not by ingest) over the same events.
Figures only, no assertions.

Starts its own throwaway PostgreSQL and Redis (devtools) unless ``--dsn`` and ``--redis-url`` are given
(then the ``events``, ``event_ids``, ``players``, ``matches`` and ``dead_letters`` tables there are TRUNCATED
between runs).

    .venv/bin/python benchmarks/bench_ingest.py                      # the real data sets (make data)
    .venv/bin/python benchmarks/bench_ingest.py --source synthetic --events 200000
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import benchargs
import psycopg
from prometheus_client import CollectorRegistry

from game_analytics.events import validate_event
from game_analytics.storage import derived
from game_analytics.storage.engine import libpq_dsn
from game_analytics.storage.migrate import upgrade
from game_analytics.storage.partitions import ensure_partition, partition_for
from game_analytics.workers.batches import copy_rows, event_row
from game_analytics.workers.ingest import IngestConfig, IngestMetrics, IngestWorker
from game_analytics.workers.load import copy_events, publish_events

COLUMNS = "event_id, event_type, occurred_at, player_id, game, region, payload"


def real_events() -> list[dict]:
    """The real data sets as events: Bundesliga matches + the CDNOW purchase log (about 84k events)."""
    from game_analytics.data.datasets import load_bundesliga, load_cdnow_master
    from game_analytics.data.events import match_events, purchase_events

    return match_events(load_bundesliga()) + purchase_events(load_cdnow_master())


def synthetic_events(n: int) -> list[dict]:
    """``n`` events shaped like the converted real data: 90% CDNOW-like purchases, 10% Bundesliga-like matches."""
    events = []
    for i in range(n):
        if i % 10 == 9:
            events.append({"event_id": f"match-{i}", "event_type": "match_result",
                           "occurred_at": f"{1963 + i % 46}-09-{1 + i % 28:02d}T15:30:00Z",
                           "player_id": f"team-{i % 52}", "game": "bundesliga", "region": "DE",
                           "payload": {"home_team": f"team-{i % 52}", "away_team": f"team-{(i + 7) % 52}",
                                       "home_goals": i % 5, "away_goals": (i // 5) % 4, "season": 1963 + i % 46,
                                       "round": 1 + i % 34}})  # fmt: skip
        else:
            events.append({"event_id": f"purchase-{i}", "event_type": "purchase",
                           "occurred_at": f"1997-{1 + i % 12:02d}-{1 + i % 28:02d}T00:00:00Z",
                           "player_id": f"{i % 23570:05d}", "game": "cdnow",
                           "payload": {"quantity": 1 + i % 4, "amount": round(3.5 + (i % 997) * 0.31, 2),
                                       "currency": "USD"}})  # fmt: skip
    return events


def truncate(dsn: str) -> None:
    with psycopg.connect(libpq_dsn(dsn)) as conn:
        conn.execute("TRUNCATE events, event_ids, players, matches, dead_letters")


@contextlib.contextmanager
def services(args: argparse.Namespace) -> Iterator[tuple[callable, str, callable | None]]:
    """Yield ``(fresh_db() -> dsn, redis_url, fresh_db_before() -> dsn or None)``; the last is a database at
    :data:`BEFORE_PARTITIONING` (the unpartitioned events table, for the before/after COPY figure)."""
    if args.dsn and args.redis_url:

        def fresh() -> str:
            truncate(args.dsn)
            return args.dsn

        upgrade(args.dsn)
        yield fresh, args.redis_url, None
        return
    from devtools.postgres import start_postgres
    from devtools.redis import start_redis

    pg, rd = start_postgres(), start_redis()
    try:
        upgrade(pg.create_database("bench_template"))
        upgrade(pg.create_database("bench_before"), BEFORE_PARTITIONING)

        def fresh(template: str = "bench_template") -> str:
            return pg.create_database(f"bench_{uuid.uuid4().hex[:8]}", template=template)

        yield fresh, rd.url, lambda: fresh("bench_before")
    finally:
        rd.stop()
        pg.stop()


def raw_copy(dsn: str, rows: list[tuple], batch_size: int) -> float:
    """The ceiling: binary COPY of ready rows straight into ``events``, one transaction per batch."""
    started = time.perf_counter()
    with psycopg.connect(libpq_dsn(dsn)) as conn:
        for start in range(0, len(rows), batch_size):
            with conn.transaction(), conn.cursor() as cur:
                copy_rows(cur, "events", rows[start : start + batch_size])
    return time.perf_counter() - started


def live_rows(rows: list[tuple]) -> list[tuple]:
    """``rows`` re-dated in order over the current month up to now (as live ingest stores them)."""
    now = datetime.now(UTC)
    start = partition_for(now).start
    step = (now - start) / max(len(rows), 1)
    return [(*r[:2], start + k * step, *r[3:]) for k, r in enumerate(rows)]


def with_live_partition(dsn: str) -> str:
    """``dsn`` with the current month's partition of ``events`` created (what the ingest's maintenance does)."""
    with psycopg.connect(libpq_dsn(dsn)) as conn, conn.transaction():
        ensure_partition(conn, partition_for(datetime.now(UTC)))
    return dsn


def direct(dsn: str, events: list[dict], batch_size: int) -> float:
    started = time.perf_counter()
    result = copy_events(events, dsn, batch_size=batch_size, catch_up=False)
    elapsed = time.perf_counter() - started
    assert result.inserted == len(events), result
    return elapsed


def catch_up(dsn: str) -> float:
    """Time one catch-up of the derived tables over everything stored in ``dsn``."""
    with psycopg.connect(libpq_dsn(dsn)) as conn:
        started = time.perf_counter()
        derived.catch_up_now(conn)
        return time.perf_counter() - started


def stream_worker(dsn: str, redis_url: str, events: list[dict], batch_size: int) -> tuple[float, float]:
    """Publish ``events`` to a new stream, then time one worker draining it; returns (publish s, ingest s)."""
    stream = f"bench-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    publish_events(events, redis_url, stream=stream, chunk=batch_size)
    published = time.perf_counter() - started
    config = IngestConfig(
        redis_url=redis_url, dsn=dsn, stream=stream, consumer="bench", batch_size=batch_size
    )
    with IngestWorker(config, IngestMetrics(CollectorRegistry())) as worker:  # what `main` runs
        started = time.perf_counter()
        handled = worker.run(until_idle=True)
        elapsed = time.perf_counter() - started
    assert handled == len(events), handled
    return published, elapsed


def _consume(config: IngestConfig, ready, results) -> None:
    """One replica (a forked process): connect, wait for the others, drain the stream, report (handled, end)."""
    with IngestWorker(config, IngestMetrics(CollectorRegistry())) as worker:
        ready.wait()
        handled = worker.run(until_idle=True)
    results.put((handled, time.monotonic()))


def stream_replicas(dsn: str, redis_url: str, events: list[dict], batch_size: int, replicas: int) -> float:
    """Publish ``events``, then time ``replicas`` worker processes (one consumer group) draining the stream, as
    ingest Deployment replicas do; returns the seconds from their common start to the last one finishing."""
    stream = f"bench-{uuid.uuid4().hex[:8]}"
    publish_events(events, redis_url, stream=stream, chunk=batch_size)
    context = multiprocessing.get_context("fork")
    ready, results = context.Barrier(replicas + 1), context.Queue()
    workers = [
        context.Process(target=_consume, args=(IngestConfig(redis_url=redis_url, dsn=dsn, stream=stream,
                                                            consumer=f"bench-{i}", batch_size=batch_size),
                                               ready, results))
        for i in range(replicas)
    ]  # fmt: skip
    for worker in workers:
        worker.start()
    ready.wait()
    started = time.monotonic()
    outcomes = [results.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join()
    assert sum(handled for handled, _ in outcomes) == len(events), outcomes
    return max(end for _, end in outcomes) - started


RAW = "raw COPY into events (no validation)"
RAW_BEFORE = "raw COPY, events before partitioning"
RAW_LIVE = "raw COPY into this month's partition"
#: the last schema revision with the unpartitioned ``events`` (pk id, unique event_id, 4 btree indexes)
BEFORE_PARTITIONING = "0005"
CATCH_UP = "(derived tables catch-up, all events)"


def load_average() -> str:
    """The 1-minute load average (the machine is often shared: read the figures with it)."""
    return f"{os.getloadavg()[0]:.2f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source",
        choices=["real", "synthetic"],
        default="real",
        help="real: the cached data sets (make data); synthetic: --events generated events",
    )
    parser.add_argument("--events", type=int, default=200_000, help="number of synthetic events")
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds over all paths; the best is reported")
    parser.add_argument("--dsn")
    parser.add_argument("--redis-url")
    args = benchargs.parse(parser, argv, {"source": "synthetic", "events": 20_000, "repeat": 1})

    events = real_events() if args.source == "real" else synthetic_events(args.events)
    rows = [event_row(validate_event(e)) for e in events]
    live = live_rows(rows)
    n = len(events)
    best: dict[str, tuple[float, str]] = {}

    def record(name: str, seconds: float, load: str) -> None:
        if name not in best or seconds < best[name][0]:
            best[name] = (seconds, load)

    with services(args) as (fresh_db, redis_url, fresh_db_before):
        # Rounds interleave the paths, so that a burst of load from elsewhere hits all of them alike.
        for _ in range(args.repeat):
            if fresh_db_before is not None:
                record(RAW_BEFORE, raw_copy(fresh_db_before(), rows, args.batch_size), load_average())
            record(RAW, raw_copy(fresh_db(), rows, args.batch_size), load_average())
            record(RAW_LIVE, raw_copy(with_live_partition(fresh_db()), live, args.batch_size), load_average())
            dsn = fresh_db()
            record("copy_events", direct(dsn, events, args.batch_size), load_average())
            record(CATCH_UP, catch_up(dsn), load_average())
            published, seconds = stream_worker(fresh_db(), redis_url, events, args.batch_size)
            record("stream worker", seconds, load_average())
            seconds = stream_replicas(fresh_db(), redis_url, events, args.batch_size, replicas=2)
            record("stream worker, 2 replicas", seconds, load_average())
            record("(publish to stream, XADD)", published, load_average())

    raw = best[RAW][0]
    print(
        f"ingest benchmark: {n} {args.source} events, batch {args.batch_size}, best of {args.repeat}, "
        f"{os.cpu_count()} CPUs"
    )
    print(f"{'path':36} {'seconds':>8} {'events/s':>10} {'x raw':>6} {'load':>6}")
    for name, (seconds, load) in best.items():
        print(f"{name:36} {seconds:8.3f} {n / seconds:10,.0f} {raw / seconds:6.2f} {load:>6}")
    print("goal: validated paths >= 0.90 x raw COPY and >= 100,000 events/s; raw COPY into the partitioned "
          "events >= 80,000 rows/s (load: 1-minute load average after the run)")  # fmt: skip


if __name__ == "__main__":
    main()
