"""Per-kind planning: parse the spec, check it, look up what it references, and render the desired children.

A planner may read the cluster (to resolve references such as ``dataSourceRef``) but never writes; the rendering
itself is done by the pure functions in :mod:`game_analytics.objects`.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from .. import validation
from ..api import API_VERSION, GROUP, KindInfo
from ..api.common import SecretKeyRef
from ..api.gamedatasource import GameDataSourceSpec
from ..config import Images
from ..objects import (
    alertrule,
    gamedatasource,
    mongoshardedcluster,
    rankingjob,
    redisfailover,
    scheduledreport,
)
from ..objects.common import LABEL_OWNER_KIND, LABEL_OWNER_NAME, Manifest, Owner
from ..topology import mongo_bootstrap, sentinel
from ..validation import SpecError
from . import conditions as conditions_
from .k8s import Cluster


class DependencyError(Exception):
    """A referenced object is missing or not usable yet. ``reason`` is a CamelCase condition reason."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class Plan:
    """What one reconcile of one object should achieve."""

    children: list[Manifest]
    child_types: list[tuple[str, str]]
    required_apis: set[str] = field(default_factory=set)
    status: dict[str, Any] = field(default_factory=dict)
    #: kind-specific conditions besides Ready (e.g. the Sentinels' view of a RedisFailover)
    conditions: list[dict[str, Any]] = field(default_factory=list)
    #: labels to keep on existing pods: {pod name: {label: value}} (e.g. the Redis master's role)
    pod_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    #: at most one disruptive step per reconcile (a controlled failover, or a pod restart), run after the apply
    action: Action | None = None


@dataclass(frozen=True)
class Action:
    """A disruptive step the reconcile performs after applying children; ``run`` raises on failure."""

    description: str
    run: Callable[[Cluster], None]


def parse(info: KindInfo, body: Any) -> Any:
    """The validated spec model. Raises :class:`SpecError` naming the first bad field."""
    try:
        return info.spec.model_validate(dict(body.get("spec") or {}))
    except ValidationError as exc:
        raise validation.from_validation_error(exc) from None


def data_source(cluster: Cluster, namespace: str, name: str) -> GameDataSourceSpec:
    body = cluster.get(API_VERSION, "GameDataSource", namespace, name)
    if body is None:
        raise DependencyError("DataSourceNotFound",
                              f"spec.dataSourceRef.name: GameDataSource {namespace}/{name} does not exist")
    try:
        return GameDataSourceSpec.model_validate(body.get("spec") or {})
    except ValidationError:
        raise DependencyError("DataSourceInvalid", f"GameDataSource {namespace}/{name} has an invalid spec") from None


MONITORING_V1 = "monitoring.coreos.com/v1"
MONITORING_V1ALPHA1 = "monitoring.coreos.com/v1alpha1"


def plan_alert_rule(owner: Owner, spec: Any, cluster: Cluster, images: Images, body: Any = None) -> Plan:
    validation.check_alert_rule(spec)
    children = alertrule.render(owner, spec)
    required = {MONITORING_V1} | ({MONITORING_V1ALPHA1} if spec.channels else set())
    expr = children[0]["spec"]["groups"][0]["rules"][0]["expr"] if not spec.suspend else None
    return Plan(children, [(MONITORING_V1, "PrometheusRule"), (MONITORING_V1ALPHA1, "AlertmanagerConfig"),
                           ("v1", "ConfigMap")], required,
                {"detector": spec.detector.kind(), "expression": expr})


def run_history(cluster: Cluster, owner: Owner, component: str) -> dict[str, Any]:
    """Schedule status of a CronJob-backed kind, from its CronJob and the Jobs it left (newest first).

    Returns ``lastScheduleTime``, ``lastSuccessfulTime``, ``lastOutcome`` (Succeeded/Failed of the newest finished
    Job) and ``consecutiveFailures`` (failed Jobs since the last success). Job history is bounded by the
    CronJob's history limits, so the count saturates there.
    """
    cronjob = cluster.get("batch/v1", "CronJob", owner.namespace, f"{owner.name}-{component}") or {}
    jobs = cluster.list("batch/v1", "Job", owner.namespace, f"{LABEL_OWNER_KIND}={owner.kind},"
                        f"{LABEL_OWNER_NAME}={owner.name},app.kubernetes.io/component={component}")
    outcomes = []
    for job in sorted(jobs, key=lambda j: j["metadata"].get("creationTimestamp", ""), reverse=True):
        done = {c["type"] for c in (job.get("status") or {}).get("conditions") or [] if c.get("status") == "True"}
        if "Complete" in done or "Failed" in done:
            outcomes.append("Succeeded" if "Complete" in done else "Failed")
    failures = next((i for i, o in enumerate(outcomes) if o == "Succeeded"), len(outcomes))
    status = (cronjob.get("status") or {})
    return {"lastScheduleTime": status.get("lastScheduleTime"), "lastSuccessfulTime": status.get("lastSuccessfulTime"),
            "lastOutcome": outcomes[0] if outcomes else None, "consecutiveFailures": failures}


