"""The detection worker's streaming path against a real Redis, a real PostgreSQL and the real ingest worker:
it waits for the ingest consumer group's acknowledgements (not for rows in ``events``), carries events the
ingest worker had not stored in time to the next batch, and the periodic pass leaves the player-scoped rules it
evaluates to it (whole passes every ``STREAMED_FULL_EVERY``-th pass only, deferred while the stream is behind)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import Engine

from game_analytics.settings import WorkerSettings
from game_analytics.storage.engine import make_engine
from game_analytics.workers import detection
from game_analytics.workers.detection import DetectionWorker, load_rules_dir
from game_analytics.workers.ingest import IngestConfig, IngestWorker
from game_analytics.workers.load import copy_events, publish_events
from game_analytics.workers.shards import claim_idle
from game_analytics.workers.streaming import StreamEvaluator, _parse, start_from_env

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
WEALTH = {"thresholdRatio": 5, "window": "1h", "minWealth": 100}


def purchase(player: str, when: datetime, amount: float) -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "event_type": "purchase", "occurred_at": when.isoformat(),
            "player_id": player, "game": "g1", "region": "EU",
            "payload": {"quantity": 1, "amount": amount, "currency": "USD"}}


def write_rule(root: Path, name: str, detector: str, params: dict[str, Any]) -> str:
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / name / "rule.json").write_text(json.dumps({
        "rule": f"games/{name}", "category": "economy", "severity": "critical", "detector": detector,
        "params": params}))  # fmt: skip
    return f"games/{name}"


@pytest.fixture
def engine(db_dsn: str) -> Iterator[Engine]:
    """The migrated database with a modest history: p1..p3 bought for 100 each two hours before ``T0``."""
    engine = make_engine(db_dsn)
    assert copy_events([purchase(f"p{i}", T0 - timedelta(hours=2), 100.0) for i in (1, 2, 3)], db_dsn).inserted == 3
    yield engine
    engine.dispose()


@pytest.fixture
def setup(engine: Engine, db_dsn: str, redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A detection worker with a suddenWealthChange rule (first pass done), its streaming path on a fresh
    stream (not running: the tests drive it) and an ingest worker of that stream (group ``ingest``)."""
    stream = f"stream-test-{uuid.uuid4().hex[:8]}"
    rule = write_rule(tmp_path / "rules", "wealth", "suddenWealthChange", WEALTH)
    worker = DetectionWorker(engine, lambda: load_rules_dir(tmp_path / "rules"), as_of="latest",
                             model_dir=tmp_path / "models")  # fmt: skip
    ingest = IngestWorker(IngestConfig(redis_url, db_dsn, stream=stream, consumer="c1", block_ms=50))
    client = redis.Redis.from_url(redis_url)
    evaluator = StreamEvaluator(worker, client, [stream], None, consumer="d1", store_timeout=5.0)
    worker.run_once()
    yield {"stream": stream, "rule": rule, "worker": worker, "ingest": ingest, "client": client,
           "evaluator": evaluator, "redis_url": redis_url}
    ingest.close()
    client.close()


def read(setup: dict[str, Any]) -> list[dict[str, Any]]:
    """What the streaming path's next read gets, parsed."""
    reply = setup["client"].xreadgroup("detection", "d1", {setup["stream"]: ">"}, count=100, block=100)
    return _parse([(stream, entries) for stream, entries in reply or []])


