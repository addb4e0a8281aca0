"""Report figures against independent pandas computations on the same real data (CDNOW, Bundesliga)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, text

from game_analytics.api.scheduledreport import ReportFilters, ReportType
from game_analytics.audit import AuditLog
from game_analytics.data import customer_player_id
from game_analytics.reports import ReportPeriod, build_report
from game_analytics.storage.engine import make_engine

from .conftest import glicko_seasons, insert_ratings

SPRING = ReportPeriod(datetime(1997, 3, 1, tzinfo=UTC), datetime(1997, 6, 1, tzinfo=UTC))
WHOLE = ReportPeriod(datetime(1997, 1, 1, tzinfo=UTC), datetime(1998, 7, 1, tzinfo=UTC))


def _in(frame: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    return frame[(frame["date"] >= pd.Timestamp(start.replace(tzinfo=None)))
                 & (frame["date"] < pd.Timestamp(end.replace(tzinfo=None)))]


def test_player_activity_matches_pandas(cdnow_engine: Engine, cdnow_master: pd.DataFrame) -> None:
    report = build_report(cdnow_engine, ReportType.PLAYER_ACTIVITY, SPRING, ReportFilters(top_n=15))
    df = cdnow_master
    now = _in(df, SPRING.start, SPRING.end)
    prev_period = SPRING.previous()
    prev = _in(df, prev_period.start, prev_period.end)
    first = df.groupby("customer_id")["date"].min()
    active, active_prev = set(now["customer_id"]), set(prev["customer_id"])
    assert report.figure("active_players") == len(active)
    assert report.figure("events") == len(now)
    assert report.figure("total_players") == int((first < pd.Timestamp("1997-06-01")).sum())
    assert report.figure("new_players") == int(((first >= pd.Timestamp("1997-03-01"))
                                               & (first < pd.Timestamp("1997-06-01"))).sum())
    assert report.figure("active_previous_period") == len(active_prev)
    assert report.figure("churned_players") == len(active_prev - active)
    assert report.figure("churn_rate") == pytest.approx(100 * len(active_prev - active) / len(active_prev))
    # sessions: one per customer and purchase day (day-resolution timestamps, 30-minute gap rule)
    assert report.figure("sessions") == len(now.drop_duplicates(["customer_id", "date"]))
    assert report.figure("mean_session_minutes") == 0
    assert any("dates only" in n for n in report.notes)

    top = report.table("top_performers")
    expected = (now.groupby("customer_id").agg(events=("date", "size"), spend=("dollar_value", "sum"),
                                               active_days=("date", "nunique")).reset_index())
    expected["player_id"] = expected["customer_id"].map(customer_player_id)
    expected = expected.sort_values(["events", "spend", "player_id"], ascending=[False, False, True]).head(15)
    assert top["player_id"].tolist() == expected["player_id"].tolist()
    assert top["events"].tolist() == expected["events"].tolist()
    np.testing.assert_allclose(top["spend"].astype(float), expected["spend"], rtol=1e-9)
    assert top["active_days"].tolist() == expected["active_days"].tolist()

    series = report.table("active_players")  # 92 days -> weekly buckets
    assert series["active_players"].max() > 0
    weekly = now.assign(week=now["date"] - pd.to_timedelta(now["date"].dt.day_of_week, unit="D"))
    expected_weekly = weekly.groupby("week")["customer_id"].nunique()
    got = series.set_index("bucket")["active_players"]
    for week, value in expected_weekly.items():
        assert got.loc[week] == value
    by_type = report.table("activity_by_type")
    assert by_type.to_dict("records") == [{"event_type": "purchase", "events": len(now), "players": len(active)}]
    hours = report.table("hourly_distribution")
    assert len(hours) == 24 and hours.loc[0, "events"] == len(now) and hours["events"].sum() == len(now)


def _gini_trapezoid(values: np.ndarray) -> float:
    """Gini = 1 - 2 * area under the Lorenz curve (exact for step data with the trapezoid rule)."""
    v = np.sort(values)
    cum = np.concatenate([[0.0], np.cumsum(v)]) / v.sum()
    return float(1.0 - np.sum(cum[1:] + cum[:-1]) / v.size)


def test_economic_health_matches_pandas(cdnow_engine: Engine, cdnow_master: pd.DataFrame) -> None:
    report = build_report(cdnow_engine, ReportType.ECONOMIC_HEALTH, WHOLE, ReportFilters(top_n=20))
    spend = cdnow_master.groupby("customer_id")["dollar_value"].sum()
    assert report.figure("paying_players") == spend.size == 23_570
    assert report.figure("revenue") == pytest.approx(cdnow_master["dollar_value"].sum(), rel=1e-12)
    assert report.figure("median_spend") == pytest.approx(spend.median())
    assert report.figure("spend_gini") == pytest.approx(_gini_trapezoid(spend.to_numpy()), abs=1e-9)
    top10 = spend.sort_values(ascending=False).head(int(np.ceil(0.1 * spend.size))).sum() / spend.sum()
    assert report.figure("top_10pct_share") == pytest.approx(100 * top10)

    top = report.table("top_spenders")
    expected = spend.rename(index=customer_player_id).sort_values(ascending=False).head(20)
    assert top["player_id"].tolist() == expected.index.tolist()
    np.testing.assert_allclose(top["spend"].to_numpy(dtype=float), expected.to_numpy(), rtol=1e-9)

    prices = report.table("prices").set_index("bucket")  # 18 months -> monthly buckets
    monthly = cdnow_master.groupby(cdnow_master["date"].dt.to_period("M").dt.start_time).agg(
        units=("number_of_cds", "sum"), revenue=("dollar_value", "sum"))
    assert len(prices) == 18
    np.testing.assert_array_equal(prices["units"].to_numpy(), monthly["units"].to_numpy())
    np.testing.assert_allclose(prices["unit_price_usd"].to_numpy(), (monthly["revenue"] / monthly["units"]).to_numpy())
    level = (monthly["revenue"] / monthly["units"]).to_numpy()
    np.testing.assert_allclose(prices["inflation_pct"].to_numpy()[1:], 100 * (level[1:] / level[:-1] - 1))
    assert report.figure("price_inflation") == pytest.approx(100 * (level[-1] / level[0] - 1))
    assert report.figure("trades") == 0
    lorenz = report.table("spend_lorenz")
    assert lorenz["amount_share"].iloc[0] == 0 and lorenz["amount_share"].iloc[-1] == pytest.approx(1)


def test_retention_matches_pandas(cdnow_engine: Engine, cdnow_master: pd.DataFrame) -> None:
    report = build_report(cdnow_engine, ReportType.RETENTION, WHOLE, ReportFilters())
    df = cdnow_master.assign(month=cdnow_master["date"].dt.to_period("M"))
    cohort = df.groupby("customer_id")["month"].min().rename("cohort")
    df = df.join(cohort, on="customer_id")
    df["age"] = (df["month"] - df["cohort"]).apply(lambda d: d.n)
    active = df.drop_duplicates(["customer_id", "age"]).groupby(["cohort", "age"]).size().unstack()
    expected = active.div(active[0], axis=0)
    matrix = report.table("cohort_matrix")
    assert matrix["cohort"].tolist() == ["1997-01-01", "1997-02-01", "1997-03-01"]
    assert matrix["size"].tolist() == active[0].tolist()
    for i, cohort_month in enumerate(expected.index):
        observable = 17 - i  # the log ends in June 1998
        for age in range(18):
            got = matrix.loc[i, f"month_{age}"]
            if age <= observable:
                assert got == pytest.approx(expected.loc[cohort_month, age])
            else:
                assert np.isnan(got)
    curve = report.table("retention_curve").set_index("age")["retention"]
    sizes = active[0]
    assert curve[1] == pytest.approx((expected[1] * sizes).sum() / sizes.sum())
    assert report.figure("retention_month_1") == pytest.approx(100 * curve[1])


def test_rankings_from_bundesliga_ratings(db_dsn: str) -> None:
    history, board = glicko_seasons()
    engine = make_engine(db_dsn)
    try:
        insert_ratings(engine, history, board)
        now = datetime.now(UTC)
        period = ReportPeriod.lookback(now, "7d")
        report = build_report(engine, ReportType.RANKINGS, period, ReportFilters(top_n=5))
    finally:
        engine.dispose()
    leaderboard = report.table("leaderboard")
    assert leaderboard["player_id"].tolist() == board["player_id"].head(5).tolist()
    assert leaderboard["rank"].tolist() == [1, 2, 3, 4, 5]
    leagues = report.table("league_sizes").set_index("league")["players"]
    assert leagues.to_dict() == board["league"].value_counts().to_dict()
    last, before = history["period"].max(), sorted(history["period"].unique())[-2]
    both = history[history["period"] == last].merge(history[history["period"] == before], on="player_id",
                                                      suffixes=("", "_before"))
    both["change"] = both["rating"] - both["rating_before"]
    expected = both.reindex(both["change"].abs().sort_values(ascending=False).index).head(5)
    movers = report.table("biggest_movers")
    assert movers["player_id"].tolist() == expected["player_id"].tolist()
    np.testing.assert_allclose(movers["change"].to_numpy(dtype=float), expected["change"].to_numpy())
    assert set(movers["from_period"]) == {before} and set(movers["to_period"]) == {last}
    assert report.figure("ranked_players") == len(board)


def test_security_report(db_dsn: str) -> None:
    engine = make_engine(db_dsn)
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    try:
        with engine.begin() as conn:
            ids = [conn.execute(text("""INSERT INTO detections (rule, category, severity, player_id, score, detected_at)
                                        VALUES (:r, :c, :s, :p, :score, :at) RETURNING id"""),
                                {"r": "ns/spend-spike", "c": cat, "s": sev, "p": player, "score": score,
                                 "at": t0.replace(day=day)}).scalar_one()
                   for cat, sev, player, score, day in [("economy", "high", "p1", 9.0, 2), ("economy", "high", "p2", 7.5, 3),
                                                        ("cheating", "critical", "p1", 12.0, 4),
                                                        ("economy", "low", "p3", 1.0, 20)]]
            conn.execute(text("""INSERT INTO interventions (detection_id, priority, category, status, created_at,
                                 resolved_at) VALUES (:d, :prio, 'economy', CAST(:st AS intervention_status), :c, :r)"""),
                         [{"d": ids[0], "prio": 1, "st": "resolved", "c": t0.replace(day=2), "r": t0.replace(day=3)},
                          {"d": ids[1], "prio": 2, "st": "open", "c": t0.replace(day=3), "r": None},
                          {"d": ids[2], "prio": 0, "st": "in_progress", "c": t0.replace(day=4), "r": None}])
        log = AuditLog(engine)
        for i in range(3):
            log.append("operator", "intervention.update", f"intervention/{i}", {"s": "open"}, {"s": "done"},
                       at=t0.replace(day=2 + i))
        period = ReportPeriod(t0, t0.replace(day=8))
        report = build_report(engine, ReportType.SECURITY, period, ReportFilters())
        assert report.figure("detections") == 3  # the one on day 20 is outside
        assert report.figure("flagged_players") == 2
        assert report.figure("interventions_open") == 2
        assert report.figure("interventions_resolved") == 1
        assert report.figure("median_resolve_hours") == pytest.approx(24.0)
        assert report.figure("audit_entries") == 3
        assert report.figure("audit_chain") == "intact"
        assert report.table("top_detections")["score"].tolist() == [12.0, 9.0, 7.5]
        # tamper with a row behind the trigger's back: the report must say the chain is broken
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
            conn.execute(text("""UPDATE audit_log SET actor = 'mallory' WHERE seq = 2"""))
            conn.execute(text("ALTER TABLE audit_log ENABLE TRIGGER USER"))
        broken = build_report(engine, ReportType.SECURITY, period, ReportFilters())
        assert broken.figure("audit_chain") == "BROKEN"
        assert any("seq 2" in n for n in broken.notes)
    finally:
        engine.dispose()


def test_security_report_shows_the_measured_detector_quality(db_dsn: str, tmp_path, monkeypatch) -> None:
    from datetime import timedelta

    from game_analytics.alerting import measured
    from game_analytics.alerting.quality import Quality

    path = tmp_path / "quality.yaml"
    measured.write([Quality("rapidAssetTransfer", {}, 4, 4, 4, 4, [timedelta(minutes=6)] * 4),
                    Quality("anomalyScore", {}, 5, 5, 50, 5, [timedelta(hours=2)] * 5, 42, 1.0)],
                   "bench_detector_quality (test run)", path)
    monkeypatch.setattr(measured, "QUALITY_FILE", path)
    engine = make_engine(db_dsn)
    try:
        t0 = datetime(2024, 5, 1, tzinfo=UTC)
        report = build_report(engine, ReportType.SECURITY, ReportPeriod(t0, t0.replace(day=8)), ReportFilters())
    finally:
        engine.dispose()
    table = report.table("detector_quality").set_index("detector")
    assert table.loc["rapidAssetTransfer", ["precision", "recall", "median_delay_minutes"]].tolist() == [1.0, 1.0, 6.0]
    assert table.loc["anomalyScore", "precision"] == 0.1 and table.loc["anomalyScore", "false_pages_per_week"] == 42
    assert table["goal_met"].tolist() == [True, False]
    assert any("bench_detector_quality (test run)" in n for n in report.notes)


def test_economy_clv_and_retention_risk_on_the_cdnow_sample(sample_dsn: str) -> None:
    """The CDNOW sample's calibration period (1997-01-01..09-30) through SQL, the report's customer-base models:
    the published BG/NBD and Gamma-Gamma fits come back out of the report."""
    from game_analytics.analytics.churn import bgnbd, gammagamma
    from game_analytics.data.datasets import load_cdnow_summary, load_cdnow_transactions_summary

    engine = make_engine(sample_dsn)
    period = ReportPeriod(datetime(1997, 1, 1, tzinfo=UTC), datetime(1997, 10, 1, tzinfo=UTC))
    economy = build_report(engine, ReportType.ECONOMIC_HEALTH, period, ReportFilters(top_n=10))
    models = economy.table("clv_models").set_index("model")
    params = dict(kv.split("=") for kv in models.loc["BG/NBD", "parameters"].split())
    summary = load_cdnow_summary()
    published = bgnbd.fit(summary["frequency"], summary["recency"], summary["T"])
    assert float(params["r"]) == pytest.approx(0.243, abs=0.001) and float(params["b"]) == pytest.approx(2.426, abs=0.005)
    assert models.loc["BG/NBD", "log_likelihood"] == pytest.approx(published.log_likelihood, abs=0.1)
    gg = dict(kv.split("=") for kv in models.loc["Gamma-Gamma", "parameters"].split())
    assert float(gg["p"]) == pytest.approx(6.25, abs=0.01) and float(gg["v"]) == pytest.approx(15.44, abs=0.02)

    # independent: CLV of the published summary (rounded to 2 decimals) with the published-data fits
    ref = load_cdnow_transactions_summary()
    spenders = ref[ref["x"] > 0]
    expected = gammagamma.clv(published, gammagamma.fit(spenders["x"], spenders["zbar"]), ref["x"], ref["t_x"],
                              ref["T"], ref["zbar"], periods=12, period_length=4.0, discount_rate=0.01)
    assert economy.figure("clv_total") == pytest.approx(expected.sum(), rel=0.005)
    assert economy.figure("clv_mean") == pytest.approx(expected.mean(), rel=0.005)
    hist = economy.table("clv_distribution")
    assert hist["players"].sum() == 2357 and len(economy.table("top_clv")) == 10
    assert economy.figure("arppu") == pytest.approx(economy.figure("revenue") / economy.figure("paying_players"),
                                                    rel=0.01)  # fmt: skip

    retention = build_report(engine, ReportType.RETENTION, period, ReportFilters(top_n=10))
    tiers = retention.table("churn_risk_tiers")
    assert tiers["players"].sum() == 2357 and tiers["tier"].tolist() == ["high", "medium", "low"]
    risky = retention.table("highest_risk")
    assert len(risky) == 10 and risky["risk"].is_monotonic_decreasing and {"recency", "frequency"} <= set(risky)
    assert retention.figure("high_risk_players") == int(tiers.set_index("tier").loc["high", "players"])
    engine.dispose()


def test_dau_and_revenue_forecasts_with_a_backtest(cdnow_engine: Engine, cdnow_master: pd.DataFrame) -> None:
    """The 30-day forecasts after the CDNOW log's end; the backtest MAPE recomputed in pandas from daily actuals."""
    from game_analytics.analytics.forecast import backtest

    activity = build_report(cdnow_engine, ReportType.PLAYER_ACTIVITY, WHOLE, ReportFilters())
    economy = build_report(cdnow_engine, ReportType.ECONOMIC_HEALTH, WHOLE, ReportFilters())
    days = pd.date_range("1997-01-01", "1998-06-30", freq="D")
    dau = cdnow_master.drop_duplicates(["customer_id", "date"]).groupby("date").size().reindex(days, fill_value=0)
    revenue = cdnow_master.groupby("date")["dollar_value"].sum().reindex(days, fill_value=0.0)
    for report, metric, series in ((activity, "dau", dau), (economy, "revenue", revenue)):
        table = report.table(f"{metric}_forecast")
        future = table[table["forecast"].notna()]
        assert len(future) == 30 and future["day"].iloc[0] == pd.Timestamp("1998-07-01")
        assert (future["lower_95"] <= future["forecast"]).all() and (future["forecast"] <= future["upper_95"]).all()
        np.testing.assert_allclose(table.loc[table["actual"].notna(), "actual"].to_numpy(), series.iloc[-90:])
        _, frame = backtest(series.astype(float), 30)  # the same model on the pandas series
        actual = series.iloc[-30:].to_numpy(dtype=float)
        expected = float(np.mean(np.abs(actual - frame["forecast"].to_numpy()) / actual))
        assert report.figure(f"{metric}_forecast_mape") == pytest.approx(100 * expected, rel=1e-6)
        print(f"\n{metric}: 30-day backtest MAPE {100 * expected:.1f} %")
    assert any(c.name == "dau_forecast" for c in activity.charts)


def test_every_report_statement_is_planned_for_whole_period_scans(cdnow_engine: Engine) -> None:
    """The report's transactions run with REPORT_PLANNING (work_mem, effective_cache_size = shared_buffers), read
    back from the server by the statements of a real report; the engine's other connections keep the defaults."""
    from sqlalchemy import event

    seen: list[tuple[str, str]] = []

    def probe(conn, cursor, statement, *_args) -> None:
        if "FROM events" in statement and not statement.lstrip().startswith("SELECT current_setting"):
            seen.append(conn.exec_driver_sql("SELECT current_setting('work_mem'), current_setting("
                                             "'effective_cache_size') = current_setting('shared_buffers')").one())

    event.listen(cdnow_engine, "after_cursor_execute", probe)
    try:
        build_report(cdnow_engine, ReportType.PLAYER_ACTIVITY, SPRING, ReportFilters())
    finally:
        event.remove(cdnow_engine, "after_cursor_execute", probe)
    assert len(seen) >= 5 and set(seen) == {("256MB", True)}, seen
    with cdnow_engine.connect() as conn:
        assert conn.execute(text("SELECT current_setting('work_mem')")).scalar() != "256MB"
