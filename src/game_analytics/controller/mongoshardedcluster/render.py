"""MongoShardedCluster -> config-server and shard StatefulSets, mongos Deployment, Services, PDBs, bootstrap Job.

Topology (``<name>`` is the MongoShardedCluster's name)::

    <name>-cfg                  StatefulSet: mongod --configsvr --replSet <name>-cfg
    <name>-cfg-headless         headless Service (publishNotReadyAddresses): member DNS names
    <name>-shard-<i>            StatefulSet per shard: mongod --shardsvr --replSet <name>-shard-<i>
    <name>-shard-<i>-headless   headless Service per shard
    <name>-mongos               Deployment + Service: mongos --configdb <name>-cfg/<cfg members>
    <name>-bootstrap-<digest>   Job: game-analytics mongo bootstrap --cluster <name>

Members are addressed by stable DNS names (``<pod>.<sts>-headless.<ns>.svc:27017``), so replica-set
configurations survive rescheduling. Internal authentication uses the keyfile from ``spec.keyfileSecretRef``.

Keyfile and ``fsGroup``: a Secret volume is owned by root with group ``fsGroup``, and the kubelet adds group read
to it, so even with ``defaultMode: 0400`` mongod would find it group-readable and refuse it ("permissions on the
keyfile are too open"). An init container therefore copies it into a memory-backed emptyDir, owned by the pod's
user with mode 0400.

The bootstrap Job's name carries a digest of the topology, so a changed topology (more shards, more members) gets
a new Job; Jobs are immutable. Pure and deterministic: equal input gives equal dicts.
"""

from __future__ import annotations

from typing import Any

from ...api.common import Resources, Storage
from ...api.mongoshardedcluster import MongoShardedClusterSpec
from ...config import Images
from ..common.render import (
    Manifest,
    Owner,
    container,
    exec_probe,
    init_container,
    labels,
    manifest,
    metadata,
    pod_disruption_budget,
    pod_spec,
    resources,
    secret_env,
    selector,
    service,
    spread_across_nodes,
    tcp_probe,
)
from . import bootstrap as mb
from . import names
from .names import MONGO_PORT, config_server_name, headless_name, mongos_name, shard_name

KEYFILE_SECRET_DIR = "/etc/mongo-keyfile-secret"
KEYFILE_DIR = "/etc/mongo-keyfile"
KEYFILE_PATH = f"{KEYFILE_DIR}/keyfile"
HEARTBEAT_FILE = "/tmp/bootstrap-heartbeat"

__all__ = ["KEYFILE_PATH", "bootstrap_job", "bootstrap_job_name", "image", "mongod_statefulset",
           "mongos_deployment", "render"]


def image(spec: MongoShardedClusterSpec, images: Images) -> str:
    """``{spec.image or images.mongo}:{spec.version}`` (an image already carrying a tag or digest is kept)."""
    base = spec.image or images.mongo
    last = base.rsplit("/", 1)[-1]
    return base if (":" in last or "@" in base) else f"{base}:{spec.version}"


