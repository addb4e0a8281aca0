"""The queue and audit-chain gauges on the real PostgreSQL: bounded labels, oldest age, the chain's head."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, pool, text
from sqlalchemy.orm import Session

from game_analytics.audit import AuditLog
from game_analytics.interventions import service
from game_analytics.interventions.detections import NewDetection, record_detections
from game_analytics.interventions.metrics import QueueCollector
from game_analytics.monitoring import names


def test_queue_and_chain_gauges(db_dsn: str) -> None:
    engine = create_engine(db_dsn, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            for subject, priority, category in (("a", 1, "economic"), ("b", 1, "economic"), ("c", 3, "player")):
                record_detections(conn, f"games/{subject}", category, "info", priority,
                                  [NewDetection(subject, subject, 1.0, {"subject": subject})])  # fmt: skip
            conn.execute(text("UPDATE interventions SET created_at = now() - interval '2 hours' "
                              "WHERE category = 'player'"))  # fmt: skip
        with Session(engine) as session:
            first = service.resolve(session, [1], "actioned", "done", service.Actor("alice"))[0]
        assert first.ok
        registry = CollectorRegistry()
        registry.register(QueueCollector(engine, ttl=0))
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for f in text_string_to_metric_families(generate_latest(registry).decode())
                   for s in f.samples}  # fmt: skip
        assert samples[(names.CASES_OPEN, (("category", "economic"), ("priority", "1")))] == 1
        assert samples[(names.CASES_OPEN, (("category", "player"), ("priority", "3")))] == 1
        assert samples[(names.CASE_OLDEST_OPEN_AGE, (("priority", "3"),))] >= 7200
        assert samples[(names.CASE_OLDEST_OPEN_AGE, (("priority", "2"),))] == 0
        seq, digest = AuditLog(engine).head()
        assert samples[(names.AUDIT_CHAIN_LENGTH, ())] == seq == 4
        assert samples[(names.AUDIT_CHAIN_HEAD, ())] == int(digest[:13], 16)
    finally:
        engine.dispose()


def test_unacknowledged_age_and_time_to_ack_and_resolve_histograms(db_dsn: str) -> None:
    engine = create_engine(db_dsn, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            for subject in ("a", "b", "c"):
                record_detections(conn, "games/r", "player", "critical", 1,
                                  [NewDetection(subject, subject, 1.0, {"subject": subject})])  # fmt: skip
            conn.execute(text("UPDATE interventions SET created_at = now() - interval '20 minutes'"))
        with Session(engine) as session:
            assert service.acknowledge(session, 1, service.Actor("alice")).ok  # acked after ~1200 s
        with Session(engine) as session:
            assert service.resolve(session, [1], "actioned", "done", service.Actor("alice"))[0].ok
        with Session(engine) as session:
            assert service.resolve(session, [2], "false-positive", "noise", service.Actor("bob"))[0].ok
        registry = CollectorRegistry()
        registry.register(QueueCollector(engine, ttl=0))
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for f in text_string_to_metric_families(generate_latest(registry).decode())
                   for s in f.samples}  # fmt: skip
        p1 = (("category", "player"), ("priority", "1"))
        assert 1200 <= samples[(names.CASE_OLDEST_UNACKED_AGE, (("priority", "1"),))] < 1300  # case 3
        assert samples[(names.CASE_OLDEST_UNACKED_AGE, (("priority", "2"),))] == 0
        assert samples[(names.TIME_TO_ACK + "_count", p1)] == 1
        assert samples[(names.TIME_TO_ACK + "_bucket", (*p1[:1], ("le", "900.0"), p1[1]))] == 0
        assert samples[(names.TIME_TO_ACK + "_bucket", (*p1[:1], ("le", "1800.0"), p1[1]))] == 1
        assert samples[(names.TIME_TO_RESOLVE + "_count", p1)] == 2
        assert 2400 <= samples[(names.TIME_TO_RESOLVE + "_sum", p1)] < 2600
        assert samples[(names.TIME_TO_RESOLVE + "_bucket", (*p1[:1], ("le", "+Inf"), p1[1]))] == 2
    finally:
        engine.dispose()
