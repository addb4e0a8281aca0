"""Shared pieces of rendered objects: owner references, labels, and PodSecurity-``restricted`` pod templates.

Everything here is pure: functions take plain data and return plain dicts ready for the API server.
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lightkube.utils.quantity import parse_quantity as _parse_quantity

from ... import __version__
from ...api.common import Resources, SecretKeyRef, Storage
from ...api.gamedatasource import GameDataSourceSpec
from ...settings import ENV_PREFIX

MANAGED_BY = "game-analytics-operator"
PART_OF = "game-analytics"
LABEL_OWNER_KIND = "gameanalytics.io/owner-kind"
LABEL_OWNER_NAME = "gameanalytics.io/owner-name"

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Owner:
    """The custom resource that owns rendered children."""

    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str | None
    generation: int | None = None

    @classmethod
    def from_body(cls, body: Any) -> Owner:
        """Build from a Kubernetes object (dict or kopf Body)."""
        meta = body["metadata"]
        return cls(body["apiVersion"], body["kind"], meta["name"], meta.get("namespace", "default"),
                   meta.get("uid"), meta.get("generation"))

    def reference(self) -> dict[str, Any]:
        """A controller owner reference: children are garbage-collected with the owner."""
        ref = {"apiVersion": self.api_version, "kind": self.kind, "name": self.name,
               "controller": True, "blockOwnerDeletion": True}
        if self.uid:
            ref["uid"] = self.uid
        return ref


def labels(owner: Owner, component: str) -> dict[str, str]:
    """The common label set of every child: recommended ``app.kubernetes.io`` labels plus the owner's identity.

    As the recommended-labels convention defines them: ``name`` is the application (``game-analytics-<component>``),
    ``instance`` the custom resource's name, ``component`` the child's role (``ingest-worker``, ``redis``,
    ``sentinel`` ...), ``part-of`` the product, ``managed-by`` the operator and ``version`` the operator's version.
    Only :func:`selector`'s subset (instance, component, owner kind) selects pods, so name and version may change.
    """
    return {
        "app.kubernetes.io/name": f"{PART_OF}-{component}",
        "app.kubernetes.io/instance": owner.name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/version": __version__,
        LABEL_OWNER_KIND: owner.kind,
        LABEL_OWNER_NAME: owner.name,
    }


def selector(owner: Owner, component: str) -> dict[str, str]:
    """The stable subset of :func:`labels` used as a pod selector."""
    return {k: v for k, v in labels(owner, component).items()
            if k in ("app.kubernetes.io/instance", "app.kubernetes.io/component", LABEL_OWNER_KIND)}


def metadata(owner: Owner, name: str, component: str, **extra_labels: str) -> dict[str, Any]:
    """Metadata of a namespaced child: name, namespace, labels and the controller owner reference."""
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": {**labels(owner, component), **extra_labels},
        "ownerReferences": [owner.reference()],
    }


def monitoring_metadata(owner: Owner, name: str, component: str, defaults: Mapping[str, str] | None = None,
                        own: Mapping[str, str] | None = None) -> dict[str, Any]:
    """:func:`metadata` of a generated monitoring object (PrometheusRule, ServiceMonitor, AlertmanagerConfig).

    Its labels are the operator's default monitoring labels (``defaults``, chart value ``monitoring.labels``),
    then the object's own ``spec.monitoringLabels`` (``own``, which win), then the common :func:`labels`, which
    win over both so that ownership and selection never break.
    """
    meta = metadata(owner, name, component)
    meta["labels"] = {**(defaults or {}), **(own or {}), **meta["labels"]}
    return meta


def manifest(api_version: str, kind: str, meta: dict[str, Any], **body: Any) -> Manifest:
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **body}


#: Pod-level security that satisfies the PodSecurity ``restricted`` profile.
POD_SECURITY_CONTEXT: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "fsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}

#: Container-level security that satisfies the PodSecurity ``restricted`` profile.
CONTAINER_SECURITY_CONTEXT: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def parse_quantity(text: str) -> decimal.Decimal:
    """The value of a Kubernetes quantity (``"500m"`` -> 0.5, ``"1Gi"`` -> 1073741824) as a Decimal.

    Parsed with enough precision for any quantity the CRD pattern admits (32 characters with an ``Ei`` suffix):
    in the default 28-digit context lightkube's parser raises for ``88206158.60102863274813257135Ei``, which the
    API server admits (found by the fuzz test).

    Raises:
        ValueError: ``text`` is not a quantity.
    """
    with decimal.localcontext(prec=80):
        return _parse_quantity(str(text))


def resources(spec: Resources | None, cpu: str = "100m", memory: str = "128Mi",
              cpu_limit: str | None = None, memory_limit: str = "512Mi") -> dict[str, Any]:
    """Container resources from the spec, with defaults for what it leaves out (requests always set).

    A default never crosses the spec's value (the API server refuses a pod whose request exceeds its limit): a spec
    request above the default limit becomes the limit too, and a spec limit below the default request becomes the
    request too.
    """
    spec = spec or Resources()
    req = spec.requests.to_api() if spec.requests else {}
    lim = spec.limits.to_api() if spec.limits else {}
    out = {"requests": {"cpu": req.get("cpu", cpu), "memory": req.get("memory", memory)},
           "limits": {"memory": lim.get("memory", memory_limit)}}
    if "cpu" in lim or cpu_limit:
        out["limits"]["cpu"] = lim.get("cpu", cpu_limit)
    for name, limit in out["limits"].items():
        if name not in lim and parse_quantity(out["requests"][name]) > parse_quantity(limit):
            out["limits"][name] = out["requests"][name]
        elif name not in req and parse_quantity(out["requests"][name]) > parse_quantity(limit):
            out["requests"][name] = limit  # a spec limit below the default request (as Kubernetes defaults it)
    return out


def container(name: str, image: str, *, args: list[str] | None = None, command: list[str] | None = None,
              env: list[dict[str, Any]] | None = None, ports: list[dict[str, Any]] | None = None,
              resources_: dict[str, Any], liveness: dict[str, Any], readiness: dict[str, Any] | None = None,
              volume_mounts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A container with the restricted security context, resources and probes always present."""
    c: dict[str, Any] = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent"}
    if command:
        c["command"] = command
    if args:
        c["args"] = args
    if env:
        c["env"] = env
    if ports:
        c["ports"] = ports
    c["resources"] = resources_
    c["livenessProbe"] = liveness
    c["readinessProbe"] = readiness or liveness
    c["securityContext"] = CONTAINER_SECURITY_CONTEXT
    if volume_mounts:
        c["volumeMounts"] = volume_mounts
    return c


