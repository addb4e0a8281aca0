"""``audit search`` / ``audit export`` / ``verify --expect-head`` and the optional audit fields, on PostgreSQL."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, pool

from game_analytics.audit import AuditLog, entry_hash
from game_analytics.audit.cli import main

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def log(db_dsn: str):
    engine = create_engine(db_dsn, poolclass=pool.NullPool)
    audit = AuditLog(engine)
    for i in range(6):
        audit.append("alice" if i % 2 else "bob", "intervention.ack" if i < 3 else "report.run",
                     f"intervention/{i}" if i < 3 else f"ScheduledReport/ns/r{i}", before={"i": i}, after={"i": i + 1},
                     at=T0 + timedelta(hours=i), source="cli" if i < 3 else "worker",
                     justification="because" if i == 1 else None, approver="carol" if i == 1 else None,
                     context={"host": "h"} if i == 2 else None)  # fmt: skip
    yield audit
    engine.dispose()


def test_optional_fields_are_hashed_when_present(log: AuditLog) -> None:
    entries = list(log.entries())
    assert entries[1].justification == "because" and entries[1].approver == "carol" and entries[2].context == {
        "host": "h"}
    for name, value in [("justification", "x"), ("approver", "x"), ("source", "operator"), ("context", {"a": 1})]:
        assert entry_hash(dataclasses.replace(entries[1], **{name: value})) != entries[1].hash, name
    assert "justification" not in entries[0].content()  # rows without them hash as before the columns existed
    assert log.verify().ok


def test_search_filters(log: AuditLog, db_dsn: str, capsys) -> None:
    def seqs(*args: str) -> list[int]:
        assert main(["search", "--dsn", db_dsn, "--output", "json", *args]) == 0
        return [e["seq"] for e in json.loads(capsys.readouterr().out)]

    assert seqs() == [6, 5, 4, 3, 2, 1]
    assert seqs("--actor", "alice") == [6, 4, 2]
    assert seqs("--action", "report.*") == [6, 5, 4] and seqs("--action", "intervention.ack") == [3, 2, 1]
    assert seqs("--target", "intervention/1") == [2] and seqs("--target", "intervention/*") == [3, 2, 1]
    assert seqs("--source", "worker", "--limit", "2") == [6, 5]
    assert seqs("--since", (T0 + timedelta(hours=2)).isoformat(), "--until", "2026-11-01T15:00") == [3]
    assert main(["search", "--dsn", db_dsn, "--actor", "alice"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["SEQ", "AT", "ACTOR"] and len(table) == 4
    assert main(["search", "--dsn", db_dsn, "--since", "yesterday-ish"]) == 2
    assert "invalid time" in capsys.readouterr().err


def test_export_csv_and_json(log: AuditLog, db_dsn: str, capsys, tmp_path) -> None:
    assert main(["export", "--dsn", db_dsn, "--format", "json", "--action", "intervention.*"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["seq"] for r in rows] == [1, 2, 3] and rows[1]["approver"] == "carol" and rows[0]["after"] == {"i": 1}
    out = tmp_path / "audit.csv"
    assert main(["export", "--dsn", db_dsn, "--format", "csv", "--out", str(out)]) == 0
    table = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [int(r["seq"]) for r in table] == [1, 2, 3, 4, 5, 6]
    assert json.loads(table[2]["context"]) == {"host": "h"} and table[0]["justification"] == ""
    assert table[5]["hash"] == log.head()[1]


def test_verify_expect_head(log: AuditLog, db_dsn: str, capsys) -> None:
    seq, head = log.head()
    assert main(["verify", "--dsn", db_dsn, "--expect-head", head]) == 0
    assert main(["verify", "--dsn", db_dsn, "--expect-head", f"{seq}:{head}"]) == 0
    capsys.readouterr()
    assert main(["verify", "--dsn", db_dsn, "--expect-head", "0" * 64]) == 1
    assert "not the expected head" in capsys.readouterr().out
    assert main(["verify", "--dsn", db_dsn, "--expect-head", "abc"]) == 2
    assert "64 hex digits" in capsys.readouterr().err


def test_an_export_search_leaves_the_callers_connection_options_alone(log: AuditLog) -> None:
    """``search`` without a limit streams with a server-side cursor for its own statement only: SQLAlchemy 2's
    ``Connection.execution_options()`` changes the connection in place, and ``interventions show`` (which passes
    its session's connection) then ran every later statement of that transaction with ``stream_results``."""
    from sqlalchemy import text

    from game_analytics.audit.query import AuditQuery, search

    with log.engine.begin() as conn:
        before = dict(conn.get_execution_options())
        found = list(search(conn, AuditQuery(target="intervention/*", limit=None, order="asc")))
        assert [e.object_ref for e in found] == ["intervention/0", "intervention/1", "intervention/2"]
        assert dict(conn.get_execution_options()) == before
        assert "stream_results" not in conn.execute(text("SELECT 1")).context.execution_options
    assert [e.seq for e in log.entries(batch=2)] == [1, 2, 3, 4, 5, 6]
