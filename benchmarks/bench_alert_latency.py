"""Event-to-page latency of both alert paths, side by side in one run, under a background load of events.

Starts a throwaway PostgreSQL and Redis, then the real path of ``devtools.alert_path`` configured from
``examples/alertrule-wealth-jump.yaml`` on a CDNOW subset, with both paths on (``streaming=True``):

* **PrometheusRule path, shipped defaults**: detection worker pass every 30 s (``spec.workers.detection.
  intervalSeconds``), Prometheus scrape and rule evaluation every 30 s (the ServiceMonitor's interval and
  kube-prometheus-stack's evaluationInterval), Alertmanager ``groupWait`` 10 s, ``groupInterval`` 1 m;
* **streaming path**: a detection worker reading the stream in its own consumer group, evaluating the rule on
  the events as they arrive and posting to Alertmanager's v2 API.

Both Alertmanagers route with the same rendered configuration; the Prometheus path's ``groupWait`` is
``--group-wait`` (shipped 10 s), the streaming path's ``--stream-group-wait`` (default 0 s: an AlertRule's group
holds its one alert, so there is nothing to wait for; with 10 s its figures grow by those 10 s) and its
``groupInterval`` 1 s (the streaming cycles re-fire the same rule seconds apart: with 1 m a re-fire within a
minute of the last notification would wait for the next interval, whatever the path). While the cycles run, a publisher thread XADDs ``--load`` small purchases per second (default
5,000) of a pool of background players to the same stream; they flag nothing (below the rule's ``minWealth``).

A cycle publishes a sudden wealth jump and waits for the firing page of each path, then moves the window past it
and waits for both to resolve. ``--runs`` cycles measure both paths; ``--stream-runs`` more cycles measure the
streaming path alone (it resolves in about a second). Latency = wall-clock time from just before ``XADD`` to the
webhook's receipt. Prints p50 and p99 (nearest rank) of each path, and the machine's load average (1 min) at the
start and the end, since a shared machine's load distorts these figures. Figures only, no goal asserted (goal:
streaming p99 < 2 s). The streaming worker's log (``detection-stream.log`` under the printed folder) has a line per
batch slower than 1 s: its store wait, each rule's query / record / notify seconds, its oldest entry's age.

    .venv/bin/python benchmarks/bench_alert_latency.py                   # 3 + 20 cycles, 5,000 events/s
    .venv/bin/python benchmarks/bench_alert_latency.py --quick           # 1 + 2 cycles, short intervals (CI)

The full run keeps the shipped intervals: it is where the figures come from. ``--quick`` (CI: ``make bench
ARGS=--quick``, which only checks that the benchmark still works) runs 1 cycle of both paths and 2 of the streaming
path alone at a detection interval of 2 s, a scrape/evaluation interval of 2s, ``groupWait`` 1s and 1,000
background events/s (shorter detection intervals make the periodic whole-population pass run back to back; the
smaller load keeps that pass short), so it exercises the same processes, routes and load thread in well under a
minute; its figures say nothing about the shipped intervals. A page that does not arrive within the cycle's
timeout counts as that timeout (a lower bound; the table marks it with ">=") and the run goes on, so that one slow
cycle still leaves a table; a path none of whose firing pages arrived is broken, and the run exits 1 after the
table (in either mode).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import benchargs

from devtools import alert_path
from devtools.postgres import start_postgres
from devtools.redis import start_redis
from game_analytics.storage.migrate import upgrade
from game_analytics.workers.load import publish_events

ROOT = Path(__file__).resolve().parents[1]
#: ``--quick``: fewer cycles, short intervals, a smaller background load (see the module docstring)
QUICK = {"runs": 1, "stream_runs": 2, "load": 1000, "interval": 2.0, "scrape": "2s", "group_wait": "1s"}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


class Load(threading.Thread):
    """XADDs ``rate`` small purchases per second (chunks of 500) of ``players`` background players at
    ``at`` to ``stream`` until stopped; ``sent`` counts them."""

    def __init__(self, redis_url: str, stream: str, rate: int, at, players: int = 200_000) -> None:
        super().__init__(name="background-load", daemon=True)
        self.redis_url, self.stream, self.rate, self.at, self.players = redis_url, stream, rate, at, players
        self.stop_event, self.sent, self.started_at = threading.Event(), 0, 0.0

    def run(self) -> None:
        chunk, rng, occurred = 500, random.Random(0), self.at.isoformat()
        self.started_at = time.monotonic()
        while not self.stop_event.is_set():
            events = [{"event_id": uuid.uuid4().hex, "event_type": "purchase", "occurred_at": occurred,
                       "player_id": f"bg-{rng.randrange(self.players)}", "game": "cdnow", "region": "US",
                       "payload": {"quantity": 1, "amount": 1.0, "currency": "USD"}} for _ in range(chunk)]
            publish_events(events, self.redis_url, stream=self.stream)
            self.sent += chunk
            ahead = self.sent / self.rate - (time.monotonic() - self.started_at)
            if ahead > 0:
                self.stop_event.wait(ahead)

    def achieved(self) -> float:
        return self.sent / max(time.monotonic() - self.started_at, 1e-9)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="cycles measuring both paths (default 3)")
    parser.add_argument("--stream-runs", type=int, default=20, help="further cycles of the streaming path alone")
    parser.add_argument("--load", type=int, default=5000, help="background events per second (default 5000)")
    parser.add_argument("--interval", type=float, default=30, help="detection interval, s (shipped: 30)")
    parser.add_argument("--scrape", default="30s", help="Prometheus scrape and evaluation interval (shipped: 30s)")
    parser.add_argument("--group-wait", default="10s", help="Alertmanager groupWait (shipped: 10s)")
    parser.add_argument("--stream-group-wait", default="0s", help="groupWait of the streaming path's route")
    args = benchargs.parse(parser, argv, QUICK)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    load_before = os.getloadavg()[0]
    postgres, redis_server = start_postgres(), start_redis()
    workdir = Path(tempfile.mkdtemp(prefix="bench-alert-latency-"))
    prom, stream, load = [], [], None
    censored: dict[str, int] = {"prom": 0, "stream": 0}

    def wait(which: str, status: str, since: float, timeout: float, streaming: bool) -> float | None:
        """Seconds from ``since`` to the page, or None after ``timeout`` (counted in ``censored``)."""
        try:
            return path.wait_page(status, since, timeout=timeout, streaming=streaming).received_at - since
        except alert_path.PathError as exc:
            if "timed out" not in str(exc):
                raise
            censored[which] += status == "firing"
            print(f"  ({which}: no {status} page within {timeout:.0f} s)")
            return None

    try:
        dsn = postgres.create_database("bench_alert")
        upgrade(dsn)
        path = alert_path.AlertPath(workdir, dsn, redis_server.url, interval=args.interval, streaming=True,
                                    prometheus_interval=args.scrape, group_wait=args.group_wait,
                                    group_interval="1m", stream_group_wait=args.stream_group_wait,
                                    stream_group_interval="1s")
        try:
            path.start()
            events = path.load_history()
            load = Load(redis_server.url, path.stream, args.load, path.latest())
            load.start()
            print(f"{events:,} CDNOW events; background load {args.load:,} events/s; detection interval "
                  f"{args.interval:g} s, scrape/evaluation {args.scrape}, groupWait {args.group_wait}")
            for i in range(args.runs + args.stream_runs):
                both = i < args.runs
                player, at, sent = path.inject_jump(skip=i)
                took = wait("stream", "firing", sent, 60, True)
                stream.append(60.0 if took is None else took)
                line = f"  cycle {i + 1}: streaming {stream[-1]:.2f} s"
                if both:
                    took = wait("prom", "firing", sent, 300, False)
                    prom.append(300.0 if took is None else took)
                    line += f", PrometheusRule {prom[-1]:.1f} s"
                cleared = path.advance(at)
                wait("stream", "resolved", cleared, 60, True)
                if both and i + 1 < args.runs:  # the next cycle needs the Prometheus path's alert resolved
                    wait("prom", "resolved", cleared, 400, False)
                print(f"{line} ({player}; load {load.achieved():,.0f} events/s)")
        finally:
            if load is not None:
                load.stop_event.set()
                load.join(10)
            path.stop()
    finally:
        redis_server.stop()
        postgres.stop()

    print(f"\nevent-to-page under {load.achieved():,.0f} events/s of background load (p99: nearest rank)")
    print(f"{'path':<46} {'samples':>7} {'p50':>8} {'p99':>8}")
    for name, key, values in (
            (f"PrometheusRule ({args.interval:g} s / {args.scrape} / groupWait {args.group_wait})", "prom", prom),
            (f"streaming (Alertmanager v2, groupWait {args.stream_group_wait})", "stream", stream)):
        bound = ">=" if censored[key] else "  "
        print(f"{name:<46} {len(values):>7} {statistics.median(values):>7.2f}s {bound}{percentile(values, 99):>6.2f}s"
              + (f"  ({censored[key]} timed out)" if censored[key] else ""))
    print(f"(goal: streaming p99 < 2 s; load average {load_before:.2f} at the start, {os.getloadavg()[0]:.2f} at the "
          f"end; logs under {workdir})")
    broken = [key for key, values in (("prom", prom), ("stream", stream)) if censored[key] == len(values)]
    if broken:
        print(f"FAILED: no firing page at all by the {' and the '.join(broken)} path (see the logs above)")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
