"""One reconcile of one custom resource: plan, apply, and compute the new status.

Kept free of Kopf so that it can be driven by tests and by the handlers alike. The outcome is a status dict that
the caller writes only when it differs from the live status.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from lightkube import ApiError

from ..api import KindInfo
from ..config import Images
from ..validation import SpecError
from . import metrics
from .common import conditions
from .common.netpol import NETWORK_POLICY, network_policies
from .common.plan import DependencyError, parse
from .common.render import Owner
from .k8s import ApplyResult, ChildConflict, Cluster, drifted, error_reason, retry_after, status_code
from .kinds import PLANNERS
from .rejections import rejected_message

log = logging.getLogger(__name__)


class TransientError(Exception):
    """A failure worth retrying after ``delay`` seconds (API server unavailable, conflict, throttling)."""

    def __init__(self, message: str, delay: float):
        super().__init__(message)
        self.delay = delay


@dataclass
class Outcome:
    """The result of a reconcile: the status to write, the events worth posting, what was applied, and the
    description of the disruptive ``action`` that ran (also the last entry of ``applied.applied``), if any."""

    status: dict[str, Any]
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type Normal|Warning, reason, message)
    applied: ApplyResult | None = None
    action: str | None = None

    def status_patch(self, live_status: dict | None) -> dict[str, Any]:
        """The status fields to patch: empty when the live status already holds them (so no write)."""
        live_status = live_status or {}
        return {k: v for k, v in self.status.items() if drifted(v, live_status.get(k)) or k not in live_status}


def _ready(ok: bool, reason: str, message: str, generation: int | None) -> dict:
    return conditions.condition("Ready", ok, reason, message, generation)


def reconcile(info: KindInfo, body: Any, cluster: Cluster, images: Images) -> Outcome:
    """Reconcile one object of kind ``info``; never raises for bad input.

    Every failed API server call is counted in the reconcile-error metric under a bounded reason
    (:func:`~.k8s.error_reason`: ConnectionRefused, ConnectionReset, Timeout, TLS, DNS, Network, TooManyRequests,
    ServerError, Conflict, Forbidden, Rejected, HTTPError; ActionFailed for a disruptive step).

    Raises:
        TransientError: when the API server failed in a way worth retrying (unreachable, 5xx, 409, 429, 403 from
            RBAC); its ``delay`` is the server's ``Retry-After`` when it sent one (at most 300 s).
    """
    owner = Owner.from_body(body)
    generation = owner.generation
    live_status = dict(body.get("status") or {})
    previous_ready = conditions.get(live_status.get("conditions"), "Ready")
    events: list[tuple[str, str, str]] = []
    extra: dict[str, Any] = {}
    kind_conditions: list[dict] = []
    applied: ApplyResult | None = None
    action_ran: str | None = None
    started = time.monotonic()
    try:
        spec = parse(info, body)
        plan = PLANNERS[info.kind](owner, spec, cluster, images, body=body)
        children = plan.children + network_policies(owner, plan.children, images.network_policies)
        applied = cluster.ensure(info.kind, owner.name, owner.namespace, children, [*plan.child_types, NETWORK_POLICY])
        applied.applied += cluster.label_pods(owner.namespace, plan.pod_labels)
        if plan.action is not None:
            try:
                plan.action.run(cluster)
            except (ApiError, RuntimeError) as exc:  # e.g. sentinel.FailoverError: try again next time
                metrics.RECONCILE_ERRORS.labels(info.kind, "ActionFailed").inc()
                raise TransientError(f"{plan.action.description} failed: {exc}", delay=30.0) from exc
            applied.applied.append(plan.action.description)
            action_ran = plan.action.description
            events.append(("Normal", action_reason(action_ran), action_ran))
        extra = plan.status_fields()
        kind_conditions = plan.conditions
        missing = sorted(plan.required_apis & set(applied.unavailable))
        if missing:
            ready = _ready(False, "MissingAPI",
                           f"the cluster does not serve {', '.join(missing)}; install the prometheus-operator CRDs",
                           generation)
        elif plan.not_ready is not None:
            ready = _ready(False, *plan.not_ready, generation)
        else:
            ready = _ready(True, "Reconciled", f"{len(children)} children up to date", generation)
        if applied.changed:
            events.append(("Normal", "Applied", "; ".join(
                [f"applied {', '.join(applied.applied)}"] * bool(applied.applied)
                + [f"pruned {', '.join(applied.pruned)}"] * bool(applied.pruned))))
        metrics.RECONCILES.labels(info.kind, "success").inc()
    except SpecError as exc:
        ready = _ready(False, "InvalidSpec", str(exc), generation)
        metrics.RECONCILES.labels(info.kind, "invalid").inc()
    except (DependencyError, ChildConflict) as exc:
        ready = _ready(False, exc.reason, exc.message, generation)
        metrics.RECONCILES.labels(info.kind, "waiting").inc()
    except ApiError as exc:  # HTTP errors, and connection failures (k8s.ApiUnavailable, status 0)
        metrics.RECONCILES.labels(info.kind, "error").inc()
        metrics.RECONCILE_ERRORS.labels(info.kind, error_reason(exc)).inc()
        code, reason = status_code(exc), exc.status.reason
        if code in (400, 404, 422):  # the API server rejected what we rendered: retrying will not help
            ready = _ready(False, "ApplyRejected", rejected_message(
                info.kind, getattr(exc, "child", None), code, f"{reason}: {_api_message(exc)}"), generation)
        elif not code:
            raise TransientError(f"API server unreachable ({reason}): {_api_message(exc)}", delay=10.0) from exc
        else:  # 429 and 503 may say when to come back (Retry-After), bounded to the resync scale
            delay = min(retry_after(exc) or (60.0 if code == 403 else 10.0), 300.0)
            raise TransientError(f"{code} {reason}: {_api_message(exc)}", delay=delay) from exc
    finally:
        metrics.RECONCILE_DURATION.labels(info.kind).observe(time.monotonic() - started)

    if ready["status"] == "False" and (not previous_ready or previous_ready.get("message") != ready["message"]):
        events.append(("Warning", ready["reason"], ready["message"]))
    status = {
        "observedGeneration": generation,
        "conditions": conditions.merge(live_status.get("conditions"), [ready, *kind_conditions]),
        **extra,
    }
    return Outcome(status, events, applied, action_ran)


def action_reason(description: str) -> str:
    """The Event reason of a disruptive step by its description: ``Failover`` (a controlled Sentinel failover),
    ``Restart`` (a rolling-restart step deleting a pod) or ``Action``."""
    if description.startswith("failover"):
        return "Failover"
    if description.startswith("restart Pod/"):
        return "Restart"
    return "Action"


def _api_message(exc: ApiError) -> str:
    return str(exc.status.message or "")[:500]
