"""MongoShardedCluster -> config-server and shard StatefulSets, mongos Deployment, Services, PDBs, bootstrap Job.

Topology (``<name>`` is the MongoShardedCluster's name)::

    <name>-cfg                  StatefulSet: mongod --configsvr --replSet <name>-cfg
    <name>-cfg-headless         headless Service (publishNotReadyAddresses): member DNS names
    <name>-shard-<i>            StatefulSet per shard: mongod --shardsvr --replSet <name>-shard-<i>
    <name>-shard-<i>-headless   headless Service per shard
    <name>-mongos               Deployment + Service: mongos --configdb <name>-cfg/<cfg members>
    <name>-bootstrap-<digest>   Job: game-analytics mongo bootstrap --cluster <name>
    <name>-mongodb              ServiceMonitor: the mongodb_exporter sidecars (with spec.exporter.enabled)

Every mongod and mongos pod carries a Percona ``mongodb_exporter`` sidecar on port 9216 (``metrics``), logged in
as the admin user from ``spec.adminSecretRef``: until the bootstrap has created that user the exporter reports
``mongodb_up 0``. Its metric names are the table ``monitoring.names.MONGODB_EXPORTER``.

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

from ...api.common import Resources, SecretKeyRef, Storage
from ...api.mongoshardedcluster import MongoShardedClusterSpec
from ...config import Images
from ...monitoring import names as metric_names
from ..common.render import (
    Manifest,
    Owner,
    container,
    exec_probe,
    init_container,
    labels,
    manifest,
    metadata,
    monitoring_metadata,
    pod_disruption_budget,
    pod_spec,
    resources,
    secret_env,
    selector,
    service,
    spread_across_nodes,
    stateful_set,
    tcp_probe,
    volume_claim,
)
from . import bootstrap as mb
from . import names
from .names import (
    BOOTSTRAP_COMPONENT,
    EXPORTER_PORT,
    LABEL_METRICS,
    MONGO_PORT,
    STATUS_FILE,
    config_server_name,
    headless_name,
    mongos_name,
    service_monitor_name,
    shard_name,
)

KEYFILE_SECRET_DIR = "/etc/mongo-keyfile-secret"
KEYFILE_DIR = "/etc/mongo-keyfile"
KEYFILE_PATH = f"{KEYFILE_DIR}/keyfile"
HEARTBEAT_FILE = "/tmp/bootstrap-heartbeat"

__all__ = ["KEYFILE_PATH", "bootstrap_job", "bootstrap_job_name", "exporter", "image", "mongod_statefulset",
           "mongos_deployment", "render", "service_monitor"]


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


def _admin_env(secret: str, user_var: str, password_var: str) -> list[dict[str, Any]]:
    """Env vars ``user_var`` and ``password_var`` from the ``username`` and ``password`` keys of the admin Secret
    ``secret`` (``spec.adminSecretRef.name``). A Secret name is a DNS subdomain, which that field admits (``db.eu``)
    and :class:`SecretKeyRef`'s DNS-label pattern would refuse, so the refs are built without re-validating."""
    return [secret_env(user_var, SecretKeyRef.model_construct(name=secret, key="username")),
            secret_env(password_var, SecretKeyRef.model_construct(name=secret, key="password"))]


