"""MongoShardedCluster status from observation: the bootstrap Job's termination message -> status and conditions."""

from __future__ import annotations

import copy
import json

from game_analytics.controller.common import conditions
from game_analytics.controller.mongoshardedcluster import bootstrap as mb
from game_analytics.controller.mongoshardedcluster import names

from ..fake_cluster import FakeCluster
from ..test_reconcile import body, ready, run
from .recorded import RECORDED_MESSAGE, bootstrap_pod


def _job_path(cluster: FakeCluster) -> str:
    return next(p for p in cluster.objects if "/jobs/" in p)


def _bootstrapped(cluster: FakeCluster, mongo: dict) -> dict:
    run("MongoShardedCluster", mongo, cluster)
    job = cluster.objects[_job_path(cluster)]
    job["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    cluster.add(bootstrap_pod("telemetry", job["metadata"]["name"]))
    run("MongoShardedCluster", mongo, cluster)
    return mongo["status"]


def test_status_of_a_bootstrapped_cluster_from_the_recorded_run() -> None:
    cluster, mongo = FakeCluster(), body("mongoshardedcluster.yaml")
    status = _bootstrapped(cluster, mongo)
    print("\n" + json.dumps({k: v for k, v in status.items() if k != "conditions"}, indent=1))
    print(json.dumps([{k: c[k] for k in ("type", "status", "reason", "message")} for c in status["conditions"]],
                     indent=1))
    by_type = {c["type"]: c for c in status["conditions"]}
    assert {t: by_type[t]["status"] for t in ("Ready", "ConfigServerReady", "ShardsReady", "ShardsRegistered",
                                              "Bootstrapped")} == dict.fromkeys(
        ("Ready", "ConfigServerReady", "ShardsReady", "ShardsRegistered", "Bootstrapped"), "True")
    cfg, s0, s1 = status["replicaSets"]
    assert (cfg["name"], cfg["initialized"], cfg["addedAsShard"]) == ("telemetry-cfg", True, False)
    assert (s0["addedAsShard"], s1["addedAsShard"]) == (True, True)
    assert cfg["primary"] == "telemetry-cfg-0.telemetry-cfg-headless.games.svc:27017"
    assert [m["state"] for m in s1["members"]] == ["PRIMARY", "SECONDARY", "SECONDARY"]
    assert [(s["name"], s["zones"]) for s in status["shards"]] == [("telemetry-shard-0", ["eu"]),
                                                                   ("telemetry-shard-1", ["na"])]
    assert status["shards"][0]["host"].startswith("telemetry-shard-0/telemetry-shard-0-0.")
    assert [(c["namespace"], [(k["field"], k["type"]) for k in c["shardKey"]], c["unique"], c["zones"])
            for c in status["collections"]] == [
        ("telemetry.sessions", [("player_id", "hashed")], False, []),
        ("telemetry.player_stats", [("region", "ranged"), ("player_id", "ranged")], True, ["eu", "na"]),
        ("telemetry.match_history", [("player_id", "ranged"), ("started_at", "ranged")], False, [])]
    again = run("MongoShardedCluster", mongo, cluster)
    assert again.status_patch(mongo["status"]) == {}, "a stable observation must not rewrite status"


def test_not_ready_until_bootstrapped_and_no_guessed_status() -> None:
    cluster, mongo = FakeCluster(), body("mongoshardedcluster.yaml")
    run("MongoShardedCluster", mongo, cluster)
    assert (ready(mongo)["status"], ready(mongo)["reason"]) == ("False", "Bootstrapping")
    assert "replicaSets" not in mongo["status"] and "collections" not in mongo["status"]
    boot = conditions.get(mongo["status"]["conditions"], "Bootstrapped")
    assert (boot["status"], boot["reason"]) == ("Unknown", "BootstrapPending")


def test_a_pod_of_another_job_or_a_bad_message_is_ignored() -> None:
    cluster, mongo = FakeCluster(), body("mongoshardedcluster.yaml")
    run("MongoShardedCluster", mongo, cluster)
    cluster.add(bootstrap_pod("telemetry", "telemetry-bootstrap-00000000"))
    job_name = cluster.objects[_job_path(cluster)]["metadata"]["name"]
    cluster.add(bootstrap_pod("telemetry", job_name, "bootstrap failed: boom", finished="2026-11-23T06:00:00Z"))
    run("MongoShardedCluster", mongo, cluster)
    assert "replicaSets" not in mongo["status"]


def test_a_partial_observation_names_what_is_missing() -> None:
    cluster, mongo = FakeCluster(), body("mongoshardedcluster.yaml")
    run("MongoShardedCluster", mongo, cluster)
    doc = json.loads(RECORDED_MESSAGE)
    doc["shards"] = doc["shards"][:1]
    doc["replicaSets"][2]["members"][0][1] = "STARTUP2"
    doc["replicaSets"][2]["primary"] = None
    job_name = cluster.objects[_job_path(cluster)]["metadata"]["name"]
    cluster.add(bootstrap_pod("telemetry", job_name, json.dumps(doc), phase="Failed"))
    run("MongoShardedCluster", mongo, cluster)
    by_type = {c["type"]: c for c in mongo["status"]["conditions"]}
    assert by_type["ShardsRegistered"]["status"] == "False" and "telemetry-shard-1" in by_type["ShardsRegistered"]["message"]
    assert by_type["ShardsReady"]["status"] == "False" and "no primary" in by_type["ShardsReady"]["message"]
    assert by_type["Ready"]["status"] == "False" and by_type["Ready"]["reason"] == "Bootstrapping"
    assert [s["name"] for s in mongo["status"]["shards"]] == ["telemetry-shard-0"]


def test_a_shard_key_change_is_refused_with_the_field_named() -> None:
    cluster, mongo = FakeCluster(), body("mongoshardedcluster.yaml")
    _bootstrapped(cluster, mongo)
    children = copy.deepcopy(cluster.objects)
    mongo["spec"]["collections"][2]["shardKey"] = [{"field": "match_id", "type": "hashed"}]
    mongo["metadata"]["generation"] = 2
    run("MongoShardedCluster", mongo, cluster)
    r = ready(mongo)
    assert (r["status"], r["reason"]) == ("False", "InvalidSpec")
    assert r["message"].startswith("spec.collections[2].shardKey: telemetry.match_history is sharded on "
                                   "{player_id: 1, started_at: 1}")
    assert cluster.objects.keys() == children.keys(), "no new bootstrap Job for a refused spec"


def test_a_zone_on_a_missing_shard_is_an_invalid_spec() -> None:
    cluster, mongo = FakeCluster(), body("mongoshardedcluster.yaml")
    mongo["spec"]["collections"][1]["zones"][1]["shards"] = [5]
    run("MongoShardedCluster", mongo, cluster)
    assert ready(mongo)["message"].startswith("spec.collections[1].zones[1].shards: no shard 5")
    mongo["spec"]["collections"][1]["zones"][1]["shards"] = [1]
    mongo["spec"]["collections"][1]["zones"][1]["min"] = {"country": "us"}
    run("MongoShardedCluster", mongo, cluster)
    assert ready(mongo)["message"].startswith("spec.collections[1].zones[1].min: 'country' is not a shard key field")


def test_observation_document_round_trip() -> None:
    state = mb.ClusterState.from_document(json.loads(RECORDED_MESSAGE))
    assert mb.ClusterState.from_document(state.to_document()) == state


def test_one_reconcile_computes_the_desired_topology_once(monkeypatch) -> None:
    """The planner derives the topology (zones, hosts, collections) once and renders the children from it; it
    was computed a second time inside render()."""
    calls: list[str] = []
    desired = mb.desired

    def counting(cluster: str, namespace: str, spec):
        calls.append(cluster)
        return desired(cluster, namespace, spec)

    monkeypatch.setattr(mb, "desired", counting)
    cluster, mongo = FakeCluster(), body("mongoshardedcluster.yaml")
    run("MongoShardedCluster", mongo, cluster)
    assert calls == ["telemetry"]
    job = cluster.objects[_job_path(cluster)]
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    # the Job carries the one topology: its name is the digest of the JSON in its environment
    assert job["metadata"]["name"] == names.bootstrap_job_name("telemetry", env[mb.ENV_TOPOLOGY])
    assert [rs.name for rs in mb.DesiredCluster.from_json(env[mb.ENV_TOPOLOGY]).replica_sets] == [
        "telemetry-cfg", "telemetry-shard-0", "telemetry-shard-1"]
