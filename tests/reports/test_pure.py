"""Pure parts of the reports: durations, periods, cohort matrices, Lorenz curves, charts, CSV/JSON rendering."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime, timedelta
from io import BytesIO

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from game_analytics.api.scheduledreport import ReportFilters, ReportType
from game_analytics.reports.charts import render_chart
from game_analytics.reports.compute import churn_rate, cohort_matrix, lorenz_curve, retention_curve
from game_analytics.reports.model import (
    ChartSpec,
    Figure,
    Report,
    ReportPeriod,
    Table,
    bucket_unit,
    parse_duration,
)
from game_analytics.reports.render import render_csv_zip, render_json


def test_parse_duration() -> None:
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("2w") == timedelta(days=14)
    for bad in ("", "7", "d7", "0s", "7 days", "1h-5m"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_period() -> None:
    end = datetime(2024, 1, 8, tzinfo=UTC)
    p = ReportPeriod.lookback(end, "7d")
    assert p.start == datetime(2024, 1, 1, tzinfo=UTC) and p.previous().end == p.start
    assert bucket_unit(p) == "day" and bucket_unit(ReportPeriod.lookback(end, "90d")) == "week"
    assert bucket_unit(ReportPeriod.lookback(end, "365d")) == "month"
    with pytest.raises(ValueError):
        ReportPeriod(end, end)
    with pytest.raises(ValueError):
        ReportPeriod(datetime(2024, 1, 1), end)


def test_churn_rate() -> None:
    assert churn_rate(0, 0) is None and churn_rate(10, 4) == 0.4
    with pytest.raises(ValueError):
        churn_rate(3, 4)


def test_cohort_matrix_by_hand() -> None:
    # cohort Jan: 4 players, 2 back in Feb, 1 in Mar; cohort Feb: 2 players, 1 back in Mar
    ts = pd.Timestamp
    activity = pd.DataFrame({
        "cohort": [ts("2024-01-01")] * 3 + [ts("2024-02-01")] * 2,
        "bucket": [ts("2024-01-01"), ts("2024-02-01"), ts("2024-03-01"), ts("2024-02-01"), ts("2024-03-01")],
        "players": [4, 2, 1, 2, 1],
    })
    m = cohort_matrix(activity, "month")
    assert m["size"].tolist() == [4, 2]
    assert m.loc[0, [0, 1, 2]].tolist() == [1.0, 0.5, 0.25]
    assert m.loc[1, 0] == 1.0 and m.loc[1, 1] == 0.5 and np.isnan(m.loc[1, 2])
    curve = retention_curve(m)
    assert curve["retention"].tolist() == pytest.approx([1.0, (2 + 1) / 6, 0.25])
    assert curve["cohorts"].tolist() == [2, 2, 1]


def test_lorenz_curve() -> None:
    c = lorenz_curve(np.array([0.0, 0.0, 0.0, 4.0]), points=5)
    assert c["amount_share"].tolist() == pytest.approx([0, 0, 0, 0, 1])
    assert lorenz_curve(np.array([]))["amount_share"].iloc[-1] == 1


def _report() -> Report:
    period = ReportPeriod(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 8, tzinfo=UTC))
    frame = pd.DataFrame({"bucket": pd.date_range("2024-01-01", periods=7), "players": [3, 4, 5, 4, 6, 7, 2],
                          "share": [0.1, np.nan, 0.3, 0.2, 0.5, 0.6, 0.4]})
    return Report(ReportType.PLAYER_ACTIVITY, "Player activity", period, ReportFilters(games=["a", "b"]),
                  datetime(2024, 1, 8, tzinfo=UTC), [Figure("n", "N", 7, "players"), Figure("r", "Rate", None, "%")],
                  [Table("daily", "Daily", frame), Table("empty", "Empty", pd.DataFrame(columns=["x", "y"]))],
                  [ChartSpec("daily", "Players per day", "line", "daily", "bucket", ("players",), "Day (UTC)",
                             "Players")], ["a note"])


def test_csv_zip_and_json() -> None:
    report = _report()
    archive = zipfile.ZipFile(BytesIO(render_csv_zip(report)))
    assert sorted(archive.namelist()) == ["daily.csv", "empty.csv", "summary.csv"]
    daily = pd.read_csv(archive.open("daily.csv"))
    assert daily["players"].tolist() == [3, 4, 5, 4, 6, 7, 2] and daily["bucket"][0] == "2024-01-01T00:00:00Z"
    assert np.isnan(daily["share"][1])
    summary = pd.read_csv(archive.open("summary.csv")).set_index("key")
    assert summary.loc["n", "value"] == "7" and summary.loc["period_end", "value"] == "2024-01-08T00:00:00Z"
    doc = json.loads(render_json(report))
    assert doc["tables"]["daily"][1]["share"] is None and doc["filters"]["games"] == ["a", "b"]
    assert doc["figures"][1] == {"key": "r", "label": "Rate", "value": None, "unit": "%"}


def test_charts_are_png_of_the_right_size() -> None:
    report = _report()
    png = render_chart(report.charts[0], report.table("daily"))
    image = Image.open(BytesIO(png))
    assert image.format == "PNG" and image.size == (900, 420)
    empty = render_chart(ChartSpec("e", "Nothing", "bar", "empty", "x", ("y",), "X (u)", "Y (u)"),
                         report.table("empty"))
    assert Image.open(BytesIO(empty)).format == "PNG"
    with pytest.raises(KeyError, match="no column"):
        render_chart(ChartSpec("bad", "Bad", "line", "daily", "nope", ("players",), "x", "y"), report.table("daily"))