def exporter(spec: MongoShardedClusterSpec, images: Images, *, mongos: bool) -> dict[str, Any]:
    """The Percona ``mongodb_exporter`` sidecar for the mongod/mongos on ``localhost:27017``.

    Every collector the alert rules and dashboards need is switched on by its flag (``metric_names.
    MONGODB_EXPORTER`` says which metric needs which); ``--collector.shards`` (chunks per shard, read from the
    config database) only on mongos. It logs in as the admin user (``spec.adminSecretRef``).
    """
    admin = spec.admin_secret_ref.name
    flags = sorted({flag for flag, role in metric_names.MONGODB_EXPORTER.values()
                    if flag and (role == "any" or (role == "mongos") == mongos)})
    return container(
        "exporter", spec.exporter.image or images.mongodb_exporter,
        args=[f"--web.listen-address=:{EXPORTER_PORT}", *flags],
        env=[{"name": "MONGODB_URI", "value": f"mongodb://localhost:{MONGO_PORT}/admin?directConnection=true"},
             *_admin_env(admin, "MONGODB_USER", "MONGODB_PASSWORD")],
        ports=[{"name": "metrics", "containerPort": EXPORTER_PORT, "protocol": "TCP"}],
        resources_=resources(None, cpu="10m", memory="32Mi", memory_limit="128Mi"),
        liveness={**tcp_probe("metrics", period=20), "failureThreshold": 6},
        readiness=tcp_probe("metrics", period=10),
    )


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
    sidecars = [exporter(spec, images, mongos=False)] if spec.exporter.enabled else []
    pod = pod_spec([mongod, *sidecars], volumes=_keyfile_volumes(spec), affinity=spread_across_nodes(dict(match)))
    pod["initContainers"] = [_keyfile_init(img)]
    pod["terminationGracePeriodSeconds"] = 60
    return stateful_set(owner, sts, component, service_name=headless_name(sts), replicas=replicas, pod=pod,
                        claims=[volume_claim("data", storage)])


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
    sidecars = [exporter(spec, images, mongos=True)] if spec.exporter.enabled else []
    pod = pod_spec([mongos, *sidecars], volumes=_keyfile_volumes(spec), affinity=spread_across_nodes(dict(match)))
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
    probe checks that the bootstrap loop touched its heartbeat file within the last two minutes. It writes what
    it observed last to :data:`.names.STATUS_FILE` (``--status-file``), the termination message the planner reads.
    """
    admin = spec.admin_secret_ref.name
    env = [
        {"name": mb.ENV_TOPOLOGY, "value": want.to_json()},
        {"name": mb.ENV_KEYFILE, "value": f"{KEYFILE_SECRET_DIR}/keyfile"},
        *_admin_env(admin, mb.ENV_ADMIN_USERNAME, mb.ENV_ADMIN_PASSWORD),
        {"name": mb.ENV_HEARTBEAT, "value": HEARTBEAT_FILE},
    ]
    fresh = ["sh", "-c", f'test $(( $(date +%s) - $(stat -c %Y {HEARTBEAT_FILE}) )) -lt 120']
    probe = {**exec_probe(fresh, period=30), "initialDelaySeconds": 30}
    job = container(
        "bootstrap", images.worker, args=["mongo", "bootstrap", "--cluster", owner.name, "--status-file", STATUS_FILE],
        env=env,
        resources_=resources(None, cpu="50m", memory="128Mi", memory_limit="256Mi"),
        liveness=probe, readiness=probe,
        volume_mounts=[{"name": "keyfile-secret", "mountPath": KEYFILE_SECRET_DIR, "readOnly": True},
                       {"name": "tmp", "mountPath": "/tmp"}],
    )
    job["terminationMessagePath"] = STATUS_FILE
    volumes = [v for v in _keyfile_volumes(spec) if v["name"] in ("keyfile-secret", "tmp")]
    meta = metadata(owner, bootstrap_job_name(owner.name, want), BOOTSTRAP_COMPONENT)
    return manifest("batch/v1", "Job", meta, spec={
        "backoffLimit": 10,
        "activeDeadlineSeconds": 1800,
        "template": {"metadata": {"labels": labels(owner, BOOTSTRAP_COMPONENT)},
                     "spec": pod_spec([job], volumes=volumes, restart_policy="Never")},
    })


def _ports(spec: MongoShardedClusterSpec) -> list[dict[str, Any]]:
    metrics = [{"name": "metrics", "port": EXPORTER_PORT, "targetPort": "metrics"}] if spec.exporter.enabled else []
    return [{"name": "mongodb", "port": MONGO_PORT, "targetPort": "mongodb"}, *metrics]


def _scraped(svc: Manifest, spec: MongoShardedClusterSpec) -> Manifest:
    if spec.exporter.enabled:
        svc["metadata"]["labels"][LABEL_METRICS] = "true"
    return svc


def _replica_set_children(owner: Owner, spec: MongoShardedClusterSpec, sts: str, component: str,
                          statefulset: Manifest) -> list[Manifest]:
    return [
        _scraped(service(owner, headless_name(sts), component, _ports(spec), headless=True, publish_not_ready=True),
                 spec),
        statefulset,
        pod_disruption_budget(owner, sts, component, max_unavailable=1),
    ]


def service_monitor(owner: Owner, monitoring_labels: dict[str, str] | None = None) -> Manifest:
    """One ServiceMonitor for every exporter of the cluster: the headless Service of each replica set and the
    mongos Service (labelled :data:`.names.LABEL_METRICS`), so a target's ``service`` label tells config server,
    shard and router apart, as the alert rules expect. Labelled with the operator's ``monitoring_labels``."""
    match = {"app.kubernetes.io/instance": owner.name, "gameanalytics.io/owner-kind": owner.kind, LABEL_METRICS: "true"}
    return manifest("monitoring.coreos.com/v1", "ServiceMonitor",
                    monitoring_metadata(owner, service_monitor_name(owner.name), "mongodb-exporter", monitoring_labels),
                    spec={"selector": {"matchLabels": match},
                          "endpoints": [{"port": "metrics", "interval": "30s", "scrapeTimeout": "10s"}]})


def render(owner: Owner, spec: MongoShardedClusterSpec, images: Images,
           want: mb.DesiredCluster | None = None) -> list[Manifest]:  # fmt: skip
    """All children: per replica set (config server, then shards) its headless Service, StatefulSet and PDB;
    then the mongos Deployment, Service and PDB; then the bootstrap Job; then, with ``spec.exporter.enabled``,
    the ServiceMonitor. ``want``: the topology :func:`.bootstrap.desired` gives for ``owner`` and ``spec``, when
    the caller has it already (the planner does), else computed here.

    Raises:
        ValueError: ``want`` not given and the spec's zones are inconsistent (see :func:`.bootstrap.desired`).
    """
    want = want if want is not None else mb.desired(owner.name, owner.namespace, spec)
    cfg = config_server_name(owner.name)
    children = _replica_set_children(owner, spec, cfg, "mongo-cfg", mongod_statefulset(
        owner, spec, images, cfg, "mongo-cfg", "--configsvr", spec.config_server.replicas,
        spec.config_server.resources, spec.config_server.storage))
    for i in range(spec.shards.count):
        sts, component = shard_name(owner.name, i), f"mongo-shard-{i}"
        children += _replica_set_children(owner, spec, sts, component, mongod_statefulset(
            owner, spec, images, sts, component, "--shardsvr", spec.shards.replicas_per_shard,
            spec.shards.resources, spec.shards.storage))
    children += [
        mongos_deployment(owner, spec, images, want),
        _scraped(service(owner, mongos_name(owner.name), "mongos", _ports(spec)), spec),
        pod_disruption_budget(owner, mongos_name(owner.name), "mongos", max_unavailable=1),
        bootstrap_job(owner, spec, images, want),
    ]
    if spec.exporter.enabled:
        children.append(service_monitor(owner, images.monitoring_labels))
    return children
