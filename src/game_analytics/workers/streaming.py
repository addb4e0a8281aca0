"""The detection worker's streaming path: worker-evaluated rules evaluated on events as they arrive, alerts
posted straight to Alertmanager (no scrape, no rule evaluation interval, no detection interval in between).

The worker reads the GameDataSource's stream(s) in a consumer group of its own (``detection``; with
``spec.stream.shards`` N every shard stream ``NAME:0..N-1``, see :mod:`game_analytics.workers.shards`),
created at the stream's end: what happened before the worker started is the periodic pass's business. For a
batch of entries:

1. the events of the types a rule's detector reads (``detectors.EVENT_TYPES``) are its trigger;
2. the worker waits (up to ``store_timeout``) until the ingest worker has committed those events to
   PostgreSQL: the stream is the trigger, the store the state, and the detectors are the same SQL. "Committed"
   is read in Redis: the ingest consumer group has delivered the entries and none is pending (it acknowledges
   after its commit), a few commands per batch instead of queries on ``events``; events still not stored at
   the timeout are triggers again in the next batch;
3. a player-scoped rule (``detectors.PLAYER_SCOPED``) is evaluated for the touched players and the ones it
   already flags (so a subject whose window passed resolves at stream speed); ``marketManipulation`` and
   ``monopolyFormation`` are evaluated whole, at most every ``min_full_gap`` seconds; ``anomalyScore`` is left
   to the periodic pass;
4. the rule's flagged-subject count goes through :class:`~game_analytics.workers.alert_sender.RuleAlert` to
   Alertmanager's v2 API (:class:`~game_analytics.workers.alert_sender.AlertmanagerClient`);
5. the entries are acknowledged (after a restart this consumer's unacknowledged entries are read first: an
   evaluation is idempotent). A replacement pod has a new consumer name (the hostname) and never reads its
   predecessor's pending entries with ``XREADGROUP``: as the ingest workers do for theirs, the path takes over
   entries pending in its group for longer than ``claim_idle_ms`` for any consumer (``XAUTOCLAIM``,
   :func:`~game_analytics.workers.shards.claim_idle`) after its own pending ones and then every
   ``claim_every_s``, and evaluates and acknowledges them like new ones.

While this path runs, the periodic pass evaluates the player-scoped rules whole only every
``detection.STREAMED_FULL_EVERY``-th pass, and waits while this path has a backlog (:meth:`StreamEvaluator.backlog`):
a whole pass over the population costs seconds of the database the scoped evaluations need.

Evaluation time: ``--as-of now`` the wall clock, ``latest`` the newest event seen (stored or in the batch),
a fixed time that time. Every second without entries the flagged subjects are re-evaluated and alerts resent.

Settings (environment, rendered by the operator into the detection worker's ConfigMap):
``GAME_ANALYTICS_ALERTMANAGER_URLS`` (comma separated; empty: the streaming path is off),
``GAME_ANALYTICS_DETECTION_GROUP`` (default ``detection``), ``GAME_ANALYTICS_CONSUMER_GROUP`` (the ingest
workers' group whose acknowledgements mean "stored", default ``ingest``); not rendered, read when set:
``GAME_ANALYTICS_CLAIM_IDLE_MS`` (``--claim-idle-ms``, default 30000, the ingest workers' setting too: entries of
other consumers idle longer are taken over).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from prometheus_client import Histogram
from sqlalchemy import text

from game_analytics.monitoring import names
from game_analytics.workers.alert_sender import AlertmanagerClient, RuleAlert
from game_analytics.workers.batches import DATA_FIELD
from game_analytics.workers.detectors import EVENT_TYPES, PLAYER_SCOPED
from game_analytics.workers.shards import claim_idle, shard_streams

__all__ = ["ALERTMANAGER_URLS_ENV", "GROUP_ENV", "StreamEvaluator", "start_from_env"]

log = logging.getLogger(__name__)

ALERTMANAGER_URLS_ENV = "GAME_ANALYTICS_ALERTMANAGER_URLS"
GROUP_ENV = "GAME_ANALYTICS_DETECTION_GROUP"


def _stream_id(raw: Any) -> tuple[int, int]:
    """``b"1700000000000-3"`` -> ``(1700000000000, 3)``: stream entry ids compare as these tuples."""
    ms, _, seq = (raw.decode() if isinstance(raw, bytes) else str(raw)).partition("-")
    return int(ms), int(seq or 0)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _id_text(entry: tuple[int, int]) -> str:
    return f"{entry[0]}-{entry[1]}"


def _keys(batches: Sequence[tuple[Any, Any]]) -> set[tuple[str, str]]:
    """``(stream, entry id)`` of every entry of ``batches`` (``XREADGROUP`` / ``XAUTOCLAIM`` replies), as text."""
    return {(_text(stream), _text(entry[0])) for stream, entries in batches for entry in entries}


def _parse(batches: Iterable[tuple[Any, Iterable[tuple[Any, Any]]]]) -> list[dict[str, Any]]:
    """``{event_id, event_type, player_id, occurred_at (datetime), sent (XADD time, s), stream, id ((ms, seq))}``
    of the well-formed entries of ``[(stream, entries)]`` (a malformed one is the ingest worker's dead letter, not
    a trigger)."""
    out = []
    for stream, entries in batches:
        key = stream.decode() if isinstance(stream, bytes) else str(stream)
        for entry_id, fields in entries:
            if not fields:
                continue
            raw = fields.get(DATA_FIELD) if isinstance(fields, dict) else None
            try:
                doc = json.loads(raw)
                at = datetime.fromisoformat(str(doc["occurred_at"]).replace("Z", "+00:00"))
                at = at if at.tzinfo else at.replace(tzinfo=UTC)
                sid = _stream_id(entry_id)
                out.append({"event_id": str(doc["event_id"]), "event_type": str(doc["event_type"]),
                            "player_id": doc.get("player_id"), "occurred_at": at, "sent": sid[0] / 1000,
                            "stream": key, "id": sid})  # fmt: skip
            except (TypeError, ValueError, KeyError):
                continue
    return out


class StreamEvaluator:
    """Runs the streaming path of ``worker`` (a :class:`~game_analytics.workers.detection.DetectionWorker`).

    Args:
        worker: evaluates rules (``worker.evaluate``) and holds their subjects; its ``listeners`` get this.
        client: a ``redis.Redis`` (raw bytes replies) for the streams.
        streams: the stream keys (:func:`~game_analytics.workers.shards.shard_streams`).
        alertmanager: where alerts go (None: nothing is posted, the rules are still evaluated).
        group / consumer: this worker's consumer group and name.
        ingest_group: the ingest workers' consumer group (``GAME_ANALYTICS_CONSUMER_GROUP``, the GameDataSource's
            ``spec.stream.consumerGroup``): an entry it has acknowledged is stored.
        block_ms: XREADGROUP block; store_timeout: seconds to wait for the ingest worker's commit.
        claim_idle_ms / claim_every_s: entries pending in ``group`` for longer than ``claim_idle_ms``
            milliseconds for any consumer (a replaced pod's) are taken over after this consumer's own pending
            ones, and again every ``claim_every_s`` seconds.
        batch: at most this many entries per read, all evaluated together (one scoped query per rule). Behind a
            background load the scoped query for thousands of players is planned as a parallel scan of ``events``
            with the players as a hashed filter, whose cost grows with the table more than with the players
            (EXPLAIN ANALYZE at 0.8M and 1.2M events: 0.6 s for 5,000 players, 1.0-1.4 s for 10,000), so one
            evaluation of everything pending costs little more than one of a small batch and the worker catches
            up in a few steps instead of queueing batches behind each other (with 10,000, a backlog of 60 s at
            5,000 events/s did not drain in minutes).
        fold_every_s: a thread folds the stored events into the derived tables this often
            (``worker.fold()``): suddenWealthChange reads the running balances there plus the events not folded
            in yet, so a batch costs its own players' recent events, not their whole history.
    """

    def __init__(self, worker: Any, client: redis.Redis, streams: Sequence[str], alertmanager: AlertmanagerClient | None,
                 *, group: str = "detection", consumer: str | None = None, ingest_group: str = "ingest",
                 block_ms: int = 200, claim_idle_ms: int = 30_000, claim_every_s: float = 15.0,
                 store_timeout: float = 5.0, min_full_gap: float = 1.0, batch: int = 50_000,
                 fold_every_s: float = 2.0) -> None:  # fmt: skip
        self.worker, self.client, self.streams = worker, client, list(streams)
        self.alertmanager = alertmanager
        self.group, self.consumer = group, consumer or socket.gethostname()
        self.ingest_group = ingest_group
        self.block_ms, self.store_timeout, self.min_full_gap = block_ms, store_timeout, min_full_gap
        self.claim_idle_ms, self.claim_every_s = claim_idle_ms, claim_every_s
        self.batch, self.fold_every_s = batch, fold_every_s
        self.alerts: dict[str, RuleAlert] = {}
        self._lock = threading.Lock()
        self._latest: datetime | None = None
        self._last_full: dict[str, float] = {}
        self._late: list[dict[str, Any]] = []  # triggers not stored by the ingest worker in time (next batch)
        # (stream, entry id) handed over and not yet through their acknowledgement: never claimed back (_claim)
        self._inflight: set[tuple[str, str]] = set()
        self.behind, self.full_read = 0.0, False  # see backlog()
        self.latency = Histogram(names.DETECTION_STREAM_LATENCY.removesuffix("_seconds") + "_seconds",
                                 "From an entry's XADD to its rules evaluated by the streaming path.",
                                 buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10), registry=worker.registry)  # fmt: skip
        worker.listeners.append(self.on_change)
        worker.stream = self
        for stream in self.streams:
            try:
                self.client.xgroup_create(stream, self.group, id="$", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    # -- alerts -------------------------------------------------------------------------------------------------
    def on_change(self, rule: Any, count: int, top: list[tuple[str, int]], as_of: datetime) -> None:
        """Listener of the worker: evaluate the rule's alert and send it when due."""
        if rule.alert is None:
            return
        now = datetime.now(UTC)
        with self._lock:
            state = self.alerts.get(rule.rule)
            if state is None or state.spec != rule.alert:
                state = self.alerts[rule.rule] = RuleAlert(rule.rule, rule.alert)
            state.evaluate(count, now, top)
            due = [state.payload(now)] if state.due(now) else []
            if due:
                state.last_sent = now
        if due and self.alertmanager is not None:
            self.alertmanager.post(due)

    def resend(self) -> None:
        """Resend what is due (firing every minute, resolved for 15 minutes); drop alerts of deleted rules."""
        now = datetime.now(UTC)
        active = {r.rule for r in self.worker.rules}
        with self._lock:
            for rule in [r for r in self.alerts if r not in active]:
                state = self.alerts.pop(rule)
                if state.state == "firing":  # deleted while firing: resolve it, as Prometheus does on unload
                    state.evaluate(0, now)
                    self.alerts[rule] = state
            due = []
            for state in self.alerts.values():
                if state.due(now):
                    due.append(state.payload(now))
                    state.last_sent = now
        if due and self.alertmanager is not None:
            self.alertmanager.post(due)

    # -- evaluation ---------------------------------------------------------------------------------------------
    def _as_of(self, events: Sequence[dict[str, Any]]) -> datetime:
        as_of = self.worker.as_of
        if isinstance(as_of, datetime):
            return as_of
        if as_of == "latest":
            newest = max((e["occurred_at"] for e in events), default=None)
            if self._latest is None:
                with self.worker.engine.connect() as conn:
                    self._latest = conn.execute(text("SELECT max(occurred_at) FROM events")).scalar()
            candidates = [t for t in (self._latest, newest) if t is not None]
            self._latest = max(candidates) if candidates else datetime.now(UTC)
            return self._latest
        return datetime.now(UTC)

    def _committed(self, ranges: dict[str, tuple[tuple[int, int], tuple[int, int]]]) -> dict[str, bool | None]:
        """For each ``stream -> (low, high)`` entry ids: whether the ingest group (``ingest_group``) has
        acknowledged every entry from ``low`` to ``high`` - delivered past ``high`` (``XINFO GROUPS``
        last-delivered-id) and none of them still pending (``XPENDING low high``). The ingest worker acknowledges
        an entry only after the transaction storing it (or its dead letter) committed, so True means stored.
        None when the stream has no such group (no ingest worker has read it: the caller asks the database)."""
        pipe = self.client.pipeline(transaction=False)
        for stream, (low, high) in ranges.items():
            pipe.xinfo_groups(stream)
            pipe.xpending_range(stream, self.ingest_group, _id_text(low), _id_text(high), 1)
        replies = pipe.execute(raise_on_error=False)
        out: dict[str, bool | None] = {}
        for i, (stream, (_, high)) in enumerate(ranges.items()):
            groups, pending = replies[2 * i], replies[2 * i + 1]
            if isinstance(groups, Exception):
                raise groups
            info = next((g for g in groups if _text(g.get("name")) == self.ingest_group), None)
            if info is None or isinstance(pending, Exception):  # NOGROUP: nobody ingests this stream
                out[stream] = None
                continue
            out[stream] = _stream_id(info["last-delivered-id"]) >= high and not pending
        return out

    def _wait_stored(self, events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Wait until the ingest worker has stored ``events`` or ``store_timeout`` passed; returns the events
        still not stored then (the caller evaluates without them and carries them to the next batch).

        The wait reads the ingest group's acknowledged position in Redis (:meth:`_committed`, two commands per
        stream per 10 ms), not the ``events`` table; a stream without the ingest group falls back to looking the
        event ids up in ``events``."""
        ranges: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {}
        for e in events:
            low, high = ranges.get(e["stream"], (e["id"], e["id"]))
            ranges[e["stream"]] = (min(low, e["id"]), max(high, e["id"]))
        deadline = time.monotonic() + self.store_timeout
        while True:
            state = self._committed(ranges) if ranges else {}
            unknown = {s for s, ok in state.items() if ok is None}
            if unknown:
                left = self._missing_in_db([e for e in events if e["stream"] in unknown])
                state.update({s: not any(e["stream"] == s for e in left) for s in unknown})
            ranges = {s: r for s, r in ranges.items() if not state.get(s)}
            if not ranges:
                return []
            if time.monotonic() > deadline:
                late = [e for e in events if e["stream"] in ranges]
                log.warning("%d event(s) not stored after %.0f s; evaluating without them (they stay triggers "
                            "for the next batch)", len(late), self.store_timeout)  # fmt: skip
                return late
            time.sleep(0.01)

    def _missing_in_db(self, events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The ``events`` whose event id is not in the ``events`` table yet (one indexed query)."""
        if not events:
            return []
        low = min(e["occurred_at"] for e in events) - timedelta(seconds=1)
        high = max(e["occurred_at"] for e in events) + timedelta(seconds=1)
        with self.worker.engine.connect() as conn:
            stored = set(conn.execute(text(
                "SELECT event_id FROM events WHERE event_id = ANY(:ids) AND occurred_at BETWEEN :lo AND :hi"),
                {"ids": [e["event_id"] for e in events], "lo": low, "hi": high}).scalars())  # fmt: skip
        return [e for e in events if e["event_id"] not in stored]

    def process(self, events: Sequence[dict[str, Any]]) -> None:
        """Evaluate the rules the ``events`` trigger (see the module docstring), plus a re-evaluation of every
        player-scoped rule's flagged subjects. Events the ingest worker had not stored by ``store_timeout`` are
        triggers again in the next call (at most ``batch`` of them are kept)."""
        started = time.monotonic()
        events = [*self._late, *events]
        rules = list(self.worker.rules)
        triggers = {r.rule: [e for e in events if (EVENT_TYPES.get(r.detector) or ()) and e["event_type"] in
                             EVENT_TYPES[r.detector]] for r in rules}  # fmt: skip
        relevant = list({(e["stream"], e["id"]): e for r in rules for e in triggers[r.rule]}.values())
        late = self._wait_stored(relevant) if relevant else []
        self._late = late[-self.batch:]
        stored = time.monotonic()
        as_of = self._as_of(events)
        spent: list[str] = []
        for rule in rules:
            trig = triggers[rule.rule]
            try:
                if rule.detector in PLAYER_SCOPED:
                    players = {e["player_id"] for e in trig if e["player_id"]}
                    players |= set(self.worker.subjects.get(rule.rule, {}))
                    if players:
                        self.worker.evaluate(rule, as_of, sorted(players))
                        spent.append(f"{rule.rule} {len(players)} players " + "/".join(
                            f"{t:.2f}" for t in self.worker.timings.get(rule.rule, ())))
                elif trig and EVENT_TYPES.get(rule.detector) is not None:
                    if time.monotonic() - self._last_full.get(rule.rule, 0.0) >= self.min_full_gap:
                        self._last_full[rule.rule] = time.monotonic()
                        self.worker.evaluate(rule, as_of)
                        spent.append(f"{rule.rule} whole " + "/".join(
                            f"{t:.2f}" for t in self.worker.timings.get(rule.rule, ())))
            except Exception:  # noqa: BLE001 - one broken rule must not stop the others
                log.exception("streaming evaluation of rule %s failed", rule.rule)
                self.worker.metrics.errors.labels(rule.rule).inc()
        done = time.time()
        late_ids = {(e["stream"], e["id"]) for e in late}
        for e in relevant:
            if (e["stream"], e["id"]) not in late_ids:
                self.latency.observe(max(0.0, done - e["sent"]))
        self.behind = done - min((e["sent"] for e in events), default=done)
        if time.monotonic() - started > 1.0:
            log.info("slow streaming batch: %d events, %.2f s waiting for the store, %.2f s evaluating (%s; "
                     "query/record/notify s), oldest entry %.1f s old", len(events), stored - started,
                     time.monotonic() - stored, ", ".join(spent), self.behind)  # fmt: skip

    def backlog(self) -> bool:
        """Whether the stream is ahead of this path: the last read filled a whole ``batch``, or its oldest entry
        was more than a second old when its evaluation ended (the periodic pass defers its whole evaluations
        of the rules this path evaluates while this holds, see ``DetectionWorker.run``)."""
        return self.full_read or self.behind > 1.0

    def _read(self, stop: threading.Event, out: queue.Queue) -> None:
        """The reading side of :meth:`run` (a thread of its own): ``XREADGROUP`` and parse the next batch while the
        previous one is evaluated, and hand ``(batches, events, filled a whole batch)`` over through ``out`` (one
        at a time). The first reads are this consumer's own pending entries (read before a restart, never
        acknowledged), then the entries other consumers of the group left pending for longer than
        ``claim_idle_ms`` (:meth:`_claim`; again every ``claim_every_s``), then new ones; an empty read is handed
        over too (the evaluator's clock ticks on it)."""
        start, last_claim = "0", None
        while not stop.is_set():
            try:
                if start == ">" and (last_claim is None or time.monotonic() - last_claim >= self.claim_every_s):
                    self._claim(stop, out)
                    last_claim = time.monotonic()
                reply = self.client.xreadgroup(self.group, self.consumer, {s: start for s in self.streams},
                                               count=self.batch, block=None if start == "0" else self.block_ms)
                batches = [(stream, entries) for stream, entries in (reply or []) if entries]
                if start == "0" and not any(fields for _, entries in batches for _, fields in entries):
                    start = ">"  # own pending entries done (acknowledged ones come back with no fields)
                self._hand_over(stop, out, batches)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("stream read failed (%s); retrying in 1 s", exc)
                stop.wait(1.0)
            except Exception:  # noqa: BLE001 - e.g. a reply it cannot parse
                log.exception("stream read failed")
                stop.wait(1.0)

    def _claim(self, stop: threading.Event, out: queue.Queue) -> None:
        """Hand over, stream by stream and ``batch`` at a time, the entries pending in the group for longer than
        ``claim_idle_ms`` for any consumer, now claimed for this one
        (:func:`~game_analytics.workers.shards.claim_idle`, the ingest workers' ``XAUTOCLAIM``), except this
        consumer's own entries still queued or under evaluation (behind by more than ``claim_idle_ms``, they
        would be evaluated twice and the backlog grow by a batch)."""
        for stream in self.streams:
            for entries in claim_idle(self.client, stream, self.group, self.consumer, self.claim_idle_ms,
                                      self.batch):  # fmt: skip
                with self._lock:  # this consumer's own entries still queued or under evaluation: not again
                    entries = [e for e in entries if (_text(stream), _text(e[0])) not in self._inflight]
                if entries:
                    log.info("took over %d entries of %s left pending in group %s", len(entries), stream, self.group)
                    self._hand_over(stop, out, [(stream, entries)])

    def _hand_over(self, stop: threading.Event, out: queue.Queue, batches: list[tuple[Any, Any]]) -> None:
        """Put ``(batches, their parsed events, filled a whole batch)`` into ``out``, waiting until it is taken
        or ``stop`` is set."""
        item = (batches, _parse(batches), sum(len(entries) for _, entries in batches) >= self.batch)
        with self._lock:
            self._inflight.update(_keys(batches))
        while not stop.is_set():
            try:
                out.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _fold(self, stop: threading.Event) -> None:
        """Every ``fold_every_s`` seconds while there are rules, fold the stored events into the derived tables
        (``worker.fold()``, a thread of its own: the evaluations never wait for it)."""
        while not stop.wait(self.fold_every_s):
            if self.worker.rules:
                self.worker.fold()

    def run(self, stop: threading.Event) -> None:
        """Evaluate and acknowledge what :meth:`_read` reads (in a second thread, so that reading and parsing
        the next batch - Python, about half of a batch's time at 50,000 entries - overlaps the evaluation of
        this one - the database) until ``stop`` is set; pauses 1 s after errors."""
        handed: queue.Queue = queue.Queue(maxsize=1)
        threading.Thread(target=self._read, args=(stop, handed), name="detection-stream-read", daemon=True).start()
        threading.Thread(target=self._fold, args=(stop,), name="detection-stream-fold", daemon=True).start()
        last_tick = 0.0
        while not stop.is_set():
            try:
                batches, events, self.full_read = handed.get(timeout=0.5)
            except queue.Empty:
                batches, events = [], []
            try:
                if events or time.monotonic() - last_tick >= 1.0:
                    if self.worker.rules:
                        self.process(events)
                    self.resend()
                    last_tick = time.monotonic()
                try:
                    for stream, entries in batches:
                        self.client.xack(stream, self.group, *[entry_id for entry_id, _ in entries])
                finally:  # a failed acknowledgement leaves them pending: the periodic claim may take them again
                    with self._lock:
                        self._inflight.difference_update(_keys(batches))
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("stream acknowledgement failed (%s); retrying in 1 s", exc)
                stop.wait(1.0)
            except Exception:  # noqa: BLE001 - e.g. the database is briefly unavailable
                log.exception("streaming pass failed")
                stop.wait(1.0)


def start_from_env(worker: Any, settings: Any, stop: threading.Event,
                   environ: dict[str, str] | None = None) -> threading.Thread | None:  # fmt: skip
    """Start the streaming path in a thread when ``settings.alertmanager_urls`` (``GAME_ANALYTICS_ALERTMANAGER_URLS``)
    is set and Redis is configured in ``settings`` (a :class:`~game_analytics.settings.WorkerSettings`: ``stream``,
    ``stream_shards``, the Redis connection); returns the thread, or None when the path is off."""
    env = os.environ if environ is None else environ
    urls = list(settings.alertmanager_urls)
    if not urls:
        return None
    if not (settings.redis_url or settings.redis_sentinels):
        log.warning("%s is set but no Redis is configured: the streaming path is off", ALERTMANAGER_URLS_ENV)
        return None
    from game_analytics.redis_client import connect

    client = connect(settings, socket_timeout=10.0)
    streams = shard_streams(settings.stream, settings.stream_shards)
    evaluator = StreamEvaluator(worker, client, streams, AlertmanagerClient(urls, registry=worker.registry),
                                group=env.get(GROUP_ENV) or "detection", ingest_group=settings.consumer_group,
                                claim_idle_ms=settings.claim_idle_ms)  # fmt: skip
    thread = threading.Thread(target=evaluator.run, args=(stop,), name="detection-stream", daemon=True)
    thread.start()
    log.info("streaming path on: %s in group %s, alerts to %s", ", ".join(streams), evaluator.group, ", ".join(urls))
    return thread
