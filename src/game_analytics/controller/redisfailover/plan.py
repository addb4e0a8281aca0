"""RedisFailover planning: render, probe every Sentinel, report master and conditions, label the master pod, and
pick the next step of a rolling restart."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...api import GROUP
from ...api.redisfailover import RedisFailoverStatus
from ...config import Images
from ...validation import SpecError
from ..common.plan import MONITORING_V1, Action, Plan, SecretUse, check_secrets, owned_selector, secret_value
from ..common.render import Owner
from ..k8s import Cluster
from . import names, render, sentinel

CHILD_TYPES = [("v1", "ConfigMap"), ("apps/v1", "StatefulSet"), ("v1", "Service"),
               ("policy/v1", "PodDisruptionBudget"), (MONITORING_V1, "ServiceMonitor")]

#: Annotation listing ``host:port`` Sentinel addresses to probe instead of the pods' cluster DNS names, for an
#: operator running outside the cluster (``make demo``, the e2e tier). Honoured only when the operator runs with
#: ``GAME_ANALYTICS_PROBE_ADDRESS_ANNOTATION=true`` (:attr:`Images.probe_address_annotation`, off by default):
#: otherwise anyone who may edit a RedisFailover could send the operator's probe (and failover) to any host.
PROBE_ADDRESSES_ANNOTATION = f"{GROUP}/probe-addresses"


def probe_addresses(owner: Owner, spec: Any, body: Any, honour_annotation: bool = False) -> list[tuple[str, int]]:
    """The Sentinels to probe: with ``honour_annotation``, the annotation's ``host:port`` list if set; else every
    Sentinel pod's cluster DNS name."""
    annotations = ((body or {}).get("metadata") or {}).get("annotations") or {}
    if honour_annotation and annotations.get(PROBE_ADDRESSES_ANNOTATION):
        return [_host_port(a.strip()) for a in annotations[PROBE_ADDRESSES_ANNOTATION].split(",")]
    return names.sentinel_pod_addresses(owner.name, owner.namespace, spec.sentinel.replicas)


def _host_port(address: str) -> tuple[str, int]:
    """``(host, port)`` of one ``host:port`` of the probe annotation.

    Raises:
        SpecError: not ``host:port`` with a port 1-65535 (named as the annotation: a bad port raised out of the
            reconcile and was retried forever).
    """
    host, _, port = address.rpartition(":")
    if not host or not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise SpecError(f"metadata.annotations[{PROBE_ADDRESSES_ANNOTATION}]",
                        f"{address!r} is not host:port with a port from 1 to 65535")
    return host, int(port)


def plan(owner: Owner, spec: Any, cluster: Cluster, images: Images, body: Any = None) -> Plan:
    """Children from :func:`.render.render`; status ``master`` and ``sentinelsReachable`` plus the four Sentinel
    conditions from one :func:`.sentinel.probe`; role labels for the Redis pods; at most one restart step.

    Raises:
        DependencyError: ``SecretNotFound`` naming ``spec.authSecretRef`` or ``spec.sentinel.authSecretRef``.
    """
    uses = [SecretUse("spec.authSecretRef", spec.auth_secret_ref)] if spec.auth_secret_ref else []
    if spec.sentinel.auth_secret_ref:
        uses.append(SecretUse("spec.sentinel.authSecretRef", spec.sentinel.auth_secret_ref))
    check_secrets(cluster, owner.namespace, uses)
    children = render.render(owner, spec, images)
    addresses = probe_addresses(owner, spec, body, honour_annotation=images.probe_address_annotation)
    # The probe and the failover authenticate with the Sentinels' own password (spec.sentinel.authSecretRef), the
    # only Secret value the operator reads; the Redis password is never read, nor sent to a Sentinel (nor to an
    # annotated address). Without a Sentinel password they speak to the Sentinels unauthenticated.
    password = (secret_value(cluster, owner.namespace, spec.sentinel.auth_secret_ref)
                if spec.sentinel.auth_secret_ref else None)
    view = sentinel.probe(addresses, spec.master_name, password=password, timeout=1.0)
    master = view.agreed_master
    conditions = sentinel.conditions(view, spec, owner.generation)
    redis_pods = cluster.list("v1", "Pod", owner.namespace, owned_selector(owner, "redis"))
    return Plan(
        children, CHILD_TYPES,
        status=RedisFailoverStatus(master=master, sentinels_reachable=len(view.reachable)),
        conditions=conditions,
        pod_labels=render.role_labels([p["metadata"]["name"] for p in redis_pods], master) if master else {},
        action=rolling_restart_step(owner, cluster, redis_pods, master, conditions,
                                    lambda: sentinel.failover(addresses, spec.master_name, password, timeout=20)),
    )


def rolling_restart_step(owner: Owner, cluster: Cluster, pods: list[dict], master: str | None,
                         conditions: list[dict], failover: Callable[[], Any]) -> Action | None:
    """The next step of a rolling restart of the Redis pods (their StatefulSet uses ``OnDelete``).

    Only while the set is healthy (master elected, quorum, replicas in sync, no split brain): replicas first, then a
    controlled Sentinel failover away from the master, then the old master. One step per reconcile; the next
    reconcile re-probes, so every step starts from a healthy, re-checked state.
    """
    statefulset = cluster.get("apps/v1", "StatefulSet", owner.namespace, names.redis_name(owner.name))
    update_revision = ((statefulset or {}).get("status") or {}).get("updateRevision")
    if not update_revision or not master or not sentinel.healthy(conditions):
        return None
    revisions = {p["metadata"]["name"]: p["metadata"].get("labels", {}).get("controller-revision-hash", "")
                 for p in pods}
    steps = sentinel.plan_rolling_restart(revisions, update_revision, names.pod_name_from_host(master))
    if not steps:
        return None
    first = steps[0]
    if first.action == "failover":
        return Action(f"failover away from master {first.pod} before restarting it", lambda _: failover())
    return Action(f"restart Pod/{first.pod} to apply revision {update_revision}",
                  lambda c: c.delete("v1", "Pod", owner.namespace, first.pod))
