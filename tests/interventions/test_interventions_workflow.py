"""The on-call workflow on the real PostgreSQL: a case's whole life, the CLI's rules and exit codes, both-or-neither."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, pool, text
from sqlalchemy.orm import Session

from game_analytics.audit import AuditLog
from game_analytics.audit.cli import main as audit_main
from game_analytics.interventions import service
from game_analytics.interventions.cli import main as cli
from game_analytics.interventions.detections import NewDetection, record_detections

RULE = "games/wealth-jump"


@pytest.fixture
def engine(db_dsn: str) -> Iterator[Engine]:
    eng = create_engine(db_dsn, poolclass=pool.NullPool)
    yield eng
    eng.dispose()


def detect(engine: Engine, subject: str, wealth: float, rule: str = RULE, severity: str = "critical",
           game: str = "cdnow"):  # fmt: skip
    evidence = {"subject": subject, "game": game, "wealth_after": wealth, "detector": "suddenWealthChange",
                "as_of": "2026-12-01T00:00:00+00:00"}  # fmt: skip
    with engine.begin() as conn:
        return record_detections(conn, rule, "player", severity, {"critical": 1, "warning": 2, "info": 3}[severity],
                                 [NewDetection(subject, subject, wealth / 100, evidence)],
                                 context={"pass_as_of": "2026-12-01T00:00:00+00:00"})  # fmt: skip


def run(capsys, *argv: str) -> tuple[int, Any]:
    code = cli(list(argv))
    out = capsys.readouterr()
    try:
        return code, json.loads(out.out) if out.out.strip() else out.err
    except json.JSONDecodeError:
        return code, out.out + out.err


def history(engine: Engine, case_id: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(
            "SELECT seq, actor, action, before, after, justification, approver, source, context FROM audit_log "
            "WHERE object_ref = :t ORDER BY seq"), {"t": f"intervention/{case_id}"}).mappings()]  # fmt: skip


def test_a_case_whole_life(engine: Engine, db_dsn: str, capsys) -> None:
    opened = detect(engine, "cdnow-04242", 50_000)
    assert opened.inserted == 1 and len(opened.opened) == 1
    case_id = opened.opened[0]
    # the same offence still in the window: nothing new; a new figure: a repeat offence linked to the case
    assert detect(engine, "cdnow-04242", 50_000).inserted == 0
    repeat = detect(engine, "cdnow-04242", 90_000)
    assert repeat.linked == [case_id] and repeat.opened == []

    dsn = ["--dsn", db_dsn, "--output", "json"]
    code, listed = run(capsys, "list", *dsn, "--priority", "critical")
    assert code == 0 and [(c["id"], c["occurrences"], c["status"]) for c in listed] == [(case_id, 2, "open")]
    assert listed[0]["first_seen_at"] < listed[0]["last_seen_at"] and listed[0]["game"] == "cdnow"

    code, rows = run(capsys, "assign", str(case_id), "carol", *dsn, "--actor", "alice")
    assert code == 0 and rows[0]["after"]["assignee"] == "carol" and rows[0]["before"]["assignee"] is None
    code, rows = run(capsys, "ack", str(case_id), *dsn, "--actor", "carol")
    assert code == 0 and rows[0]["after"]["status"] == "in_progress" and rows[0]["after"]["acknowledged_by"] == "carol"
    code, rows = run(capsys, "comment", str(case_id), "called the player", *dsn, "--actor", "carol")
    assert code == 0
    code, rows = run(capsys, "resolve", str(case_id), "-r", "actioned", "-j", "refunded, account locked", *dsn,
                     "--actor", "carol")  # fmt: skip
    assert code == 0 and rows[0]["after"]["status"] == "resolved" and rows[0]["after"]["resolution"] == "actioned"

    trail = history(engine, case_id)
    assert [(e["actor"], e["action"], e["source"]) for e in trail] == [
        ("detection-worker", "intervention.open", "worker"),
        ("detection-worker", "intervention.occurrence", "worker"),
        ("alice", "intervention.assign", "cli"),
        ("carol", "intervention.ack", "cli"),
        ("carol", "intervention.comment", "cli"),
        ("carol", "intervention.resolve", "cli"),
    ]
    assert trail[0]["before"] is None and trail[0]["after"]["status"] == "open"
    assert (trail[1]["before"]["occurrences"], trail[1]["after"]["occurrences"]) == (1, 2)
    assert trail[1]["context"]["detection_id"] and trail[1]["context"]["pass_as_of"]
    assert trail[3]["before"]["status"] == "open" and trail[3]["after"]["status"] == "in_progress"
    assert trail[4]["after"] == {"comment": "called the player"}
    assert trail[5]["justification"] == "refunded, account locked" and trail[5]["before"]["status"] == "in_progress"
    assert [e["after"]["version"] for e in trail if e["action"] != "intervention.comment"] == [1, 2, 3, 4, 5]

    code, shown = run(capsys, "show", str(case_id), *dsn)
    assert code == 0 and len(shown["occurrence_list"]) == 2 and len(shown["history"]) == 6
    assert [o["evidence"]["wealth_after"] for o in shown["occurrence_list"]] == [50_000, 90_000]
    code, listed = run(capsys, "list", *dsn)
    assert code == 0 and listed == []  # resolved: out of the default (open) queue

    # after resolution a new detection opens a new case
    assert detect(engine, "cdnow-04242", 90_000).opened not in ([], [case_id])
    head = AuditLog(engine).head()
    assert audit_main(["verify", "--dsn", db_dsn, "--expect-head", head[1]]) == 0
    assert "head as expected" in capsys.readouterr().out


def test_rules_of_the_cli_and_exit_codes(engine: Engine, db_dsn: str, capsys) -> None:
    ids = [detect(engine, f"p{i}", 1000.0 * (i + 1)).opened[0] for i in range(3)]
    dsn = ["--dsn", db_dsn, "--actor", "alice"]
    # resolve needs a justification and a known resolution (usage errors: exit 2, nothing written)
    assert cli(["resolve", str(ids[0]), "-r", "actioned", *dsn]) == 2
    assert "justification" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        cli(["resolve", str(ids[0]), "-r", "fixed", "-j", "x", *dsn])
    assert exit_.value.code == 2
    capsys.readouterr()
    # bulk resolve needs a second person
    assert cli(["resolve", *map(str, ids[:2]), "-r", "duplicate", "-j", "same ring", *dsn]) == 2
    assert cli(["resolve", *map(str, ids[:2]), "-r", "duplicate", "-j", "same ring", *dsn,
                "--approved-by", "alice"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "--approved-by" in err and "someone other than the actor" in err and len(err.strip().splitlines()) == 2
    assert [len(history(engine, i)) for i in ids] == [1, 1, 1]  # only the opening entries
    assert cli(["resolve", *map(str, ids[:2]), "-r", "duplicate", "-j", "same ring", *dsn,
                "--approved-by", "bob"]) == 0  # fmt: skip
    capsys.readouterr()
    bulk = [history(engine, i)[-1] for i in ids[:2]]
    assert all(e["approver"] == "bob" and e["context"]["bulk"] == 2 for e in bulk)
    # acting on a resolved case is a conflict: exit 1, recorded
    assert cli(["ack", str(ids[0]), *dsn]) == 1
    assert "CONFLICT: already resolved by alice" in capsys.readouterr().out
    assert history(engine, ids[0])[-1]["action"] == "intervention.ack.conflict"
    # reopening a resolved case needs an approver other than the actor
    assert cli(["reopen", str(ids[0]), "-j", "came back", *dsn]) == 2
    assert cli(["reopen", str(ids[0]), "-j", "came back", *dsn, "--approved-by", "bob"]) == 0
    capsys.readouterr()
    reopened = history(engine, ids[0])[-1]
    assert (reopened["before"]["status"], reopened["after"]["status"]) == ("resolved", "open")
    assert reopened["after"]["resolution"] is None and reopened["approver"] == "bob"
    # a stale --if-version is a conflict; a missing case is a failure; both one line on stderr
    assert cli(["assign", str(ids[2]), "dave", *dsn, "--if-version", "7"]) == 1
    assert "changed meanwhile" in capsys.readouterr().out
    assert cli(["ack", "999999", *dsn]) == 1
    assert capsys.readouterr().err.strip() == "game-analytics interventions: error: no intervention 999999"
    assert cli(["list", "--dsn", db_dsn, "--older-than", "soon"]) == 2
    assert "invalid duration" in capsys.readouterr().err


def test_list_filters(engine: Engine, db_dsn: str, capsys) -> None:
    a = detect(engine, "p1", 1000, rule="games/a", severity="critical", game="mmo").opened[0]
    b = detect(engine, "p2", 1000, rule="games/b", severity="info", game="cdnow").opened[0]
    with Session(engine) as session:
        service.assign(session, b, "erin", service.Actor("alice"))

    def ids(*args: str) -> list[int]:
        code, rows = run(capsys, "list", "--dsn", db_dsn, "--output", "json", *args)
        assert code == 0, rows
        return [r["id"] for r in rows]

    assert ids() == [a, b]  # by priority
    assert ids("--rule", "games/b") == [b] and ids("--game", "mmo") == [a]
    assert ids("--detector", "suddenWealthChange") == [a, b] and ids("--detector", "loginAnomaly") == []
    assert ids("--priority", "3") == [b] and ids("--priority", "info", "--priority", "critical") == [a, b]
    assert ids("--assignee", "erin") == [b] and ids("--assignee", "-") == [a]
    assert ids("--older-than", "1h") == [] and ids("--newer-than", "1h") == [a, b]
    assert ids("--status", "resolved") == [] and ids("--status", "all", "--limit", "1") == [a]
    code, table = run(capsys, "list", "--dsn", db_dsn)
    assert code == 0 and table.splitlines()[0].split()[:3] == ["ID", "SEVERITY", "STATUS"] and "erin" in table


def test_change_and_audit_entry_commit_together(engine: Engine) -> None:
    """If the audit entry cannot be written, the change is rolled back too (both or neither)."""
    case_id = detect(engine, "p1", 1000).opened[0]
    with engine.begin() as conn:
        conn.execute(text("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                          "RAISE EXCEPTION 'audit store unavailable'; END $$"))  # fmt: skip
        conn.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION refuse()"))
    with Session(engine) as session, pytest.raises(Exception, match="audit store unavailable"):
        service.resolve(session, [case_id], "actioned", "done", service.Actor("alice"))
    with engine.connect() as conn:
        status, version = conn.execute(text("SELECT status::text, version FROM interventions WHERE id = :i"),
                                       {"i": case_id}).one()  # fmt: skip
    assert (status, version) == ("open", 1)