def _keyfile_volumes(spec: MongoShardedClusterSpec) -> list[dict[str, Any]]:
    ref = spec.keyfile_secret_ref
    return [
        {"name": "keyfile-secret", "secret": {"secretName": ref.name, "defaultMode": 0o400,
                                              "items": [{"key": ref.key, "path": "keyfile"}]}},
        {"name": "keyfile", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
    ]


def _keyfile_init(img: str) -> dict[str, Any]:
    return init_container(
        "keyfile", img,
        command=["sh", "-c", f"cp {KEYFILE_SECRET_DIR}/keyfile {KEYFILE_PATH} && chmod 0400 {KEYFILE_PATH}"],
        resources_=resources(None, cpu="10m", memory="16Mi", memory_limit="64Mi"),
        volume_mounts=[{"name": "keyfile-secret", "mountPath": KEYFILE_SECRET_DIR, "readOnly": True},
                       {"name": "keyfile", "mountPath": KEYFILE_DIR}],
    )


def _mongo_mounts() -> list[dict[str, Any]]:
    return [{"name": "keyfile", "mountPath": KEYFILE_DIR, "readOnly": True}, {"name": "tmp", "mountPath": "/tmp"}]


#: mongosh needs a writable HOME for its logs; the root filesystem is read-only.
_HOME = {"name": "HOME", "value": "/tmp"}


def _ping_probe(period: int) -> dict[str, Any]:
    check = ["mongosh", "--quiet", "--norc", "--port", str(MONGO_PORT), "--eval",
             "if (db.adminCommand({ping: 1}).ok !== 1) quit(1)"]
    return {**exec_probe(check, period=period), "timeoutSeconds": 10}


def mongod_statefulset(owner: Owner, spec: MongoShardedClusterSpec, images: Images, sts: str, component: str,
                       role_flag: str, replicas: int, res: Resources, storage: Storage) -> Manifest:
    """A mongod replica set: ``mongod <role_flag> --replSet <sts>`` with the keyfile and one PVC per member."""
    img = image(spec, images)
    mongod = container(
        "mongod", img,
        command=["mongod", role_flag, "--replSet", sts, "--port", str(MONGO_PORT), "--bind_ip_all",
                 "--keyFile", KEYFILE_PATH, "--dbpath", "/data/db"],
        env=[_HOME],
        ports=[{"name": "mongodb", "containerPort": MONGO_PORT, "protocol": "TCP"}],
        resources_=resources(res, cpu="250m", memory="1Gi", memory_limit="2Gi"),
        liveness={**tcp_probe("mongodb", period=10), "failureThreshold": 6},
        readiness=_ping_probe(period=15),
        volume_mounts=[*_mongo_mounts(), {"name": "data", "mountPath": "/data/db"}],
    )
    match = selector(owner, component)
    pod = pod_spec([mongod], volumes=_keyfile_volumes(spec), affinity=spread_across_nodes(dict(match)))
    pod["initContainers"] = [_keyfile_init(img)]
    pod["terminationGracePeriodSeconds"] = 60
    claim: dict[str, Any] = {"metadata": {"name": "data"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage.size}}}}
    if storage.storage_class_name:
        claim["spec"]["storageClassName"] = storage.storage_class_name
    return manifest("apps/v1", "StatefulSet", metadata(owner, sts, component), spec={
        "serviceName": headless_name(sts),
        "replicas": replicas,
        "podManagementPolicy": "Parallel",
        "updateStrategy": {"type": "RollingUpdate"},
        "selector": {"matchLabels": match},
        "template": {"metadata": {"labels": labels(owner, component)}, "spec": pod},
        "volumeClaimTemplates": [claim],
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
    })


def mongos_deployment(owner: Owner, spec: MongoShardedClusterSpec, images: Images,
                      want: mb.DesiredCluster) -> Manifest:
    """The mongos routers, pointed at the config-server replica set."""
    img = image(spec, images)
    mongos = container(
        "mongos", img,
        command=["mongos", "--configdb", want.config.seed_list(), "--port", str(MONGO_PORT), "--bind_ip_all",
                 "--keyFile", KEYFILE_PATH],
        env=[_HOME],
        ports=[{"name": "mongodb", "containerPort": MONGO_PORT, "protocol": "TCP"}],
        resources_=resources(spec.mongos.resources, cpu="100m", memory="256Mi", memory_limit="1Gi"),
        liveness={**tcp_probe("mongodb", period=10), "failureThreshold": 6},
        readiness=_ping_probe(period=15),
        volume_mounts=_mongo_mounts(),
    )
    match = selector(owner, "mongos")
    pod = pod_spec([mongos], volumes=_keyfile_volumes(spec), affinity=spread_across_nodes(dict(match)))
    pod["initContainers"] = [_keyfile_init(img)]
    return manifest("apps/v1", "Deployment", metadata(owner, mongos_name(owner.name), "mongos"), spec={
        "replicas": spec.mongos.replicas,
        "selector": {"matchLabels": match},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {"metadata": {"labels": labels(owner, "mongos")}, "spec": pod},
    })


def bootstrap_job_name(owner_name: str, want: mb.DesiredCluster) -> str:
    """``<name>-bootstrap-<8 hex digits of the topology's SHA-256>`` (see :func:`.names.bootstrap_job_name`)."""
    return names.bootstrap_job_name(owner_name, want.to_json())


