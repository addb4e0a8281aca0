"""Real Redis + Sentinel processes: probe, conditions, and an unplanned failover under leaderboard writes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis
from redis.sentinel import Sentinel

from devtools.redis import RedisSentinelSet, start_sentinel_set
from devtools.waiting import free_port, wait_for
from game_analytics.api.redisfailover import RedisFailoverSpec
from game_analytics.controller.redisfailover import sentinel as topo

SPEC = RedisFailoverSpec.model_validate({"redis": {"replicas": 2}, "sentinel": {"replicas": 3, "quorum": 2}})


def _by_type(conds: list[dict]) -> dict[str, dict]:
    return {c["type"]: c for c in conds}


@pytest.fixture
def sentinel_set() -> Iterator[RedisSentinelSet]:
    cluster = start_sentinel_set(down_after_ms=1000, failover_timeout_ms=3000)
    try:
        yield cluster
    finally:
        cluster.stop()


def test_probe_reports_master_quorum_and_replica(sentinel_set: RedisSentinelSet) -> None:
    master = topo.format_address(*sentinel_set.master.address)
    replica = topo.format_address(*sentinel_set.replica.address)
    view = topo.probe(sentinel_set.sentinel_addresses, "mymaster", timeout=1.0)
    assert len(view.reachable) == 3
    assert view.agreed_master == master
    for report in view.reports:
        assert report.quorum == 2 and report.known_sentinels == 3 and report.ckquorum_ok, report
        assert [r.address for r in report.replicas] == [replica]

    # Sentinels refresh a replica's INFO every 10 s: wait until at least one has seen the link up.
    def in_sync() -> list[dict] | None:
        conds = topo.conditions(topo.probe(sentinel_set.sentinel_addresses, "mymaster"), SPEC, 4)
        return conds if topo.healthy(conds) else None

    conds = wait_for("the replica link to be up in every Sentinel", in_sync, 12, interval=0.2)
    assert conds, topo.conditions(topo.probe(sentinel_set.sentinel_addresses, "mymaster"), SPEC, 4)
    by = _by_type(conds)
    assert by["MasterElected"]["reason"] == "MasterElected" and master in by["MasterElected"]["message"]
    assert by["SentinelQuorum"]["status"] == "True"
    assert by["SplitBrain"]["status"] == "False"
    assert all(c["observedGeneration"] == 4 for c in conds)

    # An unknown master group is reported as such, not as a crash.
    other = topo.conditions(topo.probe(sentinel_set.sentinel_addresses, "nosuchgroup"), SPEC, 4)
    assert _by_type(other)["MasterElected"]["reason"] == "NotMonitored"


def test_unreachable_sentinels_are_reported_honestly() -> None:
    nobody = [("127.0.0.1", free_port()) for _ in range(3)]  # nothing listens there
    started = time.monotonic()
    view = topo.probe(nobody, "mymaster", timeout=0.5)
    assert time.monotonic() - started < 3, "a dead Sentinel must cost at most one timeout"
    assert not view.reachable and all(r.error for r in view.reports)
    conds = topo.conditions(view, SPEC, 1)
    assert {c["status"] for c in conds} == {"Unknown"}
    assert {c["reason"] for c in conds} == {"SentinelsUnreachable"}
    assert "0/3 Sentinels answered" in conds[0]["message"]


def test_master_crash_under_leaderboard_writes(sentinel_set: RedisSentinelSet) -> None:
    old_master = topo.format_address(*sentinel_set.master.address)
    new_master = topo.format_address(*sentinel_set.replica.address)
    sentinel = Sentinel(sentinel_set.sentinel_addresses, socket_timeout=0.3, socket_connect_timeout=0.3)
    client = sentinel.master_for("mymaster", socket_timeout=0.3, socket_connect_timeout=0.3)

    acknowledged: list[tuple[float, int]] = []  # (monotonic time, member number) of every successful ZADD
    failures: list[float] = []
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            try:
                client.zadd("leaderboard:season-1", {f"player-{i}": float(i % 997)})
                acknowledged.append((time.monotonic(), i))
                i += 1
            except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError, redis.ResponseError):
                failures.append(time.monotonic())
                time.sleep(0.02)
            time.sleep(0.005)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        assert wait_for("50 acknowledged writes", lambda: len(acknowledged) >= 50, 5, interval=0.2)
        # Make sure the replica holds everything so far, so data loss can be checked exactly up to here.
        assert sentinel_set.master.client().execute_command("WAIT", 1, 2000) == 1
        synced = len(acknowledged)

        killed_at = time.monotonic()
        sentinel_set.master.kill()  # SIGKILL by PID

        resumed = wait_for("a write acknowledged after the kill",
                           lambda: next((t for t, _ in acknowledged if t > killed_at), None), 15, interval=0.05)
        assert resumed is not None, "writes did not resume within 15 s"
        outage = resumed - killed_at
        print(f"\nwrites resumed {outage:.2f} s after SIGKILL of the master "
              f"({len(failures)} failed attempts meanwhile)")
        assert outage < 5.0
    finally:
        stop.set()
        thread.join(timeout=5)

    promoted = sentinel_set.replica.client(decode_responses=True)
    assert promoted.info("replication")["role"] == "master"
    assert promoted.zcard("leaderboard:season-1") >= synced

    def switched() -> list[dict] | None:
        view = topo.probe(sentinel_set.sentinel_addresses, "mymaster", timeout=0.5)
        return topo.conditions(view, SPEC, 2) if view.agreed_master == new_master else None

    conds = wait_for("every Sentinel to report the promoted replica", switched, 5, interval=0.2)
    assert conds, "Sentinels do not all report the promoted replica"
    by = _by_type(conds)
    assert by["MasterElected"]["status"] == "True" and new_master in by["MasterElected"]["message"]
    assert old_master not in by["MasterElected"]["message"]
    assert by["SplitBrain"]["status"] == "False"
    # The old master is dead: the only replica entry left is it, marked down, so replication is not in sync.
    assert by["ReplicasInSync"]["status"] == "False" and old_master in by["ReplicasInSync"]["message"]


def test_controlled_failover_switches_master(sentinel_set: RedisSentinelSet) -> None:
    replica = topo.format_address(*sentinel_set.replica.address)
    # Sentinel refuses to promote a replica it has not yet seen with a healthy link (NOGOODSLAVE): wait for that.
    assert wait_for("a healthy replica link", lambda: topo.healthy(topo.conditions(
        topo.probe(sentinel_set.sentinel_addresses, "mymaster"), SPEC, 1)), 12, interval=0.2)
    result = topo.failover(sentinel_set.sentinel_addresses, "mymaster", timeout=15)
    print(f"\ncontrolled failover {result.old_master} -> {result.new_master} in {result.seconds:.2f} s")
    assert result.old_master == topo.format_address(*sentinel_set.master.address)
    assert result.new_master == replica
    assert sentinel_set.replica.client(decode_responses=True).info("replication")["role"] == "master"