def test_stored_means_acknowledged_by_the_ingest_group(setup: dict[str, Any]) -> None:
    stream, evaluator, ingest = setup["stream"], setup["evaluator"], setup["ingest"]
    publish_events([purchase("p1", T0, 1.0), purchase("p2", T0, 1.0)], setup["redis_url"], stream=stream)
    events = read(setup)
    assert [e["player_id"] for e in events] == ["p1", "p2"] and all(e["stream"] == stream for e in events)
    ranges = {stream: (events[0]["id"], events[-1]["id"])}
    assert evaluator._committed(ranges) == {stream: False}  # not delivered to the ingest group yet
    # delivered to the ingest worker's consumer, not yet committed (pending in the ingest group)
    delivered = ingest.redis.xreadgroup("ingest", "c1", {stream: ">"}, count=100)
    assert len(delivered[0][1]) == 2
    assert evaluator._committed(ranges) == {stream: False}
    evaluator.store_timeout = 0.2
    assert [e["player_id"] for e in evaluator._wait_stored(events)] == ["p1", "p2"]  # late: still pending
    # the ingest worker re-reads its own pending entries first, stores them in one transaction, then XACKs
    assert ingest.run(until_idle=True, prefetch=0) == 2
    assert evaluator._committed(ranges) == {stream: True}
    assert evaluator._wait_stored(events) == []
    assert evaluator._missing_in_db(events) == []  # and they are indeed in PostgreSQL


def test_a_stream_nobody_ingests_falls_back_to_the_database(setup: dict[str, Any], db_dsn: str) -> None:
    evaluator, other = setup["evaluator"], f"unread-{uuid.uuid4().hex[:8]}"
    events = [purchase("p1", T0, 1.0), purchase("p2", T0, 1.0)]
    setup["client"].xadd(other, {"data": json.dumps(events[0])})
    entries = setup["client"].xrange(other)
    parsed = _parse([(other, entries)])
    assert evaluator._committed({other: (parsed[0]["id"], parsed[0]["id"])}) == {other: None}
    evaluator.store_timeout = 0.2
    assert evaluator._wait_stored(parsed) == parsed  # not in PostgreSQL either
    copy_events(events[:1], db_dsn)
    assert evaluator._wait_stored(parsed) == []


def test_events_stored_late_trigger_the_next_batch(setup: dict[str, Any]) -> None:
    stream, evaluator, worker, rule = setup["stream"], setup["evaluator"], setup["worker"], setup["rule"]
    assert worker.subjects[rule] == {}
    publish_events([purchase("p1", T0, 5_000.0)], setup["redis_url"], stream=stream)  # a 51x wealth jump
    evaluator.store_timeout = 0.2
    evaluator.process(read(setup))  # the ingest worker is not running: evaluated without it, kept
    assert worker.subjects[rule] == {} and [e["player_id"] for e in evaluator._late] == ["p1"]
    setup["ingest"].run(until_idle=True, prefetch=0)
    evaluator.process(read(setup))  # nothing new on the stream: the late event is the trigger
    assert list(worker.subjects[rule]) == ["p1"] and evaluator._late == []


def test_the_periodic_pass_leaves_player_scoped_rules_to_the_stream(setup: dict[str, Any], db_dsn: str) -> None:
    worker, rule = setup["worker"], setup["rule"]
    copy_events([purchase("p2", T0, 5_000.0)], db_dsn)  # stored without passing the stream
    assert worker.run_once(streamed=False).flagged == {rule: 0}  # the stream's rule: not evaluated whole
    assert list(worker.subjects[rule]) == []
    assert worker.run_once().flagged == {rule: 1} and list(worker.subjects[rule]) == ["p2"]


def test_whole_passes_every_nth_pass_deferred_while_the_stream_is_behind(setup: dict[str, Any], tmp_path: Path,
                                                                         monkeypatch) -> None:  # fmt: skip
    worker, evaluator, rule = setup["worker"], setup["evaluator"], setup["rule"]
    monkeypatch.setattr(detection, "STREAMED_FULL_EVERY", 3)
    market = write_rule(tmp_path / "rules", "market", "marketManipulation", {"priceChange": 0.5})
    evaluated: list[str] = []
    stop = threading.Event()
    backlog_asked: list[int] = []

    def listener(r: Any, count: int, top: Any, as_of: datetime) -> None:
        evaluated.append(r.rule)
        if evaluated.count(market) == 7:
            stop.set()

    def backlog() -> bool:  # behind for the first question only, then caught up
        backlog_asked.append(evaluated.count(market))
        return len(backlog_asked) == 1

    worker.listeners.append(listener)
    monkeypatch.setattr(evaluator, "backlog", backlog)
    worker.run(stop, 0.01)
    # 7 passes: the wealth rule whole in passes 1, 4 and 7 only; marketManipulation (not player-scoped) in all
    assert evaluated.count(market) == 7 and evaluated.count(rule) == 3
    assert backlog_asked == [3, 3, 6]  # asked before passes 4 (twice: behind, then not) and 7


