"""What a detection does to the queue: open a case, or link a repeat offence to the subject's open case.

Called by the detection worker inside its per-rule transaction (:func:`record_detections`).  For each flagged
subject of a rule:

- no open or in-progress case of this rule for the subject: a ``detections`` row and a new ``open`` case
  (``occurrences`` 1, first and last seen = the detection time), audited as ``intervention.open``;
- an open case exists and the evidence differs from that case's latest occurrence (ignoring ``as_of``; numbers
  compared to a relative 1e-9, :func:`same_evidence`): the
  detection is recorded, linked to the case (``detections.intervention_id``), and the case's ``occurrences``,
  ``last_seen_at`` and ``version`` move on, audited as ``intervention.occurrence``;
- an open case exists with the same evidence: the same offence is still inside the detector's window; nothing
  is written (otherwise every pass would add an occurrence for one offence).

Auto-resolve (only for a rule with ``autoResolveAfter``, given as ``auto_resolve_after``): an open or
in-progress case whose subject the pass does not flag gets ``clear_since`` = the pass's ``as_of`` (once; a
subject flagged again clears it); a case clear since at least ``auto_resolve_after`` before ``as_of`` is
resolved as ``auto-cleared`` by the worker, audited as ``intervention.resolve`` (``context.auto_resolve``).

The rule's advisory lock serialises concurrent workers on a rule; cases are locked in id order and every audit
entry is appended after the row changes, the same order as the admin commands, so the two cannot deadlock.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, text

from game_analytics.audit import append_entry
from game_analytics.interventions.service import target

__all__ = ["WORKER_ACTOR", "NewDetection", "Recorded", "record_detections", "same_evidence"]

#: Actor of the audit entries the detection worker writes (source ``worker``).
WORKER_ACTOR = "detection-worker"
#: Relative tolerance of :func:`same_evidence` for numbers.
EVIDENCE_REL_TOL = 1e-9

_CASE_COLUMNS = """i.id, i.status::text AS status, i.assignee, i.resolution, i.priority, i.category, i.version,
    i.acknowledged_at, i.acknowledged_by, i.resolved_at, i.resolved_by, i.occurrences, i.last_seen_at"""


@dataclass(frozen=True)
class NewDetection:
    """One flagged subject: ``subject`` (the case key within the rule), ``player_id``, ``score``, ``evidence``."""

    subject: str
    player_id: str | None
    score: float
    evidence: dict[str, Any]


@dataclass
class Recorded:
    """Outcome of :func:`record_detections`: ids of the cases ``opened``, ``linked`` (repeat offences) and
    ``resolved`` (auto-cleared), how many findings were ``unchanged`` (same offence still in the window), and
    ``cases``: subject -> the id of its open case, for every subject found."""

    opened: list[int] = field(default_factory=list)
    linked: list[int] = field(default_factory=list)
    unchanged: int = 0
    resolved: list[int] = field(default_factory=list)
    cases: dict[str, int] = field(default_factory=dict)

    @property
    def inserted(self) -> int:
        """Detections written."""
        return len(self.opened) + len(self.linked)


def same_evidence(a: Any, b: Any, rel_tol: float = EVIDENCE_REL_TOL) -> bool:
    """Whether two evidence documents (JSON values: dicts, lists, numbers, strings ...) describe the same offence:
    equal structure and strings, numbers equal to ``rel_tol`` (relative).

    Why a tolerance: the detectors sum ``float8`` in PostgreSQL, and a parallel plan adds the workers' partial sums
    in the order they arrive, so the same rows can give a sum differing in its last bits from one pass to the next
    (tests/workers/test_detection.py forces such plans).  Booleans compare exactly.
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=rel_tol, abs_tol=rel_tol)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_evidence(a[k], b[k], rel_tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_evidence(x, y, rel_tol) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _snapshot(row: Any) -> dict[str, Any]:
    data = dict(row._mapping)
    data.pop("id", None)
    for key in ("acknowledged_at", "resolved_at", "last_seen_at"):
        data[key] = None if data[key] is None else data[key].isoformat()
    return data


def _insert_detection(conn: Connection, rule: str, category: str, severity: str, found: NewDetection,
                      case_id: int | None) -> tuple[int, Any]:  # fmt: skip
    return conn.execute(text("""
        INSERT INTO detections (rule, category, severity, player_id, score, evidence, intervention_id)
        VALUES (:rule, :category, :severity, :player_id, :score, CAST(:evidence AS jsonb), :case)
        RETURNING id, detected_at"""),
        {"rule": rule, "category": category, "severity": severity, "player_id": found.player_id,
         "score": found.score, "evidence": json.dumps(found.evidence, default=str), "case": case_id}).one()  # fmt: skip


def record_detections(conn: Connection, rule: str, category: str, severity: str, priority: int,
                      found: Sequence[NewDetection], *, actor: str = WORKER_ACTOR,
                      context: dict[str, Any] | None = None, as_of: datetime | None = None,
                      auto_resolve_after: timedelta | None = None) -> Recorded:  # fmt: skip
    """Open cases and link repeat offences for ``found`` (inside the caller's transaction on ``conn``).

    ``priority`` is the new cases' priority (1 = most urgent); ``context`` goes into every audit entry.  With
    ``auto_resolve_after`` and ``as_of`` (the pass's evaluation time, timezone-aware) cases whose subject is not
    in ``found`` are tracked and auto-resolved (see the module docstring).  Returns what was written.
    """
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:rule))"), {"rule": rule})
    open_cases = {r.subject: r for r in conn.execute(text("""
        SELECT DISTINCT ON (od.evidence->>'subject') od.evidence->>'subject' AS subject, i.id,
               (SELECT d.evidence - 'as_of' FROM detections d WHERE d.intervention_id = i.id OR d.id = i.detection_id
                ORDER BY d.detected_at DESC, d.id DESC LIMIT 1) AS last_evidence
        FROM interventions i JOIN detections od ON od.id = i.detection_id
        WHERE od.rule = :rule AND i.status IN ('open', 'in_progress')
        ORDER BY od.evidence->>'subject', i.id"""), {"rule": rule})}  # fmt: skip
    result, audits = Recorded(), []
    if auto_resolve_after is not None and as_of is not None:
        audits += _auto_resolve(conn, rule, open_cases, {f.subject for f in found}, as_of, auto_resolve_after,
                                actor, result)  # fmt: skip
    repeats = sorted((f for f in found if f.subject in open_cases), key=lambda f: open_cases[f.subject].id)
    for item in repeats:
        case = open_cases[item.subject]
        result.cases[item.subject] = case.id
        evidence = conn.execute(text("SELECT CAST(:e AS jsonb) - 'as_of'"),
                                {"e": json.dumps(item.evidence, default=str)}).scalar_one()  # fmt: skip
        if same_evidence(evidence, case.last_evidence):
            result.unchanged += 1
            continue
        before = _snapshot(conn.execute(text(f"SELECT {_CASE_COLUMNS} FROM interventions i WHERE i.id = :id "
                                             "FOR UPDATE"), {"id": case.id}).one())  # fmt: skip
        detection_id, seen = _insert_detection(conn, rule, category, severity, item, case.id)
        after = _snapshot(conn.execute(text(f"""
            UPDATE interventions i SET occurrences = occurrences + 1, last_seen_at = greatest(last_seen_at, :seen),
                   version = version + 1, updated_at = now()
            WHERE i.id = :id RETURNING {_CASE_COLUMNS}"""), {"id": case.id, "seen": seen}).one())  # fmt: skip
        case_context = {"detection_id": detection_id, "rule": rule, "subject": item.subject, "score": item.score}
        audits.append(("intervention.occurrence", case.id, before, after, case_context))
        result.linked.append(case.id)
    for item in (f for f in found if f.subject not in open_cases):
        detection_id, seen = _insert_detection(conn, rule, category, severity, item, None)
        row = conn.execute(text(f"""
            INSERT INTO interventions AS i (detection_id, priority, category, status, first_seen_at, last_seen_at)
            VALUES (:id, :priority, :category, 'open', :seen, :seen) RETURNING {_CASE_COLUMNS}"""),
            {"id": detection_id, "priority": priority, "category": category, "seen": seen}).one()  # fmt: skip
        conn.execute(text("UPDATE detections SET intervention_id = :case WHERE id = :id"),
                     {"case": row.id, "id": detection_id})  # fmt: skip
        open_cases[item.subject] = row  # a subject flagged twice in one pass opens one case
        result.cases[item.subject] = row.id
        case_context = {"detection_id": detection_id, "rule": rule, "subject": item.subject, "score": item.score}
        audits.append(("intervention.open", row.id, None, _snapshot(row), case_context))
        result.opened.append(row.id)
    for action, case_id, before, after, case_context, *why in audits:  # audit last: every row lock is held
        append_entry(conn, actor, action, target(case_id), before, after, source="worker",
                     context={**(context or {}), **case_context}, justification=why[0] if why else None)  # fmt: skip
    return result


