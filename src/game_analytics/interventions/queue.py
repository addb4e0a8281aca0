"""Reading the intervention queue: filtered lists and the full story of one case (read-only).

A case row joins the intervention with the detection that opened it: ``rule``, ``detector``, ``game`` and
``subject`` come from that detection (``evidence`` holds detector, game and subject).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from game_analytics.audit.query import AuditQuery, search
from game_analytics.interventions.service import OPEN_STATUSES, PRIORITY_OF_SEVERITY, CaseNotFound, target
from game_analytics.storage.models import Detection, Intervention, InterventionStatus

__all__ = ["PRIORITY_NAMES", "CaseFilter", "list_cases", "parse_priority", "show_case"]

#: priority number -> severity name
PRIORITY_NAMES = {priority: severity for severity, priority in PRIORITY_OF_SEVERITY.items()}


def parse_priority(value: str) -> int:
    """``1``/``critical``, ``2``/``warning``, ``3``/``info`` as the priority number; raises ValueError."""
    names = {v: k for k, v in PRIORITY_NAMES.items()}
    if value.isdigit() and int(value) in PRIORITY_NAMES:
        return int(value)
    if value in names:
        return names[value]
    raise ValueError(f"invalid priority {value!r}: expected 1-3 or {', '.join(names)}")


@dataclass(frozen=True)
class CaseFilter:
    """Which cases to list; every given filter must match.

    ``statuses`` empty = the open ones (open, in_progress); ``assignee`` ``"-"`` = unassigned; ``older_than`` /
    ``newer_than`` compare the case's age (now - created_at); ``limit`` None = all.
    """

    games: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    detectors: tuple[str, ...] = ()
    statuses: tuple[InterventionStatus, ...] = ()
    priorities: tuple[int, ...] = ()
    assignee: str | None = None
    older_than: timedelta | None = None
    newer_than: timedelta | None = None
    ids: tuple[int, ...] = ()
    limit: int | None = 100


def _select(flt: CaseFilter, now: datetime) -> Select[Any]:
    evidence = Detection.evidence
    stmt = select(Intervention, Detection).join(Detection, Detection.id == Intervention.detection_id)
    stmt = stmt.where(Intervention.status.in_(flt.statuses or OPEN_STATUSES))
    if flt.ids:
        stmt = stmt.where(Intervention.id.in_(flt.ids))
    if flt.games:
        stmt = stmt.where(evidence["game"].astext.in_(flt.games))
    if flt.rules:
        stmt = stmt.where(Detection.rule.in_(flt.rules))
    if flt.detectors:
        stmt = stmt.where(evidence["detector"].astext.in_(flt.detectors))
    if flt.priorities:
        stmt = stmt.where(Intervention.priority.in_(flt.priorities))
    if flt.assignee == "-":
        stmt = stmt.where(Intervention.assignee.is_(None))
    elif flt.assignee is not None:
        stmt = stmt.where(Intervention.assignee == flt.assignee)
    if flt.older_than is not None:
        stmt = stmt.where(Intervention.created_at <= now - flt.older_than)
    if flt.newer_than is not None:
        stmt = stmt.where(Intervention.created_at > now - flt.newer_than)
    stmt = stmt.order_by(Intervention.priority, Intervention.created_at, Intervention.id)
    return stmt.limit(flt.limit) if flt.limit is not None else stmt


def _row(case: Intervention, detection: Detection, now: datetime) -> dict[str, Any]:
    evidence = detection.evidence or {}
    return {
        "id": case.id, "priority": case.priority, "severity": PRIORITY_NAMES.get(case.priority),
        "category": case.category, "status": InterventionStatus(case.status).value, "rule": detection.rule,
        "detector": evidence.get("detector"), "game": evidence.get("game"), "subject": evidence.get("subject"),
        "assignee": case.assignee, "resolution": case.resolution, "occurrences": case.occurrences,
        "created_at": case.created_at, "first_seen_at": case.first_seen_at, "last_seen_at": case.last_seen_at,
        "acknowledged_at": case.acknowledged_at, "acknowledged_by": case.acknowledged_by,
        "resolved_at": case.resolved_at, "resolved_by": case.resolved_by, "version": case.version,
        "age_seconds": round((now - case.created_at).total_seconds(), 3),
    }  # fmt: skip


def list_cases(session: Session, flt: CaseFilter) -> list[dict[str, Any]]:
    """The matching cases, most urgent first (priority, then oldest), as JSON-able dicts (datetimes aware)."""
    with session.begin():
        now = session.execute(select(func.now())).scalar_one()
        return [_row(c, d, now) for c, d in session.execute(_select(flt, now))]


def show_case(session: Session, case_id: int) -> dict[str, Any]:
    """One case with its ``occurrences`` (every linked detection: id, detected_at, score, evidence; oldest first)
    and its audit ``history`` (every entry targeting it, in chain order).

    Raises:
        CaseNotFound: no such case.
    """
    with session.begin():
        now = session.execute(select(func.now())).scalar_one()
        found = session.execute(
            select(Intervention, Detection).join(Detection, Detection.id == Intervention.detection_id)
            .where(Intervention.id == case_id)
        ).first()  # fmt: skip
        if found is None:
            raise CaseNotFound(f"no intervention {case_id}")
        case = _row(*found, now)
        detections = session.scalars(
            select(Detection).where((Detection.intervention_id == case_id) | (Detection.id == found[1].id))
            .order_by(Detection.detected_at, Detection.id)
        ).all()  # fmt: skip
        case["occurrence_list"] = [
            {"detection_id": d.id, "detected_at": d.detected_at, "score": d.score, "evidence": d.evidence}
            for d in detections
        ]
        history = search(session.connection(), AuditQuery(target=target(case_id), limit=None, order="asc"))
        case["history"] = [e.as_dict() for e in history]
    return case