def init_container(name: str, image: str, *, resources_: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """A :func:`container` to run before the pod's containers: the same security context, and no probes (the API
    refuses probes on init containers). ``kwargs`` as for :func:`container` (args, command, env, volume_mounts)."""
    init = container(name, image, resources_=resources_, liveness={}, **kwargs)
    del init["livenessProbe"], init["readinessProbe"]
    return init


def http_probe(path: str, port: str | int, period: int = 10) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": period, "timeoutSeconds": 3, "failureThreshold": 3}


def exec_probe(command: list[str], period: int = 10) -> dict[str, Any]:
    return {"exec": {"command": command}, "periodSeconds": period, "timeoutSeconds": 5, "failureThreshold": 3}


def tcp_probe(port: str | int, period: int = 10) -> dict[str, Any]:
    return {"tcpSocket": {"port": port}, "periodSeconds": period, "timeoutSeconds": 3, "failureThreshold": 3}


def secret_env(name: str, ref: Any) -> dict[str, Any]:
    """An env var read from a Secret key (``ref`` is a :class:`~game_analytics.api.common.SecretKeyRef`)."""
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}


def pod_spec(containers: list[dict[str, Any]], *, service_account: str | None = None,
             volumes: list[dict[str, Any]] | None = None, restart_policy: str | None = None,
             affinity: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "securityContext": POD_SECURITY_CONTEXT,
        "automountServiceAccountToken": service_account is not None,
        "containers": containers,
    }
    if service_account:
        spec["serviceAccountName"] = service_account
    if volumes:
        spec["volumes"] = volumes
    if restart_policy:
        spec["restartPolicy"] = restart_policy
    if affinity:
        spec["affinity"] = affinity
    return spec


def spread_across_nodes(match_labels: dict[str, str]) -> dict[str, Any]:
    """Preferred pod anti-affinity: replicas land on different nodes when the cluster has them."""
    return {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "weight": 100,
        "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": match_labels}},
    }]}}


