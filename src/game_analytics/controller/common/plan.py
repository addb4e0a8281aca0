"""The planning contract every kind's ``plan.py`` fulfils, and the look-ups several kinds share.

A planner parses nothing itself (:func:`parse` does), checks the spec, looks up what it references, renders the
desired children with its kind's pure ``render.py`` and reports what it observed as the kind's ``*Status`` model
(:mod:`game_analytics.api`). It may read the cluster but never writes; disruptive steps are returned as an
:class:`Action` that the reconcile runs after the apply.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ... import validation
from ...api import API_VERSION, KindInfo
from ...api.common import BaseStatus, SecretKeyRef
from ...api.gamedatasource import GameDataSourceSpec
from ..k8s import Cluster
from .render import LABEL_OWNER_KIND, LABEL_OWNER_NAME, DataSource, Manifest, Owner

MONITORING_V1 = "monitoring.coreos.com/v1"
MONITORING_V1ALPHA1 = "monitoring.coreos.com/v1alpha1"


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
    #: the kind's ``*Status`` model with what the planner observed; ``conditions`` and ``observedGeneration``
    #: are left to the reconcile (it merges the conditions below with Ready)
    status: BaseStatus | None = None
    #: kind-specific conditions besides Ready (e.g. the Sentinels' view of a RedisFailover)
    conditions: list[dict[str, Any]] = field(default_factory=list)
    #: (reason, message) when the object is not Ready although its children are applied (e.g. a sharded
    #: MongoDB not bootstrapped yet); None: Ready follows the apply
    not_ready: tuple[str, str] | None = None
    #: labels to keep on existing pods: {pod name: {label: value}} (e.g. the Redis master's role)
    pod_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    #: at most one disruptive step per reconcile (a controlled failover, or a pod restart), run after the apply
    action: Action | None = None

    def status_fields(self) -> dict[str, Any]:
        """The kind-specific status fields as the CRD stores them: camelCase keys, JSON values, unset fields
        left out (so a field the planner could not observe keeps its last written value)."""
        if self.status is None:
            return {}
        return self.status.model_dump(by_alias=True, exclude_none=True, mode="json",
                                      exclude={"observed_generation", "conditions"})


@dataclass(frozen=True)
class Action:
    """A disruptive step the reconcile performs after applying children; ``run`` raises on failure."""

    description: str
    run: Callable[[Cluster], None]


#: A kind's planner: ``(owner, spec, cluster, images, body=...) -> Plan``; raises SpecError or DependencyError.
Planner = Callable[..., Plan]


def parse(info: KindInfo, body: Any) -> Any:
    """The validated spec model. Raises :class:`SpecError` naming the first bad field."""
    try:
        return info.spec.model_validate(dict(body.get("spec") or {}))
    except ValidationError as exc:
        raise validation.from_validation_error(exc) from None


def data_source(cluster: Cluster, namespace: str, name: str, *, uses_redis: bool) -> DataSource:
    """GameDataSource ``namespace/name``; with ``uses_redis``, its RedisFailover resolved (:func:`resolve_data_source`).

    Raises:
        DependencyError: it does not exist (``DataSourceNotFound``), its spec is invalid (``DataSourceInvalid``),
            or the RedisFailover it names does not exist (``RedisFailoverNotFound``).
    """
    body = cluster.get(API_VERSION, "GameDataSource", namespace, name)
    if body is None:
        raise DependencyError("DataSourceNotFound",
                              f"spec.dataSourceRef.name: GameDataSource {namespace}/{name} does not exist")
    try:
        spec = GameDataSourceSpec.model_validate(body.get("spec") or {})
    except ValidationError:
        raise DependencyError("DataSourceInvalid", f"GameDataSource {namespace}/{name} has an invalid spec") from None
    return resolve_data_source(cluster, namespace, name, spec) if uses_redis else DataSource(name, spec)


def resolve_data_source(cluster: Cluster, namespace: str, name: str, spec: GameDataSourceSpec) -> DataSource:
    """``spec`` with the master name and the auth Secrets (Redis, Sentinels) of the RedisFailover its
    ``redis.sentinel`` names, if any.

    Raises:
        DependencyError: ``RedisFailoverNotFound``, naming ``spec.redis.sentinel.redisFailoverRef.name`` (of the
            GameDataSource, since that is the field to fix).
    """
    if not spec.redis.sentinel:
        return DataSource(name, spec)
    ref = spec.redis.sentinel.redis_failover_ref.name
    failover = cluster.get(API_VERSION, "RedisFailover", namespace, ref)
    if failover is None:
        raise DependencyError("RedisFailoverNotFound",
                              f"spec.redis.sentinel.redisFailoverRef.name: RedisFailover {ref} does not exist")
    fspec = failover.get("spec") or {}
    auth = fspec.get("authSecretRef")
    sentinel_auth = (fspec.get("sentinel") or {}).get("authSecretRef")
    return DataSource(name, spec, sentinel_master=fspec.get("masterName", "mymaster"),
                      redis_password_ref=SecretKeyRef.model_validate(auth) if auth else None,
                      sentinel_password_ref=SecretKeyRef.model_validate(sentinel_auth) if sentinel_auth else None)


@dataclass(frozen=True)
class SecretUse:
    """A Secret key a spec references: the field naming it (``spec.channels[0].slack.apiURLSecretRef``), the
    reference, and whether its value must be an http(s) URL (webhooks) and, if so, from which allowed hosts."""

    field: str
    ref: SecretKeyRef
    url: bool = False
    allowed_hosts: tuple[str, ...] = ()


def check_secrets(cluster: Any, namespace: str, uses: list[SecretUse]) -> None:
    """Every referenced Secret key exists and (for URLs) holds an http(s) URL of an allowed host.

    Secret values never appear in a message. A cluster with ``checks_secrets = False`` (the offline renderer,
    whose files rarely hold Secrets) skips the check.

    Raises:
        DependencyError: ``SecretNotFound`` (the Secret or its key is missing) or ``SecretValueInvalid``, the
            message starting with the field (``spec.channels[0].webhook.urlSecretRef: ...``). Re-checked on every
            resync, so the object becomes Ready on its own once the Secret is fixed.
    """
    if not getattr(cluster, "checks_secrets", True):
        return
    for use in uses:
        where = f"Secret {namespace}/{use.ref.name}"
        secret = cluster.get("v1", "Secret", namespace, use.ref.name)
        if secret is None:
            raise DependencyError("SecretNotFound", f"{use.field}: {where} does not exist")
        data = {**(secret.get("data") or {}), **(secret.get("stringData") or {})}
        if use.ref.key not in data:
            raise DependencyError("SecretNotFound", f"{use.field}: {where} has no key {use.ref.key!r}")
        if use.url:
            raw = (secret.get("stringData") or {}).get(use.ref.key)
            value = raw if raw is not None else _decode(data[use.ref.key])
            problem = validation.url_problem(value or "", use.allowed_hosts)
            if problem:
                raise DependencyError("SecretValueInvalid",
                                      f"{use.field}: the value of {where} key {use.ref.key!r} {problem}")


def secret_value(cluster: Any, namespace: str, ref: SecretKeyRef) -> str | None:
    """The value of ``ref`` (``stringData`` first, else decoded ``data``); None when the Secret, its key or a
    cluster that reads Secrets (``checks_secrets``) is missing, or the value is not UTF-8. Only for values the
    operator itself must use (the Sentinels' password): never log it, never put it into a child or a status."""
    if not getattr(cluster, "checks_secrets", True):
        return None
    secret = cluster.get("v1", "Secret", namespace, ref.name) or {}
    raw = (secret.get("stringData") or {}).get(ref.key)
    if raw is not None:
        return raw
    data = (secret.get("data") or {}).get(ref.key)
    return _decode(data) if data is not None else None


def _decode(raw: str) -> str | None:
    try:
        return base64.b64decode(raw).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def owned_selector(owner: Owner, component: str) -> str:
    """Label selector of the objects of ``owner`` with ``app.kubernetes.io/component=component`` (e.g. its Jobs)."""
    return f"{LABEL_OWNER_KIND}={owner.kind},{LABEL_OWNER_NAME}={owner.name},app.kubernetes.io/component={component}"


def termination_messages(pods: list[dict[str, Any]], *containers: str) -> list[str]:
    """The termination messages the ``containers`` (by name) left in ``pods``, newest first (by ``finishedAt``).

    The kubelet copies a container's termination-message file into
    ``status.containerStatuses[].state.terminated.message`` (at most 4 KiB); pods whose container has not
    terminated, or left no message, are skipped.
    """
    finished: list[tuple[str, str]] = []
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated") or {}
            if status.get("name") in containers and terminated.get("message"):
                finished.append((terminated.get("finishedAt") or "", terminated["message"]))
    return [message for _, message in sorted(finished, reverse=True)]


@dataclass(frozen=True)
class RunHistory:
    """Schedule state of a CronJob-backed kind (see :func:`run_history`). Times are RFC 3339 strings or None."""

    last_schedule_time: str | None
    last_successful_time: str | None
    last_outcome: str | None
    consecutive_failures: int


def run_history(cluster: Cluster, owner: Owner, cronjob_name: str, component: str) -> RunHistory:
    """Schedule state of a CronJob-backed kind, from its CronJob and the Jobs it left (newest first).

    ``last_outcome`` is Succeeded/Failed of the newest finished Job; ``consecutive_failures`` counts failed Jobs
    since the last success. Job history is bounded by the CronJob's history limits, so the count saturates there.
    """
    cronjob = cluster.get("batch/v1", "CronJob", owner.namespace, cronjob_name) or {}
    jobs = cluster.list("batch/v1", "Job", owner.namespace, owned_selector(owner, component))
    outcomes = []
    for job in sorted(jobs, key=lambda j: j["metadata"].get("creationTimestamp", ""), reverse=True):
        done = {c["type"] for c in (job.get("status") or {}).get("conditions") or [] if c.get("status") == "True"}
        if "Complete" in done or "Failed" in done:
            outcomes.append("Succeeded" if "Complete" in done else "Failed")
    failures = next((i for i, o in enumerate(outcomes) if o == "Succeeded"), len(outcomes))
    status = cronjob.get("status") or {}
    return RunHistory(status.get("lastScheduleTime"), status.get("lastSuccessfulTime"),
                      outcomes[0] if outcomes else None, failures)
