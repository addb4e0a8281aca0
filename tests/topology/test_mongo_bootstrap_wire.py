"""The pymongo bootstrap executor over the MongoDB wire protocol, against mockupdb servers (``mongo_wire``).

The servers answer with the documented reply of each command (see ``mongo_wire``); what is asserted is what the
executor sends: the exact commands, their order, and that a second run over a bootstrapped cluster sends no
mutating command. The observation the run ends with is the recorded one the operator's status is tested with
(``tests/controller/mongoshardedcluster/recorded_observation.json``). Not a real mongod: docs/topologies.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from mongo_wire import WireCluster

from game_analytics.api.mongoshardedcluster import MongoShardedClusterSpec
from game_analytics.controller.mongoshardedcluster import bootstrap as mb
from game_analytics.workers import mongo_bootstrap as mbw

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "tests" / "controller" / "mongoshardedcluster" / "recorded_observation.json"
SPEC = MongoShardedClusterSpec.model_validate(yaml.safe_load((ROOT / "examples" / "mongoshardedcluster.yaml")
                                                             .read_text())["spec"])
WANT = mb.desired("telemetry", "games", SPEC)
CREDS = mbw.Credentials("keyfilecontent", "admin", "s3cret")
CFG, S0, S1 = "telemetry-cfg", "telemetry-shard-0", "telemetry-shard-1"
NS = ("telemetry.sessions", "telemetry.player_stats", "telemetry.match_history")

#: One observation round: replSetGetStatus on each replica set, then on mongos ping, listShards, usersInfo and the
#: config.collections / config.tags documents of the spec's namespaces.
OBSERVE = [(CFG, "replSetGetStatus", 1), (S0, "replSetGetStatus", 1), (S1, "replSetGetStatus", 1),
           ("mongos", "ping", 1), ("mongos", "listShards", 1),
           ("mongos", "usersInfo", {"user": "admin", "db": "admin"}),
           ("mongos", "find", "collections"), ("mongos", "find", "tags")]
INITIATE = [(rs.name, "replSetInitiate", rs.initiate_document()) for rs in WANT.replica_sets]
BOOTSTRAP = [
    ("mongos", "addShard", WANT.shards[0].seed_list()),
    ("mongos", "addShard", WANT.shards[1].seed_list()),
    ("mongos", "createUser", "admin"),
    ("mongos", "enableSharding", "telemetry"),
    ("mongos", "shardCollection", "telemetry.sessions"),
    ("mongos", "shardCollection", "telemetry.player_stats"),
    ("mongos", "addShardToZone", S0),
    ("mongos", "updateZoneKeyRange", "telemetry.player_stats"),
    ("mongos", "addShardToZone", S1),
    ("mongos", "updateZoneKeyRange", "telemetry.player_stats"),
    ("mongos", "shardCollection", "telemetry.match_history"),
]


@pytest.fixture
def wire() -> Iterator[WireCluster]:
    cluster = WireCluster(WANT).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def _run(wire: WireCluster, tmp_path: Path) -> mb.ClusterState:
    return mbw.run(WANT, CREDS, interval=0, connect=wire.connect, status_file=tmp_path / "termination-log",
                   log=lambda line: None)


def test_fresh_cluster_exact_commands_then_a_second_run_mutates_nothing(wire: WireCluster, tmp_path: Path) -> None:
    state = _run(wire, tmp_path)
    assert mb.plan(state, WANT) == []
    assert wire.commands() == OBSERVE + INITIATE + OBSERVE + BOOTSTRAP + OBSERVE
    print("\nfirst run:", *wire.commands(), sep="\n  ")
    by_name = {name: doc for _, name, doc in wire.log if name != "find"}
    assert by_name["createUser"] == {"createUser": "admin", "pwd": "s3cret", "roles": [{"role": "root", "db": "admin"}]}
    shard_docs = [doc for _, name, doc in wire.log if name == "shardCollection"]
    assert [(d["shardCollection"], list(d["key"].items()), d["unique"]) for d in shard_docs] == [
        ("telemetry.sessions", [("player_id", "hashed")], False),
        ("telemetry.player_stats", [("region", 1), ("player_id", 1)], True),
        ("telemetry.match_history", [("player_id", 1), ("started_at", 1)], False)]
    zones = [doc for _, name, doc in wire.log if name == "updateZoneKeyRange"]
    assert [(d["zone"], wire_plain(d["min"]), wire_plain(d["max"])) for d in zones] == [
        ("eu", {"region": "eu", "player_id": "$minKey"}, {"region": "eu", "player_id": "$maxKey"}),
        ("na", {"region": "na", "player_id": "$minKey"}, {"region": "na", "player_id": "$maxKey"})]
    # Every replica-set command went to the member directly, as __system (the keyfile), before any user existed.
    assert {(u, src, direct) for label, u, src, direct in wire.connects if label != "mongos"} == {
        ("__system", "local", True)}

    wire.clear()
    again = _run(wire, tmp_path)
    assert wire.mutating() == [], "a second run over a bootstrapped cluster must not change it"
    assert wire.commands() == OBSERVE
    print("second run:", *wire.commands(), sep="\n  ")
    assert again == state
    written = json.loads((tmp_path / "termination-log").read_text())
    assert len((tmp_path / "termination-log").read_bytes()) < mbw.TERMINATION_MESSAGE_LIMIT
    assert written == json.loads(RECORDED.read_text()), "re-record: python tests/topology/test_mongo_bootstrap_wire.py"


def wire_plain(value):
    from mongo_wire import _plain

    return _plain(value)


def test_racing_initiate_answered_already_initialized_counts_as_done(wire: WireCluster) -> None:
    stale = mbw.observe(WANT, CREDS, wire.connect)  # fresh: NotYetInitialized everywhere
    wire.initialized.update(rs.name for rs in WANT.replica_sets)  # ... then another bootstrap initiated them
    wire.clear()
    results = mbw.execute(mb.plan(stale, WANT), WANT, CREDS, wire.connect)
    assert [(r.step.action, r.step.target, r.outcome) for r in results] == [
        ("initiate", CFG, "done"), ("initiate", S0, "done"), ("initiate", S1, "done"), ("wait", "replica-sets", "retry")]
    assert all("already initialized" in r.detail for r in results[:3])
    assert wire.mutating() == INITIATE
    wire.clear()
    fresh = mbw.observe(WANT, CREDS, wire.connect)
    assert "initiate" not in {s.action for s in mb.plan(fresh, WANT)}


def test_add_shard_only_when_missing_and_create_user_when_it_exists(wire: WireCluster) -> None:
    wire.initialized.update(rs.name for rs in WANT.replica_sets)
    wire.shards[S0] = WANT.shards[0].seed_list()  # shard 0 registered before, shard 1 not
    stale = mbw.observe(WANT, CREDS, wire.connect)  # no admin user yet ...
    wire.users.add("admin")  # ... and a racing bootstrap creates it
    wire.clear()
    results = mbw.execute(mb.plan(stale, WANT), WANT, CREDS, wire.connect)
    assert wire.mutating()[:2] == [("mongos", "addShard", WANT.shards[1].seed_list()), ("mongos", "createUser", "admin")]
    user = next(r for r in results if r.step.action == "create_admin_user")
    assert user.outcome == "done" and 'User "admin@admin" already exists' in user.detail
    assert all(r.outcome == "done" for r in results)


def test_shard_collection_new_then_already_sharded(wire: WireCluster) -> None:
    wire.initialized.update(rs.name for rs in WANT.replica_sets)
    wire.shards.update({s.name: s.seed_list() for s in WANT.shards})
    wire.users.add("admin")
    wire.collections["telemetry.sessions"] = {"key": {"player_id": "hashed"}, "unique": False}  # sharded before
    state = mbw.observe(WANT, CREDS, wire.connect)
    wire.clear()
    mbw.execute(mb.plan(state, WANT), WANT, CREDS, wire.connect)
    assert [c for c in wire.mutating() if c[1] == "shardCollection"] == [
        ("mongos", "shardCollection", "telemetry.player_stats"), ("mongos", "shardCollection", "telemetry.match_history")]
    # A racing bootstrap sharded match_history on another key: the reply is AlreadyInitialized, the next
    # observation shows the conflict, and nothing more is sent for that collection.
    wire.collections["telemetry.match_history"] = {"key": {"_id": "hashed"}, "unique": False}
    wire.clear()
    state = mbw.observe(WANT, CREDS, wire.connect)
    assert mb.plan(state, WANT) == [] and wire.mutating() == []
    boot = {c["type"]: c for c in mb.conditions(state, WANT, 1)}["Bootstrapped"]
    assert (boot["status"], boot["reason"]) == ("False", "ShardKeyConflict")
    assert boot["message"].startswith("spec.collections[2].shardKey: telemetry.match_history is sharded on {_id: hashed}")


def test_shard_collection_on_another_key_is_answered_already_initialized(wire: WireCluster) -> None:
    wire.initialized.update(rs.name for rs in WANT.replica_sets)
    wire.shards.update({s.name: s.seed_list() for s in WANT.shards})
    wire.users.add("admin")
    stale = mbw.observe(WANT, CREDS, wire.connect)
    wire.collections["telemetry.sessions"] = {"key": {"_id": 1}, "unique": False}
    results = mbw.execute(mb.plan(stale, WANT), WANT, CREDS, wire.connect)
    sessions = next(r for r in results if r.step.target == "telemetry.sessions")
    assert sessions.outcome == "done" and "sharding already enabled" in sessions.detail


if __name__ == "__main__":  # re-record the observation the controller tests use
    import tempfile

    cluster = WireCluster(WANT).start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            _run(cluster, Path(tmp))
            RECORDED.write_text((Path(tmp) / "termination-log").read_text() + "\n")
    finally:
        cluster.stop()
    print(f"wrote {RECORDED}")