def plan_scheduled_report(owner: Owner, spec: Any, cluster: Cluster, images: Images, body: Any = None) -> Plan:
    validation.check_scheduled_report(spec)
    source = data_source(cluster, owner.namespace, spec.data_source_ref.name)
    children = scheduledreport.render(owner, spec, image=images.worker, data_source=source)
    return Plan(children, [("v1", "ConfigMap"), ("batch/v1", "CronJob")],
                status=run_history(cluster, owner, "report"))


def plan_ranking_job(owner: Owner, spec: Any, cluster: Cluster, images: Images, body: Any = None) -> Plan:
    validation.check_ranking_job(spec)
    source = data_source(cluster, owner.namespace, spec.data_source_ref.name)
    children = rankingjob.render(owner, spec, image=images.worker, data_source=source)
    history = run_history(cluster, owner, "ranking")
    return Plan(children, [("v1", "ConfigMap"), ("batch/v1", "CronJob")],
                status={"lastRunTime": history["lastSuccessfulTime"]})


def plan_game_data_source(owner: Owner, spec: Any, cluster: Cluster, images: Images, body: Any = None) -> Plan:
    master, password_ref = None, None
    if spec.redis.sentinel:
        ref = spec.redis.sentinel.redis_failover_ref.name
        failover = cluster.get(API_VERSION, "RedisFailover", owner.namespace, ref)
        if failover is None:
            raise DependencyError("RedisFailoverNotFound",
                                  f"spec.redis.sentinel.redisFailoverRef.name: RedisFailover {ref} does not exist")
        fspec = failover.get("spec") or {}
        master = fspec.get("masterName", "mymaster")
        if fspec.get("authSecretRef"):
            password_ref = SecretKeyRef.model_validate(fspec["authSecretRef"])
    children = gamedatasource.render(owner, spec, image=images.worker, sentinel_master=master,
                                     redis_password_ref=password_ref)
    available = 0
    for worker in gamedatasource.WORKERS:
        deployment = cluster.get("apps/v1", "Deployment", owner.namespace, f"{owner.name}-{worker}") or {}
        want = (deployment.get("spec") or {}).get("replicas", 1)
        available += (deployment.get("status") or {}).get("availableReplicas", 0) >= want > 0
    return Plan(children, [("v1", "ConfigMap"), ("v1", "ServiceAccount"), ("rbac.authorization.k8s.io/v1", "Role"),
                           ("rbac.authorization.k8s.io/v1", "RoleBinding"), ("apps/v1", "Deployment"),
                           ("v1", "Service"), (MONITORING_V1, "ServiceMonitor")],
                status={"readyWorkers": available})


#: Annotation listing ``host:port`` Sentinel addresses to probe instead of the pods' cluster DNS names, for an
#: operator running outside the cluster (``make demo``, the e2e tier).
PROBE_ADDRESSES_ANNOTATION = f"{GROUP}/probe-addresses"


def _secret_value(cluster: Cluster, namespace: str, ref: Any) -> str | None:
    secret = cluster.get("v1", "Secret", namespace, ref.name)
    raw = ((secret or {}).get("data") or {}).get(ref.key)
    return base64.b64decode(raw).decode() if raw else None


def plan_redis_failover(owner: Owner, spec: Any, cluster: Cluster, images: Images, body: Any = None) -> Plan:
    children = redisfailover.render(owner, spec, images)
    annotations = ((body or {}).get("metadata") or {}).get("annotations") or {}
    if annotations.get(PROBE_ADDRESSES_ANNOTATION):
        addresses = [(h, int(p)) for h, _, p in (a.strip().rpartition(":")
                                                 for a in annotations[PROBE_ADDRESSES_ANNOTATION].split(","))]
    else:
        addresses = redisfailover.sentinel_pod_addresses(owner.name, owner.namespace, spec.sentinel.replicas)
    password = _secret_value(cluster, owner.namespace, spec.auth_secret_ref) if spec.auth_secret_ref else None
    view = sentinel.probe(addresses, spec.master_name, password=password, timeout=1.0)
    master = view.agreed_master
    conditions = sentinel.conditions(view, spec, owner.generation)
    redis_pods = cluster.list("v1", "Pod", owner.namespace, f"{LABEL_OWNER_KIND}=RedisFailover,"
                              f"{LABEL_OWNER_NAME}={owner.name},app.kubernetes.io/component=redis")
    return Plan(
        children,
        [("v1", "ConfigMap"), ("apps/v1", "StatefulSet"), ("v1", "Service"), ("policy/v1", "PodDisruptionBudget"),
         (MONITORING_V1, "ServiceMonitor")],
        status={"master": master, "sentinelsReachable": len(view.reachable)},
        conditions=conditions,
        pod_labels=redisfailover.role_labels([p["metadata"]["name"] for p in redis_pods], master) if master else {},
        action=_rolling_restart_step(owner, cluster, redis_pods, master, conditions,
                                     lambda: sentinel.failover(addresses, spec.master_name, password, timeout=20)),
    )


