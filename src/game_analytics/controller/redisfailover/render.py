"""RedisFailover -> Redis and Sentinel StatefulSets, their Services, PodDisruptionBudgets and configuration.

Topology (``<name>`` is the RedisFailover's name, ``<ns>`` its namespace)::

    <name>-redis            StatefulSet, spec.redis.replicas pods, one PVC each, updateStrategy OnDelete
    <name>-redis-headless   headless Service (publishNotReadyAddresses): stable DNS per Redis pod
    <name>-redis-master     Service selecting the pod labelled gameanalytics.io/redis-role=master
    <name>-sentinel         StatefulSet, spec.sentinel.replicas pods (odd, >= 3)
    <name>-sentinel         Service on 26379: what clients and the init scripts ask
    <name>-sentinel-headless headless Service: stable DNS per Sentinel pod
    <name>-redis-config     ConfigMap: redis.conf / sentinel.conf templates and the POSIX-sh scripts of scripts/

Every Redis and Sentinel announces its stable DNS name (``<pod>.<headless>.<ns>.svc``) instead of its pod IP, so a
rescheduled pod keeps its identity in the Sentinels' tables (``replica-announce-ip``, ``sentinel announce-ip``
with ``sentinel resolve-hostnames yes`` / ``announce-hostnames yes``; Redis >= 6.2).

The Redis StatefulSet uses ``updateStrategy: OnDelete``: the operator restarts pods itself in the order given by
:func:`game_analytics.controller.redisfailover.sentinel.plan_rolling_restart` (replicas first, then a controlled
``SENTINEL FAILOVER``, then the old master), because a plain rolling update may restart the master first and cost
a ``down-after-milliseconds`` write outage. Config changes still reach the pods: the ``config-hash`` annotation
changes the pod template, hence the StatefulSet's update revision, which the restart planner compares.

Everything here is pure and deterministic: the same input gives equal dicts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from importlib import resources as importlib_resources
from typing import Any

from ...api.common import SecretKeyRef
from ...api.redisfailover import RedisFailoverSpec
from ...config import Images
from ..common.render import (
    Manifest,
    Owner,
    config_map,
    container,
    exec_probe,
    http_probe,
    init_container,
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
from .names import (
    ANNOTATION_CONFIG_HASH,
    EXPORTER_PORT,
    LABEL_ROLE,
    LABEL_SERVICE_ROLE,
    REDIS_PORT,
    ROLE_MASTER,
    ROLE_REPLICA,
    SENTINEL_PORT,
    config_map_name,
    pod_name_from_host,
    redis_headless_name,
    redis_master_service_name,
    redis_name,
    sentinel_headless_name,
    sentinel_name,
    sentinel_service_address,
)

TEMPLATE_DIR = "/etc/redis-templates"
#: Longest the preStop hook of a master pod waits for the Sentinels to promote another pod, seconds.
PRESTOP_WAIT_SECONDS = 10
REDIS_RUN_DIR = "/etc/redis-run"
SENTINEL_RUN_DIR = "/etc/sentinel-run"

#: The POSIX-sh scripts in ``scripts/`` (shipped as package data, linted by shellcheck in the tests):
#: ConfigMap key -> what it does.
SCRIPTS = {
    "redis-init.sh": "init container: write redis.conf, replicaof the master the Sentinels report (or ordinal 0)",
    "sentinel-init.sh": "init container: write sentinel.conf monitoring the master the Sentinels or Redis report",
    "redis-alive.sh": "liveness: the server answers (LOADING and MASTERDOWN count as alive)",
    "redis-ready.sh": "readiness: a master, or a replica whose link to the master is up",
    "redis-prestop.sh": "preStop: a master asks the Sentinels to fail over and waits for it before it stops",
}


def script(name: str) -> str:
    """The text of ``scripts/<name>`` (one of :data:`SCRIPTS`). Raises FileNotFoundError for another name."""
    return importlib_resources.files(__package__).joinpath("scripts", name).read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------------------------
# Configuration templates


def redis_conf(owner: Owner) -> str:
    """The redis.conf template; the init script fills in ``@ANNOUNCE_HOST@`` and appends replicaof/auth."""
    return "\n".join([
        f"# RedisFailover {owner.namespace}/{owner.name}: written by the game-analytics operator.",
        "# The init container copies this file to a writable directory, fills in the announced name and appends",
        "# `replicaof` and the password; Sentinel rewrites the copy after a failover.",
        "bind * -::*",
        f"port {REDIS_PORT}",
        "protected-mode no",
        "dir /data",
        "appendonly yes",
        "appendfsync everysec",
        "replica-announce-ip @ANNOUNCE_HOST@",
        f"replica-announce-port {REDIS_PORT}",
        "replica-read-only yes",
        "replica-serve-stale-data yes",
        "repl-diskless-sync yes",
        "",
    ])


def sentinel_conf(owner: Owner, spec: RedisFailoverSpec) -> str:
    """The sentinel.conf template; ``@ANNOUNCE_HOST@``, ``@MASTER_HOST@`` and ``@MASTER_PORT@`` are filled in by
    the init script. ``resolve-hostnames`` must precede ``monitor``, which names the master by DNS name."""
    s, m = spec.sentinel, spec.master_name
    return "\n".join([
        f"# RedisFailover {owner.namespace}/{owner.name}: written by the game-analytics operator.",
        "bind * -::*",
        f"port {SENTINEL_PORT}",
        "protected-mode no",
        "dir /data",
        "sentinel resolve-hostnames yes",
        "sentinel announce-hostnames yes",
        "sentinel announce-ip @ANNOUNCE_HOST@",
        f"sentinel announce-port {SENTINEL_PORT}",
        f"sentinel monitor {m} @MASTER_HOST@ @MASTER_PORT@ {s.quorum}",
        f"sentinel down-after-milliseconds {m} {s.down_after_milliseconds}",
        f"sentinel failover-timeout {m} {s.failover_timeout_milliseconds}",
        f"sentinel parallel-syncs {m} 1",
        "",
    ])


def config_data(owner: Owner, spec: RedisFailoverSpec) -> dict[str, str]:
    """The ConfigMap's data: config templates and scripts, keyed by file name."""
    return {
        "redis.conf": redis_conf(owner),
        "sentinel.conf": sentinel_conf(owner, spec),
        **{name: script(name) for name in SCRIPTS},
    }


