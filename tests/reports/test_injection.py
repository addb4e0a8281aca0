"""Filter values are bound as SQL parameters: injection strings are data that match nothing and change nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from game_analytics.api.scheduledreport import ReportFilters, ReportType
from game_analytics.reports import ReportPeriod, build_report, render_html, validate_filters
from game_analytics.storage.engine import make_engine

INJECTIONS = [
    "' OR '1'='1",
    "cdnow' OR 'x'='x",
    "'; DROP TABLE events; --",
    "US'); DELETE FROM players; --",
    "purchase' UNION SELECT player_id FROM events --",
    "1; SELECT pg_sleep(10)",
    '" OR ""="',
    "\\'; TRUNCATE audit_log; --",
]
PERIOD = ReportPeriod(datetime(1997, 1, 1, tzinfo=UTC), datetime(1998, 7, 1, tzinfo=UTC))


def _fingerprint(engine) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        tables = conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).scalar_one()
        return {"tables": tables, **{t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                                     for t in ("events", "players", "audit_log", "report_runs")}}


@pytest.mark.parametrize("field", ["games", "regions", "event_types"])
def test_injection_strings_are_data(sample_dsn: str, field: str) -> None:
    engine = make_engine(sample_dsn)
    try:
        before = _fingerprint(engine)
        assert before["events"] == 6919
        for value in INJECTIONS:
            filters = ReportFilters(**{field: [value]})
            activity = build_report(engine, ReportType.PLAYER_ACTIVITY, PERIOD, filters)
            assert activity.figure("active_players") == 0, value
            assert activity.figure("events") == 0, value
            assert activity.table("top_performers").empty
            economy = build_report(engine, ReportType.ECONOMIC_HEALTH, PERIOD, filters)
            assert economy.figure("paying_players") == 0
            retention = build_report(engine, ReportType.RETENTION, PERIOD, filters)
            assert retention.figure("new_players") == 0
            for kind in (ReportType.RANKINGS, ReportType.SECURITY):  # player filters via EXISTS on events
                build_report(engine, kind, PERIOD, filters)
        # the same filter with a real value does match: the filter is applied, not ignored
        real = {"games": "cdnow", "regions": "US", "event_types": "purchase"}[field]
        assert build_report(engine, ReportType.PLAYER_ACTIVITY, PERIOD,
                            ReportFilters(**{field: [real]})).figure("events") == 6919
        assert _fingerprint(engine) == before
    finally:
        engine.dispose()


def test_topn_and_control_characters_are_rejected() -> None:
    with pytest.raises(ValidationError):
        ReportFilters.model_validate({"topN": "10; DROP TABLE events"})
    with pytest.raises(ValidationError, match=r"games\.0"):  # game names have a pattern of their own
        ReportFilters(games=["cdnow\x00' OR 1=1"])
    with pytest.raises(ValueError, match=r"filters.regions\[1\]: contains control characters"):
        validate_filters(ReportFilters(regions=["US", "eu\x00' OR 1=1"]))
    with pytest.raises(ValueError, match=r"filters.regions\[1\]: longer than"):
        validate_filters(ReportFilters(regions=["US", "x" * 129]))


def test_filter_values_are_escaped_in_html(sample_dsn: str) -> None:
    engine = make_engine(sample_dsn)
    try:
        report = build_report(engine, ReportType.PLAYER_ACTIVITY, PERIOD,
                              ReportFilters(games=["<script>alert(1)</script>"]))
    finally:
        engine.dispose()
    html = render_html(report).decode()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
