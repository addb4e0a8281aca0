"""Hostile input on the ingest path: NUL and lone surrogates are rejected naming the field (issue 15), and a
poison entry the validator lets through but PostgreSQL refuses is bisected out of its batch and dead-lettered
alone, without failing the batch or restarting the worker."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
import redis
from prometheus_client import CollectorRegistry

from game_analytics.events import EVENT_TYPES, EventError, parse_event, validate_event
from game_analytics.storage.engine import libpq_dsn
from game_analytics.workers import batches
from game_analytics.workers.batches import prepare_connection, prepare_dicts, prepare_entries, write_batch
from game_analytics.workers.ingest import IngestConfig, IngestMetrics, IngestWorker
from game_analytics.workers.load import publish_events

BASE = {"occurred_at": "2024-05-01T12:00:00Z", "player_id": "p1", "game": "arena", "region": "EU"}
#: one valid event per type, every optional string field set
EXAMPLES = {
    "login": {"platform": "ios", "client_version": "1.2", "session_id": "s1"},
    "logout": {"session_id": "s1", "session_seconds": 120.5},
    "purchase": {"quantity": 2, "amount": 9.98, "currency": "EUR", "item": "cd", "item_id": "cd-1"},
    "trade": {"counterparty_id": "p2", "item_id": "sword", "quantity": 1, "value": 10},
    "currency_change": {"currency": "gold", "delta": -50, "balance_after": 950, "reason": "shop"},
    "match_result": {"home_team": "Lions", "away_team": "Tigers", "home_player_id": "p1", "away_player_id": "p2",
                     "home_score": 3, "away_score": 0, "season": "S1"},
    "error": {"code": "E1", "message": "boom", "component": "client"},
}  # fmt: skip


def example(etype: str, index: int = 0) -> dict:
    return BASE | {"event_id": f"{etype}-{index}", "event_type": etype, "payload": dict(EXAMPLES[etype])}


def string_fields(event: dict) -> list[str]:
    """Dotted paths of every string value in ``event`` except the discriminator."""
    paths = [k for k, v in event.items() if isinstance(v, str) and k != "event_type"]
    return paths + [f"payload.{k}" for k, v in event["payload"].items() if isinstance(v, str)]


def with_value(event: dict, path: str, value: str) -> dict:
    event = json.loads(json.dumps(event))
    *parents, last = path.split(".")
    target = event
    for part in parents:
        target = target[part]
    target[last] = value
    return event


CASES = [(etype, path) for etype in EVENT_TYPES for path in string_fields(example(etype))]


def test_examples_are_valid_and_cover_every_type() -> None:
    assert set(EXAMPLES) == set(EVENT_TYPES)
    for etype in EVENT_TYPES:
        assert validate_event(example(etype)).event_type == etype


@pytest.mark.parametrize("bad", ["a\x00b", "\x00", "a\ud800b", "\udfff"], ids=["nul", "only-nul", "hi", "lo"])
@pytest.mark.parametrize(("etype", "path"), CASES)
def test_nul_and_lone_surrogates_are_rejected_in_every_string(etype: str, path: str, bad: str) -> None:
    """Defect: a NUL in a free-text string (payload.message, payload.season) passed validation and then crashed
    the COPY into jsonb; a lone surrogate escape was 'malformed JSON' with no field."""
    event = with_value(example(etype), path, bad)
    for parse in (lambda: validate_event(event), lambda: parse_event(json.dumps(event).encode())):
        with pytest.raises(EventError) as info:
            parse()
        assert info.value.field == path, (info.value.reason, path)
        assert info.value.reason.startswith(f"{path}:")
        info.value.reason.encode()  # storable: no lone surrogate left in the reason


def test_an_unknown_key_with_nul_and_surrogate_gives_a_storable_field() -> None:
    raw = json.dumps(example("login") | {"x\x00\ud800": 1}).encode()
    with pytest.raises(EventError) as info:
        parse_event(raw)
    assert info.value.kind == "extra_field"
    assert info.value.field == "x\\u0000\\ud800"


@pytest.mark.parametrize("value", [7, 7.5, "7", "1700000000", True, [], {}])
def test_occurred_at_is_never_read_as_unix_seconds(value) -> None:
    """Found by the long fuzz run: a number (or a string of digits) was read as Unix seconds.  Epoch seconds and
    milliseconds are read now, but only with their 10 or 13 digits (test_event_models.py); these stay refused."""
    with pytest.raises(EventError) as info:
        parse_event(json.dumps(example("login") | {"occurred_at": value}).encode())
    assert info.value.field == "occurred_at"


def test_an_emoji_and_a_valid_surrogate_pair_are_accepted() -> None:
    event = with_value(example("error"), "payload.message", "gg \U0001f600 \u05e9\u05dc\u05d5\u05dd e\u0301")
    assert parse_event(json.dumps(event).encode()).payload.message.startswith("gg \U0001f600")


# --- PostgreSQL refuses what the validator accepted ----------------------------------------------------------


def poison_check(dsn: str) -> None:
    """A CHECK constraint the validator knows nothing of: the stand-in for any row PostgreSQL refuses."""
    with psycopg.connect(libpq_dsn(dsn)) as conn:
        conn.execute("ALTER TABLE events ADD CONSTRAINT no_poison CHECK (player_id IS DISTINCT FROM 'poison')")


def scalar(dsn: str, sql: str):
    with psycopg.connect(libpq_dsn(dsn)) as conn:
        return conn.execute(sql).fetchone()[0]


def purchases(n: int, poison_at: set[int] = frozenset()) -> list[dict]:
    return [example("purchase", i) | {"player_id": "poison" if i in poison_at else f"p{i % 97}"} for i in range(n)]


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "staged"])
def test_write_batch_bisects_out_the_rows_postgres_refuses(db_dsn, direct: bool) -> None:
    poison_check(db_dsn)
    events = purchases(1000, poison_at={0, 499, 500, 999})
    batch = prepare_dicts(enumerate(events))
    assert not batch.dead
    with psycopg.connect(libpq_dsn(db_dsn)) as conn:
        prepare_connection(conn)
        with conn.transaction():
            outcome = write_batch(conn, batch, "load:test", direct=direct)
    assert sorted(d.stream_id for d in outcome.rejected) == ["0", "499", "500", "999"]
    assert {d.kind for d in outcome.rejected} == {"database_rejected"}
    assert all("no_poison" in d.reason and "23514" in d.reason for d in outcome.rejected)
    assert json.loads(outcome.rejected[0].raw)["event_id"] == "purchase-0"
    assert (outcome.valid, sum(outcome.inserted.values()), outcome.direct) == (996, 996, False)
    assert scalar(db_dsn, "SELECT count(*) FROM events") == 996
    assert scalar(db_dsn, "SELECT count(*) FROM dead_letters WHERE reason LIKE '%no_poison%'") == 4


def test_a_nul_past_the_validator_is_dead_lettered_naming_the_column(db_dsn, monkeypatch) -> None:
    """jsonb refuses \\u0000 (22P05): with validation bypassed for one entry, that entry alone is dead-lettered,
    with the column PostgreSQL names."""
    real = batches.parse_event

    def lenient(raw):
        if b"POISON" not in raw:
            return real(raw)
        event = real(raw.replace(b"\\u0000", b""))
        return event.model_copy(update={"payload": event.payload.model_copy(update={"message": "POISON\x00"})})

    monkeypatch.setattr(batches, "parse_event", lenient)
    entries = [(f"1-{i}".encode(), [b"data", json.dumps(example("error", i)).encode()]) for i in range(10)]
    poison = with_value(example("error", 99), "payload.message", "POISON\x00")
    entries.insert(5, (b"1-99", [b"data", json.dumps(poison).encode()]))
    batch = prepare_entries(entries)
    assert not batch.dead and len(batch.rows) == 11
    with psycopg.connect(libpq_dsn(db_dsn)) as conn:
        prepare_connection(conn)
        with conn.transaction():
            outcome = write_batch(conn, batch, "s")
    [dead] = outcome.rejected
    assert (dead.stream_id, dead.field, dead.kind) == ("1-99", "payload", "database_rejected")
    assert dead.reason.startswith("payload: rejected by PostgreSQL (22P05)")
    assert scalar(db_dsn, "SELECT count(*) FROM events") == 10


def test_one_poison_in_5000_gives_one_dead_letter_and_4999_stored_without_restart(db_dsn, redis_url) -> None:
    """Defect: a row PostgreSQL refused failed the whole batch; the worker crashed, re-read the same pending
    batch and crash-looped."""
    poison_check(db_dsn)
    stream = f"events-{uuid.uuid4().hex[:8]}"
    publish_events(purchases(5000, poison_at={3217}), redis_url, stream=stream)
    config = IngestConfig(redis_url=redis_url, dsn=db_dsn, stream=stream, consumer="c1", batch_size=5000)
    with IngestWorker(config, IngestMetrics(CollectorRegistry())) as worker:
        assert worker.run(until_idle=True) == 5000  # one run: nothing raised
        assert worker.metrics.dead_letters.labels("database_rejected")._value.get() == 1
    assert scalar(db_dsn, "SELECT count(*) FROM events") == 4999
    with psycopg.connect(libpq_dsn(db_dsn)) as conn:
        [(raw, reason, field)] = conn.execute("SELECT raw_payload, reason, field FROM dead_letters").fetchall()
    assert json.loads(bytes(raw))["event_id"] == "purchase-3217"
    assert "no_poison" in reason and field is None
    client = redis.Redis.from_url(redis_url)
    try:
        assert int(client.xpending(stream, "ingest")["pending"]) == 0
        [(_, fields)] = client.xrange(f"{stream}-dead")
        assert b"no_poison" in fields[b"reason"]
    finally:
        client.close()
