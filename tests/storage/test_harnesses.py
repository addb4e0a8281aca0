"""The PostgreSQL / Redis / Sentinel process harnesses start real servers and stop them by PID."""

from __future__ import annotations

import os

import psycopg
import redis
import redis.sentinel

from devtools.postgres import start_postgres
from devtools.redis import redis_sentinel_set, start_redis


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return os.path.exists(f"/proc/{pid}") and "zombie" not in open(f"/proc/{pid}/status").read().lower()


def test_postgres_starts_on_loopback_and_stops_by_pid() -> None:
    server = start_postgres()
    try:
        with psycopg.connect(server.dsn(driver="postgresql")) as conn:
            assert conn.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"
            assert conn.execute("SHOW fsync").fetchone()[0] == "off"
        url = server.create_database("harness_db")
        assert url.endswith(f":{server.port}/harness_db")
        server.drop_database("harness_db")
    finally:
        server.stop()
    assert not _alive(server.pid)
    assert not server.base_dir.exists()


def test_redis_starts_and_stops_by_pid() -> None:
    server = start_redis()
    try:
        client = redis.Redis.from_url(server.url)
        assert client.set("k", "v") and client.get("k") == b"v"
        assert client.config_get("save")["save"] == ""
        client.close()
    finally:
        server.stop()
    assert not _alive(server.pid)


def test_sentinel_set_discovers_master_and_replica() -> None:
    with redis_sentinel_set(master_name="ga") as cluster:
        sentinel = redis.sentinel.Sentinel(cluster.sentinel_addresses, socket_timeout=2)
        assert sentinel.discover_master("ga") == cluster.master.address
        assert sentinel.discover_slaves("ga") == [cluster.replica.address]
        master = sentinel.master_for("ga", socket_timeout=2)
        master.set("x", "1")
        master.wait(1, 2000)
        assert cluster.replica.client().get("x") == b"1"
        pids = [s.pid for s in [cluster.master, cluster.replica, *cluster.sentinels]]
    assert not any(_alive(pid) for pid in pids)
