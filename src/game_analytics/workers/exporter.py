"""Exporter worker: analytics aggregates from PostgreSQL (and the ingest stream's lag from Redis) for Prometheus.

A custom ``prometheus_client`` collector (:class:`AnalyticsCollector`) runs a handful of aggregate SQL queries
when scraped and caches the result for ``ttl`` seconds: concurrent or frequent scrapes wait for one refresh and
share it instead of each querying PostgreSQL.  Every label is a bounded enumeration (game, currency, period,
event type, region, ranking, league, rule, category, severity, status, priority); per-player figures are exported
only as gauge histograms over the FIXED buckets of :mod:`game_analytics.monitoring.names`, so the number of series
never depends on the number of players.

Exported families (names from :mod:`game_analytics.monitoring.names`):

* ``ACTIVE_PLAYERS{game, period}``: distinct players active in the last 1h / 1d / 7d / 30d;
  ``ACTIVE_PLAYERS_BY_REGION{game, region}``: in the last hour (at most :data:`MAX_REGIONS` regions per game,
  the rest summed as ``other``); ``PERIOD_EVENTS{game, event_type, period}``: events in those windows.
* ``SESSIONS{game, region}`` (counter: ``login`` events stored) and ``SESSION_DURATION{game}`` (histogram of the
  ``session_seconds`` of ``logout`` events).  Sources without logins (CDNOW) have none; the SQL sessionization of
  :func:`game_analytics.storage.queries.sessions.sessions` is for reports, too costly per scrape.
* ``PRICE_INDEX``, ``GINI``, ``TRADE_VOLUME`` ``{game, currency}`` and the ``PLAYER_WEALTH`` gauge histogram:
  see :mod:`game_analytics.storage.queries.economy` (trade volume = value traded in the last day).
* ``PLAYER_RATING{game, ranking}`` gauge histogram and ``LEAGUE_PLAYERS{game, ranking, league}`` over the latest
  season of each leaderboard (``ranking`` = the board name).
* ``DETECTIONS_OPEN{category, status, priority}``: detections whose intervention is open or in progress;
  ``INTERVENTIONS_OPEN{action, status, priority}`` likewise, ``action = review_<category>``;
  ``DETECTIONS_STORED{rule, category, severity}``: all detections recorded.
* ``SCHEDULED_RUNS`` / ``SCHEDULED_LAST_SUCCESS{kind="ScheduledReport", name}`` from ``report_runs``.
* ``FUNNEL_STEP_PLAYERS`` / ``FUNNEL_STEP_CONVERSION{report, step, event_type}``: the latest succeeded run of each
  funnel ScheduledReport (``report_runs.parameters.funnel``): :mod:`game_analytics.workers.exporter_funnel`.
* ``INGEST_LAG{stream}``: seconds since the oldest entry the consumer group has not acknowledged (the oldest
  pending entry, else the first undelivered one; 0 when caught up), with ``INGEST_GROUP_LAG`` and
  ``INGEST_GROUP_PENDING{stream, group}`` (entries, from ``XINFO GROUPS``); one series per shard stream
  (``--shards``: ``STREAM:0`` ..) when the stream is sharded.
* ``KPI{game, kpi}``, ``PLAYER_CLV{game}`` and ``CHURN_RISK_PLAYERS{game, tier}``: the slow section of
  :mod:`game_analytics.workers.exporter_value` (model fits; recomputed at most every 10 minutes).
* ``DB_STATEMENTS``/``DB_STATEMENT_SECONDS{statement}`` (pg_stat_statements, where installed) and the
  ``ANOMALY_SCORE{rule}`` gauge histogram: :mod:`game_analytics.workers.exporter_platform`.
* ``EXPORTER_AS_OF`` (evaluation time), ``EXPORTER_REFRESH_DURATION``, ``EXPORTER_QUERY_ERRORS{query}``.

Evaluation time: ``--as-of`` (see :mod:`game_analytics.workers.runtime`); the ingest lag is always wall-clock.
The SQL lives in the query layer (:mod:`game_analytics.storage.queries`), with the definitions of an active
player and of a session; this module turns its rows into metric families.

Run: ``game-analytics worker exporter [--dsn ...] [--as-of latest] [--port 9102]``; settings default to the
``GAME_ANALYTICS_*`` environment (:class:`game_analytics.settings.WorkerSettings`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
import redis
from croniter import croniter
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from game_analytics.interventions.metrics import QueueCollector
from game_analytics.monitoring import names
from game_analytics.storage import derived
from game_analytics.storage.engine import make_engine
from game_analytics.storage.queries import activity, ratings, rollups, sessions
from game_analytics.storage.queries import economy as economy_sql
from game_analytics.workers import runtime
from game_analytics.workers.buckets import cumulate, le_buckets
from game_analytics.workers.exporter_funnel import funnel_families
from game_analytics.workers.exporter_platform import platform_families
from game_analytics.workers.exporter_value import PlayerValueSection
from game_analytics.workers.runtime import parse_as_of, resolve_as_of, serve, start, stop_event
from game_analytics.workers.shards import shard_streams
from game_analytics.workers.stream_lag import stream_lag

__all__ = ["AnalyticsCollector", "build_parser", "main", "stream_lag"]

log = logging.getLogger(__name__)


def _serialization_failure(exc: Exception) -> bool:
    """Whether ``exc`` (psycopg's own, or wrapped by SQLAlchemy) is SQLSTATE 40001, a serialization failure."""
    return getattr(getattr(exc, "orig", exc), "sqlstate", None) == "40001"

MAX_REGIONS = 50
SESSION_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400)


