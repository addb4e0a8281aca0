"""The ingest worker against real PostgreSQL and Redis processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid

import httpx
import psycopg
import pytest
import redis
from prometheus_client import CollectorRegistry

from devtools.postgres import start_postgres
from devtools.redis import redis_sentinel_set
from devtools.waiting import free_port
from game_analytics.storage.derived import catch_up_now
from game_analytics.storage.engine import libpq_dsn
from game_analytics.storage.migrate import upgrade
from game_analytics.workers.ingest import CommitInDoubt, IngestConfig, IngestMetrics, IngestWorker
from game_analytics.workers.load import copy_events, load_events, publish_events


def purchase(i: int, player: int | None = None) -> dict:
    return {"event_id": f"p-{i}", "event_type": "purchase", "occurred_at": f"1997-01-{1 + i % 28:02d}T10:00:00Z",
            "player_id": f"c{player if player is not None else i % 50}", "game": "cdnow",
            "payload": {"quantity": 1 + i % 3, "amount": round(5 + i * 0.37, 2), "currency": "USD"}}  # fmt: skip


def match(i: int) -> dict:
    return {"event_id": f"m-{i}", "event_type": "match_result", "occurred_at": "1963-08-24T17:00:00Z",
            "player_id": f"team{i}", "game": "bundesliga",
            "payload": {"home_team": f"team{i}", "away_team": f"team{i + 1}", "home_goals": i % 4,
                        "away_goals": 1, "season": 1963, "round": 1 + i % 30}}  # fmt: skip


def scalar(dsn: str, sql: str):
    with psycopg.connect(libpq_dsn(dsn)) as conn:
        return conn.execute(sql).fetchone()[0]


def rows(dsn: str, sql: str) -> list[tuple]:
    with psycopg.connect(libpq_dsn(dsn)) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def stream() -> str:
    return f"events-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def rclient(redis_url: str):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def make_worker(redis_url: str, dsn: str, stream: str, **kw) -> IngestWorker:
    config = IngestConfig(
        redis_url=redis_url, dsn=dsn, stream=stream, consumer=kw.pop("consumer", "c1"), **kw
    )
    return IngestWorker(config, IngestMetrics(CollectorRegistry()))


def drain(worker: IngestWorker) -> int:
    return worker.run(until_idle=True)


def catch_up(dsn: str) -> int:
    with psycopg.connect(libpq_dsn(dsn)) as conn:
        return catch_up_now(conn)


def pending(client: redis.Redis, stream: str, group: str = "ingest") -> int:
    return int(client.xpending(stream, group)["pending"])


def test_valid_events_are_stored_and_derive_players_and_matches(db_dsn, redis_url, stream, rclient) -> None:
    events = [purchase(i) for i in range(300)] + [match(i) for i in range(20)]
    assert publish_events(events, redis_url, stream=stream) == 320
    with make_worker(redis_url, db_dsn, stream, batch_size=64) as worker:
        assert drain(worker) == 320
        metrics = worker.metrics
        assert metrics.events.labels("cdnow", "purchase")._value.get() == 300
        assert metrics.events.labels("bundesliga", "match_result")._value.get() == 20
        assert metrics.batch_duration._sum.get() > 0
        worker.update_lag()
        assert metrics.lag.labels(stream, "ingest")._value.get() == 0
    assert scalar(db_dsn, "SELECT count(*) FROM events") == 320
    stored = rows(db_dsn, "SELECT payload, occurred_at, player_id FROM events WHERE event_id = 'p-7'")[0]
    assert stored[0] == {"quantity": 2, "amount": 7.59, "currency": "USD"}  # None fields are not stored
    assert stored[1].isoformat() == "1997-01-08T10:00:00+00:00" and stored[2] == "c7"
    assert scalar(db_dsn, "SELECT count(*) FROM matches") == 0  # derived by the readers' catch-up, not here
    assert catch_up(db_dsn) == 320
    assert rows(db_dsn, "SELECT home_id, away_id, home_score, away_score, season, round FROM matches "
                        "WHERE match_id = 'm-3'") == [("team3", "team4", 3, 1, "1963", 4)]  # fmt: skip
    # 50 customers + 21 teams (team0..team20), first/last activity spans their events
    assert scalar(db_dsn, "SELECT count(*) FROM players") == 71
    c1_days = sorted(e["occurred_at"][:10] for e in events if e.get("player_id") == "c1")
    assert rows(db_dsn, "SELECT first_seen_at::date::text, last_seen_at::date::text FROM players "
                        "WHERE player_id = 'c1'") == [(c1_days[0], c1_days[-1])]  # fmt: skip
    assert pending(rclient, stream) == 0


def test_redelivered_and_republished_events_are_stored_once(db_dsn, redis_url, stream, rclient) -> None:
    events = [purchase(i) for i in range(100)]
    publish_events(events + events[:40], redis_url, stream=stream)
    with make_worker(redis_url, db_dsn, stream) as worker:
        drain(worker)
        assert worker.metrics.duplicates._value.get() == 40
    assert scalar(db_dsn, "SELECT count(*) FROM events") == 100
    assert pending(rclient, stream) == 0


def test_epoch_milliseconds_are_stored_as_utc_and_a_retimed_resend_once(db_dsn, redis_url, stream, rclient) -> None:
    """A game server's epoch milliseconds (and seconds) through the stream: stored as UTC. The same event_id
    sent again with its time stamped anew, in another batch and another month (its own partition-key value): a
    duplicate, the first time stays."""
    first = [purchase(i) | {"occurred_at": 1_733_011_200_000 + i} for i in range(5)]  # 2024-12-01T00:00:00.00iZ
    first.append(purchase(5) | {"occurred_at": 1_733_011_200})  # seconds
    resent = [e | {"occurred_at": "2025-01-15T08:00:00Z"} for e in first[:3]]
    publish_events(first, redis_url, stream=stream)
    with make_worker(redis_url, db_dsn, stream, batch_size=4) as worker:
        assert drain(worker) == 6
        publish_events(resent, redis_url, stream=stream)
        assert drain(worker) == 3
        assert worker.metrics.duplicates._value.get() == 3
    stored = dict(rows(db_dsn, "SELECT event_id, occurred_at FROM events"))
    assert len(stored) == 6 and scalar(db_dsn, "SELECT count(*) FROM events") == 6
    assert stored["p-2"].isoformat() == "2024-12-01T00:00:00.002000+00:00"
    assert stored["p-5"].isoformat() == "2024-12-01T00:00:00+00:00"
    assert scalar(db_dsn, "SELECT count(*) FROM dead_letters") == 0


def test_crash_after_commit_before_ack_is_not_duplicated(db_dsn, redis_url, stream, rclient) -> None:
    publish_events([purchase(i) for i in range(200)], redis_url, stream=stream)
    worker = make_worker(redis_url, db_dsn, stream, batch_size=150)
    worker.redis.xack = lambda *a, **k: (_ for _ in ()).throw(ConnectionError("crash before XACK"))
    with pytest.raises(ConnectionError):
        worker.run(until_idle=True, prefetch=0)  # no read-ahead: exactly one batch is delivered
    worker.close()
    assert scalar(db_dsn, "SELECT count(*) FROM events") == 150  # committed
    assert pending(rclient, stream) == 150  # but never acknowledged
    with make_worker(redis_url, db_dsn, stream, batch_size=150) as restarted:
        assert drain(restarted) == 200  # 150 redelivered + 50 new
        assert restarted.metrics.duplicates._value.get() == 150
    assert scalar(db_dsn, "SELECT count(*) FROM events") == 200
    assert pending(rclient, stream) == 0


def test_stale_entries_of_a_dead_consumer_are_claimed(db_dsn, redis_url, stream, rclient) -> None:
    publish_events([purchase(i) for i in range(30)], redis_url, stream=stream)
    rclient.xgroup_create(stream, "ingest", id="0")
    rclient.xreadgroup("ingest", "dead-consumer", {stream: ">"}, count=20)  # delivered, never acked
    assert pending(rclient, stream) == 20
    with make_worker(redis_url, db_dsn, stream, consumer="c2", claim_idle_ms=0) as worker:
        assert drain(worker) == 30
    assert scalar(db_dsn, "SELECT count(*) FROM events") == 30
    assert pending(rclient, stream) == 0


BAD_ENTRIES = {
    "malformed": (b'{"event_id": "bad-1", "event_type": ', None, "json_invalid"),
    "oversized": (json.dumps(purchase(9001) | {"junk": "x" * 20_000}).encode(), None, "too_large"),
    "long_field": (json.dumps({"event_id": "bad-3", "event_type": "error", "occurred_at": "2020-01-01T00:00:00Z",
                               "game": "g", "payload": {"code": "E", "message": "m" * 3000}}).encode(),
                   "payload.message", "invalid_value"),
    "wrong_type": (json.dumps(match(9002) | {"payload": match(9002)["payload"] | {"home_goals": "two"}}).encode(),
                   "payload.home_goals", "invalid_value"),
    "unknown_type": (json.dumps(purchase(9003) | {"event_type": "teleport"}).encode(), "event_type",
                     "unknown_event_type"),
}  # fmt: skip


def test_bad_entries_are_dead_lettered_and_the_stream_keeps_flowing(
    db_dsn, redis_url, stream, rclient
) -> None:
    good = [purchase(i) for i in range(60)]
    # interleave: good, bad, good, bad, ... and one entry without a data field
    mixed: list[dict | bytes] = []
    for index, (raw, _, _) in enumerate(BAD_ENTRIES.values()):
        mixed += good[index * 10 : index * 10 + 10] + [raw]
    mixed += good[50:]
    publish_events(mixed, redis_url, stream=stream)
    no_data_id = rclient.xadd(stream, {"payload": b"{}"}).decode()
    publish_events([purchase(1000)], redis_url, stream=stream)  # after all bad ones

    with make_worker(redis_url, db_dsn, stream, batch_size=7) as worker:
        drain(worker)
        assert worker.metrics.dead_letters.labels("too_large")._value.get() == 1
        assert worker.metrics.dead_letters.labels("invalid_value")._value.get() == 2

    assert scalar(db_dsn, "SELECT count(*) FROM events") == 61
    assert pending(rclient, stream) == 0
    stored = {r[0]: r[1:] for r in rows(db_dsn, "SELECT convert_from(raw_payload, 'UTF8'), reason, field, stream_id "
                                                "FROM dead_letters")}  # fmt: skip
    assert len(stored) == len(BAD_ENTRIES) + 1
    for name, (raw, field, _kind) in BAD_ENTRIES.items():
        reason, stored_field, _sid = stored[raw.decode()]
        assert stored_field == field, name
        assert reason.startswith(f"{field or 'message'}:"), (name, reason)
    assert any(sid == no_data_id and "data" in reason for reason, _f, sid in stored.values())

    dead_stream = rclient.xrange(f"{stream}-dead")
    assert len(dead_stream) == len(BAD_ENTRIES) + 1
    fields = {f[b"data"]: f for _, f in dead_stream}
    unknown = fields[BAD_ENTRIES["unknown_type"][0]]
    assert unknown[b"field"] == b"event_type" and b"teleport" in unknown[b"reason"]


def test_sigkill_mid_batch_loses_and_duplicates_nothing(db_dsn, redis_url, stream, rclient) -> None:
    total = 10_000
    events = [purchase(i, player=i % 2000) for i in range(total)]
    publish_events(events, redis_url, stream=stream)
    cmd = [sys.executable, "-m", "game_analytics.workers.ingest", "--redis-url", redis_url, "--dsn", db_dsn,
           "--stream", stream, "--consumer", "worker-0", "--batch-size", "500", "--block-ms", "100",
           "--metrics-port", "0"]  # fmt: skip

    killed_mid_batch = 0
    for _attempt in range(5):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while scalar(db_dsn, "SELECT count(*) FROM events") < 1000 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.01)
        while pending(rclient, stream) == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stderr.close()
        if pending(rclient, stream) > 0:  # a batch was read but not acknowledged when it died
            killed_mid_batch += 1
            break
    assert killed_mid_batch, "could not kill the worker while it held a batch"
    stored_at_kill = scalar(db_dsn, "SELECT count(*) FROM events")
    assert 0 < stored_at_kill < total

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            info = [g for g in rclient.xinfo_groups(stream) if g["name"] == b"ingest"][0]
            if info["pending"] == 0 and info["lag"] == 0:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)  # graceful stop
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert scalar(db_dsn, "SELECT count(*) FROM events") == total
    assert scalar(db_dsn, "SELECT count(DISTINCT event_id) FROM events") == total
    assert pending(rclient, stream) == 0
    assert catch_up(db_dsn) == total
    assert scalar(db_dsn, "SELECT count(*) FROM players") == 2000


def test_copy_events_direct_load_is_idempotent(db_dsn) -> None:
    events = [purchase(i) for i in range(250)] + [match(i) for i in range(5)]
    bad = dict(purchase(999), payload={"quantity": 1})
    result = copy_events([*events, bad], db_dsn, batch_size=100, source="test")
    assert (result.inserted, result.duplicates, result.dead_lettered) == (255, 0, 1)
    again = load_events(events, dsn=db_dsn, batch_size=100)
    assert (again.inserted, again.duplicates) == (0, 255)
    assert scalar(db_dsn, "SELECT count(*) FROM events") == 255
    assert scalar(db_dsn, "SELECT count(*) FROM matches") == 5
    assert rows(db_dsn, "SELECT stream, stream_id, field FROM dead_letters") == [
        ("load:test", "255", "payload.amount")
    ]


def test_load_events_requires_one_target() -> None:
    with pytest.raises(ValueError):
        load_events([], dsn="postgresql://x", redis_url="redis://x")
    with pytest.raises(ValueError):
        load_events([])


def test_run_until_idle_stores_everything(db_dsn, redis_url, stream, rclient) -> None:
    events = [purchase(i) for i in range(1000)]
    publish_events(events[:500] + [b"not json"] + events[500:], redis_url, stream=stream)
    with make_worker(redis_url, db_dsn, stream, batch_size=97) as worker:
        assert worker.run(until_idle=True) == 1001
    assert scalar(db_dsn, "SELECT count(*) FROM events") == 1000
    assert scalar(db_dsn, "SELECT count(*) FROM dead_letters") == 1
    assert pending(rclient, stream) == 0


def test_run_surfaces_write_errors_and_leaves_entries_pending(db_dsn, redis_url, stream, rclient) -> None:
    publish_events([purchase(i) for i in range(500)], redis_url, stream=stream)
    worker = make_worker(redis_url, db_dsn, stream, batch_size=100)
    original, calls = worker.store, []

    def store_losing_the_database(batch):
        calls.append(1)
        if len(calls) == 3:
            worker.db.close()  # the database goes away while the third batch is being stored
        return original(batch)

    worker.store = store_losing_the_database
    with pytest.raises(psycopg.OperationalError):
        worker.run(until_idle=True)
    worker.close()
    assert scalar(db_dsn, "SELECT count(*) FROM events") == 200  # batches 1 and 2 only
    # batch 3 was read but never acknowledged; up to two more were read ahead (the prefetch depth)
    assert 100 <= pending(rclient, stream) <= 300
    with make_worker(redis_url, db_dsn, stream, batch_size=100) as restarted:
        restarted.run(until_idle=True)
    assert scalar(db_dsn, "SELECT count(*) FROM events") == 500
    assert pending(rclient, stream) == 0


def test_worker_rides_out_a_postgres_crash(redis_url, stream, rclient) -> None:

    # synchronous_commit=on (the PostgreSQL default): with the harness's "off", a crash may lose the last commits
    # the worker was told succeeded - and has acknowledged.
    pg = start_postgres(settings={"synchronous_commit": "on"})
    base, port = pg.base_dir, pg.port
    proc = None
    try:
        dsn = pg.dsn()
        upgrade(dsn)
        metrics_port = free_port()
        cmd = [sys.executable, "-m", "game_analytics.workers.ingest", "--redis-url", redis_url, "--dsn", dsn,
               "--stream", stream, "--consumer", "w", "--batch-size", "200", "--block-ms", "100",
               "--metrics-port", str(metrics_port)]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        publish_events([purchase(i) for i in range(1000)], redis_url, stream=stream)
        deadline = time.monotonic() + 60
        while scalar(dsn, "SELECT count(*) FROM events") == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        pg.crash()
        publish_events([purchase(i) for i in range(1000, 1500)], redis_url, stream=stream)
        time.sleep(0.5)  # the worker now fails to write and retries
        assert proc.poll() is None, proc.stderr.read().decode()
        pg = start_postgres(base, port=port, settings={"synchronous_commit": "on"})
        while time.monotonic() < deadline:
            if scalar(dsn, "SELECT count(*) FROM events") == 1500 and pending(rclient, stream) == 0:
                break
            time.sleep(0.1)
        assert scalar(dsn, "SELECT count(*) FROM events") == 1500
        assert pending(rclient, stream) == 0
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        stored = [ln for ln in metrics.splitlines() if ln.startswith("game_analytics_events_ingested_total{")]
        assert stored == ['game_analytics_events_ingested_total{event_type="purchase",game="cdnow"} 1500.0']
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert b"reconnecting" in proc.stderr.read()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


def ingested(metrics: IngestMetrics) -> float:
    return sum(s.value for m in metrics.events.collect() for s in m.samples if s.name.endswith("_total"))


def test_a_commit_lost_in_flight_is_settled_by_asking_postgres(db_dsn, redis_url, stream) -> None:
    """The connection dies inside COMMIT: store() raises CommitInDoubt, and settle() counts the batch's events
    only if PostgreSQL says the transaction committed."""
    publish_events([purchase(i) for i in range(10)], redis_url, stream=stream)
    config = IngestConfig(redis_url=redis_url, dsn=db_dsn, stream=stream, consumer="w")
    metrics = IngestMetrics(CollectorRegistry())
    outcome: list[BaseException] = []
    with psycopg.connect(libpq_dsn(db_dsn), autocommit=True) as admin, IngestWorker(config, metrics) as worker:
        # A deferred constraint trigger runs inside COMMIT: it stalls there until the backend is terminated.
        admin.execute("CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS "
                      "$$ BEGIN PERFORM pg_sleep(60); RETURN NULL; END $$")  # fmt: skip
        admin.execute("CREATE CONSTRAINT TRIGGER stall AFTER INSERT ON event_ids DEFERRABLE INITIALLY DEFERRED "
                      "FOR EACH ROW EXECUTE FUNCTION stall()")  # fmt: skip
        batch = next(worker.batches(threading.Event(), until_idle=True))
        pid = worker.db.info.backend_pid

        def store() -> None:
            try:
                worker.store(batch)
            except BaseException as exc:  # noqa: BLE001 - handed to the test thread
                outcome.append(exc)

        thread = threading.Thread(target=store)
        thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not admin.execute(
            "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event = 'PgSleep'", (pid,)).fetchone():  # fmt: skip
            time.sleep(0.02)
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        thread.join(30)
        admin.execute("DROP TRIGGER stall ON event_ids")
    assert len(outcome) == 1 and isinstance(outcome[0], CommitInDoubt), outcome
    doubt = outcome[0]
    assert doubt.inserted == {("cdnow", "purchase"): 10}
    with IngestWorker(config, metrics) as worker:
        assert worker.settle(doubt) is False  # terminated inside COMMIT: rolled back
        assert ingested(metrics) == 0
        with psycopg.connect(libpq_dsn(db_dsn)) as other:
            committed = other.execute("SELECT pg_current_xact_id()::text").fetchone()[0]
        assert worker.settle(CommitInDoubt(committed, {("cdnow", "purchase"): 3})) is True
        assert ingested(metrics) == 3
        assert worker.settle(CommitInDoubt(str(int(committed) + 10**6), {("cdnow", "purchase"): 5})) is False
        assert worker.run(until_idle=True) == 10  # the redelivery stores the batch
    assert scalar(db_dsn, "SELECT count(*) FROM events") == 10
    assert ingested(metrics) == 13


def test_worker_finds_the_master_through_sentinels(db_dsn) -> None:
    with redis_sentinel_set(master_name="ga-ingest") as cluster:
        publish_events([purchase(i) for i in range(50)], cluster.master.url, stream="events")
        config = IngestConfig(redis_url="", dsn=db_dsn, stream="events", consumer="c1",
                              sentinels=cluster.sentinel_addresses, sentinel_master="ga-ingest")  # fmt: skip
        with IngestWorker(config, IngestMetrics(CollectorRegistry())) as worker:
            assert worker.run(until_idle=True) == 50
        assert cluster.master.client().xpending("events", "ingest")["pending"] == 0
    assert scalar(db_dsn, "SELECT count(*) FROM events") == 50
