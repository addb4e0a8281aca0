"""Turn the real data sets into analytics events (plain dicts) for ingest, demos and tests.

Every event is a dict with these keys:

``event_id`` (str)
    A UUID (version 5, in canonical text form) derived from the row's natural identity under
    ``EVENT_NAMESPACE``, so converting the same data twice gives the same ids (idempotent ingest).
``event_type`` (str)
    ``"match_result"`` or ``"purchase"``.
``occurred_at`` (datetime.datetime)
    Time zone aware, UTC. Both data sets give days only, so this is the day at 00:00 UTC.
``player_id`` (str)
    The acting player: the home team of a match (see ``team_player_id``), the customer of a purchase
    (see ``customer_player_id``).
``game`` (str)
    ``"bundesliga"`` or ``"cdnow"``.
``region`` (str)
    ISO 3166 country code: ``"DE"`` for the Bundesliga, ``"US"`` for CDNOW (a US retailer).
``payload`` (dict)
    Per event type:

    * ``match_result``: ``home_player_id``, ``away_player_id`` (str), ``home_team``, ``away_team`` (str,
      club names as in the source), ``home_score``, ``away_score`` (int, goals), ``outcome`` (str:
      ``"home_win"``, ``"draw"`` or ``"away_win"``), ``season`` (int, the year the season starts),
      ``round`` (int, matchday, 1-based), ``date_imputed`` (bool: the source has no date for this match,
      and ``occurred_at`` is the latest date of the same season and round; true for 2 of 14,018 matches).
    * ``purchase``: ``customer_id`` (int, CDNOW number), ``item_id`` (str, ``"cd"``), ``quantity`` (int,
      number of CDs), ``amount`` (float, price paid), ``currency`` (str, ``"USD"``).

The functions here are pure: they take the DataFrames of ``game_analytics.data.datasets`` loaders.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import pandas as pd

__all__ = [
    "EVENT_NAMESPACE",
    "customer_player_id",
    "match_events",
    "purchase_events",
    "team_player_id",
]

#: Namespace of the version-5 UUIDs of data set events.
EVENT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "datasets.gameanalytics.io")

Event = dict[str, Any]


def team_player_id(team: str) -> str:
    """Return the player id of a club: its name lower-cased, runs of other characters than a-z0-9 as ``-``.

    Example: ``"1. FC Koeln"`` -> ``"1-fc-koeln"``.

    Raises:
        ValueError: the name has no letter or digit.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", team.lower()).strip("-")
    if not slug:
        raise ValueError(f"team name {team!r} has no letters or digits")
    return slug


def customer_player_id(customer_id: int) -> str:
    """Return the player id of a CDNOW customer, e.g. ``7`` -> ``"cdnow-00007"``."""
    return f"cdnow-{int(customer_id):05d}"


def _utc_midnight(day: pd.Timestamp) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _outcome(home: int, away: int) -> str:
    if home > away:
        return "home_win"
    if home < away:
        return "away_win"
    return "draw"


def match_events(matches: pd.DataFrame) -> list[Event]:
    """Convert Bundesliga matches to ``match_result`` events, one per match, in row order.

    Args:
        matches: as returned by ``load_bundesliga`` (columns HomeTeam, AwayTeam, HomeGoals, AwayGoals,
            Round, Year, Date); other columns are ignored.

    Returns:
        A list of event dicts (schema in the module docstring). ``event_id`` is derived from
        (season, home team, away team), which identifies a match in a double round-robin league.
        A match without a date gets the latest date of its season and round (``date_imputed``).

    Raises:
        KeyError: a required column is missing.
        ValueError: a match has no date and neither has any other match of its season and round.
    """
    columns = ["HomeTeam", "AwayTeam", "HomeGoals", "AwayGoals", "Round", "Year", "Date"]
    frame = matches[columns]
    imputed = frame["Date"].isna()
    dates = frame["Date"].fillna(frame.groupby(["Year", "Round"])["Date"].transform("max"))
    if dates.isna().any():
        first = frame[dates.isna()].iloc[0]
        raise ValueError(f"no date known for season {first['Year']} round {first['Round']}")
    events: list[Event] = []
    rows = zip(frame.drop(columns="Date").itertuples(index=False), dates, imputed, strict=True)
    for (home, away, home_goals, away_goals, rnd, season), day, day_imputed in rows:
        home_id, away_id = team_player_id(home), team_player_id(away)
        events.append(
            {
                "event_id": str(
                    uuid.uuid5(EVENT_NAMESPACE, f"bundesliga/match/{season}/{home_id}/{away_id}")
                ),
                "event_type": "match_result",
                "occurred_at": _utc_midnight(day),
                "player_id": home_id,
                "game": "bundesliga",
                "region": "DE",
                "payload": {
                    "home_player_id": home_id,
                    "away_player_id": away_id,
                    "home_team": home,
                    "away_team": away,
                    "home_score": int(home_goals),
                    "away_score": int(away_goals),
                    "outcome": _outcome(home_goals, away_goals),
                    "season": int(season),
                    "round": int(rnd),
                    "date_imputed": bool(day_imputed),
                },
            }
        )
    return events


def purchase_events(purchases: pd.DataFrame) -> list[Event]:
    """Convert CDNOW purchase records to ``purchase`` events, one per record, in row order.

    Args:
        purchases: as returned by ``load_cdnow_master`` or ``load_cdnow_sample`` (columns customer_id,
            date, number_of_cds, dollar_value); other columns are ignored.

    Returns:
        A list of event dicts (schema in the module docstring), one player per customer. A customer can
        have several records on one day, so ``event_id`` is derived from (customer, day, k) with k the
        0-based position of the record among that customer's records of that day in row order.

    Raises:
        KeyError: a required column is missing.
    """
    columns = ["customer_id", "date", "number_of_cds", "dollar_value"]
    frame = purchases[columns]
    occurrence = frame.groupby(["customer_id", "date"], sort=False).cumcount()
    events: list[Event] = []
    for (customer, day, cds, dollars), k in zip(frame.itertuples(index=False), occurrence, strict=True):
        identity = f"cdnow/purchase/{int(customer)}/{day:%Y%m%d}/{int(k)}"
        events.append(
            {
                "event_id": str(uuid.uuid5(EVENT_NAMESPACE, identity)),
                "event_type": "purchase",
                "occurred_at": _utc_midnight(day),
                "player_id": customer_player_id(customer),
                "game": "cdnow",
                "region": "US",
                "payload": {
                    "customer_id": int(customer),
                    "item_id": "cd",
                    "quantity": int(cds),
                    "amount": float(dollars),
                    "currency": "USD",
                },
            }
        )
    return events
