"""Event models: the shapes the data loaders produce are accepted; bad input is rejected naming the field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from game_analytics.events import (
    EVENT_TYPES,
    MAX_EVENT_BYTES,
    EventError,
    MatchResultEvent,
    PurchaseEvent,
    parse_event,
    validate_event,
)

MATCH = {
    "event_id": "bundesliga-1963-1-1", "event_type": "match_result", "occurred_at": "1963-08-24T17:00:00",
    "player_id": "Hamburger SV", "game": "bundesliga", "region": "DE",
    "payload": {"home_team": "Hamburger SV", "away_team": "Preussen Muenster", "home_goals": 1, "away_goals": 1,
                "season": 1963, "round": 1},
}  # fmt: skip
PURCHASE = {
    "event_id": "cdnow-1-0", "event_type": "purchase", "occurred_at": datetime(1997, 1, 1), "player_id": "cdnow-00001",
    "game": "cdnow", "region": "US",
    "payload": {"customer_id": 1, "item": "cd", "quantity": 1, "amount": 11.77, "currency": "USD"},
}  # fmt: skip


def _error(data: dict | bytes) -> EventError:
    with pytest.raises(EventError) as info:
        parse_event(data) if isinstance(data, bytes) else validate_event(data)
    return info.value


CONVERTED_MATCH = MATCH | {
    "player_id": "hamburger-sv",
    "payload": {"home_player_id": "hamburger-sv", "away_player_id": "preussen-muenster",
                "home_team": "Hamburger SV", "away_team": "Preussen Muenster", "home_score": 1, "away_score": 1,
                "outcome": "draw", "season": 1963, "round": 1, "date_imputed": False},
}  # fmt: skip


def test_match_result_shape_is_accepted() -> None:
    event = validate_event(MATCH)
    assert isinstance(event, MatchResultEvent)
    assert event.payload.home_score == 1 and event.payload.season == 1963
    assert event.occurred_at == datetime(1963, 8, 24, 17, tzinfo=UTC)  # naive -> UTC
    # goals are stored under the canonical score names
    assert json.loads(event.payload.model_dump_json())["home_score"] == 1


def test_converter_match_shape_is_accepted() -> None:
    event = validate_event(CONVERTED_MATCH)
    assert event.payload.home_player_id == "hamburger-sv" and event.payload.outcome == "draw"


def test_outcome_must_agree_with_score() -> None:
    bad = CONVERTED_MATCH | {"payload": CONVERTED_MATCH["payload"] | {"outcome": "home_win"}}
    error = _error(bad)
    assert error.field == "payload" and "contradicts" in error.reason


def test_purchase_shape_is_accepted_from_dict_and_json() -> None:
    from_dict = validate_event(PURCHASE)
    from_json = parse_event(json.dumps(PURCHASE, default=str).encode())
    assert isinstance(from_dict, PurchaseEvent)
    assert from_dict == from_json
    assert from_dict.payload.amount == pytest.approx(11.77)


def test_offsets_are_normalised_to_utc() -> None:
    event = validate_event(
        dict(PURCHASE, occurred_at=datetime(1997, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))))
    )
    assert event.occurred_at == datetime(1997, 1, 1, 0, tzinfo=UTC)
    assert event.occurred_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("occurred_at", "accepted"),
    [
        ("1900-01-01T00:00:00Z", True),
        ("1899-12-31T23:59:59Z", False),
        ("1900-01-01T00:30:00+01:00", False),  # 1899-12-31T23:30Z
        ("1899-12-31T23:30:00-01:00", True),  # 1900-01-01T00:30Z
        ("2199-12-31T23:59:59Z", True),
        ("2200-01-01T00:00:00Z", False),
        ("2199-12-31T23:30:00-01:00", False),  # 2200-01-01T00:30Z
        ("2200-01-01T00:30:00+01:00", True),  # 2199-12-31T23:30Z
        ("2199-12-31T23:59:59", True),  # naive: taken as UTC
        ("0001-01-01T00:30:00+01:00", False),  # would overflow when converted to UTC
        ("9999-12-31T23:30:00-01:00", False),
    ],
)
def test_timestamps_are_bounded_in_utc(occurred_at: str, accepted: bool) -> None:
    raw = json.dumps(PURCHASE | {"occurred_at": occurred_at}).encode()
    if accepted:
        event = parse_event(raw)
        assert event.occurred_at.utcoffset() == timedelta(0)
        given = datetime.fromisoformat(occurred_at)
        assert event.occurred_at == (given if given.tzinfo else given.replace(tzinfo=UTC))
    else:
        error = _error(raw)
        assert (error.field, error.kind) == ("occurred_at", "invalid_value")
        assert "outside [1900, 2200)" in error.reason


@pytest.mark.parametrize(
    ("mutate", "field", "kind"),
    [
        (lambda e: e | {"event_type": "teleport"}, "event_type", "unknown_event_type"),
        (lambda e: {k: v for k, v in e.items() if k != "event_type"}, "event_type", "missing_field"),
        (lambda e: e | {"payload": e["payload"] | {"home_goals": "three"}}, "payload.home_goals", "invalid_value"),
        (lambda e: e | {"payload": e["payload"] | {"home_goals": -1}}, "payload.home_goals", "invalid_value"),
        (lambda e: e | {"payload": e["payload"] | {"season": [1963]}}, "payload.season", "invalid_value"),
        (lambda e: e | {"payload": e["payload"] | {"referee": "x"}}, "payload.referee", "extra_field"),
        (lambda e: e | {"payload": {k: v for k, v in e["payload"].items() if k != "away_team"}},
         "payload.away_team", "missing_field"),
        (lambda e: e | {"payload": {k: v for k, v in e["payload"].items() if k != "away_goals"}},
         "payload.away_score", "missing_field"),
        (lambda e: e | {"event_id": "x" * 129}, "event_id", "invalid_value"),
        (lambda e: e | {"occurred_at": "yesterday"}, "occurred_at", "invalid_value"),
        (lambda e: e | {"occurred_at": "2400-01-01T00:00:00Z"}, "occurred_at", "invalid_value"),
        (lambda e: e | {"payload": e["payload"] | {"away_team": e["payload"]["home_team"]}}, "payload",
         "invalid_value"),
    ],
)  # fmt: skip
def test_invalid_match_names_the_field(mutate, field: str, kind: str) -> None:
    error = _error(mutate(dict(MATCH)))
    assert (error.field, error.kind) == (field, kind)
    assert error.reason.startswith(f"{field}:")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"quantity": 0, "amount": 1.0}, "payload.quantity"),
        ({"quantity": 1, "amount": -0.01}, "payload.amount"),
        ({"quantity": 1, "amount": float("nan")}, "payload.amount"),
        ({"quantity": 1, "amount": 1.0, "currency": "usd"}, "payload.currency"),
        ({"amount": 1.0}, "payload.quantity"),
    ],
)
def test_invalid_purchase_names_the_field(payload: dict, field: str) -> None:
    assert _error(dict(PURCHASE, payload=payload)).field == field


def test_purchase_requires_player() -> None:
    error = _error({k: v for k, v in PURCHASE.items() if k != "player_id"})
    assert (error.field, error.kind) == ("player_id", "missing_field")


def test_malformed_json() -> None:
    error = _error(b'{"event_id": "a", ')
    assert (error.field, error.kind) == (None, "json_invalid")
    assert "malformed JSON" in error.reason


def test_non_object_json() -> None:
    assert _error(b"[1, 2]").kind == "invalid_value"


def test_oversized_message_is_rejected_before_parsing() -> None:
    raw = json.dumps(MATCH | {"pad": "x" * MAX_EVENT_BYTES}).encode()
    error = _error(raw)
    assert error.kind == "too_large"
    assert str(len(raw)) in error.reason and str(MAX_EVENT_BYTES) in error.reason


def test_oversized_field_names_the_field() -> None:
    raw = json.dumps({"event_id": "err-1", "event_type": "error", "occurred_at": "2020-01-01T00:00:00Z",
                      "game": "g", "payload": {"code": "E42", "message": "m" * 5000}}).encode()  # fmt: skip
    error = _error(raw)
    assert error.field == "payload.message"
    assert "2048" in error.reason


def test_every_event_type_has_a_valid_example() -> None:
    base = {"occurred_at": "2024-05-01T12:00:00Z", "player_id": "p1", "game": "arena"}
    payloads = {
        "login": {"platform": "ios"},
        "logout": {"session_seconds": 120.5},
        "purchase": {"quantity": 2, "amount": 9.98},
        "trade": {"counterparty_id": "p2", "item_id": "sword", "quantity": 1, "value": 10},
        "currency_change": {"currency": "gold", "delta": -50, "balance_after": 950, "reason": "shop"},
        "match_result": {
            "home_team": "p1",
            "away_team": "p2",
            "home_goals": 3,
            "away_goals": 0,
            "season": "S1",
        },
        "error": {"code": "E1", "message": "boom"},
    }
    assert set(payloads) == set(EVENT_TYPES)
    for index, (etype, payload) in enumerate(payloads.items()):
        event = validate_event(base | {"event_id": f"id-{index}", "event_type": etype, "payload": payload})
        assert event.event_type == etype


@pytest.mark.parametrize(("occurred_at", "expected"), [
    (1_700_000_000, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),  # epoch seconds
    (1_700_000_000.25, datetime(2023, 11, 14, 22, 13, 20, 250_000, tzinfo=UTC)),
    (1_700_000_000_250, datetime(2023, 11, 14, 22, 13, 20, 250_000, tzinfo=UTC)),  # epoch milliseconds
    (1_000_000_000, datetime(2001, 9, 9, 1, 46, 40, tzinfo=UTC)),  # the first of each
    (1_000_000_000_000, datetime(2001, 9, 9, 1, 46, 40, tzinfo=UTC)),
    (7_258_118_399_999, datetime(2199, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)),
])  # fmt: skip
def test_epoch_seconds_and_milliseconds_are_read_as_utc(occurred_at: float, expected: datetime) -> None:
    """Game servers send Unix time as a JSON number, seconds or (most) milliseconds; both are UTC."""
    event = parse_event(json.dumps(PURCHASE | {"occurred_at": occurred_at}).encode())
    assert event.occurred_at == expected and event.occurred_at.utcoffset() == timedelta(0)
    assert validate_event(PURCHASE | {"occurred_at": occurred_at}).occurred_at == expected


@pytest.mark.parametrize("occurred_at", [7, 999_999_999, 10_000_000_000, 999_999_999_999, 10_000_000_000_000,
                                         -1_700_000_000, 7_258_118_400_000, True, "1700000000"])
def test_other_numbers_are_refused_naming_the_field(occurred_at) -> None:
    """Only 10-digit seconds and 13-digit milliseconds are read: 7 or an 11-digit number is no one's epoch time
    (pydantic would have read any number as seconds), and the range still ends before 2200."""
    error = _error(json.dumps(PURCHASE | {"occurred_at": occurred_at}).encode())
    assert (error.field, error.kind) == ("occurred_at", "invalid_value")
    assert ("epoch" in error.reason) or "outside [1900, 2200)" in error.reason
