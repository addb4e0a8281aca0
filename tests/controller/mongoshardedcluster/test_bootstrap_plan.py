"""The Mongo bootstrap planner over recorded server replies (no mongod here: see docs/topologies.md)."""

from __future__ import annotations

import pytest

from game_analytics.api.mongoshardedcluster import MongoShardedClusterSpec
from game_analytics.controller.mongoshardedcluster import bootstrap as mb
from game_analytics.controller.mongoshardedcluster.bootstrap import (
    ClusterState,
    ReplicaSetObservation,
    Step,
    plan,
)
from game_analytics.workers import mongo_bootstrap as mbw

SPEC = MongoShardedClusterSpec.model_validate({
    "keyfileSecretRef": {"name": "kf", "key": "keyfile"}, "adminSecretRef": {"name": "adm"},
    "shards": {"count": 2, "replicasPerShard": 3}, "configServer": {"replicas": 3}})
WANT = mb.desired("ev", "games", SPEC)
NAMES = ["ev-cfg", "ev-shard-0", "ev-shard-1"]


def _status_reply(rs: mb.ReplicaSetSpec, primary: int | None = 0) -> dict:
    """A replSetGetStatus reply as mongod returns it (trimmed to the fields read)."""
    return {"set": rs.name, "ok": 1.0, "members": [
        {"_id": i, "name": h, "state": 1 if i == primary else 2,
         "stateStr": "PRIMARY" if i == primary else "SECONDARY"} for i, h in enumerate(rs.members)]}


NOT_INIT = {"ok": 0.0, "errmsg": "no replset config has been received", "code": 94, "codeName": "NotYetInitialized"}


def _obs(rs: mb.ReplicaSetSpec, state: str) -> ReplicaSetObservation:
    if state == "fresh":
        return ReplicaSetObservation.from_reply(rs.name, NOT_INIT)
    if state == "noprimary":
        return ReplicaSetObservation.from_reply(rs.name, _status_reply(rs, primary=None))
    if state == "down":
        return ReplicaSetObservation.from_reply(rs.name, error="ServerSelectionTimeoutError: connection refused")
    return ReplicaSetObservation.from_reply(rs.name, _status_reply(rs))


def _state(states: dict[str, str], *, mongos=True, listed=(), user=False) -> ClusterState:
    by = {rs.name: rs for rs in WANT.replica_sets}
    return ClusterState.from_replies(
        {n: _obs(by[n], s) for n, s in states.items()}, mongos_ping=mongos,
        list_shards={"shards": [{"_id": s, "host": by[s].seed_list()} for s in listed], "ok": 1} if mongos else None,
        users_info={"users": [{"user": "admin", "db": "admin"}] if user else [], "ok": 1} if mongos else None)


def _actions(steps: list[Step]) -> list[tuple[str, str]]:
    return [(s.action, s.target) for s in steps]


def test_desired_topology() -> None:
    assert WANT.config.name == "ev-cfg" and WANT.config.configsvr
    assert WANT.config.members[2] == "ev-cfg-2.ev-cfg-headless.games.svc:27017"
    assert [s.name for s in WANT.shards] == ["ev-shard-0", "ev-shard-1"]
    assert WANT.config.initiate_document()["configsvr"] is True
    assert "configsvr" not in WANT.shards[0].initiate_document()
    assert mb.DesiredCluster.from_json(WANT.to_json()) == WANT


def test_fresh_cluster_initiates_everything_then_waits() -> None:
    steps = plan(_state(dict.fromkeys(NAMES, "fresh"), mongos=False), WANT)
    assert _actions(steps) == [("initiate", "ev-cfg"), ("initiate", "ev-shard-0"), ("initiate", "ev-shard-1"),
                               ("wait", "replica-sets")]


def test_config_initialised_only() -> None:
    steps = plan(_state({"ev-cfg": "ready", "ev-shard-0": "fresh", "ev-shard-1": "fresh"}, mongos=False), WANT)
    assert _actions(steps) == [("initiate", "ev-shard-0"), ("initiate", "ev-shard-1"), ("wait", "replica-sets")]


def test_partly_initialised_shards() -> None:
    steps = plan(_state({"ev-cfg": "ready", "ev-shard-0": "noprimary", "ev-shard-1": "fresh"}), WANT)
    assert _actions(steps) == [("initiate", "ev-shard-1"), ("wait", "replica-sets")]
    assert "ev-shard-0 has no primary" in steps[-1].reason


def test_config_server_unreachable_blocks_everything() -> None:
    steps = plan(_state({"ev-cfg": "down", "ev-shard-0": "fresh", "ev-shard-1": "fresh"}), WANT)
    assert _actions(steps) == [("wait", "ev-cfg")] and "connection refused" in steps[0].reason


def test_ready_sets_then_mongos_then_shards_then_user() -> None:
    ready = dict.fromkeys(NAMES, "ready")
    assert _actions(plan(_state(ready, mongos=False), WANT)) == [("wait", "mongos")]
    steps = plan(_state(ready), WANT)
    assert _actions(steps) == [("add_shard", "ev-shard-0"), ("add_shard", "ev-shard-1"), ("create_admin_user", "admin")]
    assert steps[0].argument == "ev-shard-0/" + ",".join(WANT.shards[0].members)