def test_run_evaluates_entries_left_pending_by_a_crash_first(setup: dict[str, Any]) -> None:
    stream, evaluator, worker, rule = setup["stream"], setup["evaluator"], setup["worker"], setup["rule"]
    publish_events([purchase("p3", T0, 5_000.0)], setup["redis_url"], stream=stream)
    read(setup)  # delivered to this consumer, never acknowledged: the worker died before evaluating it
    setup["ingest"].run(until_idle=True, prefetch=0)
    stop = threading.Event()
    thread = threading.Thread(target=evaluator.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
                worker.subjects.get(rule) and setup["client"].xpending(stream, "detection")["pending"] == 0):
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
    assert list(worker.subjects[rule]) == ["p3"]  # ">" alone would never have read it again
    assert setup["client"].xpending(stream, "detection")["pending"] == 0 and not thread.is_alive()


def replacement(setup: dict[str, Any], engine: Engine, tmp_path: Path, **kwargs: Any) -> StreamEvaluator:
    """The streaming path of a replacement pod: a new worker (its first pass done now) and consumer ``d2``."""
    worker = DetectionWorker(engine, lambda: load_rules_dir(tmp_path / "rules"), as_of="latest",
                             model_dir=tmp_path / "models-2")  # fmt: skip
    worker.run_once()
    assert worker.subjects[setup["rule"]] == {}
    return StreamEvaluator(worker, setup["client"], [setup["stream"]], None, consumer="d2", store_timeout=5.0,
                           **kwargs)  # fmt: skip


