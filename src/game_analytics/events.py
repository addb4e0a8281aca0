"""Event schema: pydantic v2 models of everything that enters the analytics store.

An event is a JSON object::

    {"event_id": "5f0c...", "event_type": "match_result", "occurred_at": "1963-08-24T00:00:00Z",
     "player_id": "hamburger-sv", "game": "bundesliga", "region": "DE",
     "payload": {"home_team": "Hamburger SV", "away_team": "Preussen Muenster",
                 "home_player_id": "hamburger-sv", "away_player_id": "preussen-muenster",
                 "home_score": 1, "away_score": 1, "outcome": "draw", "season": 1963, "round": 1}}

This is exactly what :mod:`game_analytics.data.events` produces from the real data sets.

``event_type`` selects the payload model (a discriminated union): ``login``, ``logout``, ``purchase``, ``trade``,
``currency_change``, ``match_result``, ``error``.  Every string is length-bounded, every number range-bounded, unknown
keys are rejected, and a whole serialized event may not exceed :data:`MAX_EVENT_BYTES`.  No string may hold a NUL
(U+0000) or a lone surrogate (``"\\ud800"``): PostgreSQL cannot store either, so they are rejected here, naming the
field.  ``occurred_at`` accepts ISO
8601 strings (``YYYY-MM-DD...``), datetimes, or a JSON number of Unix epoch **seconds** (10 integer digits,
``1700000000`` or ``1700000000.25``) or **milliseconds** (13 digits, ``1700000000250``), as game servers send
them; both are UTC.  The digit count decides, so no value is ambiguous: other numbers (``7``, a negative, 11 or 12
digits), booleans and strings of digits are refused naming ``occurred_at`` (:data:`EPOCH_SECONDS`,
:data:`EPOCH_MILLISECONDS`).  Naive values are taken as UTC and all values are normalised to UTC.

:func:`parse_event` (bytes from a stream) and :func:`validate_event` (a dict) return the model or raise
:class:`EventError`, whose ``field`` names the offending field (dotted path, e.g. ``payload.home_goals``).
The field types (bounds, timestamps, free text) are in :mod:`game_analytics.event_fields`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from .event_fields import (
    EPOCH_MILLISECONDS,
    EPOCH_SECONDS,
    Code,
    Count,
    Currency,
    Goals,
    Identifier,
    Money,
    Name,
    Strict,
    Text,
    Timestamp,
)

__all__ = [
    "EPOCH_MILLISECONDS",
    "EPOCH_SECONDS",
    "EVENT_TYPES",
    "MAX_EVENT_BYTES",
    "AnyEvent",
    "CurrencyChangeEvent",
    "ErrorEvent",
    "EventError",
    "LoginEvent",
    "LogoutEvent",
    "MatchResultEvent",
    "PurchaseEvent",
    "TeamMatchResultPayload",
    "TradeEvent",
    "parse_event",
    "storable_text",
    "validate_event",
]

#: Largest accepted serialized event, in bytes (UTF-8 JSON).
MAX_EVENT_BYTES = 16 * 1024


# --- payloads -------------------------------------------------------------------------------------------------


class LoginPayload(Strict):
    """Login details; all optional. ``success: false`` marks a failed login attempt (the security dashboard counts
    them); a login without ``success`` is a successful one."""

    platform: Code | None = None
    client_version: Code | None = None
    session_id: Identifier | None = None
    success: bool | None = None


class LogoutPayload(Strict):
    """Logout details; ``session_seconds`` is the session length in seconds (at most 7 days)."""

    session_id: Identifier | None = None
    session_seconds: Annotated[float, Field(ge=0, le=7 * 86400, allow_inf_nan=False)] | None = None


class PurchasePayload(Strict):
    """A real-money purchase: ``quantity`` items for ``amount`` (total, in ``currency`` units, e.g. dollars).

    ``customer_id`` is the source system's numeric customer number (CDNOW) and ``item`` an item kind, when known.
    """

    quantity: Count
    amount: Money
    currency: Currency = "USD"
    item: Code | None = None
    item_id: Identifier | None = None
    customer_id: Annotated[int, Field(ge=0, le=2**53)] | None = None


class TradePayload(Strict):
    """A player-to-player trade of ``quantity`` x ``item_id`` with ``counterparty_id`` at in-game ``value``."""

    counterparty_id: Identifier
    item_id: Identifier
    quantity: Count
    value: Money | None = None


class CurrencyChangePayload(Strict):
    """Change of an in-game currency balance: ``delta`` (signed) and ``balance_after`` (>= 0), with a reason."""

    currency: Code
    delta: Annotated[int, Field(ge=-(10**12), le=10**12)]
    balance_after: Annotated[int, Field(ge=0, le=10**15)] | None = None
    reason: Code


class MatchResultPayload(Strict):
    """Final score of a match between a home and an away participant.

    ``home_team`` / ``away_team`` are display names; ``home_player_id`` / ``away_player_id`` their player ids
    (default: the names).  Scores are given as ``home_score`` / ``away_score`` (``home_goals`` / ``away_goals``
    are accepted as input aliases).  ``season`` is a year (e.g. 1963, the year the season starts) or a label
    (e.g. ``"2024-S1"``); ``round`` the 1-based matchday.  ``outcome``, when given, must agree with the scores;
    ``date_imputed`` flags a source date filled in by the converter.
    """

    home_team: Name
    away_team: Name
    home_player_id: Identifier | None = None
    away_player_id: Identifier | None = None
    home_score: Goals = Field(validation_alias=AliasChoices("home_score", "home_goals"))
    away_score: Goals = Field(validation_alias=AliasChoices("away_score", "away_goals"))
    outcome: Literal["home_win", "draw", "away_win"] | None = None
    season: (
        Annotated[int, Field(ge=1800, le=2200)]
        | Annotated[Text, StringConstraints(min_length=1, max_length=32)]
    )
    round: Annotated[int, Field(ge=0, le=10_000)] | None = None
    date_imputed: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> MatchResultPayload:
        if (self.home_player_id or self.home_team) == (self.away_player_id or self.away_team):
            raise ValueError("home and away participant must differ")
        if self.outcome is not None:
            if self.home_score > self.away_score:
                expected = "home_win"
            elif self.home_score < self.away_score:
                expected = "away_win"
            else:
                expected = "draw"
            if self.outcome != expected:
                raise ValueError(
                    f"outcome {self.outcome!r} contradicts the score {self.home_score}:{self.away_score}"
                )
        return self


#: Most teams (or free-for-all participants) in one match, and most players in one team.
MAX_TEAMS = 64
MAX_TEAM_SIZE = 16


class MatchTeam(Strict):
    """One side of a team or free-for-all match: its players and its placing (1 = first; equal ranks tie)."""

    players: Annotated[list[Identifier], Field(min_length=1, max_length=MAX_TEAM_SIZE)]
    rank: Annotated[int, Field(ge=1, le=10_000)]
    name: Name | None = None


class TeamMatchResultPayload(Strict):
    """A team (``2 x 5`` players, say) or free-for-all (``8 x 1``) match: ``teams`` with their placings.

    A payload with ``teams`` is a team match: no home/away fields; every player appears in one team only.
    TrueSkill RankingJobs rate these (the other algorithms rate home/away matches only).  ``season`` and
    ``round`` as in :class:`MatchResultPayload`.
    """

    teams: Annotated[list[MatchTeam], Field(min_length=2, max_length=MAX_TEAMS)]
    season: (
        Annotated[int, Field(ge=1800, le=2200)]
        | Annotated[Text, StringConstraints(min_length=1, max_length=32)]
        | None
    ) = None
    round: Annotated[int, Field(ge=0, le=10_000)] | None = None

    @model_validator(mode="after")
    def _distinct_players(self) -> TeamMatchResultPayload:
        seen: set[str] = set()
        for team in self.teams:
            for player in team.players:
                if player in seen:
                    raise ValueError(f"player {player!r} appears in more than one team (or twice in one)")
                seen.add(player)
        return self


def _match_payload_kind(value: Any) -> str:
    """Which match payload ``value`` is: ``team`` with a ``teams`` key, else ``score`` (home/away)."""
    has_teams = isinstance(value, dict) and "teams" in value or isinstance(value, TeamMatchResultPayload)
    return "team" if has_teams else "score"


#: ``match_result`` payloads: home/away with scores, or ``teams`` with placings (the tags are left out of error paths).
MatchPayload = Annotated[
    Annotated[MatchResultPayload, Tag("score")] | Annotated[TeamMatchResultPayload, Tag("team")],
    Discriminator(_match_payload_kind),
]


class ErrorPayload(Strict):
    """A client or server error report."""

    code: Code
    message: Annotated[Text, StringConstraints(max_length=2048)]
    component: Code | None = None


# --- events ---------------------------------------------------------------------------------------------------


class _EventBase(Strict):
    event_id: Identifier
    occurred_at: Timestamp
    game: Code
    region: Code | None = None


class LoginEvent(_EventBase):
    """A player logged in."""

    event_type: Literal["login"]
    player_id: Identifier
    payload: LoginPayload = LoginPayload()


class LogoutEvent(_EventBase):
    """A player logged out (session end)."""

    event_type: Literal["logout"]
    player_id: Identifier
    payload: LogoutPayload = LogoutPayload()


class PurchaseEvent(_EventBase):
    """A player bought something with real money."""

    event_type: Literal["purchase"]
    player_id: Identifier
    payload: PurchasePayload


class TradeEvent(_EventBase):
    """Two players traded items."""

    event_type: Literal["trade"]
    player_id: Identifier
    payload: TradePayload


class CurrencyChangeEvent(_EventBase):
    """An in-game currency balance changed (faucet or sink)."""

    event_type: Literal["currency_change"]
    player_id: Identifier
    payload: CurrencyChangePayload


class MatchResultEvent(_EventBase):
    """A match finished; ``player_id`` is optional (for team sports it may name the home team).  The payload is
    home/away with scores (:class:`MatchResultPayload`) or a team / free-for-all match with ``teams``
    (:class:`TeamMatchResultPayload`)."""

    event_type: Literal["match_result"]
    player_id: Identifier | None = None
    payload: MatchPayload


class ErrorEvent(_EventBase):
    """An error was reported, optionally for a player."""

    event_type: Literal["error"]
    player_id: Identifier | None = None
    payload: ErrorPayload


AnyEvent = Annotated[
    LoginEvent
    | LogoutEvent
    | PurchaseEvent
    | TradeEvent
    | CurrencyChangeEvent
    | MatchResultEvent
    | ErrorEvent,
    Field(discriminator="event_type"),
]
EVENT_TYPES: tuple[str, ...] = (
    "login", "logout", "purchase", "trade", "currency_change", "match_result", "error",
)  # fmt: skip

_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyEvent)


class EventError(ValueError):
    """An event failed validation.

    Attributes:
        reason: human-readable reason, starting with the field name (``"payload.amount: ..."``).
        field: dotted path of the first offending field, ``"event_type"`` for unknown types, or None when the
            problem concerns the whole message (malformed JSON, oversize).
        kind: short machine label for metrics: ``json_invalid``, ``too_large``, ``unknown_event_type``,
            ``missing_field``, ``extra_field``, ``invalid_value``.
    """

    def __init__(self, reason: str, field: str | None, kind: str) -> None:
        reason = storable_text(reason)
        super().__init__(reason)
        self.reason = reason
        self.field = None if field is None else storable_text(field)
        self.kind = kind


def storable_text(text: str) -> str:
    """``text`` with NULs and lone surrogates escaped (``\\u0000``, ``\\ud800``): safe for PostgreSQL and Redis."""
    if text.isascii() and "\x00" not in text:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\u0000")


def _from_validation_error(exc: ValidationError) -> EventError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    etype, loc = first["type"], [str(p) for p in first["loc"]]
    if etype == "json_invalid":
        return EventError(f"message: malformed JSON ({first['msg']})", None, "json_invalid")
    if etype in ("union_tag_invalid", "union_tag_not_found"):
        got = first.get("input", {}).get("event_type") if isinstance(first.get("input"), dict) else None
        if etype == "union_tag_not_found":
            return EventError("event_type: field required", "event_type", "missing_field")
        return EventError(
            f"event_type: unknown event type {got!r} (expected one of {', '.join(EVENT_TYPES)})",
            "event_type",
            "unknown_event_type",
        )
    if etype == "model_type" and not loc:
        return EventError(f"message: {first['msg']}", None, "invalid_value")
    if loc and loc[0] in EVENT_TYPES:
        loc = loc[1:]  # drop the discriminator tag pydantic prepends
    if loc[:1] == ["payload"] and loc[1:2] in (["score"], ["team"]):
        loc = loc[:1] + loc[2:]  # and the match payload's (home/away or teams)
    # For union members (season: int | str) pydantic appends the member name; keep the field path only.
    loc = [p for p in loc if p not in ("int", "str", "float") and not p.startswith("constrained-")] or loc
    if etype == "string_unicode" and loc[-1:] in ([], ["payload"]) and isinstance(first.get("input"), str):
        # an object KEY that is not valid Unicode (a lone surrogate): name it as the unknown field it is
        key = storable_text(first["input"])
        return EventError(f"{'.'.join([*loc, key])}: key is not valid Unicode", ".".join([*loc, key]),
                          "extra_field")  # fmt: skip
    field = ".".join(loc) or None
    kind = {"missing": "missing_field", "extra_forbidden": "extra_field"}.get(etype, "invalid_value")
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return EventError(f"{field or 'message'}: {first['msg']}{more}", field, kind)


def parse_event(raw: bytes | str) -> AnyEvent:
    """Validate one serialized event (UTF-8 JSON).

    Raises:
        EventError: larger than :data:`MAX_EVENT_BYTES`, malformed JSON, unknown ``event_type`` or any invalid field.
    """
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > MAX_EVENT_BYTES:
        raise EventError(
            f"message: {size} bytes exceeds the limit of {MAX_EVENT_BYTES} bytes", None, "too_large"
        )
    try:
        return _ADAPTER.validate_json(raw)
    except ValidationError as exc:
        error = _from_validation_error(exc)
    if error.kind == "json_invalid":
        error = _diagnose(raw, error)
    raise error


def _diagnose(raw: bytes | str, error: EventError) -> EventError:
    """The field-level error for JSON that pydantic's parser refuses but Python's accepts: a lone surrogate
    escape (``"\\ud800"``) is legal JSON syntax, and naming its field beats "malformed JSON".  Never accepts the
    event: without a field-level error the original ``error`` stands."""
    if "recursion limit" in error.reason:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        if path := _too_deep(text):
            return EventError(f"{path}: nested deeper than {_MAX_DEPTH} levels", path, "invalid_value")
        return error
    try:
        data = json.loads(raw)
        _ADAPTER.validate_python(data)
    except ValidationError as exc:
        return _from_validation_error(exc)
    except (ValueError, RecursionError):
        pass
    return error


_MAX_DEPTH = 64  # deeper than any event field: the scan below stops here


def _too_deep(text: str) -> str | None:
    """The dotted path of the (at most two) object keys leading to where ``text`` nests deeper than
    :data:`_MAX_DEPTH` (keys below the first array are left out; keys as written, escapes kept), or None.  A plain scan: strings are skipped, brackets counted."""
    keys: list[str | None] = []  # per open container: its current key (objects) or None (arrays)
    i, n, last_string = 0, len(text), ""
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            last_string, i = text[i + 1 : j], j + 1
            continue
        if c in "[{":
            keys.append(None if c == "[" else "")
            if len(keys) > _MAX_DEPTH:
                path = []
                for key in keys[:2]:  # an event's fields are at most two deep (payload.<field>)
                    if not key:
                        break
                    path.append(key)
                return storable_text(".".join(path)) or None
        elif c in "]}":
            if keys:
                keys.pop()
        elif c == ":" and keys and keys[-1] is not None:
            keys[-1] = last_string
        i += 1
    return None


def validate_event(data: dict[str, Any]) -> AnyEvent:
    """Validate one event given as a dict (datetimes or ISO strings for ``occurred_at``).

    Raises:
        EventError: as :func:`parse_event`; the size limit applies to the JSON form of the event.
    """
    try:
        event = _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise _from_validation_error(exc) from None
    size = len(event.model_dump_json())
    if size > MAX_EVENT_BYTES:
        raise EventError(
            f"message: {size} bytes exceeds the limit of {MAX_EVENT_BYTES} bytes", None, "too_large"
        )
    return event
