"""Match quality on a RankingJob, end to end on the real Bundesliga matches in PostgreSQL: the rankings report's
held-out model quality and reliability diagram, the exporter's model-quality families and ``game-analytics
predict``, checked against an independent pandas / prediction.py computation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from game_analytics import cli
from game_analytics.analytics.ratings.prediction import (
    evaluate_holdout,
    glicko2_match_features,
    outcome_class,
)
from game_analytics.api.rankingjob import RankingJobSpec
from game_analytics.api.scheduledreport import ReportFilters, ReportType
from game_analytics.controller.common.render import Owner
from game_analytics.controller.rankingjob.render import ranking_document
from game_analytics.data.datasets import load_bundesliga
from game_analytics.monitoring import names
from game_analytics.reports import ReportPeriod, build_report
from game_analytics.storage.engine import make_engine
from game_analytics.workers import load, ranking
from game_analytics.workers.exporter import AnalyticsCollector

BOARD = "league/bundesliga"


def _config(tmp_path: Path) -> Path:
    """The ranking.json the operator renders for a weekly Glicko-2 RankingJob ``league/bundesliga``."""
    owner = Owner(api_version="gameanalytics.io/v1alpha1", kind="RankingJob", name="bundesliga", namespace="league",
                  uid="u1")  # fmt: skip
    spec = RankingJobSpec.model_validate({"source": {"game": "bundesliga"}, "glicko2": {"ratingPeriod": "7d"}})
    path = tmp_path / "ranking.json"
    path.write_text(json.dumps(ranking_document(owner, spec)))
    return path


def test_model_quality_report_exporter_and_predict(db_dsn: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    assert load.main(["--dataset", "bundesliga", "--dsn", db_dsn, "--quiet"]) == 0
    assert ranking.main(["--config", str(_config(tmp_path)), "--dsn", db_dsn,
                         "--no-redis"]) == 0  # fmt: skip
    capsys.readouterr()
    engine = make_engine(db_dsn)
    try:
        period = ReportPeriod(datetime(2009, 6, 1, tzinfo=UTC), datetime(2009, 7, 1, tzinfo=UTC))
        report = build_report(engine, ReportType.RANKINGS, period, ReportFilters())
        registry = CollectorRegistry()
        registry.register(AnalyticsCollector(engine, as_of="latest", ttl=0, background=False))
        body = generate_latest(registry).decode()
    finally:
        engine.dispose()

    # independent: the most recent season (2008/09) is the held-out one; the baseline is the class frequencies of
    # every earlier match, computed here in pandas
    df = load_bundesliga()
    y = outcome_class(df["HomeGoals"].to_numpy(), df["AwayGoals"].to_numpy())
    test = (df["Year"] == 2008).to_numpy()
    freq = np.bincount(y[~test], minlength=3) / (~test).sum()
    baseline_log_loss = float(-np.log(freq[y[test]]).mean())
    baseline_brier = float(((np.eye(3)[y[test]] - freq) ** 2).sum(axis=1).mean())
    quality = report.table("match_model_quality").set_index("model")
    ratings_row = quality.loc["ratings (ordered logit on Glicko-2)"]
    base_row = quality.loc["home-advantage baseline"]
    assert ratings_row["held_out_matches"] == test.sum() == 306
    assert base_row["log_loss"] == pytest.approx(baseline_log_loss, rel=1e-9)
    assert base_row["brier"] == pytest.approx(baseline_brier, rel=1e-9)
    # the ratings beat the baseline, and agree with prediction.py's season/round-period pipeline to 0.01 nats
    reference = evaluate_holdout(glicko2_match_features(df)[0], (1963, 2007), (2008, 2008))
    assert ratings_row["log_loss"] < baseline_log_loss and ratings_row["brier"] < baseline_brier
    assert ratings_row["log_loss"] == pytest.approx(reference.log_loss, abs=0.01)
    assert ratings_row["brier"] == pytest.approx(reference.brier, abs=0.01)
    with capsys.disabled():
        print(f"\nheld-out 2008/09: log loss {ratings_row['log_loss']:.4f} (baseline {baseline_log_loss:.4f}; "
              f"prediction.py {reference.log_loss:.4f}), Brier {ratings_row['brier']:.4f} (baseline {baseline_brier:.4f}; "
              f"prediction.py {reference.brier:.4f}), match quality {ratings_row['mean_match_quality']:.4f}")
    reliability = report.table("reliability")
    assert reliability["predictions"].sum() == 3 * 306
    assert np.abs(reliability["predicted"] - reliability["observed"]).max() < 0.25
    assert any(c.name == "reliability" and c.diagonal for c in report.charts)

    found = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for family in text_string_to_metric_families(body) for s in family.samples}
    key = (("game", "bundesliga"), ("model", "ratings"), ("ranking", BOARD))
    assert found[(names.RANKING_MODEL_LOG_LOSS, key)] == pytest.approx(ratings_row["log_loss"])
    assert found[(names.RANKING_MODEL_BRIER, key)] == pytest.approx(ratings_row["brier"])
    base_key = (("game", "bundesliga"), ("model", "baseline"), ("ranking", BOARD))
    assert found[(names.RANKING_MODEL_LOG_LOSS, base_key)] == pytest.approx(baseline_log_loss)
    assert found[(names.RANKING_MATCH_QUALITY, (("game", "bundesliga"), ("ranking", BOARD)))] == pytest.approx(
        ratings_row["mean_match_quality"])

    def predict(*argv: str) -> dict:
        assert cli.main(["predict", "--board", BOARD, "--dsn", db_dsn, "--format", "json", *argv]) == 0
        return json.loads(capsys.readouterr().out)

    home = predict("bayern-muenchen", "vfl-wolfsburg")
    assert home["p_home_win"] + home["p_draw"] + home["p_away_win"] == pytest.approx(1.0)
    assert home["ratings_from"] == ["rating_history", "rating_history"] and 0 < home["match_quality"] <= 1
    swapped = predict("vfl-wolfsburg", "bayern-muenchen", "--neutral")
    neutral = predict("bayern-muenchen", "vfl-wolfsburg", "--neutral")
    assert neutral["p_home_win"] == pytest.approx(swapped["p_away_win"]) and home["p_home_win"] > neutral["p_home_win"]
    assert cli.main(["predict", "--board", BOARD, "--dsn", db_dsn, "nobody", "vfl-wolfsburg"]) == 1
    assert cli.main(["predict", "--board", "no/board", "--dsn", db_dsn, "a", "b"]) == 1
