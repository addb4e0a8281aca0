"""The funnel report type: SQL on the real PostgreSQL against an independent pandas walk of the events.

Two data sets: the real CDNOW log (purchase -> a one-CD purchase -> another purchase within 90 days, in Q1 1997),
and a synthetic log with three event types at sub-day times, payload filters and players entering near the
period's end. The expectation is computed by walking each player's events in storage order in Python.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from game_analytics.api import KINDS_BY_NAME
from game_analytics.api.crdgen import crd
from game_analytics.api.scheduledreport import FunnelReport, ReportFilters, ScheduledReportSpec
from game_analytics.reports import ReportPeriod, build_report
from game_analytics.reports.charts import render_charts
from game_analytics.storage.engine import make_engine
from game_analytics.workers.load import copy_events

Q1 = ReportPeriod(datetime(1997, 1, 1, tzinfo=UTC), datetime(1997, 4, 1, tzinfo=UTC))


def _walk(events: pd.DataFrame, steps: list[tuple[str, dict[str, str]]], window: timedelta,
          start: datetime, end: datetime) -> tuple[list[int], list[list[float]]]:  # fmt: skip
    """Players reaching each step and the seconds from the previous step, by a plain loop over each player's
    events (columns player_id, occurred_at, event_type, payload; in storage order)."""
    def matches(row, step) -> bool:  # type: ignore[no-untyped-def]
        kind, where = step
        return row.event_type == kind and all(str(row.payload.get(k)) == v for k, v in where.items())

    inside = events[(events["occurred_at"] >= start) & (events["occurred_at"] < end)]
    reached = [0] * len(steps)
    gaps: list[list[float]] = [[] for _ in steps]
    for _, group in inside.groupby("player_id", sort=False):
        rows = list(group.sort_values("occurred_at", kind="stable").itertuples(index=False))
        first = next((i for i, r in enumerate(rows) if matches(r, steps[0])), None)
        if first is None:
            continue
        reached[0] += 1
        t0, at = rows[first].occurred_at, first
        for k in range(1, len(steps)):
            nxt = next((i for i in range(at + 1, len(rows))
                        if matches(rows[i], steps[k]) and rows[i].occurred_at <= t0 + window), None)  # fmt: skip
            if nxt is None:
                break
            reached[k] += 1
            gaps[k].append((rows[nxt].occurred_at - rows[at].occurred_at).total_seconds())
            at = nxt
    return reached, gaps


def _check(report_table: pd.DataFrame, reached: list[int], gaps: list[list[float]]) -> None:
    assert report_table["players"].tolist() == reached
    np.testing.assert_allclose(report_table["conversion"], np.array(reached) / reached[0])
    for k in range(1, len(reached)):
        assert report_table["step_conversion"].iloc[k] == pytest.approx(reached[k] / reached[k - 1])
        if gaps[k]:
            assert report_table["median_hours_from_previous"].iloc[k] == pytest.approx(np.median(gaps[k]) / 3600)
            assert report_table["mean_hours_from_previous"].iloc[k] == pytest.approx(np.mean(gaps[k]) / 3600)


def test_cdnow_funnel_matches_pandas(cdnow_engine, cdnow_master: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    spec = FunnelReport.model_validate({
        "steps": [{"eventType": "purchase"}, {"eventType": "purchase", "payload": {"quantity": "1"}, "name": "one CD"},
                  {"eventType": "purchase"}],
        "conversionWindow": "90d",
    })  # fmt: skip
    report = build_report(cdnow_engine, "funnel", Q1, ReportFilters(), funnel=spec)
    table = report.tables[0].frame
    events = pd.DataFrame({
        "player_id": cdnow_master["customer_id"], "event_type": "purchase",
        "occurred_at": pd.to_datetime(cdnow_master["date"]).dt.tz_localize("UTC"),
        "payload": [{"quantity": q} for q in cdnow_master["number_of_cds"]],
    })  # fmt: skip
    reached, gaps = _walk(events, [("purchase", {}), ("purchase", {"quantity": "1"}), ("purchase", {})],
                          timedelta(days=90), Q1.start, Q1.end)  # fmt: skip
    _check(table, reached, gaps)
    assert reached[0] == cdnow_master["customer_id"].nunique()  # every CDNOW customer first bought in Q1 1997
    assert reached[2] < reached[1] < reached[0]
    assert table["name"].tolist() == ["1. purchase", "2. one CD", "3. purchase"]
    figures = {f.key: f.value for f in report.figures}
    assert figures["funnel_entered"] == reached[0] and figures["funnel_completed"] == reached[2]
    assert figures["funnel_conversion"] == pytest.approx(100 * reached[2] / reached[0])
    assert render_charts(report)["funnel_steps"][:4] == b"\x89PNG"


def _event(player: str, kind: str, at: datetime, payload: dict) -> dict:  # type: ignore[type-arg]
    return {"event_id": str(uuid.uuid4()), "event_type": kind, "occurred_at": at, "player_id": player,
            "game": "g", "region": "EU", "payload": payload}  # fmt: skip


def test_synthetic_funnel_with_payload_filters_matches_pandas(db_dsn: str) -> None:
    rng = np.random.default_rng(17)
    start = datetime(2024, 5, 1, tzinfo=UTC)
    rows = []
    for p in range(300):
        at = start + timedelta(minutes=int(rng.integers(0, 14 * 24 * 60)))  # some enter near the end (day 14)
        for _ in range(int(rng.integers(1, 12))):
            kind = str(rng.choice(["login", "match_result", "purchase"], p=[0.4, 0.3, 0.3]))
            if kind == "login":
                payload = {"platform": str(rng.choice(["ios", "android"]))}
            elif kind == "purchase":
                payload = {"quantity": 1, "amount": 4.99, "item_id": str(rng.choice(["starter-pack", "gems"]))}
            else:
                payload = {"home_team": f"p{p}", "away_team": "bot", "home_score": int(rng.integers(0, 3)),
                           "away_score": int(rng.integers(0, 3)), "season": 2024, "round": 1}  # fmt: skip
            rows.append(_event(f"p{p:03d}", kind, at, payload))
            at += timedelta(minutes=int(rng.integers(0, 36 * 60)))
    result = copy_events(rows, db_dsn)
    assert result.inserted == len(rows) and result.dead_lettered == 0
    steps = [("login", {"platform": "ios"}), ("match_result", {}), ("purchase", {"item_id": "starter-pack"})]
    spec = FunnelReport.model_validate({
        "steps": [{"eventType": k, "payload": w} for k, w in steps], "conversionWindow": "2d",
    })  # fmt: skip
    period = ReportPeriod(start, start + timedelta(days=14))
    engine = make_engine(db_dsn)
    try:
        table = build_report(engine, "funnel", period, ReportFilters(), funnel=spec).tables[0].frame
    finally:
        engine.dispose()
    events = pd.DataFrame(rows)
    events["occurred_at"] = pd.to_datetime(events["occurred_at"], utc=True)
    reached, gaps = _walk(events, steps, timedelta(days=2), period.start, period.end)
    assert reached[2] > 0 and reached[1] > reached[2]
    _check(table, reached, gaps)
    assert table["name"].tolist() == ["1. login[platform=ios]", "2. match_result", "3. purchase[item_id=starter-pack]"]


def test_funnel_spec_validation_names_the_field() -> None:
    base = {"reports": ["funnel"], "schedule": "0 6 * * 1"}
    step = {"eventType": "login"}
    with pytest.raises(ValidationError, match=r"funnel\.steps"):
        ScheduledReportSpec.model_validate({**base, "funnel": {"steps": [step]}})  # one step: min 2
    with pytest.raises(ValidationError, match=r"funnel\.steps\.1\.eventType"):
        ScheduledReportSpec.model_validate({**base, "funnel": {"steps": [step, {"eventType": "levelup"}]}})
    with pytest.raises(ValidationError, match=r"funnel\.steps\.0\.payload"):
        ScheduledReportSpec.model_validate({**base, "funnel": {"steps": [{"eventType": "login", "payload": {
            "a.b": "x"}}, step]}})  # fmt: skip
    schema = crd(KINDS_BY_NAME["ScheduledReport"])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec_schema = schema["properties"]["spec"]
    rules = {r["fieldPath"]: r["rule"] for r in spec_schema["x-kubernetes-validations"] if "fieldPath" in r}
    assert "has(self.funnel)" in rules[".funnel"] and "conversionWindow" in rules[".funnel.conversionWindow"]
    step_schema = spec_schema["properties"]["funnel"]["properties"]["steps"]["items"]
    assert step_schema["properties"]["eventType"]["pattern"].startswith("^(login|")
    assert "matches" in step_schema["properties"]["payload"]["x-kubernetes-validations"][0]["rule"]


def test_funnel_report_needs_its_spec(cdnow_engine) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="spec.funnel"):
        build_report(cdnow_engine, "funnel", Q1, ReportFilters())
