"""The real data sets, as converted by game_analytics.data.events, pass validation and load into PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest

from game_analytics.data.datasets import load_bundesliga, load_cdnow_sample
from game_analytics.data.events import match_events, purchase_events
from game_analytics.events import MatchResultEvent, PurchaseEvent, validate_event
from game_analytics.storage.engine import libpq_dsn
from game_analytics.workers.load import copy_events


@pytest.fixture(scope="module")
def bundesliga_events() -> list[dict]:
    return match_events(load_bundesliga())


def test_every_bundesliga_match_is_valid(bundesliga_events: list[dict]) -> None:
    validated = [validate_event(e) for e in bundesliga_events]
    assert all(isinstance(e, MatchResultEvent) for e in validated)
    first, raw = validated[0], bundesliga_events[0]
    assert first.payload.home_score == raw["payload"]["home_score"]
    assert first.payload.home_player_id == raw["payload"]["home_player_id"]


def test_every_cdnow_sample_purchase_is_valid() -> None:
    events = purchase_events(load_cdnow_sample())  # the 1/10 sample keeps the fast suite fast
    validated = [validate_event(e) for e in events]
    assert all(isinstance(e, PurchaseEvent) for e in validated)
    assert sum(e.payload.amount for e in validated) == pytest.approx(
        sum(e["payload"]["amount"] for e in events)
    )


def test_bundesliga_loads_into_matches_and_players(db_dsn: str, bundesliga_events: list[dict]) -> None:
    result = copy_events(bundesliga_events, db_dsn, batch_size=5000)
    assert (result.inserted, result.dead_lettered) == (len(bundesliga_events), 0)
    teams = {e["payload"][side] for e in bundesliga_events for side in ("home_player_id", "away_player_id")}
    goals = sum(e["payload"]["home_score"] + e["payload"]["away_score"] for e in bundesliga_events)
    with psycopg.connect(libpq_dsn(db_dsn)) as conn:
        assert conn.execute("SELECT count(*) FROM matches").fetchone()[0] == len(bundesliga_events)
        assert conn.execute("SELECT sum(home_score + away_score) FROM matches").fetchone()[0] == goals
        assert {r[0] for r in conn.execute("SELECT player_id FROM players")} == teams
        first_season = min(e["occurred_at"] for e in bundesliga_events)
        assert conn.execute("SELECT min(first_seen_at) FROM players").fetchone()[0] == first_season