def config_hash(data: dict[str, str], *keys: str) -> str:
    """First 16 hex digits of the SHA-256 of ``data``'s ``keys`` (all keys when none given), order-independent."""
    chosen = {k: data[k] for k in (keys or tuple(data))}
    return hashlib.sha256(json.dumps(chosen, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------------------
# Workloads


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _password_env(ref: SecretKeyRef | None, *names: str) -> list[dict[str, Any]]:
    return [secret_env(n, ref) for n in names] if ref else []


#: Where the init containers read the Redis password: the auth Secret's key, mounted as a file (never an env
#: variable pasted into a config; the scripts hex-escape it into redis.conf / sentinel.conf).
AUTH_DIR = "/etc/redis-auth"
AUTH_FILE = f"{AUTH_DIR}/password"
#: Where the scripts read the Sentinels' own password (``spec.sentinel.authSecretRef``), the same way.
SENTINEL_AUTH_DIR = "/etc/sentinel-auth"
SENTINEL_AUTH_FILE = f"{SENTINEL_AUTH_DIR}/password"

Mounted = tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]


def _secret_file(ref: SecretKeyRef | None, volume: str, directory: str, env: str) -> Mounted:
    """``(env, volume mounts, volumes)`` giving a container ``ref``'s value as ``<directory>/password`` (mode
    0400), its path in the variable ``env``; three empty lists without ``ref``."""
    if ref is None:
        return [], [], []
    return ([{"name": env, "value": f"{directory}/password"}],
            [{"name": volume, "mountPath": directory, "readOnly": True}],
            [{"name": volume, "secret": {"secretName": ref.name, "items": [{"key": ref.key, "path": "password"}],
                                         "defaultMode": 0o400}}])


def _auth_files(spec: RedisFailoverSpec, *, redis: bool = True) -> Mounted:
    """The Sentinel password file (when ``spec.sentinel.authSecretRef``) and, with ``redis``, the Redis password
    file (when ``spec.authSecretRef``): env ``SENTINEL_PASSWORD_FILE`` / ``REDIS_PASSWORD_FILE``."""
    parts = [_secret_file(spec.sentinel.auth_secret_ref, "sentinel-auth", SENTINEL_AUTH_DIR, "SENTINEL_PASSWORD_FILE")]
    if redis:
        parts.insert(0, _secret_file(spec.auth_secret_ref, "auth", AUTH_DIR, "REDIS_PASSWORD_FILE"))
    return ([e for p in parts for e in p[0]], [m for p in parts for m in p[1]], [v for p in parts for v in p[2]])


def _config_volume(owner: Owner) -> dict[str, Any]:
    return {"name": "templates", "configMap": {"name": config_map_name(owner.name), "defaultMode": 0o444}}


def _memory_dir(name: str, size: str = "1Mi") -> dict[str, Any]:
    return {"name": name, "emptyDir": {"medium": "Memory", "sizeLimit": size}}


def redis_statefulset(owner: Owner, spec: RedisFailoverSpec, images: Images, config_digest: str) -> Manifest:
    """The Redis StatefulSet: init container writing redis.conf, redis-server, optional redis_exporter."""
    name, ns = owner.name, owner.namespace
    image = spec.redis.image or images.redis
    init_env = [
        _field_env("POD_NAME", "metadata.name"),
        _field_env("NAMESPACE", "metadata.namespace"),
        {"name": "HEADLESS_SERVICE", "value": redis_headless_name(name)},
        {"name": "SENTINEL_HOST", "value": sentinel_service_address(name, ns)[0]},
        {"name": "SENTINEL_PORT", "value": str(SENTINEL_PORT)},
        {"name": "MASTER_NAME", "value": spec.master_name},
        {"name": "REDIS_PORT", "value": str(REDIS_PORT)},
    ]
    auth_env, auth_mounts, auth_volumes = _auth_files(spec)
    sentinel_env, sentinel_mounts, _ = _auth_files(spec, redis=False)
    run_mount = {"name": "run", "mountPath": REDIS_RUN_DIR}
    tmpl_mount = {"name": "templates", "mountPath": TEMPLATE_DIR, "readOnly": True}
    small = resources(None, cpu="10m", memory="16Mi", memory_limit="64Mi")
    init = init_container("config", image, command=["sh", f"{TEMPLATE_DIR}/redis-init.sh"],
                          env=init_env + auth_env, resources_=small,
                          volume_mounts=[tmpl_mount, run_mount, *auth_mounts])
    redis = container(
        "redis", image, command=["redis-server", f"{REDIS_RUN_DIR}/redis.conf"],
        # the init env again: the preStop script announces the same name and asks the same Sentinels
        env=[*init_env, *_password_env(spec.auth_secret_ref, "REDISCLI_AUTH"), *sentinel_env,
             {"name": "PRESTOP_WAIT_SECONDS", "value": str(PRESTOP_WAIT_SECONDS)}],
        ports=[{"name": "redis", "containerPort": REDIS_PORT, "protocol": "TCP"}],
        resources_=resources(spec.redis.resources, cpu="100m", memory="256Mi", memory_limit="1Gi"),
        liveness={**exec_probe(["sh", f"{TEMPLATE_DIR}/redis-alive.sh"], period=10), "failureThreshold": 6},
        readiness=exec_probe(["sh", f"{TEMPLATE_DIR}/redis-ready.sh"], period=5),
        volume_mounts=[tmpl_mount, run_mount, {"name": "data", "mountPath": "/data"}, *sentinel_mounts],
    )
    # Deleting the master pod (drain, rollout, kubectl delete) hands the master over before redis-server stops,
    # so writes pause for one controlled switch instead of down-after-milliseconds (docs/topologies.md).
    redis["lifecycle"] = {"preStop": {"exec": {"command": ["sh", f"{TEMPLATE_DIR}/redis-prestop.sh"]}}}
    containers = [redis]
    if spec.exporter.enabled:
        containers.append(_exporter(spec, images, REDIS_PORT, _password_env(spec.auth_secret_ref, "REDIS_PASSWORD")))
    match = selector(owner, "redis")
    pod = pod_spec(containers, volumes=[_config_volume(owner), _memory_dir("run"), *auth_volumes],
                   affinity=spread_across_nodes(dict(match)))
    pod["initContainers"] = [init]
    # room for the preStop hand-over (bounded by PRESTOP_WAIT_SECONDS) plus redis-server's own shutdown
    pod["terminationGracePeriodSeconds"] = PRESTOP_WAIT_SECONDS + 20
    return stateful_set(owner, redis_name(name), "redis", service_name=redis_headless_name(name),
                        replicas=spec.redis.replicas, pod=pod, update_strategy="OnDelete",
                        annotations={ANNOTATION_CONFIG_HASH: config_digest},
                        claims=[volume_claim("data", spec.redis.storage)])


def _exporter(spec: RedisFailoverSpec, images: Images, port: int, env: list[dict[str, Any]]) -> dict[str, Any]:
    """A redis_exporter sidecar for the server on ``localhost:port`` (pointed at a Sentinel, it exports the
    ``redis_sentinel_*`` metrics the quorum alerts use)."""
    return container(
        "exporter", spec.exporter.image or images.redis_exporter,
        env=[{"name": "REDIS_ADDR", "value": f"redis://localhost:{port}"}, *env],
        ports=[{"name": "metrics", "containerPort": EXPORTER_PORT, "protocol": "TCP"}],
        resources_=resources(None, cpu="10m", memory="32Mi", memory_limit="128Mi"),
        liveness=http_probe("/health", "metrics", period=20),
        readiness=http_probe("/health", "metrics", period=10),
    )


def sentinel_statefulset(owner: Owner, spec: RedisFailoverSpec, images: Images, config_digest: str) -> Manifest:
    """The Sentinel StatefulSet: init container writing sentinel.conf into an emptyDir, then redis-sentinel."""
    name, ns = owner.name, owner.namespace
    image = spec.sentinel.image or spec.redis.image or images.redis
    init_env = [
        _field_env("POD_NAME", "metadata.name"),
        _field_env("NAMESPACE", "metadata.namespace"),
        {"name": "HEADLESS_SERVICE", "value": sentinel_headless_name(name)},
        {"name": "SENTINEL_HOST", "value": f"{sentinel_name(name)}.{ns}.svc"},
        {"name": "SENTINEL_PORT", "value": str(SENTINEL_PORT)},
        {"name": "MASTER_NAME", "value": spec.master_name},
        {"name": "REDIS_STATEFULSET", "value": redis_name(name)},
        {"name": "REDIS_HEADLESS_SERVICE", "value": redis_headless_name(name)},
        {"name": "REDIS_REPLICAS", "value": str(spec.redis.replicas)},
        {"name": "REDIS_PORT", "value": str(REDIS_PORT)},
    ]
    auth_env, auth_mounts, auth_volumes = _auth_files(spec)
    tmpl_mount = {"name": "templates", "mountPath": TEMPLATE_DIR, "readOnly": True}
    run_mount = {"name": "run", "mountPath": SENTINEL_RUN_DIR}
    own_password = _password_env(spec.sentinel.auth_secret_ref, "REDISCLI_AUTH")  # the liveness PING
    init = init_container("config", image, command=["sh", f"{TEMPLATE_DIR}/sentinel-init.sh"],
                          env=init_env + auth_env,
                          resources_=resources(None, cpu="10m", memory="16Mi", memory_limit="64Mi"),
                          volume_mounts=[tmpl_mount, run_mount, *auth_mounts])
    ping = ["sh", "-c", f"timeout 4 redis-cli -p {SENTINEL_PORT} PING | grep -q PONG"]
    sentinel = container(
        "sentinel", image, command=["redis-server", f"{SENTINEL_RUN_DIR}/sentinel.conf", "--sentinel"],
        env=own_password or None,
        ports=[{"name": "sentinel", "containerPort": SENTINEL_PORT, "protocol": "TCP"}],
        resources_=resources(spec.sentinel.resources, cpu="20m", memory="32Mi", memory_limit="128Mi"),
        liveness={**exec_probe(ping, period=10), "failureThreshold": 6},
        readiness=tcp_probe("sentinel", period=5),
        volume_mounts=[run_mount, {"name": "data", "mountPath": "/data"}],
    )
    match = selector(owner, "sentinel")
    exporter_auth = _password_env(spec.sentinel.auth_secret_ref, "REDIS_PASSWORD")
    containers = [sentinel, *([_exporter(spec, images, SENTINEL_PORT, exporter_auth)] if spec.exporter.enabled else [])]
    pod = pod_spec(containers, volumes=[_config_volume(owner), _memory_dir("run"), _memory_dir("data", "16Mi"),
                                        *auth_volumes], affinity=spread_across_nodes(dict(match)))
    pod["initContainers"] = [init]
    return stateful_set(owner, sentinel_name(name), "sentinel", service_name=sentinel_headless_name(name),
                        replicas=spec.sentinel.replicas, pod=pod, annotations={ANNOTATION_CONFIG_HASH: config_digest})


def services(owner: Owner, spec: RedisFailoverSpec) -> list[Manifest]:
    """Headless and master Services for Redis, client and headless Services for the Sentinels."""
    name = owner.name
    redis_port = {"name": "redis", "port": REDIS_PORT, "targetPort": "redis"}
    headless_ports = [redis_port]
    if spec.exporter.enabled:
        headless_ports.append({"name": "metrics", "port": EXPORTER_PORT, "targetPort": "metrics"})
    headless = service(owner, redis_headless_name(name), "redis", headless_ports, headless=True,
                       publish_not_ready=True)
    headless["metadata"]["labels"][LABEL_SERVICE_ROLE] = "headless"
    master = service(owner, redis_master_service_name(name), "redis", [redis_port],
                     selector_labels={**selector(owner, "redis"), LABEL_ROLE: ROLE_MASTER})
    master["metadata"]["labels"][LABEL_SERVICE_ROLE] = "master"
    sentinel_port = {"name": "sentinel", "port": SENTINEL_PORT, "targetPort": "sentinel"}
    sentinel_headless = service(owner, sentinel_headless_name(name), "sentinel",
                                [sentinel_port, *headless_ports[1:]], headless=True, publish_not_ready=True)
    sentinel_headless["metadata"]["labels"][LABEL_SERVICE_ROLE] = "headless"
    return [headless, master, service(owner, sentinel_name(name), "sentinel", [sentinel_port]), sentinel_headless]


def disruption_budgets(owner: Owner, spec: RedisFailoverSpec) -> list[Manifest]:
    """At most one Redis pod voluntarily down; at least ``quorum`` Sentinels always up (so failover stays possible)."""
    sentinel_pdb = manifest("policy/v1", "PodDisruptionBudget", metadata(owner, sentinel_name(owner.name), "sentinel"),
                            spec={"minAvailable": spec.sentinel.quorum,
                                  "selector": {"matchLabels": selector(owner, "sentinel")}})
    return [pod_disruption_budget(owner, redis_name(owner.name), "redis", max_unavailable=1), sentinel_pdb]


def service_monitors(owner: Owner, monitoring_labels: Mapping[str, str] | None = None) -> list[Manifest]:
    """Prometheus-operator ServiceMonitors scraping the exporter sidecars of Redis and of the Sentinels through
    their headless Services, labelled with the operator's default ``monitoring_labels``."""
    return [
        manifest("monitoring.coreos.com/v1", "ServiceMonitor",
                 monitoring_metadata(owner, f"{owner.name}-{component}", component, monitoring_labels),
                 spec={"selector": {"matchLabels": {**selector(owner, component), LABEL_SERVICE_ROLE: "headless"}},
                       "endpoints": [{"port": "metrics", "interval": "30s", "scrapeTimeout": "10s"}]})
        for component in ("redis", "sentinel")
    ]


def render(owner: Owner, spec: RedisFailoverSpec, images: Images) -> list[Manifest]:
    """All children of a RedisFailover, in a fixed order (ConfigMap first, so pods never start without it).

    Returns: ConfigMap, Redis StatefulSet, Sentinel StatefulSet, 4 Services, 2 PodDisruptionBudgets, and two
    ServiceMonitors (Redis, Sentinels) when ``spec.exporter.enabled``.
    """
    data = config_data(owner, spec)
    auth = ("auth" if spec.auth_secret_ref else "noauth") + ("+sentinel" if spec.sentinel.auth_secret_ref else "")
    redis_digest = config_hash({**data, "auth": auth}, "redis.conf", "redis-init.sh", "redis-alive.sh",
                               "redis-ready.sh", "redis-prestop.sh", "auth")
    sentinel_digest = config_hash({**data, "auth": auth}, "sentinel.conf", "sentinel-init.sh", "auth")
    children = [
        config_map(owner, config_map_name(owner.name), "redis", data),
        redis_statefulset(owner, spec, images, redis_digest),
        sentinel_statefulset(owner, spec, images, sentinel_digest),
        *services(owner, spec),
        *disruption_budgets(owner, spec),
    ]
    if spec.exporter.enabled:
        children += service_monitors(owner, images.monitoring_labels)
    return children


def role_labels(pod_names: list[str], master_host: str | None) -> dict[str, dict[str, str]]:
    """Label patches for the Redis pods: ``{pod: {LABEL_ROLE: "master" | "replica"}}``.

    ``master_host`` is the address the Sentinels agree on (a stable DNS name); with None (no agreed master) every
    pod becomes ``replica`` so that ``<name>-redis-master`` routes to nobody rather than to a wrong master.
    """
    master_pod = pod_name_from_host(master_host) if master_host else None
    return {pod: {LABEL_ROLE: ROLE_MASTER if pod == master_pod else ROLE_REPLICA} for pod in sorted(pod_names)}
