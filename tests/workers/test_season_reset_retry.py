"""A season reset is keyed to its scheduled time (issue 15): a retried reset Job does not advance the season
twice; the next scheduled reset does advance it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from game_analytics.api.rankingjob import RankingJobSpec
from game_analytics.controller.common.render import Owner
from game_analytics.controller.rankingjob.render import ranking_document
from game_analytics.workers import ranking
from game_analytics.workers.jobs import ENV_JOB_NAME
from game_analytics.workers.load import copy_events

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def matches(n: int) -> list[dict]:
    teams = ["lions", "tigers", "bears", "wolves"]
    return [{"event_id": f"m-{i}", "event_type": "match_result", "game": "arena",
             "occurred_at": (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=i)).isoformat(),
             "payload": {"home_team": teams[i % 4], "away_team": teams[(i + 1) % 4], "home_score": i % 3,
                         "away_score": 1, "season": 2026}}
            for i in range(n)]  # fmt: skip


def _config(tmp_path: Path) -> Path:
    owner = Owner(api_version="gameanalytics.io/v1alpha1", kind="RankingJob", name="arena", namespace="games",
                  uid="u1")  # fmt: skip
    doc = ranking_document(owner, RankingJobSpec.model_validate({"source": {"game": "arena"}, "algorithm": "elo"}))
    path = tmp_path / "ranking.json"
    path.write_text(json.dumps(doc))
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert ranking.main(list(argv)) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_a_retried_season_reset_is_a_no_op(db_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Defect: a retried season-reset Job advanced the season twice."""
    assert copy_events(matches(40), db_dsn).inserted == 40
    argv = ("--config", str(_config(tmp_path)), "--dsn", db_dsn, "--no-redis")
    assert _run(capsys, *argv)["season"] == 1
    minutes = int((datetime(2026, 12, 7, tzinfo=UTC) - EPOCH).total_seconds() // 60)
    monkeypatch.setenv(ENV_JOB_NAME, f"arena-season-reset-{minutes}")  # the CronJob's Job
    first = _run(capsys, *argv, "--season-reset")
    assert (first["season"], first["reset"]) == (2, "applied")
    retry = _run(capsys, *argv, "--season-reset")  # the Job's pod failed after the commit and was retried
    assert (retry["season"], retry["reset"]) == (2, "already applied")
    assert retry["top"] == first["top"]
    assert _run(capsys, *argv)["season"] == 2  # an ordinary run in between
    monkeypatch.setenv(ENV_JOB_NAME, f"arena-season-reset-{minutes + 7 * 24 * 60}")  # next week's reset
    assert _run(capsys, *argv, "--season-reset")["season"] == 3
    monkeypatch.delenv(ENV_JOB_NAME)
    later = (datetime(2026, 12, 21, tzinfo=UTC)).isoformat()
    assert _run(capsys, *argv, "--season-reset", "--scheduled-for", later)["season"] == 4
    assert _run(capsys, *argv, "--season-reset", "--scheduled-for", later)["season"] == 4
