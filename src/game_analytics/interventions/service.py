"""Working the intervention queue: assign, acknowledge, resolve, reopen and comment, each change audited.

Every operation here is ONE database transaction on the given :class:`~sqlalchemy.orm.Session` (which must not be
in a transaction already): it locks the cases (``SELECT ... FOR UPDATE``, in id order), checks each case's state,
changes it, bumps ``version`` and appends one audit entry per case (actor, action, target ``intervention/<id>``,
``before`` / ``after`` snapshots, justification, approver, source, request context) with
:func:`game_analytics.audit.append_entry`.  The change and its audit entry commit together or not at all; audit
entries are appended after every row lock is held, so the audit chain's lock is always taken last.

Life cycle::

    open --ack--> in_progress --resolve--> resolved --reopen (approved)--> open
      \\______________resolve______________/

A case whose state does not allow the operation (already resolved, already acknowledged, ``--if-version`` stale)
is not changed: the transaction records ``<action>.conflict`` for it instead (``after`` = ``before``, the reason
in ``context.conflict``), and :class:`Outcome` says so.  Two admins resolving the same case at once therefore
leave one resolution and two audit entries, the second a conflict.

Sensitive operations need a second person: resolving more than one case at once, and reopening a resolved case,
require ``approver`` different from the actor (:class:`ApprovalRequired` otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from game_analytics.audit import AuditEntry, append_entry
from game_analytics.storage.models import Intervention, InterventionStatus

__all__ = [
    "ACTIONS",
    "OPEN_STATUSES",
    "PRIORITY_OF_SEVERITY",
    "RESOLUTIONS",
    "Actor",
    "ApprovalRequired",
    "CaseNotFound",
    "InterventionError",
    "Outcome",
    "acknowledge",
    "assign",
    "comment",
    "reopen",
    "resolve",
    "snapshot",
    "target",
]

#: The resolutions ``resolve`` accepts (``auto-cleared`` is what the detection side uses for a cleared condition).
RESOLUTIONS = ("actioned", "false-positive", "duplicate", "auto-cleared")
#: A case's priority (1 most urgent) from the severity of the AlertRule that opened it; the one table of it.
PRIORITY_OF_SEVERITY = {"critical": 1, "warning": 2, "info": 3}
#: Statuses of a case still in the queue.
OPEN_STATUSES = (InterventionStatus.OPEN, InterventionStatus.IN_PROGRESS)
CLOSED_STATUSES = (InterventionStatus.RESOLVED, InterventionStatus.DISMISSED)
#: Audit actions written for interventions (a refused change appends ``<action>.conflict``).
ACTIONS = ("intervention.open", "intervention.occurrence", "intervention.assign", "intervention.ack",
           "intervention.resolve", "intervention.reopen", "intervention.comment")  # fmt: skip


class InterventionError(Exception):
    """The work could not be done (exit code 1); the message is one line."""


class CaseNotFound(InterventionError):
    """One of the requested case ids does not exist (nothing was changed)."""


class ApprovalRequired(ValueError):
    """A sensitive operation lacks an approver different from the actor, or a required argument is missing
    (a usage error: exit code 2; nothing was written)."""


@dataclass(frozen=True)
class Actor:
    """Who acts: ``name``, the ``source`` (``cli``, ``worker``, ``operator``) and the request ``context`` (JSON)."""

    name: str
    source: str = "cli"
    context: dict[str, Any] | None = None


@dataclass(frozen=True)
class Outcome:
    """What happened to one case: the audit ``entry`` written, ``before``/``after`` snapshots, and ``conflict``
    (the reason) when the case was left unchanged."""

    case_id: int
    entry: AuditEntry
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    conflict: str | None = None

    @property
    def ok(self) -> bool:
        """True when the change was applied."""
        return self.conflict is None


def target(case_id: int) -> str:
    """The audit ``object_ref`` of a case: ``intervention/<id>``."""
    return f"intervention/{case_id}"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def snapshot(case: Intervention) -> dict[str, Any]:
    """The audited state of a case (JSON): status, assignee, resolution, priority, version, who/when acknowledged
    and resolved, occurrences and last seen."""
    return {
        "status": InterventionStatus(case.status).value, "assignee": case.assignee, "resolution": case.resolution,
        "priority": case.priority, "category": case.category, "version": case.version,
        "acknowledged_at": _iso(case.acknowledged_at), "acknowledged_by": case.acknowledged_by,
        "resolved_at": _iso(case.resolved_at), "resolved_by": case.resolved_by,
        "occurrences": case.occurrences, "last_seen_at": _iso(case.last_seen_at),
    }  # fmt: skip


#: check(case) -> None if the operation may proceed, else the conflict reason.
Check = Callable[[Intervention], str | None]
#: apply(case, now) changes the case in place.
Apply = Callable[[Intervention, datetime], None]


@dataclass
class _Plan:
    action: str
    check: Check
    apply: Apply
    justification: str | None = None
    approver: str | None = None
    extra_context: dict[str, Any] = field(default_factory=dict)
    versioned: bool = True


def _run(session: Session, case_ids: Sequence[int], actor: Actor, plan: _Plan,
         expect_version: int | None = None) -> list[Outcome]:  # fmt: skip
    """Lock, check, change and audit ``case_ids`` in one transaction (see the module docstring)."""
    ids = sorted(set(case_ids))
    if not ids:
        raise ApprovalRequired("no case given")
    with session.begin():
        cases = session.scalars(
            select(Intervention).where(Intervention.id.in_(ids)).order_by(Intervention.id).with_for_update()
        ).all()
        missing = sorted(set(ids) - {c.id for c in cases})
        if missing:
            raise CaseNotFound(f"no intervention {', '.join(map(str, missing))}")
        now = session.execute(select(func.now())).scalar_one()
        staged: list[tuple[Intervention, dict[str, Any], dict[str, Any] | None, str | None]] = []
        for case in cases:
            before = snapshot(case)
            problem = plan.check(case)
            if problem is None and expect_version is not None and case.version != expect_version:
                problem = f"version is {case.version}, not {expect_version} (changed meanwhile)"
            if problem is None:
                plan.apply(case, now)
                if plan.versioned:
                    case.version += 1
                    case.updated_at = now
            staged.append((case, before, None, problem))
        session.flush()
        outcomes = []
        for case, before, _, problem in staged:  # audit last: every row lock is already held
            after = before if problem else (snapshot(case) if plan.versioned else plan.extra_context.get("after"))
            context = {**(actor.context or {}), **({"conflict": problem} if problem else {}),
                       **{k: v for k, v in plan.extra_context.items() if k != "after"}} or None  # fmt: skip
            entry = append_entry(
                session.connection(), actor.name, plan.action + (".conflict" if problem else ""), target(case.id),
                before if plan.versioned else None, after, justification=plan.justification,
                approver=plan.approver, source=actor.source, context=context, at=now,
            )  # fmt: skip
            outcomes.append(Outcome(case.id, entry, before, after, problem))
    return outcomes


def _require(value: str | None, what: str) -> str:
    if value is None or not value.strip():
        raise ApprovalRequired(f"{what} is required")
    return value.strip()


def _approved(actor: Actor, approver: str | None, why: str) -> str:
    if approver is None or not approver.strip():
        raise ApprovalRequired(f"{why} needs --approved-by (a second person)")
    if approver.strip() == actor.name:
        raise ApprovalRequired(f"{why}: the approver must be someone other than the actor {actor.name!r}")
    return approver.strip()


def _still_open(case: Intervention) -> str | None:
    if case.status in CLOSED_STATUSES:
        by = f" by {case.resolved_by}" if case.resolved_by else ""
        return f"already {InterventionStatus(case.status).value}{by} ({case.resolution or 'no resolution'})"
    return None


def assign(session: Session, case_id: int, assignee: str | None, actor: Actor, *,
           justification: str | None = None, expect_version: int | None = None) -> Outcome:  # fmt: skip
    """Set (or with ``assignee=None`` clear) the assignee of an open or in-progress case.

    Raises:
        CaseNotFound: no such case.
    """

    def apply(case: Intervention, _now: datetime) -> None:
        case.assignee = assignee

    plan = _Plan("intervention.assign", _still_open, apply, justification)
    return _run(session, [case_id], actor, plan, expect_version)[0]


def acknowledge(session: Session, case_id: int, actor: Actor, *, justification: str | None = None,
                expect_version: int | None = None) -> Outcome:  # fmt: skip
    """Acknowledge an open case: status ``in_progress``, acknowledged now by the actor, who becomes the assignee
    if there is none.  An already acknowledged or closed case is a conflict.

    Raises:
        CaseNotFound: no such case.
    """

    def check(case: Intervention) -> str | None:
        if case.status == InterventionStatus.IN_PROGRESS:
            return f"already acknowledged by {case.acknowledged_by or 'someone'}"
        return _still_open(case)

    def apply(case: Intervention, now: datetime) -> None:
        case.status, case.acknowledged_at, case.acknowledged_by = InterventionStatus.IN_PROGRESS, now, actor.name
        case.assignee = case.assignee or actor.name

    return _run(session, [case_id], actor, _Plan("intervention.ack", check, apply, justification),
                expect_version)[0]  # fmt: skip


def resolve(session: Session, case_ids: Sequence[int], resolution: str, justification: str | None, actor: Actor,
            *, approved_by: str | None = None, expect_version: int | None = None) -> list[Outcome]:  # fmt: skip
    """Resolve open or in-progress cases as ``resolution`` (one of :data:`RESOLUTIONS`) with a justification.

    More than one case (a bulk resolve) needs ``approved_by`` other than the actor; all of them change in one
    transaction, each with its own audit entry; already closed ones are recorded as conflicts.

    Raises:
        ApprovalRequired: unknown resolution, missing justification, or a bulk resolve without a valid approver.
        CaseNotFound: one of the cases does not exist (nothing changed).
    """
    if resolution not in RESOLUTIONS:
        raise ApprovalRequired(f"resolution must be one of {', '.join(RESOLUTIONS)}, got {resolution!r}")
    why = _require(justification, "a justification (--justification)")
    approver = _approved(actor, approved_by, "a bulk resolve") if len(set(case_ids)) > 1 else approved_by

    def apply(case: Intervention, now: datetime) -> None:
        case.status, case.resolution = InterventionStatus.RESOLVED, resolution
        case.resolved_at, case.resolved_by = now, actor.name

    plan = _Plan("intervention.resolve", _still_open, apply, why, approver,
                 {"bulk": len(set(case_ids))} if len(set(case_ids)) > 1 else {})  # fmt: skip
    return _run(session, case_ids, actor, plan, expect_version)


def reopen(session: Session, case_id: int, justification: str | None, actor: Actor, *,
           approved_by: str | None = None, expect_version: int | None = None) -> Outcome:  # fmt: skip
    """Reopen a resolved (or dismissed) case: status ``open``, resolution and acknowledgement cleared.

    Raises:
        ApprovalRequired: no justification, or no approver other than the actor.
        CaseNotFound: no such case.
    """
    why = _require(justification, "a justification (--justification)")
    approver = _approved(actor, approved_by, "reopening a resolved case")

    def check(case: Intervention) -> str | None:
        return None if case.status in CLOSED_STATUSES else f"not resolved (status {case.status.value})"

    def apply(case: Intervention, _now: datetime) -> None:
        case.status, case.resolution, case.resolved_at, case.resolved_by = InterventionStatus.OPEN, None, None, None
        case.acknowledged_at = case.acknowledged_by = None

    return _run(session, [case_id], actor, _Plan("intervention.reopen", check, apply, why, approver),
                expect_version)[0]  # fmt: skip


def comment(session: Session, case_id: int, text: str, actor: Actor) -> Outcome:
    """Add a comment to a case (any status); stored in the audit log only (``after = {"comment": text}``).

    Raises:
        ApprovalRequired: empty text.
        CaseNotFound: no such case.
    """
    body = _require(text, "the comment text")
    plan = _Plan("intervention.comment", lambda _case: None, lambda _case, _now: None,
                 extra_context={"after": {"comment": body}}, versioned=False)  # fmt: skip
    return _run(session, [case_id], actor, plan)[0]