def run_until_evaluated(setup: dict[str, Any], evaluator: StreamEvaluator, timeout: float = 15.0) -> float | None:
    """Run ``evaluator`` until its worker flags a subject of the rule and nothing is pending in the group;
    returns the ``time.monotonic()`` it was seen at (None: not within ``timeout``)."""
    stream, rule, client = setup["stream"], setup["rule"], setup["client"]
    stop, seen = threading.Event(), None
    thread = threading.Thread(target=evaluator.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if evaluator.worker.subjects.get(rule) and client.xpending(stream, "detection")["pending"] == 0:
                seen = time.monotonic()
                break
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    return seen


def test_a_replacement_consumer_takes_over_the_dead_ones_pending_entries(setup: dict[str, Any], engine: Engine,
                                                                         tmp_path: Path) -> None:  # fmt: skip
    """A Deployment's replacement pod has a new name (the consumer name is the hostname): what its predecessor
    read and never acknowledged is pending for a consumer that never comes back, and ``"0"`` is only this
    consumer's own. The new one claims entries idle longer than ``claim_idle_ms`` and evaluates them."""
    evaluator = replacement(setup, engine, tmp_path, claim_idle_ms=200)
    publish_events([purchase("p3", T0, 5_000.0)], setup["redis_url"], stream=setup["stream"])
    assert len(read(setup)) == 1  # consumer d1 read it and died before evaluating it
    setup["ingest"].run(until_idle=True, prefetch=0)
    time.sleep(0.3)  # idle longer than the replacement's claim_idle_ms
    assert run_until_evaluated(setup, evaluator) is not None
    assert list(evaluator.worker.subjects[setup["rule"]]) == ["p3"]  # d1's entry evaluated by d2: no missed page
    assert setup["client"].xpending(setup["stream"], "detection")["pending"] == 0


def test_entries_of_a_consumer_dying_later_are_claimed_by_the_periodic_claim(setup: dict[str, Any], engine: Engine,
                                                                             tmp_path: Path) -> None:  # fmt: skip
    """A rolling update: the new pod runs before the old one stops, so the entries the old one leaves are not
    idle yet at the new one's start; a later claim (every ``claim_every_s``) takes them, not before they are
    ``claim_idle_ms`` idle."""
    evaluator = replacement(setup, engine, tmp_path, claim_idle_ms=3000, claim_every_s=0.2)
    publish_events([purchase("p3", T0, 5_000.0)], setup["redis_url"], stream=setup["stream"])
    assert len(read(setup)) == 1
    read_at = time.monotonic()
    setup["ingest"].run(until_idle=True, prefetch=0)
    assert time.monotonic() - read_at < 2.5, "too slow to start before the entry is idle: the test would not test"
    seen = run_until_evaluated(setup, evaluator)
    assert seen is not None and list(evaluator.worker.subjects[setup["rule"]]) == ["p3"]
    assert seen - read_at >= 3.0  # left to its consumer while it may still be alive


def test_a_live_consumers_recent_entries_are_not_claimed(setup: dict[str, Any]) -> None:
    stream, client = setup["stream"], setup["client"]
    publish_events([purchase("p1", T0, 1.0)], setup["redis_url"], stream=stream)
    assert len(read(setup)) == 1  # d1 is evaluating it right now
    assert list(claim_idle(client, stream, "detection", "d2", 60_000)) == []
    claimed = list(claim_idle(client, stream, "detection", "d2", 0))
    assert len(claimed) == 1 and len(claimed[0]) == 1
    assert [c["name"] for c in client.xinfo_consumers(stream, "detection") if c["pending"]] == [b"d2"]


def test_the_claim_idle_setting_reaches_the_streaming_path(setup: dict[str, Any], engine: Engine,
                                                           tmp_path: Path) -> None:  # fmt: skip
    worker = DetectionWorker(engine, lambda: load_rules_dir(tmp_path / "rules"), model_dir=tmp_path / "models-3")
    settings = WorkerSettings.model_validate(dict(redis_url=setup["redis_url"], stream=setup["stream"],
                                                  alertmanager_urls=["http://127.0.0.1:9"], claim_idle_ms=1234))
    stop = threading.Event()
    thread = start_from_env(worker, settings, stop, environ={})
    try:
        assert thread is not None and worker.stream.claim_idle_ms == 1234 and worker.stream.group == "detection"
    finally:
        stop.set()
        thread.join(10)


def test_entries_still_being_evaluated_are_not_claimed_back_by_their_own_consumer(setup: dict[str, Any],
                                                                                  monkeypatch) -> None:  # fmt: skip
    """Behind by more than ``claim_idle_ms`` (the full latency benchmark at 5,000 events/s: batches of 50,000
    taking 10 s and more), the periodic claim took this consumer's own entries - read, queued or under
    evaluation, not acknowledged yet - and handed them over again: each was evaluated twice, the backlog grew
    by a batch each time ("took over 50000 entries of <itself>"). They are evaluated once, then acknowledged."""
    evaluator, stream = setup["evaluator"], setup["stream"]
    evaluator.claim_idle_ms, evaluator.claim_every_s = 100, 0.05
    evaluated: list[str] = []

    def slow_process(events: list[dict[str, Any]]) -> None:  # an evaluation slower than claim_idle_ms
        evaluated.extend(e["event_id"] for e in events)
        if events:
            time.sleep(1.0)

    monkeypatch.setattr(evaluator, "process", slow_process)
    event = purchase("p1", T0, 1.0)
    publish_events([event], setup["redis_url"], stream=stream)
    stop = threading.Event()
    thread = threading.Thread(target=evaluator.run, args=(stop,), daemon=True)
    thread.start()
    try:
        time.sleep(3.0)
    finally:
        stop.set()
        thread.join(10)
    assert evaluated == [event["event_id"]]
    assert setup["client"].xpending(stream, "detection")["pending"] == 0
