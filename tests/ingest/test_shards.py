"""Sharded event streams against real Redis and PostgreSQL: one stream per shard, ingest replicas sharing them,
a dead replica's pending entries claimed by the others (XAUTOCLAIM)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections import Counter

import psycopg
import pytest
import redis

from game_analytics.storage.engine import libpq_dsn
from game_analytics.workers.shards import publish_sharded, shard_of, shard_streams, stream_for


def purchase(i: int) -> dict:
    return {"event_id": f"p-{i}", "event_type": "purchase", "occurred_at": f"1997-01-{1 + i % 28:02d}T10:00:00Z",
            "player_id": f"c{i % 300}", "game": "cdnow",
            "payload": {"quantity": 1, "amount": 5.0, "currency": "USD"}}  # fmt: skip


def count(dsn: str, sql: str = "SELECT count(*), count(DISTINCT event_id) FROM events") -> tuple:
    with psycopg.connect(libpq_dsn(dsn)) as conn:
        return conn.execute(sql).fetchone()


def test_shard_streams_and_routing() -> None:
    assert shard_streams("ev") == ["ev"]
    assert shard_streams("ev", 3) == ["ev:0", "ev:1", "ev:2"]
    with pytest.raises(ValueError, match="shards"):
        shard_streams("ev", 0)
    assert stream_for(purchase(1), "ev") == "ev"
    assert stream_for(purchase(1), "ev", 4) == stream_for(purchase(301), "ev", 4)  # same player, same shard
    assert stream_for({"event_id": "x"}, "ev", 4) == f"ev:{shard_of('x', 4)}"
    spread = Counter(shard_of(f"player-{i}", 4) for i in range(4000))
    assert set(spread) == {0, 1, 2, 3} and min(spread.values()) > 800


def ingest(redis_url: str, dsn: str, stream: str, consumer: str, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "game_analytics.workers.ingest", "--redis-url", redis_url, "--dsn", dsn,
           "--stream", stream, "--shards", "3", "--consumer", consumer, "--batch-size", "200", "--block-ms", "100",
           "--metrics-port", "0", *extra]  # fmt: skip
    env_cmd = {"GAME_ANALYTICS_PARTITION_MAINTENANCE": "false"}
    import os

    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **env_cmd})


def wait_for(predicate, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=30) == 0, proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()


def test_two_replicas_share_the_shards_and_claim_a_dead_replicas_entries(db_dsn, redis_url) -> None:
    stream, total = f"ev-{uuid.uuid4().hex[:8]}", 3000
    client = redis.Redis.from_url(redis_url)
    try:
        added = publish_sharded([purchase(i) for i in range(600)], client, stream, 3)
        assert sorted(added) == shard_streams(stream, 3)
        for key in added:  # a replica that read a batch from every shard and died before acknowledging it
            client.xgroup_create(key, "ingest", id="0")
            client.xreadgroup("ingest", "dead-replica", {key: ">"}, count=50)
        replicas = [ingest(redis_url, db_dsn, stream, f"replica-{i}", "--claim-idle-ms", "200") for i in range(2)]
        try:
            wait_for(lambda: all(len(client.xinfo_consumers(key, "ingest")) == 3 for key in added))
            more = publish_sharded([purchase(i) for i in range(600, total)], client, stream, 3)
            assert sum(added.values()) + sum(more.values()) == total
            wait_for(lambda: count(db_dsn)[0] >= total)
            wait_for(lambda: all(g["pending"] == 0 for key in added for g in client.xinfo_groups(key)))
        finally:
            for proc in replicas:
                stop(proc)
        assert count(db_dsn) == (total, total)
        for key in added:
            consumers = {c["name"]: c for c in client.xinfo_consumers(key, "ingest")}
            assert consumers[b"dead-replica"]["pending"] == 0  # its 50 entries were claimed and stored
        delivered = Counter()
        for key in added:
            for c in client.xinfo_consumers(key, "ingest"):
                delivered[c["name"]] += 1
        assert {b"replica-0", b"replica-1"} <= set(delivered)  # both replicas joined every shard's group
    finally:
        client.close()


def test_load_via_stream_publishes_to_the_shard_streams(clean_redis_url: str, capsys: pytest.CaptureFixture) -> None:
    """``game-analytics load --via stream --shards 3`` puts each CDNOW purchase on its player's shard stream (the
    streams the ingest replicas consume), none on the unsharded one."""
    import json

    from game_analytics.workers import load

    assert load.main(["--dataset", "cdnow", "--via", "stream", "--shards", "3", "--limit", "300",
                      "--redis-url", clean_redis_url, "--stream", "ev", "--quiet"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out) == {"cdnow": {"events": 300, "published": 300}}
    client = redis.Redis.from_url(clean_redis_url)
    assert not client.exists("ev")
    lengths = [client.xlen(key) for key in shard_streams("ev", 3)]
    assert sum(lengths) == 300 and all(lengths)
    for key in shard_streams("ev", 3):
        for _, fields in client.xrange(key, count=50):
            assert stream_for(json.loads(fields[b"data"]), "ev", 3) == key
    with pytest.raises(SystemExit) as usage:
        load.main(["--via", "stream", "--shards", "0", "--redis-url", clean_redis_url])
    assert usage.value.code == 2 and "--shards must be in 1..64" in capsys.readouterr().err
