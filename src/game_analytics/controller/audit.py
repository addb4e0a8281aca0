"""What the operator writes to the audit trail: cluster changes per custom resource, and spec changes.

Records (pure, :func:`reconcile_records` and :func:`spec_record`), for a custom resource ``<Kind>/<ns>/<name>``:

- ``operator.children.apply`` / ``operator.children.prune``: the children a reconcile created, updated (or
  relabelled) / deleted (``after`` = ``{"applied": [...]}`` / ``{"pruned": [...]}``, ``Kind/name`` each);
- ``operator.redis.failover``: a controlled Sentinel failover (a rolling-restart step on the master);
  ``operator.redis.restart``: a rolling-restart step deleting one pod; ``operator.action`` any other step;
- ``operator.spec.create`` / ``.update`` / ``.delete``: a spec of an AlertRule, RankingJob or ScheduledReport seen
  by the operator (``before`` / ``after`` = the old / new spec; None on create / delete).

Deletions (``operator.spec.delete``) are audited by a Kopf deletion handler (``controller/handlers.py``) behind
the finalizer :data:`FINALIZER`, which Kopf puts on every object of :data:`SPEC_AUDITED_KINDS`: the API server
keeps a deleted object (``deletionTimestamp`` set) until the handler has run and Kopf has removed the finalizer.
So a deletion is audited even when it happens while the operator is down (once it is back), and no watch event
can be missed (a watch ``DELETED`` event is seen at most once, and not at all across a re-list or a restart).

Every record goes to two places (:class:`AuditWriter`): a Kubernetes Event on the custom resource (reason
``Audit``, type Normal, the message ``<action>: <summary>``; always, so ``kubectl describe`` shows the trail), and,
when the operator has an audit DSN (``GAME_ANALYTICS_AUDIT_DSN``, from the chart value ``audit.dsnSecret``), the
hash-chained ``audit_log`` (actor ``game-analytics-operator``, source ``operator``, context: kind, namespace,
uid, generation, the Kopf cause). Neither write may fail a reconcile: errors are logged (the Events stay when the
database is away).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import events
from .k8s import Cluster

__all__ = ["AUDIT_DSN_ENV", "FINALIZER", "OPERATOR_ACTOR", "SPEC_AUDITED_KINDS", "AuditRecord", "AuditWriter",
           "reconcile_records", "spec_record"]

log = logging.getLogger(__name__)

#: The audit actor of everything the operator does (its field manager's name).
OPERATOR_ACTOR = events.COMPONENT
#: Environment variable holding the DSN of the audit table (unset: Events only).
AUDIT_DSN_ENV = "GAME_ANALYTICS_AUDIT_DSN"
#: Kinds whose spec changes are audited with before and after spec.
SPEC_AUDITED_KINDS = frozenset({"AlertRule", "RankingJob", "ScheduledReport"})
#: Kopf's finalizer (``settings.persistence.finalizer``): on the objects of :data:`SPEC_AUDITED_KINDS` only, the
#: only kinds with a deletion handler; it holds a deletion until ``operator.spec.delete`` is written.
FINALIZER = "gameanalytics.io/audit"
#: Event messages are cut to this many characters (the API server keeps at most 1 KiB of a note).
EVENT_MESSAGE_LIMIT = events.MESSAGE_LIMIT


@dataclass(frozen=True)
class AuditRecord:
    """One audit entry of the operator: ``action``, ``object_ref`` (``<Kind>/<ns>/<name>``), ``before`` /
    ``after`` (JSON), ``summary`` (one line, for the Event) and ``context`` (JSON object)."""

    action: str
    object_ref: str
    before: Any
    after: Any
    summary: str
    context: dict[str, Any] = field(default_factory=dict)


def object_ref(kind: str, namespace: str, name: str) -> str:
    """The audit target of a custom resource: ``AlertRule/games/whale-wealth-jump``."""
    return f"{kind}/{namespace}/{name}"


def _context(body: Any, cause: str | None) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    return {"kind": body.get("kind"), "namespace": meta.get("namespace"), "uid": meta.get("uid"),
            "generation": meta.get("generation"), **({"cause": cause} if cause else {})}  # fmt: skip


def _action_name(description: str) -> str:
    if description.startswith("failover"):
        return "operator.redis.failover"
    if description.startswith("restart Pod/"):
        return "operator.redis.restart"
    return "operator.action"


def reconcile_records(kind: str, body: Any, applied: list[str], pruned: list[str], action: str | None = None,
                      cause: str | None = None) -> list[AuditRecord]:  # fmt: skip
    """The records of one reconcile of ``body``: children ``applied`` and ``pruned`` (``Kind/name`` each, without
    the action's description), and the disruptive ``action`` that ran (its description), if any."""
    meta = body.get("metadata") or {}
    ref, context = object_ref(kind, meta.get("namespace", ""), meta.get("name", "")), _context(body, cause)
    out = []
    if applied:
        out.append(AuditRecord("operator.children.apply", ref, None, {"applied": sorted(applied)},
                               f"applied {', '.join(sorted(applied))}", context))  # fmt: skip
    if pruned:
        out.append(AuditRecord("operator.children.prune", ref, None, {"pruned": sorted(pruned)},
                               f"pruned {', '.join(sorted(pruned))}", context))  # fmt: skip
    if action:
        out.append(AuditRecord(_action_name(action), ref, None, {"step": action}, action, context))
    return out


def spec_record(kind: str, body: Any, before: Any, after: Any, cause: str) -> AuditRecord | None:
    """The ``operator.spec.<cause>`` record (``cause`` = create, update or delete) of a spec change of an audited
    kind; None for other kinds, or an update that changed nothing."""
    if kind not in SPEC_AUDITED_KINDS or (cause == "update" and before == after):
        return None
    meta = body.get("metadata") or {}
    before, after = (dict(before) if before is not None else None), (dict(after) if after is not None else None)
    changed = sorted(set(before or {}) ^ set(after or {}) | {k for k in (before or {}) if k in (after or {})
                                                             and before[k] != after[k]})  # fmt: skip
    summary = {"create": "spec created", "delete": "deleted"}.get(cause, f"spec changed: {', '.join(changed)}")
    return AuditRecord(f"operator.spec.{cause}", object_ref(kind, meta.get("namespace", ""), meta.get("name", "")),
                       before, after, summary, _context(body, cause))  # fmt: skip


class AuditWriter:
    """Writes :class:`AuditRecord` s as Events and, with ``dsn``, to the audit table.

    Args:
        dsn: the audit database URL (default: ``$GAME_ANALYTICS_AUDIT_DSN``; empty = Events only).
    """

    def __init__(self, dsn: str | None = None) -> None:
        self.dsn = os.environ.get(AUDIT_DSN_ENV, "") if dsn is None else dsn
        self._engine: Any = None

    def engine(self) -> Any:
        """The SQLAlchemy engine of :attr:`dsn` (created on first use), or None without a DSN."""
        if self._engine is None and self.dsn:
            from ..storage.engine import make_engine

            self._engine = make_engine(self.dsn)
        return self._engine

    def write(self, cluster: Cluster, body: Any, records: list[AuditRecord]) -> None:
        """Post one Event per record on ``body``, then append them all in one transaction; never raises."""
        if not records:
            return
        for record in records:
            events.post(cluster, event(body, record))
        engine = self.engine()
        if engine is None:
            return
        from ..audit import append_entry

        try:
            with engine.begin() as conn:
                for r in records:
                    append_entry(conn, OPERATOR_ACTOR, r.action, r.object_ref, r.before, r.after,
                                 source="operator", context=r.context)  # fmt: skip
        except Exception:  # noqa: BLE001 - e.g. the database is away: the Events still hold the trail
            log.exception("could not append %d audit entries for %s", len(records), records[0].object_ref)


def event(body: Any, record: AuditRecord, now: datetime | None = None) -> dict[str, Any]:
    """The core/v1 Event of ``record`` on the custom resource ``body`` (reason ``Audit``, type Normal)."""
    message = f"{record.action}: {record.summary}"
    if record.action.startswith("operator.spec.") and record.after is not None:
        message += " " + json.dumps(record.after, sort_keys=True, separators=(",", ":"))
    return events.manifest(body, "Normal", "Audit", message, action=record.action, suffix="audit", now=now)


def outcome_records(kind: str, body: Any, outcome: Any, cause: str | None = None, old: Any = None,
                    new: Any = None) -> list[AuditRecord]:  # fmt: skip
    """Every record of one handled reconcile: the spec change (``cause`` create: ``body``'s spec; update: the
    Kopf ``old`` / ``new`` spec), then :func:`reconcile_records` of the
    :class:`~game_analytics.controller.reconcile.Outcome`."""
    cause = getattr(cause, "value", cause)  # Kopf's Reason is a str Enum: str() would give "Reason.CREATE"
    records = []
    if cause in ("create", "update"):
        spec = spec_record(kind, body, old if cause == "update" else None,
                           new if cause == "update" else body.get("spec"), str(cause))  # fmt: skip
        records += [spec] if spec else []
    applied = getattr(outcome, "applied", None)
    if applied is not None:
        action = getattr(outcome, "action", None)
        records += reconcile_records(kind, body, [a for a in applied.applied if a != action], applied.pruned,
                                     action, str(cause) if cause else "resync")  # fmt: skip
    return records
