"""The field types of the event models (:mod:`game_analytics.events`): bounded strings, money, counts, free text,
and ``Timestamp`` (ISO 8601, datetime, or Unix epoch seconds / milliseconds; always UTC in [1900, 2200)).

Kept apart from the models so that each field's rule is in one place; :mod:`game_analytics.events` documents what
an event may hold and re-exports :data:`EPOCH_SECONDS` and :data:`EPOCH_MILLISECONDS`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

__all__ = ["EPOCH_MILLISECONDS", "EPOCH_SECONDS", "Code", "Count", "Currency", "Goals", "Identifier", "Money",
           "Name", "Strict", "Text", "Timestamp"]

_FIRST_YEAR, _END_YEAR = 1900, 2200  # accepted timestamps: [1900-01-01T00:00Z, 2200-01-01T00:00Z)


def _to_utc(value: datetime) -> datetime:
    # Called once per event: kept to a few attribute reads on the common path (an offset-free "...Z" timestamp
    # keeps its tzinfo object: it is UTC already, and replace() costs more than the rest of this function).
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    elif value.utcoffset():
        try:
            value = value.astimezone(UTC)
        except OverflowError:  # near year 1 / 9999
            raise ValueError(f"timestamp {value.isoformat()} outside [{_FIRST_YEAR}, {_END_YEAR})") from None
    if not _FIRST_YEAR <= value.year < _END_YEAR:
        raise ValueError(f"timestamp {value.isoformat()} outside [{_FIRST_YEAR}, {_END_YEAR})")
    return value


def _no_nul(value: str) -> str:
    # PostgreSQL's text and jsonb hold neither U+0000 nor a lone surrogate (nor does UTF-8); the pattern types
    # exclude both already, free text needs this check.
    if "\x00" in value:
        raise ValueError("NUL character (\\u0000) not allowed")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ValueError("lone surrogate (\\ud800-\\udfff) not allowed") from None
    return value


Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
Code = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:/-]+$")]
#: A number in ``[lo, hi)`` is Unix epoch seconds: 10 integer digits, 2001-09-09T01:46:40Z to 2286 (the accepted
#: range ends at 2200).
EPOCH_SECONDS = (1_000_000_000, 10_000_000_000)
#: A number in ``[lo, hi)`` is Unix epoch milliseconds: 13 integer digits, from 2001-09-09T01:46:40Z.
EPOCH_MILLISECONDS = (1_000_000_000_000, 10_000_000_000_000)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _timestamp_input(value: Any) -> Any:
    """ISO strings and datetimes pass to pydantic; an epoch number becomes its UTC datetime; the rest is refused.

    pydantic itself would read any number, or a string of digits, as Unix seconds (7 became 1970-01-01T00:00:07Z,
    and milliseconds a year near 55,000): only the two unambiguous digit counts are read here, exactly
    (``timedelta`` of an int keeps every millisecond)."""
    if isinstance(value, str) and value[4:5] == "-" and value[:4].isdigit() or isinstance(value, date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if EPOCH_SECONDS[0] <= value < EPOCH_SECONDS[1]:
            return _EPOCH + timedelta(seconds=value)
        if EPOCH_MILLISECONDS[0] <= value < EPOCH_MILLISECONDS[1]:
            return _EPOCH + timedelta(milliseconds=value)
        raise ValueError(f"{value!r} is neither Unix epoch seconds (10 digits, e.g. 1700000000) nor milliseconds "
                         "(13 digits, e.g. 1700000000000); send those or an ISO 8601 string")  # fmt: skip
    raise ValueError("expected an ISO 8601 date-time string (e.g. 2024-05-01T12:00:00Z) or Unix epoch seconds or "
                     "milliseconds as a JSON number")  # fmt: skip


Timestamp = Annotated[datetime, BeforeValidator(_timestamp_input), AfterValidator(_to_utc)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Money = Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=1, le=1_000_000)]
Goals = Annotated[int, Field(ge=0, le=1000)]
#: Free text (newlines allowed): no NUL, no lone surrogate.
Text = Annotated[str, AfterValidator(_no_nul)]


class Strict(BaseModel):
    """The base of every event and payload model: unknown keys refused, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
