"""Kubernetes Events on custom resources, posted by the operator itself through the API.

Kopf's own ``kopf.info``/``kopf.warn`` go through its posting queue, which drops every Event under
``settings.posting.level`` (the handlers set WARNING, to keep Kopf's chatter out): a failover or an apply would then
never show in ``kubectl describe``. Every Event of a reconcile outcome (Normal ``Applied``, ``Failover``,
``Restart``; Warning with the Ready reason) and every audit Event is therefore posted here, directly, as core/v1.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import Any

from lightkube import ApiError

from .k8s import Cluster

log = logging.getLogger(__name__)

#: The Events' reporting component (the operator's field manager's name).
COMPONENT = "game-analytics-operator"
#: Event messages are cut to this many characters (the API server keeps at most 1 KiB of a note).
MESSAGE_LIMIT = 1000


def manifest(body: Any, type_: str, reason: str, message: str, *, action: str | None = None,
             suffix: str = "event", now: datetime | None = None) -> dict[str, Any]:  # fmt: skip
    """The core/v1 Event ``type_`` (Normal or Warning) with ``reason`` and ``message`` (cut to
    :data:`MESSAGE_LIMIT`) on the object ``body``; ``action`` defaults to ``reason``. The name is generated
    (``<object>.<suffix>.<random>``)."""
    meta = body.get("metadata") or {}
    at = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": f"{meta.get('name', 'object')}.{suffix}.", "namespace": meta.get("namespace")},
        "involvedObject": {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
                           "name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid")},
        "reason": reason, "type": type_, "action": action or reason,
        "message": message[:MESSAGE_LIMIT],
        "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
        "reportingInstance": os.environ.get("HOSTNAME", COMPONENT),
        "firstTimestamp": at, "lastTimestamp": at, "count": 1,
    }  # fmt: skip


def post(cluster: Cluster, event: dict[str, Any]) -> bool:
    """Create ``event`` (a :func:`manifest`); False, with one log line, when the API server refused or could not be
    reached (an Event must never fail a reconcile)."""
    namespace = event["metadata"].get("namespace") or "default"
    try:
        cluster.create({**event, "metadata": {**event["metadata"], "namespace": namespace}})
        return True
    except ApiError as exc:  # e.g. 403 while the namespace terminates: one line, no traceback
        log.warning("could not post the Event %s on %s/%s: %s %s", event["reason"], event["involvedObject"]["kind"],
                    event["involvedObject"]["name"], exc.status.code, exc.status.reason)
    except Exception:  # noqa: BLE001 - an Event must not fail the reconcile
        log.exception("could not post the Event %s on %s/%s", event["reason"], event["involvedObject"]["kind"],
                      event["involvedObject"]["name"])
    return False