def schedule_interval_seconds(schedule: str, time_zone: str, after: datetime) -> float | None:
    """Seconds between the next two fire times of a cron ``schedule`` in ``time_zone`` after ``after``; None when
    the expression or the zone is not valid (the operator reports those on the custom resource)."""
    try:
        fires = croniter(schedule, after.astimezone(ZoneInfo(time_zone)))
        first = fires.get_next(datetime)
        return (fires.get_next(datetime) - first).total_seconds()
    except (ValueError, KeyError, ZoneInfoNotFoundError):
        return None


class AnalyticsCollector(Collector):
    """The exporter's collector: aggregate queries on ``engine`` (and ``redis_client``), cached for ``ttl`` s.

    Args:
        engine: SQLAlchemy engine of the analytics store.
        games: only these games (empty = all).
        as_of: ``"now"``, ``"latest"`` or a datetime (see the module docstring).
        ttl: seconds a refresh is reused; 0 refreshes on every scrape.
        redis_client, stream, group: where to measure the ingest lag (None = no ingest metrics).
        shards: the stream's shards (``spec.stream.shards``): the lag is exported per shard stream.
        clock: Unix time source (tests).
        background: refresh stale snapshots in a background thread (see :meth:`collect`).
        work_mem: PostgreSQL ``work_mem`` for the refresh transaction (per sort/hash node).
    """

    def __init__(
        self, engine: Engine, *, games: Sequence[str] = (), as_of: str | datetime = "now", ttl: float = 15.0,
        redis_client: redis.Redis | None = None, stream: str = "game-events", group: str = "ingest",
        clock: Callable[[], float] = time.time, background: bool = True, work_mem: str = "256MB", shards: int = 1,
    ) -> None:  # fmt: skip
        self.engine = engine
        self.work_mem = work_mem
        self.background = background
        self._has_snapshot = False
        self._refreshing = False
        self.games = list(games)
        self.as_of = as_of
        self.ttl = ttl
        self.redis = redis_client
        self.stream = stream
        self.streams = shard_streams(stream, shards)
        self.group = group
        self.clock = clock
        self._lock = threading.Lock()
        self._cached: list[Metric] = []
        self._expires = float("-inf")
        self._errors: dict[str, int] = {}
        self.refreshes = 0
        self.last_refresh_seconds = 0.0
        self.last_catch_up_seconds = 0.0
        self.last_catch_up_events = 0
        self._as_of = datetime.fromtimestamp(0, UTC)
        self._complete = False
        self._player_value = PlayerValueSection()

    def describe(self) -> Iterable[Metric]:
        """Nothing: registering must not run the queries (prometheus_client calls describe on register)."""
        return []

    def collect(self) -> Iterable[Metric]:
        """The cached families; when older than ``ttl`` they are refreshed (one refresh at a time).

        With ``background`` (the default) a stale snapshot is served at once while a background thread refreshes
        it (stale-while-revalidate), so a scrape never waits for the queries once the first refresh is done;
        without it the scrape that finds the snapshot stale runs the refresh and the others wait for it.
        """
        with self._lock:
            stale = time.monotonic() >= self._expires
            if stale and (not self.background or not self._has_snapshot):
                self._store(self.refresh())
            elif stale and not self._refreshing:
                self._refreshing = True
                threading.Thread(target=self._refresh_in_background, name="exporter-refresh", daemon=True).start()
            return list(self._cached)

    def ready(self) -> bool:
        """Whether a snapshot exists to serve (the exporter's ``/readyz``)."""
        return self._has_snapshot

    def warm_up(self) -> threading.Thread:
        """Start the first refresh in a background thread now (at start-up), so that the first scrape is served
        from the cache instead of running the queries; a scrape arriving earlier waits for it.  Returns the
        thread."""

        def first() -> None:
            with self._lock:
                if not self._has_snapshot:
                    try:
                        self._store(self.refresh())
                    except Exception:  # noqa: BLE001 - the first scrape will retry
                        log.exception("warm-up refresh failed")

        thread = threading.Thread(target=first, name="exporter-warm-up", daemon=True)
        thread.start()
        return thread

    def _store(self, families: list[Metric]) -> None:
        self._cached = families
        self._has_snapshot = True
        self._expires = time.monotonic() + self.ttl

    def _refresh_in_background(self) -> None:
        try:
            families = self.refresh()
            with self._lock:
                self._store(families)
        except Exception:  # noqa: BLE001 - keep serving the old snapshot; the next scrape retries
            log.exception("background refresh failed")
        finally:
            self._refreshing = False

    # --- refresh ------------------------------------------------------------------------------------------------

    def refresh(self) -> list[Metric]:
        """Run every query now and return the metric families (a failing query is logged, counted in
        ``EXPORTER_QUERY_ERRORS{query}`` and its families left out; the others are still exported).

        One REPEATABLE READ transaction: first the running per-player aggregates catch up with the events
        committed since the previous refresh (:func:`derived.catch_up`; its cost grows with the new
        events, not with the store), then every section reads the same snapshot.  If the catch-up fails, the
        sections that read those aggregates (activity, sessions, economy) are left out as failed.
        """
        started = time.perf_counter()
        families: list[Metric] = []
        for attempt in range(3):
            try:
                families = self._refresh_sections()
                break
            except (OperationalError, psycopg.errors.SerializationFailure) as exc:
                # another reader caught up concurrently: retry on a new snapshot
                if not _serialization_failure(exc) or attempt == 2:
                    raise
        if self.redis is not None:
            try:
                families += self._ingest()
            except redis.RedisError:
                log.exception("reading the stream lag failed")
                self._errors["ingest"] = self._errors.get("ingest", 0) + 1
        self.refreshes += 1
        self.last_refresh_seconds = time.perf_counter() - started
        families += self._self_metrics(self._as_of)
        return families

    def _refresh_sections(self) -> list[Metric]:
        families: list[Metric] = []
        with self.engine.connect() as conn:
            conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            # per-player aggregates hash ~1M groups: give them memory instead of spilling to disk.  No JIT: the
            # planner's row estimates of the CTE scans are far off, and compiling the wealth and rating statements
            # cost 0.9 s and 1.4 s of a 1M-player refresh (EXPLAIN ANALYZE, docs/scaling.md) for no faster run
            conn.execute(text("SELECT set_config('work_mem', :mem, true), set_config('jit', 'off', true)"),
                         {"mem": self.work_mem})
            caught_up = True
            try:
                with conn.begin_nested():
                    started = time.perf_counter()
                    self.last_catch_up_events = derived.catch_up(conn.connection.driver_connection)
                    self.last_catch_up_seconds = time.perf_counter() - started
            except (OperationalError, psycopg.errors.SerializationFailure) as exc:
                if _serialization_failure(exc):
                    raise
                caught_up = self._failed("aggregates", conn)
            except Exception:  # noqa: BLE001 - the sections that do not need the aggregates still run
                caught_up = self._failed("aggregates", conn)
            as_of = self._as_of = resolve_as_of(conn, self.as_of, self.clock)
            # nothing stored after as_of: the rollups' hour of as_of is whole (always so for --as-of latest)
            self._complete = not rollups.events_after(conn, as_of, self.games)
            for name, section in (
                ("activity", self._activity), ("sessions", self._sessions), ("economy", self._economy),
                ("rankings", self._rankings), ("detections", self._detections), ("scheduled", self._scheduled),
                ("funnels", funnel_families),
                ("player_value", lambda c, t: self._player_value.families(c, t, self.games)),
                ("platform", platform_families),
            ):  # fmt: skip
                if not caught_up and name in ("activity", "sessions", "economy"):
                    self._errors[name] = self._errors.get(name, 0) + 1
                    continue
                try:
                    with conn.begin_nested():
                        families += section(conn, as_of)
                except Exception:  # noqa: BLE001 - one broken query must not blank the whole scrape
                    self._failed(name, conn)
                    if conn.invalidated:
                        break
            conn.commit()
        return families

    def _failed(self, name: str, conn: Connection) -> bool:
        log.exception("exporter query %s failed", name)
        self._errors[name] = self._errors.get(name, 0) + 1
        return False

    def _activity(self, conn: Connection, as_of: datetime) -> list[Metric]:
        active = GaugeMetricFamily(names.ACTIVE_PLAYERS, "Distinct players active in the trailing period.",
                                   labels=["game", "period"])  # fmt: skip
        for row in rollups.active_players_by_period(conn, as_of, self.games).itertuples():
            active.add_metric([row.game, row.period], row.players)
        span = dict(activity.ACTIVITY_PERIODS)
        rows = rollups.events_by_period(conn, as_of, self.games, span, complete=self._complete)
        events = GaugeMetricFamily(names.PERIOD_EVENTS, "Events in the trailing period.",
                                   labels=["game", "event_type", "period"])  # fmt: skip
        for game, event_type, *values in rows:
            for label, value in zip(span, values, strict=True):
                events.add_metric([game, event_type, label], value)
        rows = activity.active_players_by_region(conn, as_of - span["1h"], as_of, self.games)
        regions = GaugeMetricFamily(names.ACTIVE_PLAYERS_BY_REGION, "Distinct players active in the last hour, "
                                    "by region.", labels=["game", "region"])  # fmt: skip
        per_game: dict[str, list[tuple[str, int]]] = {}
        for game, region, players in rows:
            per_game.setdefault(game, []).append((region, players))
        for game, items in per_game.items():
            for region, players in items[:MAX_REGIONS]:
                regions.add_metric([game, region], players)
            if len(items) > MAX_REGIONS:  # a player active in two of these regions counts twice here
                regions.add_metric([game, "other"], sum(p for _, p in items[MAX_REGIONS:]))
        return [active, events, regions]

    def _sessions(self, conn: Connection, as_of: datetime) -> list[Metric]:
        started = CounterMetricFamily(names.SESSIONS, "Sessions started (login events).", labels=["game", "region"])
        for game, region, count in sessions.logins_by_region(conn, as_of, self.games):
            started.add_metric([game, region], count)
        rows = sessions.logout_seconds_buckets(conn, as_of, SESSION_BUCKETS, self.games)
        duration = HistogramMetricFamily(names.SESSION_DURATION, "Length of finished sessions (logout events).",
                                         labels=["game"])  # fmt: skip
        for game, (buckets, total) in cumulate(rows, len(SESSION_BUCKETS)).items():
            duration.add_metric([game], le_buckets(SESSION_BUCKETS, buckets), sum_value=total)
        return [started, duration]

    def _economy(self, conn: Connection, as_of: datetime) -> list[Metric]:
        labels = ["game", "currency"]
        price = GaugeMetricFamily(names.PRICE_INDEX, "Unit price of the last 30 days relative to the market's first "
                                  "month (1 = unchanged).", labels=labels)  # fmt: skip
        for row in rollups.price_index_at(conn, as_of, self.games, complete=self._complete).itertuples():
            if row.index is not None:
                price.add_metric([row.game, row.currency], float(row.index))
        gini_frame, hist = economy_sql.wealth_distribution(
            conn, names.WEALTH_BUCKETS, as_of, self.games, aggregates=True)
        gini = GaugeMetricFamily(names.GINI, "Gini coefficient of player wealth (0 equal .. 1 one holder).",
                                 labels=labels)  # fmt: skip
        for row in gini_frame.itertuples():
            gini.add_metric([row.game, row.currency], row.gini)
        volume = GaugeMetricFamily(names.TRADE_VOLUME, "Value traded in the last day (purchases in their currency, "
                                   "trades in item value).", labels=labels)  # fmt: skip
        day = rollups.trade_volume_since(conn, as_of - timedelta(days=1), as_of, self.games, complete=self._complete)
        for row in day.itertuples():
            volume.add_metric([row.game, row.currency], float(row.value))
        wealth = GaugeHistogramMetricFamily(names.PLAYER_WEALTH, "Players by total wealth (fixed buckets).",
                                            labels=labels)  # fmt: skip
        for (game, currency), (counts, total) in hist.items():
            wealth.add_metric([game, currency], le_buckets(names.WEALTH_BUCKETS, counts), gsum_value=total)
        return [price, gini, volume, wealth]

    def _rankings(self, conn: Connection, as_of: datetime) -> list[Metric]:
        bounds = [float(b) for b in names.RATING_BUCKETS]
        rows = ratings.rating_buckets(conn, bounds)
        rating = GaugeHistogramMetricFamily(names.PLAYER_RATING, "Players by rating in the latest season of each "
                                            "ranking (fixed buckets).", labels=["game", "ranking"])  # fmt: skip
        leagues = GaugeMetricFamily(names.LEAGUE_PLAYERS, "Players per league in the latest season.",
                                    labels=["game", "ranking", "league"])  # fmt: skip
        per_board = cumulate([((g, b), k, n, s) for g, b, k, n, s, _ in rows], len(bounds))
        for (game, board), (buckets, total) in per_board.items():
            rating.add_metric([game, board], le_buckets(names.RATING_BUCKETS, buckets), gsum_value=total)
        league_counts: dict[tuple[str, str, str], int] = {}
        for game, board, _, count, _, league in rows:
            if league is not None:
                key = (game, board, league)
                league_counts[key] = league_counts.get(key, 0) + count
        for key, count in sorted(league_counts.items()):
            leagues.add_metric(list(key), count)
        games = {board: game for game, board, *_ in rows}
        return [rating, leagues, self._top_movers(conn, games)]

    @staticmethod
    def _top_movers(conn: Connection, games: dict[str, str]) -> Metric:
        """The ``TOP_MOVERS`` largest rating changes up and down between each job's two latest rating periods.

        Labelled by rank (1 = largest move) and direction, never by player: who moved is in the rankings report.
        """
        rows = ratings.top_movers(conn, names.TOP_MOVERS)
        movers = GaugeMetricFamily(names.TOP_MOVER_RATING_CHANGE, "Largest rating changes between the two latest "
                                   "rating periods, by rank and direction.",
                                   labels=["game", "ranking", "rank", "direction"])  # fmt: skip
        for job, direction, rank, change in rows:
            movers.add_metric([games.get(job, "unknown"), job, str(rank), direction], float(change))
        return movers

    def _detections(self, conn: Connection, as_of: datetime) -> list[Metric]:
        stored = GaugeMetricFamily(names.DETECTIONS_STORED, "Detections recorded, by rule.",
                                   labels=["rule", "category", "severity"])  # fmt: skip
        for rule, category, severity, count in conn.execute(text(
                "SELECT rule, category, severity, count(*) FROM detections GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")):
            stored.add_metric([rule, category, severity], count)
        open_detections = GaugeMetricFamily(names.DETECTIONS_OPEN, "Detections whose intervention is not closed.",
                                            labels=["category", "status", "priority"])  # fmt: skip
        interventions = GaugeMetricFamily(names.INTERVENTIONS_OPEN, "Interventions not closed.",
                                          labels=["action", "status", "priority"])  # fmt: skip
        for category, status, priority, n_det, n_int in conn.execute(text("""
                SELECT d.category, i.status::text, i.priority, count(DISTINCT d.id), count(*)
                FROM interventions i JOIN detections d ON d.id = i.detection_id
                WHERE i.status IN ('open', 'in_progress') GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""")):
            open_detections.add_metric([category, status, str(priority)], n_det)
            interventions.add_metric([f"review_{category}", status, str(priority)], n_int)
        return [stored, open_detections, interventions]

    def _scheduled(self, conn: Connection, as_of: datetime) -> list[Metric]:
        runs = CounterMetricFamily(names.SCHEDULED_RUNS, "Finished scheduled job runs.",
                                   labels=["kind", "name", "outcome"])  # fmt: skip
        last = GaugeMetricFamily(names.SCHEDULED_LAST_SUCCESS, "Unix time of the last successful run.",
                                 labels=["kind", "name"])  # fmt: skip
        rows = conn.execute(text("""
            SELECT namespace || '/' || report_name, outcome, count(*), extract(epoch FROM max(finished_at))
            FROM report_runs WHERE outcome IN ('succeeded', 'failed') GROUP BY 1, 2 ORDER BY 1, 2""")).all()
        for name, outcome, count, latest in rows:
            runs.add_metric(["ScheduledReport", name, "success" if outcome == "succeeded" else "failure"], count)
            if outcome == "succeeded" and latest is not None:
                last.add_metric(["ScheduledReport", name], float(latest))
        interval = GaugeMetricFamily(names.SCHEDULED_INTERVAL, "Seconds between two runs of the job's schedule.",
                                     labels=["kind", "name"])  # fmt: skip
        for name, schedule, zone in conn.execute(text("""
                SELECT DISTINCT ON (namespace, report_name) namespace || '/' || report_name,
                       parameters->>'schedule', coalesce(parameters->>'timeZone', 'UTC')
                FROM report_runs WHERE parameters ? 'schedule' ORDER BY namespace, report_name, started_at DESC""")):
            seconds = schedule_interval_seconds(schedule, zone, as_of)
            if seconds is not None:
                interval.add_metric(["ScheduledReport", name], seconds)
        return [runs, last, interval]

    def _ingest(self) -> list[Metric]:
        lag = GaugeMetricFamily(names.INGEST_LAG, "Seconds since the oldest stream entry not yet acknowledged by "
                                "the ingest group (0 = caught up).", labels=["stream"])  # fmt: skip
        behind = GaugeMetricFamily(names.INGEST_GROUP_LAG, "Stream entries not yet delivered to the ingest group.",
                                   labels=["stream", "group"])  # fmt: skip
        pending = GaugeMetricFamily(names.INGEST_GROUP_PENDING, "Entries delivered to the ingest group but not "
                                    "acknowledged.", labels=["stream", "group"])  # fmt: skip
        now = self.clock()
        for stream in self.streams:  # one series per shard (at most MAX_SHARDS)
            found = stream_lag(self.redis, stream, self.group, now)
            if found is not None:
                seconds, undelivered, n_pending = found
                lag.add_metric([stream], seconds)
                if undelivered is not None:
                    behind.add_metric([stream, self.group], undelivered)
                pending.add_metric([stream, self.group], n_pending)
        return [lag, behind, pending]

    def _self_metrics(self, as_of: datetime) -> list[Metric]:
        at = GaugeMetricFamily(names.EXPORTER_AS_OF, "Unix time the analytics windows end at.")
        at.add_metric([], as_of.timestamp())
        took = GaugeMetricFamily(names.EXPORTER_REFRESH_DURATION, "Duration of the last refresh of the aggregates.")
        took.add_metric([], self.last_refresh_seconds)
        errors = CounterMetricFamily(names.EXPORTER_QUERY_ERRORS, "Failed aggregate queries.", labels=["query"])
        for query, count in sorted(self._errors.items()):
            errors.add_metric([query], count)
        return [at, took, errors]