def test_fully_initialised_cluster_needs_nothing() -> None:
    state = _state(dict.fromkeys(NAMES, "ready"), listed=("ev-shard-0", "ev-shard-1"), user=True)
    assert plan(state, WANT) == []
    conds = {c["type"]: c for c in mb.conditions(state, WANT, 2)}
    assert {c["status"] for c in conds.values()} == {"True"}
    assert [(s.name, s.initialized, s.added_as_shard) for s in mb.status(state, WANT).replica_sets] == [
        ("ev-cfg", True, False), ("ev-shard-0", True, True), ("ev-shard-1", True, True)]


def test_shard_missing_from_list_shards() -> None:
    state = _state(dict.fromkeys(NAMES, "ready"), listed=("ev-shard-0",), user=True)
    assert _actions(plan(state, WANT)) == [("add_shard", "ev-shard-1")]
    conds = {c["type"]: c for c in mb.conditions(state, WANT, 2)}
    assert conds["ShardsRegistered"]["status"] == "False" and "ev-shard-1" in conds["ShardsRegistered"]["message"]
    assert conds["Bootstrapped"]["status"] == "False"
    assert [s.added_as_shard for s in mb.status(state, WANT).replica_sets] == [False, True, False]


def test_existing_admin_user_is_never_created_again() -> None:
    state = _state(dict.fromkeys(NAMES, "ready"), listed=(), user=True)
    assert "create_admin_user" not in [s.action for s in plan(state, WANT)]


def test_scaled_up_replica_set_adds_one_member_per_round() -> None:
    bigger = mb.desired("ev", "games", SPEC.model_copy(update={"config_server": SPEC.config_server.model_copy(
        update={"replicas": 5})}))
    state = _state(dict.fromkeys(NAMES, "ready"), listed=("ev-shard-0", "ev-shard-1"), user=True)
    steps = plan(state, bigger)
    assert _actions(steps) == [("add_member", "ev-cfg")]
    assert steps[0].argument == "ev-cfg-3.ev-cfg-headless.games.svc:27017"


def test_racing_initiate_is_success() -> None:
    initiate = Step("initiate", "ev-cfg", "")
    assert mb.outcome(initiate, mb.ALREADY_INITIALIZED) == "done"
    assert mb.outcome(initiate, None) == "done"
    assert mb.outcome(initiate, mb.NODE_NOT_FOUND) == "retry"  # other members not up yet
    assert mb.outcome(initiate, 93) == "failed"  # InvalidReplicaSetConfig
    user = Step("create_admin_user", "admin", "")
    assert mb.outcome(user, mb.USER_ALREADY_EXISTS) == "done" and mb.outcome(user, mb.DUPLICATE_KEY) == "done"
    assert mb.outcome(Step("add_shard", "ev-shard-0", ""), mb.ALREADY_INITIALIZED) == "failed"
    # After the racing bootstrap, the next observation shows the set initialised: no initiate is planned.
    state = _state({"ev-cfg": "ready", "ev-shard-0": "ready", "ev-shard-1": "ready"}, listed=(), user=False)
    assert "initiate" not in [s.action for s in plan(state, WANT)]


def test_observation_parsing() -> None:
    obs = ReplicaSetObservation.from_reply("ev-cfg", _status_reply(WANT.config, primary=1))
    assert obs.initialized and obs.primary == WANT.config.members[1] and obs.members == WANT.config.members
    assert not ReplicaSetObservation.from_reply("x", error_code=94).initialized
    assert ReplicaSetObservation.from_reply("x", error_code=94).reachable
    assert not ReplicaSetObservation.from_reply("x", error_code=13, error="Unauthorized").reachable


def test_unreachable_mongos_conditions() -> None:
    conds = {c["type"]: c for c in mb.conditions(_state(dict.fromkeys(NAMES, "ready"), mongos=False), WANT, 1)}
    assert conds["ShardsRegistered"]["status"] == "Unknown" and conds["ShardsRegistered"]["reason"] == "MongosUnreachable"
    assert conds["ConfigServerReady"]["status"] == "True" and conds["ShardsReady"]["status"] == "True"


def test_run_from_environment_rejects_wrong_cluster(tmp_path) -> None:
    (tmp_path / "kf").write_text("abc def\n")
    env = {mb.ENV_TOPOLOGY: WANT.to_json(), mb.ENV_KEYFILE: str(tmp_path / "kf"),
           mb.ENV_ADMIN_USERNAME: "admin", mb.ENV_ADMIN_PASSWORD: "pw"}
    with pytest.raises(ValueError):
        mbw.run_from_environment("other", env)
    with pytest.raises(SystemExit):
        mbw.main(["bootstrap"])  # --cluster is required
    assert mbw.Credentials.keyfile_password_from("abc def\n ghi") == "abcdefghi"
