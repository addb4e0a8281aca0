"""MongoShardedCluster rendering: names, commands, keyfile handling, security, bootstrap Job."""

from __future__ import annotations

import json

from game_analytics.api.mongoshardedcluster import MongoShardedClusterSpec
from game_analytics.config import Images
from game_analytics.controller.common.render import Owner
from game_analytics.controller.mongoshardedcluster import render as msc
from game_analytics.controller.mongoshardedcluster.bootstrap import DesiredCluster

from ..ha_pod_checks import assert_owned, assert_restricted, pod_specs

OWNER = Owner("gameanalytics.io/v1alpha1", "MongoShardedCluster", "ev", "games", "uid-9", 1)
BASE = {"keyfileSecretRef": {"name": "ev-keyfile", "key": "key"}, "adminSecretRef": {"name": "ev-admin"}}


def _spec(**extra) -> MongoShardedClusterSpec:
    return MongoShardedClusterSpec.model_validate({**BASE, **extra})


def _by(children, kind, name):
    return next(c for c in children if c["kind"] == kind and c["metadata"]["name"] == name)


def test_children_and_owner() -> None:
    children = msc.render(OWNER, _spec(shards={"count": 3}), Images())
    names = [(c["kind"], c["metadata"]["name"]) for c in children]
    for rs in ("ev-cfg", "ev-shard-0", "ev-shard-1", "ev-shard-2"):
        assert ("StatefulSet", rs) in names and ("Service", f"{rs}-headless") in names
        assert ("PodDisruptionBudget", rs) in names
        svc = _by(children, "Service", f"{rs}-headless")["spec"]
        assert svc["clusterIP"] == "None" and svc["publishNotReadyAddresses"] is True
        assert _by(children, "StatefulSet", rs)["spec"]["serviceName"] == f"{rs}-headless"
    assert ("Deployment", "ev-mongos") in names and ("Service", "ev-mongos") in names
    assert [n for k, n in names if k == "Job"][0].startswith("ev-bootstrap-")
    assert_owned(children, "uid-9")
    # Shard pods must not be selected by another shard's StatefulSet or Service.
    selectors = [json.dumps(c["spec"]["selector"]["matchLabels"], sort_keys=True)
                 for c in children if c["kind"] == "StatefulSet"]
    assert len(set(selectors)) == len(selectors)


def test_every_pod_restricted_with_probes_and_resources() -> None:
    pods = pod_specs(msc.render(OWNER, _spec(), Images()))
    assert len(pods) == 1 + 2 + 1 + 1
    for name, pod in pods:
        assert_restricted(name, pod)


def test_mongod_and_mongos_commands() -> None:
    children = msc.render(OWNER, _spec(version="7.0.14"), Images(mongo="mongo"))
    cfg = _by(children, "StatefulSet", "ev-cfg")["spec"]["template"]["spec"]["containers"][0]
    assert cfg["image"] == "mongo:7.0.14"
    cmd = cfg["command"]
    assert cmd[:4] == ["mongod", "--configsvr", "--replSet", "ev-cfg"] and "--keyFile" in cmd
    shard = _by(children, "StatefulSet", "ev-shard-1")["spec"]["template"]["spec"]["containers"][0]["command"]
    assert shard[:4] == ["mongod", "--shardsvr", "--replSet", "ev-shard-1"]
    mongos = _by(children, "Deployment", "ev-mongos")["spec"]["template"]["spec"]["containers"][0]["command"]
    configdb = mongos[mongos.index("--configdb") + 1]
    assert configdb == "ev-cfg/" + ",".join(f"ev-cfg-{i}.ev-cfg-headless.games.svc:27017" for i in range(3))


def test_keyfile_from_secret_copied_for_mongod() -> None:
    pod = _by(msc.render(OWNER, _spec(), Images()), "StatefulSet", "ev-shard-0")["spec"]["template"]["spec"]
    secret = next(v for v in pod["volumes"] if v["name"] == "keyfile-secret")["secret"]
    assert secret["secretName"] == "ev-keyfile" and secret["defaultMode"] == 0o400
    assert secret["items"] == [{"key": "key", "path": "keyfile"}]
    assert pod["securityContext"]["fsGroup"]  # why the copy is needed: fsGroup makes the Secret group-readable
    init = pod["initContainers"][0]["command"][-1]
    assert "chmod 0400" in init and msc.KEYFILE_PATH in init
    mongod = pod["containers"][0]
    assert mongod["command"][mongod["command"].index("--keyFile") + 1] == msc.KEYFILE_PATH


def test_storage_replicas_anti_affinity() -> None:
    children = msc.render(OWNER, _spec(shards={"count": 1, "replicasPerShard": 5,
                                               "storage": {"size": "50Gi", "storageClassName": "ssd"}}), Images())
    sts = _by(children, "StatefulSet", "ev-shard-0")["spec"]
    assert sts["replicas"] == 5
    claim = sts["volumeClaimTemplates"][0]["spec"]
    assert claim["resources"]["requests"]["storage"] == "50Gi" and claim["storageClassName"] == "ssd"
    term = sts["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["labelSelector"]["matchLabels"] == sts["selector"]["matchLabels"]


def test_bootstrap_job() -> None:
    children = msc.render(OWNER, _spec(), Images(worker="ga:1"))
    job = next(c for c in children if c["kind"] == "Job")
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "ga:1"
    assert c["args"] == ["mongo", "bootstrap", "--cluster", "ev", "--status-file", "/dev/termination-log"]
    assert c["terminationMessagePath"] == "/dev/termination-log"
    env = {e["name"]: e for e in c["env"]}
    want = DesiredCluster.from_json(env["GAME_ANALYTICS_MONGO_TOPOLOGY"]["value"])
    assert [s.name for s in want.shards] == ["ev-shard-0", "ev-shard-1"]
    assert env["GAME_ANALYTICS_MONGO_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "ev-admin",
                                                                                         "key": "password"}
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # A new topology gets a new Job (Jobs are immutable); the same one keeps its name.
    more = msc.render(OWNER, _spec(shards={"count": 3}), Images(worker="ga:1"))
    assert next(x for x in more if x["kind"] == "Job")["metadata"]["name"] != job["metadata"]["name"]
    assert msc.render(OWNER, _spec(), Images(worker="ga:1")) == children
