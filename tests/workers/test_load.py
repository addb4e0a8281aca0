"""``game-analytics load``: data-set events -> PostgreSQL (COPY) or the Redis stream, and its error messages."""

from __future__ import annotations

import json

import psycopg
import pytest
import redis

from game_analytics.data import DataNotFoundError, load_bundesliga
from game_analytics.events import validate_event
from game_analytics.storage.engine import libpq_dsn
from game_analytics.workers import load


@pytest.fixture(scope="module")
def bundesliga_events() -> list[dict]:
    try:
        return load.dataset_events("bundesliga")
    except DataNotFoundError:
        pytest.fail("Bundesliga data missing: run `make data`")


def test_converted_events_pass_the_strict_event_schema(bundesliga_events: list[dict]) -> None:
    df = load_bundesliga()
    assert len(bundesliga_events) == len(df)
    first = validate_event(bundesliga_events[0])
    assert first.payload.home_team != first.payload.away_team
    goals = 0
    for e in bundesliga_events:
        payload = validate_event(e).payload.model_dump()
        goals += payload.get("home_score", payload.get("home_goals")) + payload.get(
            "away_score", payload.get("away_goals")
        )
    assert goals == int(df["HomeGoals"].sum() + df["AwayGoals"].sum())
    times = [e["occurred_at"] for e in bundesliga_events]
    assert times == sorted(times)


def test_cdnow_purchase_events_validate() -> None:
    events = load.dataset_events("cdnow")
    assert len(events) == 69_659
    for e in events[:2000]:
        assert validate_event(e).payload.amount >= 0


def test_copy_loads_matches_idempotently(db_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        load.main(["--dataset", "bundesliga", "--via", "copy", "--limit", "900", "--dsn", db_dsn, "--quiet"])
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["bundesliga"] == {"events": 900, "inserted": 900, "duplicates": 0, "dead_lettered": 0}
    with psycopg.connect(libpq_dsn(db_dsn)) as conn:
        assert conn.execute("SELECT count(*) FROM matches WHERE game = 'bundesliga'").fetchone()[0] == 900
        home, away = conn.execute(
            "SELECT home_id, away_id FROM matches ORDER BY occurred_at, id LIMIT 1"
        ).fetchone()
        assert home == home.lower() and " " not in home and home != away
    assert load.main(["--dataset", "bundesliga", "--limit", "900", "--dsn", db_dsn, "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["bundesliga"]["duplicates"] == 900


def test_stream_publishes_every_event(clean_redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "--dataset",
        "bundesliga",
        "--via",
        "stream",
        "--limit",
        "1234",
        "--redis-url",
        clean_redis_url,
        "--stream",
        "test-events",
        "--quiet",
    ]
    assert load.main(argv) == 0
    assert json.loads(capsys.readouterr().out)["bundesliga"] == {"events": 1234, "published": 1234}
    client = redis.Redis.from_url(clean_redis_url)
    assert client.xlen("test-events") == 1234
    ((_, fields),) = client.xrange("test-events", count=1)
    assert validate_event(json.loads(fields[b"data"])).event_type == "match_result"


def test_missing_data_tells_to_run_make_data(
    tmp_path, monkeypatch: pytest.MonkeyPatch, db_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GAME_ANALYTICS_DATA_DIR", str(tmp_path))
    assert load.main(["--dataset", "bundesliga", "--dsn", db_dsn, "--quiet"]) == 1
    assert "make data" in capsys.readouterr().err


def test_usage_errors(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("GAME_ANALYTICS_DSN", raising=False)
    assert load.main(["--via", "copy", "--quiet"]) == 2
    assert "--dsn" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        load.main(["--dataset", "nope"])
    assert "invalid choice" in capsys.readouterr().err
