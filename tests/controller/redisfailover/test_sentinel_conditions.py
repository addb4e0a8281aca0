"""Pure Sentinel decisions: conditions over constructed views, rolling-restart order."""

from __future__ import annotations

from game_analytics.api.redisfailover import RedisFailoverSpec
from game_analytics.controller.redisfailover.sentinel import (
    ReplicaState,
    RestartStep,
    SentinelReport,
    SentinelView,
    conditions,
    healthy,
    plan_rolling_restart,
)

SPEC = RedisFailoverSpec.model_validate({"redis": {"replicas": 3}, "sentinel": {"replicas": 3, "quorum": 2}})
M0 = "lb-redis-0.lb-redis-headless.games.svc:6379"
M1 = "lb-redis-1.lb-redis-headless.games.svc:6379"
M2 = "lb-redis-2.lb-redis-headless.games.svc:6379"


def _replica(addr: str, master: str = M0, **kw) -> ReplicaState:
    return ReplicaState(addr, master=master, **kw)


def _report(i: int, master: str = M0, replicas=None, **kw) -> SentinelReport:
    if replicas is None:
        replicas = tuple(_replica(a, master) for a in (M0, M1, M2) if a != master)
    fields = {"master_flags": ("master",), "known_sentinels": 3, "quorum": 2, "ckquorum_ok": True,
              "ckquorum": "OK 3 usable Sentinels", **kw}
    return SentinelReport(f"s{i}:26379", master=master, replicas=replicas, **fields)


def _by(view: SentinelView) -> dict[str, dict]:
    return {c["type"]: c for c in conditions(view, SPEC, 7)}


def test_healthy_set() -> None:
    view = SentinelView("mymaster", tuple(_report(i) for i in range(3)))
    conds = conditions(view, SPEC, 7)
    assert [c["type"] for c in conds] == ["MasterElected", "SentinelQuorum", "ReplicasInSync", "SplitBrain"]
    assert healthy(conds)
    assert [c["status"] for c in conds] == ["True", "True", "True", "False"]
    assert all(c["observedGeneration"] == 7 for c in conds)


def test_disagreeing_sentinels_are_split_brain() -> None:
    view = SentinelView("mymaster", (_report(0), _report(1), _report(2, master=M1)))
    by = _by(view)
    assert by["SplitBrain"]["status"] == "True" and by["SplitBrain"]["reason"] == "SentinelsDisagree"
    assert M0 in by["SplitBrain"]["message"] and M1 in by["SplitBrain"]["message"]
    assert by["MasterElected"]["status"] == "False" and by["MasterElected"]["reason"] == "SentinelsDisagree"
    assert by["ReplicasInSync"]["status"] == "Unknown"
    assert not healthy(list(by.values()))


def test_replica_claiming_master_is_split_brain() -> None:
    rogue = (_replica(M1, role_reported="master"), _replica(M2))
    by = _by(SentinelView("mymaster", tuple(_report(i, replicas=rogue) for i in range(3))))
    assert by["SplitBrain"]["reason"] == "MultipleMasters" and M1 in by["SplitBrain"]["message"]
    assert by["ReplicasInSync"]["status"] == "False"


def test_minority_of_sentinels_reachable() -> None:
    down = [SentinelReport(f"s{i}:26379", error="ConnectionError: refused") for i in (1, 2)]
    by = _by(SentinelView("mymaster", (_report(0), *down)))
    assert by["SentinelQuorum"]["status"] == "False" and by["SentinelQuorum"]["reason"] == "NotEnoughSentinels"
    assert "1/3" in by["SentinelQuorum"]["message"]
    assert by["MasterElected"]["status"] == "True"  # the one reachable Sentinel still knows the master


def test_ckquorum_failure() -> None:
    bad = _report(0, ckquorum_ok=False, ckquorum="NOQUORUM 1 usable Sentinels")
    by = _by(SentinelView("mymaster", (bad, _report(1))))
    assert by["SentinelQuorum"]["reason"] == "QuorumUnreachable" and "NOQUORUM" in by["SentinelQuorum"]["message"]


def test_master_down_and_lagging_replicas() -> None:
    lag = (_replica(M1, master_link_status="err"), _replica(M2, flags=("disconnected", "s_down", "slave")))
    reports = tuple(SentinelReport(f"s{i}:26379", master=M0, master_flags=("master", "o_down", "s_down"),
                                   known_sentinels=3, quorum=2, ckquorum_ok=True, replicas=lag) for i in range(3))
    by = _by(SentinelView("mymaster", reports))
    assert by["MasterElected"]["status"] == "False" and by["MasterElected"]["reason"] == "MasterDown"
    assert by["ReplicasInSync"]["status"] == "False" and "0/2" in by["ReplicasInSync"]["message"]
    assert M1 in by["ReplicasInSync"]["message"] and M2 in by["ReplicasInSync"]["message"]


def test_not_monitored_and_unreachable() -> None:
    by = _by(SentinelView("mymaster", (SentinelReport("s0:26379", monitoring=False),) * 3))
    assert by["MasterElected"]["reason"] == "NotMonitored"
    gone = conditions(SentinelView("mymaster", (SentinelReport("s0:26379", error="timeout"),)), SPEC, 1)
    assert {(c["status"], c["reason"]) for c in gone} == {("Unknown", "SentinelsUnreachable")}


def test_rolling_restart_replicas_first_master_last() -> None:
    pods = {"lb-redis-0": "old", "lb-redis-1": "old", "lb-redis-2": "old", "lb-redis-10": "old"}
    steps = plan_rolling_restart(pods, "new", master_pod="lb-redis-1")
    assert steps == [RestartStep("restart", "lb-redis-10"), RestartStep("restart", "lb-redis-2"),
                     RestartStep("restart", "lb-redis-0"), RestartStep("failover", "lb-redis-1"),
                     RestartStep("restart", "lb-redis-1")]
    # Partly done: only what is outdated; an up-to-date master is not failed over.
    assert plan_rolling_restart({"lb-redis-0": "new", "lb-redis-1": "old"}, "new", "lb-redis-0") == [
        RestartStep("restart", "lb-redis-1")]
    assert plan_rolling_restart({"lb-redis-0": "new"}, "new", "lb-redis-0") == []
    assert plan_rolling_restart(pods, "new", master_pod=None) == []