def _auto_resolve(conn: Connection, rule: str, open_cases: dict[str, Any], flagged: set[str], as_of: datetime,
                  after: timedelta, actor: str, result: Recorded) -> list[tuple[Any, ...]]:  # fmt: skip
    """Track ``clear_since`` of the rule's open cases and resolve those clear for ``after``; returns their audit
    tuples ``(action, case id, before, after, context, justification)`` (appended later by the caller)."""
    still = [c.id for s, c in open_cases.items() if s in flagged]
    clear = [c.id for s, c in open_cases.items() if s not in flagged]
    if still:
        conn.execute(text("UPDATE interventions SET clear_since = NULL WHERE id = ANY(:ids) AND clear_since IS NOT "
                          "NULL"), {"ids": still})  # fmt: skip
    if not clear:
        return []
    conn.execute(text("UPDATE interventions SET clear_since = :as_of WHERE id = ANY(:ids) AND clear_since IS NULL"),
                 {"ids": clear, "as_of": as_of})  # fmt: skip
    due = conn.execute(text(f"""
        SELECT {_CASE_COLUMNS}, i.clear_since FROM interventions i
        WHERE i.id = ANY(:ids) AND i.status IN ('open', 'in_progress') AND i.clear_since <= :cutoff
        ORDER BY i.id FOR UPDATE"""), {"ids": clear, "cutoff": as_of - after}).all()  # fmt: skip
    audits = []
    subjects = {c.id: s for s, c in open_cases.items()}
    for row in due:
        before = _snapshot(row)
        before.pop("clear_since", None)
        changed = _snapshot(conn.execute(text(f"""
            UPDATE interventions i SET status = 'resolved', resolution = 'auto-cleared', resolved_at = now(),
                   resolved_by = :actor, version = version + 1, updated_at = now()
            WHERE i.id = :id RETURNING {_CASE_COLUMNS}"""), {"id": row.id, "actor": actor}).one())  # fmt: skip
        since = row.clear_since.isoformat()
        why = f"condition clear since {since} (autoResolveAfter {int(after.total_seconds())}s)"
        case_context = {"rule": rule, "subject": subjects[row.id],
                        "auto_resolve": {"clear_since": since, "after_seconds": after.total_seconds()}}  # fmt: skip
        audits.append(("intervention.resolve", row.id, before, changed, case_context, why))
        result.resolved.append(row.id)
        del open_cases[subjects[row.id]]  # a subject flagged again later opens a new case
    return audits