def _rolling_restart_step(owner: Owner, cluster: Cluster, pods: list[dict], master: str | None,
                          conditions: list[dict], failover: Callable[[], Any]) -> Action | None:
    """The next step of a rolling restart of the Redis pods (their StatefulSet uses ``OnDelete``).

    Only while the set is healthy (master elected, quorum, replicas in sync, no split brain): replicas first, then a
    controlled Sentinel failover away from the master, then the old master. One step per reconcile; the next
    reconcile re-probes, so every step starts from a healthy, re-checked state.
    """
    statefulset = cluster.get("apps/v1", "StatefulSet", owner.namespace, redisfailover.redis_name(owner.name))
    update_revision = ((statefulset or {}).get("status") or {}).get("updateRevision")
    if not update_revision or not master or not sentinel.healthy(conditions):
        return None
    revisions = {p["metadata"]["name"]: p["metadata"].get("labels", {}).get("controller-revision-hash", "")
                 for p in pods}
    steps = sentinel.plan_rolling_restart(revisions, update_revision, redisfailover.pod_name_from_host(master))
    if not steps:
        return None
    first = steps[0]
    if first.action == "failover":
        return Action(f"failover away from master {first.pod} before restarting it", lambda _: failover())
    return Action(f"restart Pod/{first.pod} to apply revision {update_revision}",
                  lambda c: c.delete("v1", "Pod", owner.namespace, first.pod))


def _job_state(job: dict | None) -> tuple[bool | None, str, str]:
    """(succeeded?, reason, message) of a Job: True done, False failed, None still pending or running."""
    if job is None:
        return None, "BootstrapPending", "the bootstrap Job does not exist yet"
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Complete" and cond.get("status") == "True":
            return True, "Complete", f"Job {job['metadata']['name']} completed"
        if cond.get("type") == "Failed" and cond.get("status") == "True":
            return False, "BootstrapFailed", f"Job {job['metadata']['name']} failed: {cond.get('message', '')}"
    return None, "BootstrapPending", f"Job {job['metadata']['name']} has not completed yet"


def plan_mongo_sharded_cluster(owner: Owner, spec: Any, cluster: Cluster, images: Images, body: Any = None) -> Plan:
    """Children from the renderer; bootstrap progress from the bootstrap Job, which runs inside the cluster.

    The operator never talks to mongod itself: the Job's completion is the proof that every replica set was
    initiated and every shard added (the bootstrap only exits 0 when its plan is empty).
    """
    children = mongoshardedcluster.render(owner, spec, images)
    want = mongo_bootstrap.desired(owner.name, owner.namespace, spec)
    job_name = mongoshardedcluster.bootstrap_job_name(owner.name, want)
    done, reason, message = _job_state(cluster.get("batch/v1", "Job", owner.namespace, job_name))
    replica_sets = [{"name": rs.name, "initialized": bool(done), "addedAsShard": bool(done) and not rs.configsvr}
                    for rs in want.replica_sets]
    status = None if done is None else done
    return Plan(
        children,
        [("v1", "Service"), ("apps/v1", "StatefulSet"), ("apps/v1", "Deployment"),
         ("policy/v1", "PodDisruptionBudget"), ("batch/v1", "Job")],
        status={"replicaSets": replica_sets},
        conditions=[conditions_.condition(mongo_bootstrap.COND_BOOTSTRAPPED, status, reason, message,
                                          owner.generation)],
    )


Planner = Callable[..., Plan]

PLANNERS: dict[str, Planner] = {
    "AlertRule": plan_alert_rule,
    "ScheduledReport": plan_scheduled_report,
    "RankingJob": plan_ranking_job,
    "GameDataSource": plan_game_data_source,
    "RedisFailover": plan_redis_failover,
    "MongoShardedCluster": plan_mongo_sharded_cluster,
}

__all__ = ["PLANNERS", "DependencyError", "Plan", "SpecError", "parse"]