# --- command line ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Flags of ``game-analytics worker exporter``: the exporter's settings (each also read from its
    ``GAME_ANALYTICS_*`` variable)."""
    return runtime.parser("exporter", __doc__.split("\n")[0])


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the metrics until SIGTERM/SIGINT (or print one scrape with ``--once``); returns the exit code."""
    parser = build_parser()
    _, settings = start(parser, argv, "exporter")
    client = None
    if not settings.no_redis and (settings.redis_url or settings.redis_sentinels):
        from game_analytics.redis_client import connect

        client = connect(settings)
    engine = make_engine(settings.dsn, pool_size=2, max_overflow=0)
    as_of, ttl, port = parse_as_of(settings.as_of), settings.ttl, settings.port()
    collector = AnalyticsCollector(
        engine, games=settings.games, as_of=as_of, ttl=ttl, redis_client=client,
        stream=settings.stream, group=settings.consumer_group, shards=settings.stream_shards,
    )  # fmt: skip
    registry = CollectorRegistry()
    registry.register(collector)
    registry.register(QueueCollector(engine, ttl=ttl))
    if settings.once:
        sys.stdout.write(generate_latest(registry).decode())
        return 0
    collector.warm_up()
    server = serve(port, registry, settings.listen, ready=collector.ready)
    log.info("serving analytics metrics on %s:%d (as of %s, ttl %.0fs)", settings.listen, port, as_of, ttl)
    stop_event().wait()
    server.shutdown()
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
