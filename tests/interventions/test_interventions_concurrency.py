"""Two admins resolving the same case at once: one resolution, two audit entries, the second a conflict."""

from __future__ import annotations

import threading
import time

from sqlalchemy import create_engine, pool, text
from sqlalchemy.orm import Session

from game_analytics.audit import AuditLog
from game_analytics.interventions import service
from game_analytics.interventions.detections import NewDetection, record_detections


def test_concurrent_resolves_leave_one_resolution_and_a_recorded_conflict(db_dsn: str) -> None:
    engine = create_engine(db_dsn, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            case_id = record_detections(conn, "games/r", "player", "critical", 1,
                                        [NewDetection("p1", "p1", 9.0, {"subject": "p1"})]).opened[0]  # fmt: skip
        outcomes: dict[str, service.Outcome] = {}
        errors: list[BaseException] = []

        def admin(name: str, resolution: str) -> None:
            try:
                with Session(engine) as session:
                    outcomes[name] = service.resolve(session, [case_id], resolution, f"{name} says so",
                                                     service.Actor(name))[0]  # fmt: skip
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        # hold the case's row lock so that both admins are inside their transactions, waiting, at the same time
        with engine.connect() as holder:
            holder.execute(text("SELECT 1 FROM interventions WHERE id = :i FOR UPDATE"), {"i": case_id})
            threads = [threading.Thread(target=admin, args=a) for a in (("alice", "actioned"),
                                                                        ("bob", "false-positive"))]  # fmt: skip
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 20
            with engine.connect() as probe:
                while probe.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                         "AND datname = current_database()")).scalar_one() < 2:  # fmt: skip
                    assert time.monotonic() < deadline, "the two admins never waited on the case together"
                    time.sleep(0.02)
                    probe.rollback()
            holder.rollback()
        for thread in threads:
            thread.join(20)
        assert errors == []
        winner, loser = sorted(outcomes.values(), key=lambda o: o.entry.seq)
        assert winner.ok and not loser.ok and "already resolved by" in loser.conflict
        assert winner.entry.action == "intervention.resolve"
        assert loser.entry.action == "intervention.resolve.conflict" and loser.entry.after == loser.entry.before
        assert loser.entry.context["conflict"] == loser.conflict and loser.entry.before["status"] == "resolved"
        with engine.connect() as conn:
            row = conn.execute(text("SELECT status::text, resolution, resolved_by, version FROM interventions "
                                    "WHERE id = :i"), {"i": case_id}).one()  # fmt: skip
            actions = conn.execute(text("SELECT action FROM audit_log WHERE object_ref = :t ORDER BY seq"),
                                   {"t": f"intervention/{case_id}"}).scalars().all()  # fmt: skip
        assert row == ("resolved", winner.after["resolution"], winner.entry.actor, 2)
        assert actions == ["intervention.open", "intervention.resolve", "intervention.resolve.conflict"]
        assert AuditLog(engine).verify().ok
    finally:
        engine.dispose()