def bootstrap_job(owner: Owner, spec: MongoShardedClusterSpec, images: Images, want: mb.DesiredCluster) -> Manifest:
    """The Job running ``game-analytics mongo bootstrap --cluster <name>`` in the worker image.

    It reads the topology from ``GAME_ANALYTICS_MONGO_TOPOLOGY``, the keyfile (to authenticate as ``__system``
    before any user exists) and the admin user's name and password from ``spec.adminSecretRef``. Its liveness
    probe checks that the bootstrap loop touched its heartbeat file within the last two minutes.
    """
    admin = spec.admin_secret_ref.name
    env = [
        {"name": mb.ENV_TOPOLOGY, "value": want.to_json()},
        {"name": mb.ENV_KEYFILE, "value": f"{KEYFILE_SECRET_DIR}/keyfile"},
        secret_env(mb.ENV_ADMIN_USERNAME, _Ref(admin, "username")),
        secret_env(mb.ENV_ADMIN_PASSWORD, _Ref(admin, "password")),
        {"name": mb.ENV_HEARTBEAT, "value": HEARTBEAT_FILE},
    ]
    fresh = ["sh", "-c", f'test $(( $(date +%s) - $(stat -c %Y {HEARTBEAT_FILE}) )) -lt 120']
    probe = {**exec_probe(fresh, period=30), "initialDelaySeconds": 30}
    job = container(
        "bootstrap", images.worker, args=["mongo", "bootstrap", "--cluster", owner.name], env=env,
        resources_=resources(None, cpu="50m", memory="128Mi", memory_limit="256Mi"),
        liveness=probe, readiness=probe,
        volume_mounts=[{"name": "keyfile-secret", "mountPath": KEYFILE_SECRET_DIR, "readOnly": True},
                       {"name": "tmp", "mountPath": "/tmp"}],
    )
    volumes = [v for v in _keyfile_volumes(spec) if v["name"] in ("keyfile-secret", "tmp")]
    return manifest("batch/v1", "Job", metadata(owner, bootstrap_job_name(owner.name, want), "mongo-bootstrap"), spec={
        "backoffLimit": 10,
        "activeDeadlineSeconds": 1800,
        "template": {"metadata": {"labels": labels(owner, "mongo-bootstrap")},
                     "spec": pod_spec([job], volumes=volumes, restart_policy="Never")},
    })


class _Ref:
    """A Secret key reference built here (the admin Secret is referenced by name, with fixed keys)."""

    def __init__(self, name: str, key: str) -> None:
        self.name, self.key = name, key


def _replica_set_children(owner: Owner, sts: str, component: str, statefulset: Manifest) -> list[Manifest]:
    port = [{"name": "mongodb", "port": MONGO_PORT, "targetPort": "mongodb"}]
    return [
        service(owner, headless_name(sts), component, port, headless=True, publish_not_ready=True),
        statefulset,
        pod_disruption_budget(owner, sts, component, max_unavailable=1),
    ]


def render(owner: Owner, spec: MongoShardedClusterSpec, images: Images) -> list[Manifest]:
    """All children: per replica set (config server, then shards) its headless Service, StatefulSet and PDB;
    then the mongos Deployment, Service and PDB; then the bootstrap Job."""
    want = mb.desired(owner.name, owner.namespace, spec)
    cfg = config_server_name(owner.name)
    children = _replica_set_children(owner, cfg, "mongo-cfg", mongod_statefulset(
        owner, spec, images, cfg, "mongo-cfg", "--configsvr", spec.config_server.replicas,
        spec.config_server.resources, spec.config_server.storage))
    for i in range(spec.shards.count):
        sts, component = shard_name(owner.name, i), f"mongo-shard-{i}"
        children += _replica_set_children(owner, sts, component, mongod_statefulset(
            owner, spec, images, sts, component, "--shardsvr", spec.shards.replicas_per_shard,
            spec.shards.resources, spec.shards.storage))
    children += [
        mongos_deployment(owner, spec, images, want),
        service(owner, mongos_name(owner.name), "mongos", [{"name": "mongodb", "port": MONGO_PORT,
                                                           "targetPort": "mongodb"}]),
        pod_disruption_budget(owner, mongos_name(owner.name), "mongos", max_unavailable=1),
        bootstrap_job(owner, spec, images, want),
    ]
    return children
