"""Hash-chained audit log: tamper detection (pure and on real PostgreSQL) and the append-only trigger."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.exc import DBAPIError

from game_analytics.audit import GENESIS_HASH, AuditEntry, AuditLog, canonical_json, entry_hash, verify_chain

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def build_chain(n: int) -> list[AuditEntry]:
    chain, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        draft = AuditEntry(seq, T0 + timedelta(seconds=seq), "alice", "update", f"RankingJob/ns/job{seq}",
                           {"k": seq}, {"k": seq + 1}, prev, "")  # fmt: skip
        entry = dataclasses.replace(draft, hash=entry_hash(draft))
        chain.append(entry)
        prev = entry.hash
    return chain


def test_canonical_json_is_order_independent_and_strict() -> None:
    assert canonical_json({"b": 1, "a": [1, "é"]}) == canonical_json({"a": [1, "é"], "b": 1})
    assert canonical_json({"a": "é"}) == '{"a":"é"}'.encode()
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_intact_chain_verifies() -> None:
    result = verify_chain(build_chain(6))
    assert result.ok and result.checked == 6 and result.first_bad_seq is None


def test_hash_covers_every_field() -> None:
    entry = build_chain(1)[0]
    for name, value in [("seq", 2), ("at", T0), ("actor", "bob"), ("action", "delete"), ("object_ref", "x"),
                        ("before", {"k": 0}), ("after", None), ("prev_hash", "1" * 64)]:  # fmt: skip
        assert entry_hash(dataclasses.replace(entry, **{name: value})) != entry.hash, name


@pytest.mark.parametrize(
    ("tamper", "bad_seq"),
    [
        (lambda c: c[:3] + [dataclasses.replace(c[3], after={"k": 999})] + c[4:], 4),  # edited
        (lambda c: c[:2] + c[3:], 3),  # deleted seq 3
        (lambda c: c[:2] + [c[3], c[2]] + c[4:], 3),  # reordered (storage order)
        (
            lambda c: (
                c[:1] + [dataclasses.replace(c[4], seq=2), *c[2:4], dataclasses.replace(c[1], seq=5)] + c[5:]
            ),
            2,
        ),
    ],
    ids=["edited", "deleted", "reordered", "seq-swapped"],
)
def test_pure_verify_finds_first_bad_seq(tamper, bad_seq: int) -> None:
    result = verify_chain(tamper(build_chain(6)))
    assert not result.ok
    assert result.first_bad_seq == bad_seq, result.problem


def test_anchor_detects_truncated_tail() -> None:
    chain = build_chain(5)
    anchor = (5, chain[-1].hash)
    assert verify_chain(chain[:4]).ok  # the bare chain cannot see a cut tail ...
    result = verify_chain(chain[:4], anchor=anchor)  # ... an anchor can
    assert not result.ok and result.first_bad_seq == 5
    assert verify_chain(chain, anchor=anchor).ok


# --- on PostgreSQL --------------------------------------------------------------------------------------------


@pytest.fixture
def engine(db_dsn: str):
    eng = create_engine(db_dsn, poolclass=pool.NullPool)
    yield eng
    eng.dispose()


@pytest.fixture
def log(engine) -> AuditLog:
    audit = AuditLog(engine)
    for i in range(1, 9):
        audit.append("operator", "reconcile", f"ScheduledReport/default/r{i}",
                     before={"replicas": i, "ratio": 0.1 * i, "name": "naïve"} if i > 1 else None,
                     after={"replicas": i + 1, "nested": {"z": [1, 2.5, None], "a": True}, "big": 1e20})  # fmt: skip
    return audit


def attack(engine, *statements: str) -> None:
    """Tamper as a superuser would: disable the append-only trigger first."""
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
        for statement in statements:
            conn.execute(text(statement))
        conn.execute(text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only"))


def test_appended_chain_round_trips_and_verifies(log: AuditLog) -> None:
    entries = list(log.entries())
    assert [e.seq for e in entries] == list(range(1, 9))
    assert entries[0].prev_hash == GENESIS_HASH and entries[0].before is None
    assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:], strict=False))
    assert entries[2].after["nested"] == {"z": [1, 2.5, None], "a": True}
    result = log.verify(anchor=log.head())
    assert result.ok and result.checked == 8


def test_trigger_rejects_update_and_delete(log: AuditLog, engine) -> None:
    for statement in (
        "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2",
        "DELETE FROM audit_log WHERE seq = 8",
    ):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    assert log.verify().ok


def test_detects_edited_row(log: AuditLog, engine) -> None:
    attack(engine, "UPDATE audit_log SET after = jsonb_set(after, '{replicas}', '100') WHERE seq = 5")
    result = log.verify()
    assert (result.ok, result.first_bad_seq) == (False, 5), result.problem


def test_detects_deleted_row(log: AuditLog, engine) -> None:
    attack(engine, "DELETE FROM audit_log WHERE seq = 4")
    result = log.verify()
    assert (result.ok, result.first_bad_seq) == (False, 4), result.problem
    assert "missing" in result.problem


def test_detects_reordered_rows(log: AuditLog, engine) -> None:
    attack(engine, "UPDATE audit_log SET seq = -3 WHERE seq = 3", "UPDATE audit_log SET seq = 3 WHERE seq = 6",
           "UPDATE audit_log SET seq = 6 WHERE seq = -3")  # fmt: skip
    result = log.verify()
    assert (result.ok, result.first_bad_seq) == (False, 3), result.problem


def test_detects_truncated_tail_with_anchor(log: AuditLog, engine) -> None:
    anchor = log.head()
    attack(engine, "DELETE FROM audit_log WHERE seq >= 7")
    assert log.verify().ok  # undetectable without an anchor: documented limitation
    result = log.verify(anchor=anchor)
    assert (result.ok, result.first_bad_seq) == (False, 7)


def test_append_continues_chain_after_reconnect(log: AuditLog, engine) -> None:
    previous_head = log.head()
    again = AuditLog(engine)
    entry = again.append("alice", "delete", "RankingJob/x/y", before={"a": 1})
    assert (entry.seq, entry.prev_hash) == (9, previous_head[1])
    assert again.head() == (9, entry.hash)
    assert again.verify().ok


def test_cli_verify_and_head(log: AuditLog, engine, db_dsn: str, capsys) -> None:
    from game_analytics.audit import main

    assert main(["head", "--dsn", db_dsn]) == 0
    anchor = capsys.readouterr().out.strip()
    assert anchor == f"8:{log.head()[1]}"
    assert main(["verify", "--dsn", db_dsn, "--anchor", anchor]) == 0
    assert "8 entries" in capsys.readouterr().out
    attack(engine, "DELETE FROM audit_log WHERE seq = 8")
    assert main(["verify", "--dsn", db_dsn]) == 0  # a cut tail needs the anchor
    capsys.readouterr()
    assert main(["verify", "--dsn", db_dsn, "--anchor", anchor]) == 1
    assert "BROKEN at seq 8" in capsys.readouterr().out


def test_cli_verify_and_head_print_json_with_output_json(log: AuditLog, engine, db_dsn: str, capsys) -> None:
    """``--output json`` (docs/cli.md) on the two commands that print one result: head and verify."""
    import json

    from game_analytics.audit import main

    assert main(["head", "--dsn", db_dsn, "--output", "json"]) == 0
    head = json.loads(capsys.readouterr().out)
    assert head == {"seq": 8, "hash": log.head()[1]}
    anchor = f"{head['seq']}:{head['hash']}"
    assert main(["verify", "--dsn", db_dsn, "--anchor", anchor, "--output", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True, "checked": 8, "firstBadSeq": None, "problem": None}
    attack(engine, "DELETE FROM audit_log WHERE seq = 8")
    assert main(["verify", "--dsn", db_dsn, "--anchor", anchor, "--output", "json"]) == 1
    broken = json.loads(capsys.readouterr().out)
    assert broken["ok"] is False and broken["firstBadSeq"] == 8 and broken["problem"]
    attack(engine, "DELETE FROM audit_log")
    assert main(["head", "--dsn", db_dsn, "--output", "json"]) == 0
    assert json.loads(capsys.readouterr().out) is None
