"""Ingest worker: Redis Stream -> validated events in PostgreSQL, exactly once per ``event_id``.

Delivery model (at-least-once from Redis, idempotent into PostgreSQL):

1. Entries are read with ``XREADGROUP`` in a consumer group.  On start the worker first re-reads its own pending
   entries (delivered before a crash, never acknowledged) and takes over entries other consumers left pending for
   longer than ``claim_idle_ms`` (``XAUTOCLAIM``); the claim is repeated periodically.
2. Each entry's ``data`` field is validated with :func:`game_analytics.events.parse_event` into an ``events``
   row, or a dead letter with its reason.  Reading and validating run in a thread up to two batches ahead of the
   storing (:func:`prefetched`), so that Python validates batch n+1 while PostgreSQL stores batch n.
3. In ONE transaction (:func:`write_batch`): valid events are binary-``COPY``-ed straight into ``events`` inside a
   SAVEPOINT.  Should an ``event_id`` already be stored (a redelivery), the COPY fails on the unique key; the
   batch then rolls back to the savepoint and goes through a session temp table and ``INSERT INTO events ...
   ON CONFLICT (event_id) DO NOTHING``.  Invalid entries go to ``dead_letters`` (unique per stream entry).
   Nothing else is written here: players, matches and the per-player aggregates are derived from ``events`` by
   a set-based catch-up that their readers run (:mod:`game_analytics.storage.derived`).
4. After the commit, rejected entries are also published to the dead-letter stream (field ``reason`` and
   ``field``), then all entries are ``XACK``-ed.  A crash anywhere before the XACK only causes a redelivery, which
   the unique keys turn into no-ops: no event is lost and none is stored twice.  (The dead-letter *stream* is
   therefore at-least-once; consumers de-duplicate on its ``stream_id`` field.)
5. A connection lost during the COMMIT leaves its outcome unknown to the worker.  The batch is redelivered either
   way; so that ``game_analytics_events_ingested_total`` still counts each stored event once, the worker asks
   PostgreSQL after reconnecting whether that transaction committed (``pg_xact_status``, the documented way to
   settle an in-doubt commit) and, if it did, counts the batch's events then (:class:`CommitInDoubt`).

The guarantee needs PostgreSQL's ``synchronous_commit`` on (its default): with it off, a database crash can lose
commits that were already reported successful, and so acknowledged.

Bad entries never block the stream: they are stored with their reason and acknowledged like good ones.  That
includes a poison entry the validator accepts but PostgreSQL refuses (a data error or a constraint): the batch is
bisected and only the refused rows are dead-lettered (:func:`write_batch`), so it cannot crash-loop the worker.

Validating entries into batches and writing a batch (steps 2 and 3) is :mod:`game_analytics.workers.batches`;
bulk loading (``copy_events``, ``publish_events``) is :mod:`game_analytics.workers.load`.

Run: ``python -m game_analytics.workers.ingest --redis-url redis://... --dsn postgresql://...`` (or
``game-analytics worker ingest ...``); options default to the ``GAME_ANALYTICS_*`` environment variables.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import socket
import threading
import time
from collections import Counter as Tally
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import psycopg
import redis
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from redis.sentinel import Sentinel

from game_analytics.monitoring import names
from game_analytics.storage.engine import libpq_dsn
from game_analytics.workers import runtime
from game_analytics.workers.batches import (
    DATA_FIELD,
    DEFAULT_STREAM,
    Batch,
    prefetched,
    prepare_connection,
    prepare_entries,
    write_batch,
)
from game_analytics.workers.runtime import serve, stop_event
from game_analytics.workers.shards import claim_idle, shard_streams

__all__ = [
    "DATA_FIELD",
    "DEFAULT_GROUP",
    "DEFAULT_STREAM",
    "IngestConfig",
    "IngestMetrics",
    "IngestWorker",
    "main",
]

log = logging.getLogger(__name__)

DEFAULT_GROUP = "ingest"
#: Stream entry field holding the event's UTF-8 JSON.
# --- metrics --------------------------------------------------------------------------------------------------


class IngestMetrics:
    """Prometheus metrics of the ingest worker, registered in ``registry`` (default: the global one).

    * ``game_analytics_events_ingested_total{game, event_type}`` - new events stored
    * ``game_analytics_ingest_duplicates_total`` - redelivered / repeated events skipped
    * ``game_analytics_dead_letters_total{reason}`` - rejected entries by reason kind
    * ``game_analytics_ingest_batch_duration_seconds`` - write + commit + ack time per batch (validation runs ahead)
    * ``game_analytics_ingest_stream_lag{stream,group}`` - entries not yet delivered to the group (XINFO lag)
    * ``game_analytics_ingest_pending{stream,group}`` - delivered but unacknowledged entries
    """

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.events = Counter(names.EVENTS_INGESTED.removesuffix("_total"), "Events stored, by game and type.",
                              ["game", "event_type"], registry=registry)  # fmt: skip
        self.duplicates = Counter("game_analytics_ingest_duplicates", "Events skipped as already stored.",
                                  registry=registry)  # fmt: skip
        self.dead_letters = Counter(names.DEAD_LETTERS.removesuffix("_total"), "Entries rejected, by reason kind.",
                                    ["reason"], registry=registry)  # fmt: skip
        self.batch_duration = Histogram(
            "game_analytics_ingest_batch_duration_seconds", "Time to store and acknowledge one batch.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=registry,
        )  # fmt: skip
        self.lag = Gauge("game_analytics_ingest_stream_lag", "Stream entries not yet delivered to the group.",
                         ["stream", "group"], registry=registry)  # fmt: skip
        self.pending = Gauge("game_analytics_ingest_pending", "Delivered but unacknowledged entries.",
                             ["stream", "group"], registry=registry)  # fmt: skip


_DEFAULT_METRICS: IngestMetrics | None = None

_CURRENT_XACT = "SELECT pg_current_xact_id()::text"
_XACT_STATUS = "SELECT pg_xact_status(%s::xid8)"


def default_metrics() -> IngestMetrics:
    """The process-wide metrics in the global registry (created on first use)."""
    global _DEFAULT_METRICS
    if _DEFAULT_METRICS is None:
        _DEFAULT_METRICS = IngestMetrics()
    return _DEFAULT_METRICS


# --- the worker -----------------------------------------------------------------------------------------------


@dataclass
class IngestConfig:
    """Worker settings.

    Attributes:
        redis_url: ``redis://`` URL of the stream's server.
        dsn: PostgreSQL URL (SQLAlchemy or libpq form).
        stream / group / consumer: stream key, consumer group and this consumer's stable name.
        batch_size: entries per XREADGROUP / transaction.
        block_ms: how long XREADGROUP blocks waiting for entries.
        claim_idle_ms: pending entries idle longer than this are taken over from other consumers.
        claim_every_s: how often to look for such entries while running.
        dead_letter_stream: stream receiving rejected entries (default ``<stream>-dead``).
        sentinels / sentinel_master: Sentinel ``(host, port)`` addresses and master name; used instead of
            ``redis_url`` when given.
        redis_password: password of the Redis data nodes, if any.
        sentinel_password: the Sentinels' own password, if any (never the data nodes' one).
    """

    redis_url: str
    dsn: str
    stream: str = DEFAULT_STREAM
    group: str = DEFAULT_GROUP
    consumer: str = field(default_factory=socket.gethostname)
    batch_size: int = 1000
    block_ms: int = 1000
    claim_idle_ms: int = 30_000
    claim_every_s: float = 15.0
    dead_letter_stream: str | None = None
    sentinels: list[tuple[str, int]] = field(default_factory=list)
    sentinel_master: str = "mymaster"
    redis_password: str | None = None
    sentinel_password: str | None = None

    @property
    def dead_letters_key(self) -> str:
        """Name of the dead-letter stream."""
        return self.dead_letter_stream or f"{self.stream}-dead"

    def redis_client(self) -> redis.Redis:
        """A client for the stream's server: the current master via the Sentinels if any, else ``redis_url``.

        A Sentinel-managed client follows a failover on its next reconnect.
        """
        if self.sentinels:
            sentinel = Sentinel(self.sentinels, socket_timeout=5, password=None,
                                sentinel_kwargs={"socket_timeout": 5, "password": self.sentinel_password})  # fmt: skip
            return sentinel.master_for(self.sentinel_master, password=self.redis_password, protocol=2)
        return redis.Redis.from_url(self.redis_url, password=self.redis_password, protocol=2)


class CommitInDoubt(psycopg.OperationalError):
    """The connection was lost while a batch's COMMIT was in flight: it may or may not have been applied.

    Attributes:
        xact_id: the transaction's 64-bit id (``pg_current_xact_id()``, as text).
        inserted: what the batch stored if it committed, ``(game, event type) -> events``.
    """

    def __init__(self, xact_id: str, inserted: dict[tuple[str, str], int]) -> None:
        super().__init__(f"connection lost during the COMMIT of transaction {xact_id}")
        self.xact_id, self.inserted = xact_id, inserted


class IngestWorker:
    """Consumes :attr:`IngestConfig.stream` into PostgreSQL (see the module docstring for the guarantees).

    Use as a context manager or call :meth:`close`.  Not thread-safe; run one worker per thread/process.
    """

    def __init__(self, config: IngestConfig, metrics: IngestMetrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or default_metrics()
        self.redis = config.redis_client()  # RESP2: the reply shapes parsed below
        # Raw XREADGROUP replies: turning each entry's fields into a dict costs more than validating its header.
        self.redis.set_response_callback("XREADGROUP", lambda reply, **_: reply)
        self.db = psycopg.connect(libpq_dsn(config.dsn))
        prepare_connection(self.db)
        self._ensure_group()
        self._last_claim = 0.0
        self._last_lag = 0.0
        self._direct = True  # try the direct COPY (see write_batch)

    def __enter__(self) -> IngestWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the Redis and PostgreSQL connections."""
        self.redis.close()
        self.db.close()

    def _ensure_group(self) -> None:
        try:
            self.redis.xgroup_create(self.config.stream, self.config.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # reading (runs in the prefetch thread) ------------------------------------------------------------------

    def _read(self, entry_id: str, block_ms: int | None) -> list[tuple[bytes, list[bytes] | None]]:
        """``XREADGROUP`` reply entries as ``(entry_id, [name, value, ...] or None)`` (see ``__init__``)."""
        reply = self.redis.xreadgroup(self.config.group, self.config.consumer, {self.config.stream: entry_id},
                                      count=self.config.batch_size, block=block_ms)  # fmt: skip
        return reply[0][1] if reply else []

    def batches(self, stop: threading.Event, *, until_idle: bool = False) -> Iterator[Batch]:
        """The reading side: validated batches of, in this order, this consumer's own pending entries (delivered
        before a crash, never acknowledged), entries other consumers left pending longer than ``claim_idle_ms``,
        then new entries (claiming again every ``claim_every_s``), until ``stop`` is set or, with
        ``until_idle``, a read finds nothing new.  Refreshes the lag gauges about once a second."""
        after = "0"
        while entries := self._read(after, None):  # XREADGROUP with an id: our pending entries after it
            after = entries[-1][0]
            yield prepare_entries(entries)
        yield from self._claimed()
        while not stop.is_set():
            if time.monotonic() - self._last_claim > self.config.claim_every_s:
                yield from self._claimed()
            entries = self._read(">", 50 if until_idle else self.config.block_ms)
            if entries:
                yield prepare_entries(entries)
            if not entries or time.monotonic() - self._last_lag > 1.0:
                self.update_lag()
            if until_idle and not entries:
                return

    def _claimed(self) -> Iterator[Batch]:
        """``XAUTOCLAIM`` entries pending longer than ``claim_idle_ms`` for any consumer, as validated batches
        (:func:`~game_analytics.workers.shards.claim_idle`)."""
        config = self.config
        for entries in claim_idle(self.redis, config.stream, config.group, config.consumer, config.claim_idle_ms,
                                  config.batch_size):  # fmt: skip
            yield prepare_entries(entries)
        self._last_claim = time.monotonic()

    def update_lag(self) -> None:
        """Refresh the lag and pending gauges from ``XINFO GROUPS`` (Redis >= 7 reports ``lag``)."""
        labels = (self.config.stream, self.config.group)
        for info in self.redis.xinfo_groups(self.config.stream):
            name = info.get("name")
            if (name.decode() if isinstance(name, bytes) else name) == self.config.group:
                if info.get("lag") is not None:
                    self.metrics.lag.labels(*labels).set(info["lag"])
                self.metrics.pending.labels(*labels).set(info.get("pending", 0))
        self._last_lag = time.monotonic()

    # storing ------------------------------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None, *, until_idle: bool = False, prefetch: int = 2) -> int:
        """Store the :meth:`batches` until ``stop`` is set (batches already read are still stored) or, with
        ``until_idle``, until the stream has nothing new.  Reading and validating run ``prefetch`` batches ahead
        in a thread (:func:`prefetched`; 0: one after the other in this thread).

        Returns the number of entries handled.  Database and Redis errors propagate; entries read but not
        acknowledged are then redelivered to the next run.
        """
        stop = stop or threading.Event()
        batches = self.batches(stop, until_idle=until_idle)
        handled = 0
        for batch in prefetched(batches, prefetch) if prefetch else batches:
            handled += self.store(batch)
        return handled

    def store(self, batch: Batch) -> int:
        """Store ``batch`` (one transaction), dead-letter and acknowledge its entries; return how many."""
        started = time.perf_counter()
        xact_id: str | None = None
        try:
            with self.db.transaction():
                outcome = write_batch(self.db, batch, self.config.stream, direct=self._direct)
                xact_id = self.db.execute(_CURRENT_XACT).fetchone()[0]
        except psycopg.OperationalError as exc:
            if xact_id is not None and self.db.broken:  # the COMMIT was sent, its reply lost
                raise CommitInDoubt(xact_id, outcome.inserted) from exc
            raise
        # After duplicates (a redelivery) expect more: then skip the direct attempt for the next batch.
        self._direct = outcome.duplicates == 0
        dead = batch.dead + outcome.rejected  # rejected: rows PostgreSQL refused (see write_batch)
        if dead:
            pipe = self.redis.pipeline(transaction=False)
            for d in dead:
                pipe.xadd(self.config.dead_letters_key, {"stream": self.config.stream, "stream_id": d.stream_id,
                                                         "reason": d.reason, "field": d.field or "",
                                                         "data": d.raw})  # fmt: skip
            pipe.execute()
        if batch.entry_ids:
            self.redis.xack(self.config.stream, self.config.group, *batch.entry_ids)
        for (game, etype), n in outcome.inserted.items():
            self.metrics.events.labels(game, etype).inc(n)
        if outcome.duplicates:
            self.metrics.duplicates.inc(outcome.duplicates)
        for kind, n in Tally(d.kind for d in dead).items():
            self.metrics.dead_letters.labels(kind).inc(n)
        self.metrics.batch_duration.observe(time.perf_counter() - started)
        return len(batch.entry_ids)

    def settle(self, doubt: CommitInDoubt) -> bool:
        """Ask PostgreSQL whether ``doubt``'s transaction committed; if so count its events as ingested (its
        redelivered entries then count as duplicates).  Returns whether it committed: False also when the
        server no longer knows the transaction (too old, or lost with a crash that rolled ``nextXid`` back).
        """
        try:
            status = self.db.execute(_XACT_STATUS, (doubt.xact_id,)).fetchone()[0]
        except psycopg.errors.InvalidParameterValue:  # "transaction ID ... is in the future": it was lost
            self.db.rollback()
            status = None
        self.db.rollback()  # end the implicit transaction the query opened
        log.info("in-doubt commit of transaction %s: %s", doubt.xact_id, status or "unknown")
        if status != "committed":
            return False
        for (game, etype), n in doubt.inserted.items():
            self.metrics.events.labels(game, etype).inc(n)
        return True


# --- command line ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of the worker: the ingest flags of :class:`game_analytics.settings.WorkerSettings`,
    each also read from its ``GAME_ANALYTICS_*`` variable, which the operator renders into the worker's pod."""
    return runtime.parser("ingest", "Redis Stream -> PostgreSQL")


def consume(config: IngestConfig, stop: threading.Event) -> None:
    """Run an :class:`IngestWorker` on ``config`` until ``stop`` is set, reconnecting with exponential backoff
    (0.5 s .. 30 s) after PostgreSQL/Redis connection errors."""
    backoff = 0.5
    doubt: CommitInDoubt | None = None
    while not stop.is_set():
        try:
            with IngestWorker(config) as worker:
                log.info("ingesting stream %s as %s/%s", config.stream, config.group, config.consumer)
                backoff = 0.5
                if doubt is not None:
                    worker.settle(doubt)
                    doubt = None
                worker.run(stop)
        except (psycopg.OperationalError, redis.ConnectionError, redis.TimeoutError) as exc:
            if isinstance(exc, CommitInDoubt):
                doubt = exc  # settled on the next connection
            # Nothing is lost: unacknowledged entries stay pending and are re-read after reconnecting.
            log.warning("connection problem on %s (%s); reconnecting in %.1f s", config.stream, exc, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the worker until SIGTERM/SIGINT, reconnecting with exponential backoff (0.5 s .. 30 s) after
    PostgreSQL/Redis connection errors; returns the process exit code (0 after a signal, 2 on bad usage)."""
    parser = build_parser()
    _, settings = runtime.start(parser, argv, "ingest")
    if not settings.redis_url and not settings.redis_sentinels:
        parser.error(
            "give --redis-url or --redis-sentinels (or GAME_ANALYTICS_REDIS_URL / GAME_ANALYTICS_REDIS_SENTINELS)"
        )
    dsn = settings.dsn
    if settings.migrate:
        from game_analytics.storage.engine import sqlalchemy_url
        from game_analytics.storage.migrate import upgrade

        upgrade(sqlalchemy_url(dsn))
    port = settings.port()
    server = serve(port, addr=settings.listen) if port else None
    sentinels = [(h, int(port)) for h, _, port in (a.rpartition(":") for a in settings.redis_sentinels)]
    config = IngestConfig(
        redis_url=settings.redis_url or "", dsn=dsn, stream=settings.stream, group=settings.consumer_group,
        consumer=settings.consumer or socket.gethostname(), batch_size=settings.batch_size,
        block_ms=settings.block_ms, claim_idle_ms=settings.claim_idle_ms,
        dead_letter_stream=settings.dead_letter_stream, sentinels=sentinels,
        sentinel_master=settings.redis_master, redis_password=settings.redis_password,
        sentinel_password=settings.redis_sentinel_password,
    )  # fmt: skip
    stop = stop_event()
    if settings.partition_maintenance:  # partitions ahead and retention, hourly (storage/partitions.py)
        from game_analytics.api.common import parse_duration
        from game_analytics.storage.partitions import maintain_forever

        maintain_forever(dsn, stop, retention=parse_duration(settings.retention) if settings.retention else None,
                         interval=settings.partition_interval)  # fmt: skip
    # One consumer per shard stream (workers/shards.py), all in this process; one shard: this thread.
    streams = shard_streams(settings.stream, settings.stream_shards)
    dead = settings.dead_letter_stream or f"{settings.stream}-dead"
    configs = [dataclasses.replace(config, stream=name, dead_letter_stream=dead) for name in streams]
    threads = [threading.Thread(target=consume, args=(c, stop), name=f"ingest-{c.stream}") for c in configs[1:]]
    for thread in threads:
        thread.start()
    consume(configs[0], stop)
    for thread in threads:
        thread.join()
    if server is not None:
        server.shutdown()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