def volume_claim(name: str, storage: Storage) -> dict[str, Any]:
    """A ReadWriteOnce ``volumeClaimTemplates`` entry of ``storage.size`` (in ``storageClassName`` when set)."""
    claim: dict[str, Any] = {"metadata": {"name": name}, "spec": {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": storage.size}},
    }}
    if storage.storage_class_name:
        claim["spec"]["storageClassName"] = storage.storage_class_name
    return claim


def stateful_set(owner: Owner, name: str, component: str, *, service_name: str, replicas: int, pod: dict[str, Any],
                 update_strategy: str = "RollingUpdate", annotations: Mapping[str, str] | None = None,
                 claims: list[dict[str, Any]] | None = None) -> Manifest:
    """A StatefulSet of ``component`` pods started in parallel, selected by the component's selector.

    ``annotations`` go on the pod template (a config digest rolls the pods); ``claims`` become
    ``volumeClaimTemplates``, retained when the set is deleted or scaled down (data outlives its pods).
    """
    template: dict[str, Any] = {"metadata": {"labels": labels(owner, component)}, "spec": pod}
    if annotations:
        template["metadata"]["annotations"] = dict(annotations)
    spec: dict[str, Any] = {
        "serviceName": service_name,
        "replicas": replicas,
        "podManagementPolicy": "Parallel",
        "updateStrategy": {"type": update_strategy},
        "selector": {"matchLabels": selector(owner, component)},
        "template": template,
    }
    if claims:
        spec["volumeClaimTemplates"] = claims
        spec["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Retain", "whenScaled": "Retain"}
    return manifest("apps/v1", "StatefulSet", metadata(owner, name, component), spec=spec)


def pod_disruption_budget(owner: Owner, name: str, component: str, max_unavailable: int = 1) -> Manifest:
    return manifest("policy/v1", "PodDisruptionBudget", metadata(owner, name, component),
                    spec={"maxUnavailable": max_unavailable, "selector": {"matchLabels": selector(owner, component)}})


def service(owner: Owner, name: str, component: str, ports: list[dict[str, Any]], *, headless: bool = False,
            selector_labels: dict[str, str] | None = None, publish_not_ready: bool = False) -> Manifest:
    spec: dict[str, Any] = {"selector": selector_labels or selector(owner, component), "ports": ports}
    if headless:
        spec["clusterIP"] = "None"
    if publish_not_ready:
        spec["publishNotReadyAddresses"] = True
    return manifest("v1", "Service", metadata(owner, name, component), spec=spec)


def config_map(owner: Owner, name: str, component: str, data: dict[str, str], **extra_labels: str) -> Manifest:
    return manifest("v1", "ConfigMap", metadata(owner, name, component, **extra_labels), data=data)


@dataclass(frozen=True)
class DataSource:
    """A GameDataSource as the workers that use it see it, its RedisFailover reference resolved.

    Attributes:
        name: the GameDataSource's name (its workers' ConfigMap is named from it).
        spec: its validated spec.
        sentinel_master: the referenced RedisFailover's master group name, when Redis is reached through Sentinels.
        redis_password_ref: the RedisFailover's ``authSecretRef``, if it has one.
        sentinel_password_ref: the RedisFailover's ``sentinel.authSecretRef`` (the Sentinels' own password).
    """

    name: str
    spec: GameDataSourceSpec
    sentinel_master: str | None = None
    redis_password_ref: SecretKeyRef | None = None
    sentinel_password_ref: SecretKeyRef | None = None


def connection_env(source: DataSource) -> list[dict[str, Any]]:
    """The env of every worker pod that reads this data source: DSN, Redis URL, the Redis and the Sentinel
    passwords, from Secrets."""
    env = [secret_env(f"{ENV_PREFIX}DSN", source.spec.postgres.dsn_secret_ref)]
    if source.spec.redis.url_secret_ref:
        env.append(secret_env(f"{ENV_PREFIX}REDIS_URL", source.spec.redis.url_secret_ref))
    if source.redis_password_ref is not None:
        env.append(secret_env(f"{ENV_PREFIX}REDIS_PASSWORD", source.redis_password_ref))
    if source.sentinel_password_ref is not None:
        env.append(secret_env(f"{ENV_PREFIX}REDIS_SENTINEL_PASSWORD", source.sentinel_password_ref))
    return env
