"""The SQL activity and economy analytics on the real CDNOW log in PostgreSQL, checked against pandas/numpy
computations on the same DataFrame (independent code paths)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, text

from game_analytics.analytics import economy
from game_analytics.data.events import customer_player_id, purchase_events
from game_analytics.events import validate_event
from game_analytics.storage import derived
from game_analytics.storage.engine import make_engine
from game_analytics.storage.queries import Filters, activity, sessions
from game_analytics.storage.queries import economy as economy_sql
from game_analytics.workers.load import copy_events

_names = itertools.count()




@pytest.fixture(scope="module")
def cdnow_engine(postgres_server, _migrated_template, cdnow_master: pd.DataFrame) -> Iterator[Engine]:
    """A migrated database holding the whole CDNOW master log as purchase events (loaded once per module)."""
    name = f"ga_activity_{next(_names)}"
    dsn = postgres_server.create_database(name, template=_migrated_template)
    events = purchase_events(cdnow_master)
    validate_event(events[0])  # fail loudly here if the conversion and the event model drift apart
    result = copy_events(events, dsn)
    assert result.inserted == len(cdnow_master) and result.dead_lettered == 0
    engine = make_engine(dsn)
    with engine.begin() as conn:  # fresh planner statistics, as autovacuum would gather after a bulk load
        conn.execute(text("ANALYZE"))
    yield engine
    engine.dispose()
    postgres_server.drop_database(name)


@pytest.fixture(scope="module")
def cdnow(cdnow_master: pd.DataFrame) -> pd.DataFrame:
    frame = cdnow_master.copy()
    frame["player_id"] = frame["customer_id"].map(customer_player_id)
    frame["day"] = frame["date"].dt.normalize()
    return frame


def test_monthly_cohort_retention_matches_pandas(cdnow_engine: Engine, cdnow: pd.DataFrame) -> None:
    matrix, sizes = activity.retention_matrix(cdnow_engine, period="month")

    month = cdnow["date"].dt.to_period("M")
    first = month.groupby(cdnow["player_id"]).transform("min")
    k = (month - first).apply(lambda off: off.n)
    active = pd.DataFrame({"cohort": first.dt.to_timestamp(), "k": k, "player_id": cdnow["player_id"]})
    counts = active.drop_duplicates().groupby(["cohort", "k"]).size().unstack(fill_value=0)
    expected = counts.div(counts[0], axis=0)
    last = month.max()
    for cohort in expected.index:
        horizon = (last - cohort.to_period("M")).n
        expected.loc[cohort, [c for c in expected.columns if c > horizon]] = np.nan

    assert list(sizes.index) == list(counts.index)  # the acquisition cohorts: Jan, Feb, Mar 1997
    assert sizes.tolist() == counts[0].tolist()
    assert sizes.sum() == cdnow["customer_id"].nunique()
    pd.testing.assert_frame_equal(matrix, expected, check_names=False, check_dtype=False)
    assert (matrix[0] == 1.0).all() and matrix.iloc[:, 1:].max().max() < 0.5


def test_weekly_retention_cohorts_partition_players(cdnow_engine: Engine, cdnow: pd.DataFrame) -> None:
    matrix, sizes = activity.retention_matrix(cdnow_engine, period="week")
    first_week = cdnow.groupby("player_id")["day"].min().dt.to_period("W-SUN").dt.start_time
    assert sizes.to_dict() == first_week.value_counts().sort_index().to_dict()
    assert (matrix[0] == 1.0).all()


def test_dau_wau_mau_match_pandas(cdnow_engine: Engine, cdnow: pd.DataFrame) -> None:
    start, end = datetime(1997, 3, 1, tzinfo=UTC), datetime(1997, 6, 1, tzinfo=UTC)
    got = activity.daily_active_players(cdnow_engine, Filters(start=start, end=end)).set_index("day")

    window = cdnow[(cdnow["day"] >= "1997-03-01") & (cdnow["day"] < "1997-06-01")]
    by_day = window.groupby("day")["player_id"].agg(set)
    days = pd.date_range("1997-03-01", "1997-05-31", freq="D")
    by_day = by_day.reindex(days, fill_value=set())
    for span, column in ((1, "dau"), (7, "wau"), (30, "mau")):
        expected = [len(set().union(*by_day.iloc[max(0, i - span + 1): i + 1])) for i in range(len(days))]
        assert got[column].tolist() == expected, column
    assert list(got.index) == list(days)


def test_daily_players_is_the_dau_of_every_active_day(cdnow_engine: Engine, cdnow: pd.DataFrame) -> None:
    start, end = datetime(1997, 3, 1, tzinfo=UTC), datetime(1997, 6, 1, tzinfo=UTC)
    got = activity.daily_players(cdnow_engine, Filters(start=start, end=end))
    full = activity.daily_active_players(cdnow_engine, Filters(start=start, end=end)).set_index("day")["dau"]
    pd.testing.assert_series_equal(got, full[full > 0], check_names=False, check_freq=False)
    window = cdnow[(cdnow["day"] >= "1997-03-01") & (cdnow["day"] < "1997-06-01")]
    assert got.to_dict() == window.groupby("day")["player_id"].nunique().to_dict()
    after = datetime(2001, 1, 1, tzinfo=UTC)  # after the CDNOW log
    assert activity.daily_players(cdnow_engine, Filters(start=after, end=after + timedelta(days=1))).empty


def test_active_players_by_period(cdnow_engine: Engine, cdnow: pd.DataFrame) -> None:
    as_of = datetime(1998, 6, 30, tzinfo=UTC)
    got = activity.active_players_by_period(cdnow_engine, as_of).set_index("period")["players"]
    for label, days in (("1d", 1), ("7d", 7), ("30d", 30)):
        expected = cdnow.loc[cdnow["day"] > pd.Timestamp(as_of - timedelta(days=days)).tz_localize(None),
                             "player_id"].nunique()  # fmt: skip
        assert got[label] == expected
    assert got["1h"] == cdnow.loc[cdnow["day"] == "1998-06-30", "player_id"].nunique() > 0


def test_sessions_are_player_days_for_daily_data(cdnow_engine: Engine, cdnow: pd.DataFrame) -> None:
    filters = Filters(end=datetime(1997, 2, 1, tzinfo=UTC))
    got = sessions.sessions(cdnow_engine, filters)
    january = cdnow[cdnow["day"] < "1997-02-01"]
    per_day = january.groupby(["player_id", "day"]).size()
    assert len(got) == len(per_day)
    assert got["events"].sum() == len(january)
    assert sorted(got["events"].tolist()) == sorted(per_day.tolist())
    assert (got["duration_seconds"] == 0).all()


def test_sessions_split_on_gaps_only(db_dsn: str) -> None:
    """The one session definition (storage/queries/sessions.py): inter-event sessions split at gaps over 30
    minutes only, lasting from the first to the last event; logins and logouts without ``session_seconds``
    do not cut them, and the summary falls back to these sessions."""
    t0 = datetime(2024, 5, 1, 12, tzinfo=UTC)
    spec = [  # (minutes after t0, type)
        (0, "login"), (5, "purchase"), (20, "purchase"),  # session 1
        (60, "purchase"), (61, "logout"),  # gap of 40 min > 30: session 2, ends with logout
        (62, "purchase"),  # after a logout: session 3
        (63, "login"), (64, "purchase"),  # a login always starts a session: 4
    ]
    events = [
        {"event_id": f"s-{i}", "event_type": kind, "occurred_at": t0 + timedelta(minutes=m), "player_id": "p1",
         "game": "g", "region": "EU",
         "payload": {"quantity": 1, "amount": 1.0} if kind == "purchase" else {}}
        for i, (m, kind) in enumerate(spec)
    ]  # fmt: skip
    assert copy_events(events, db_dsn).inserted == len(events)
    engine = make_engine(db_dsn)
    try:
        got = sessions.sessions(engine)
    finally:
        engine.dispose()
    assert got["events"].tolist() == [3, 5]
    assert got["duration_seconds"].tolist() == [1200.0, 240.0]
    assert got["session"].tolist() == [1, 2]
    engine = make_engine(db_dsn)
    try:
        summary, method = sessions.session_summary(engine)
    finally:
        engine.dispose()
    assert method.startswith("inter-event") and int(summary["sessions"]) == 2
    assert float(summary["mean_seconds"]) == 720.0


def test_funnel_repeat_purchases_within_90_days(cdnow_engine: Engine, cdnow: pd.DataFrame) -> None:
    got = activity.funnel(cdnow_engine, ["purchase"] * 3, window=timedelta(days=90))
    ordered = cdnow.sort_values(["player_id", "day"], kind="stable")
    nth = ordered.groupby("player_id").cumcount()
    first = ordered.groupby("player_id")["day"].transform("min")
    within = ordered["day"] <= first + pd.Timedelta(days=90)
    expected = [int(((nth == i) & within).sum()) for i in range(3)]
    assert got["players"].tolist() == expected
    assert expected[0] == cdnow["player_id"].nunique() and expected[2] < expected[1] < expected[0]
    assert got["conversion"].iloc[0] == 1.0


def test_events_by_type_and_hour(cdnow_engine: Engine, cdnow: pd.DataFrame) -> None:
    by_type = activity.events_by_type(cdnow_engine)
    assert by_type.to_dict("records") == [
        {"game": "cdnow", "event_type": "purchase", "events": len(cdnow), "players": cdnow["player_id"].nunique()}
    ]
    by_hour = activity.events_by_hour(cdnow_engine)
    assert by_hour["hour"].tolist() == list(range(24))
    assert by_hour["events"].tolist() == [len(cdnow)] + [0] * 23  # the log has dates only: 00:00 UTC
    assert activity.events_by_type(cdnow_engine, Filters(games=["other"])).empty
    assert activity.events_by_type(cdnow_engine, Filters(regions=["DE"])).empty


def test_spend_per_player_matches_pandas(cdnow_engine: Engine, cdnow: pd.DataFrame) -> None:
    got = economy_sql.spend_per_player(cdnow_engine).set_index("player_id")
    expected = cdnow.groupby("player_id").agg(
        purchases=("dollar_value", "size"), quantity=("number_of_cds", "sum"), amount=("dollar_value", "sum")
    )
    got = got.loc[expected.index]
    assert got["purchases"].tolist() == expected["purchases"].tolist()
    assert got["quantity"].tolist() == expected["quantity"].tolist()
    np.testing.assert_allclose(got["amount"], expected["amount"], rtol=1e-12)


def test_gini_in_sql_equals_pure_function(cdnow_engine: Engine, cdnow: pd.DataFrame) -> None:
    for as_of in (datetime(1997, 3, 31, tzinfo=UTC), None):
        sql = economy_sql.gini_by_market(cdnow_engine, as_of).set_index(["game", "currency"]).loc[("cdnow", "USD")]
        values = economy_sql.wealth_values(cdnow_engine, "cdnow", "USD", as_of)
        subset = cdnow if as_of is None else cdnow[cdnow["day"] <= "1997-03-31"]
        independent = subset.groupby("player_id")["dollar_value"].sum().to_numpy()
        assert sql["players"] == len(values) == len(independent)
        assert sql["gini"] == pytest.approx(economy.gini(values), abs=1e-9)
        assert sql["gini"] == pytest.approx(economy.gini(independent), abs=1e-9)
        assert 0.3 < sql["gini"] < 0.9


def test_wealth_histogram_fixed_buckets(cdnow_engine: Engine, cdnow: pd.DataFrame) -> None:
    buckets = (0, 10, 11.77, 100, 1_000, 10_000)  # 11.77 is a real spend: the bound is inclusive
    got = economy_sql.wealth_histogram(cdnow_engine, buckets)
    counts, total = got[("cdnow", "USD")]
    wealth = cdnow.groupby("player_id")["dollar_value"].sum().to_numpy()
    assert counts == [int((wealth <= b).sum()) for b in buckets] + [len(wealth)]
    assert total == pytest.approx(wealth.sum())
    assert counts[2] > counts[1]  # somebody spent exactly 11.77
    with pytest.raises(ValueError, match="increasing"):
        economy_sql.wealth_histogram(cdnow_engine, (10, 5))


def test_price_index_is_average_price_per_cd_per_month(cdnow_engine: Engine, cdnow: pd.DataFrame) -> None:
    got = economy_sql.price_index(cdnow_engine)
    month = cdnow["date"].dt.to_period("M").dt.to_timestamp()
    sums = cdnow.groupby(month)[["dollar_value", "number_of_cds"]].sum()
    unit = sums["dollar_value"] / sums["number_of_cds"]
    assert got["period"].tolist() == list(unit.index)
    np.testing.assert_allclose(got["unit_price"], unit.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(got["index"], (unit / unit.iloc[0]).to_numpy(), rtol=1e-12)
    inflation = economy.inflation_rate(got["index"].to_numpy())
    assert inflation.shape == (len(unit) - 1,)

    as_of = datetime(1998, 6, 30, tzinfo=UTC)
    now = economy_sql.price_index_at(cdnow_engine, as_of).iloc[0]
    recent = cdnow[cdnow["day"] > "1998-05-31"]
    assert now["unit_price"] == pytest.approx(recent["dollar_value"].sum() / recent["number_of_cds"].sum())
    assert now["index"] == pytest.approx(now["unit_price"] / unit.iloc[0])


def test_trade_volume_matches_pure_function(cdnow_engine: Engine, cdnow: pd.DataFrame) -> None:
    got = economy_sql.trade_volume(cdnow_engine, period="month")
    pure = economy.trade_volume(
        cdnow.rename(columns={"date": "time", "dollar_value": "value"}), "MS", time_col="time", value_col="value"
    )
    assert got["period"].tolist() == list(pure.index)
    assert got["trades"].tolist() == pure["trades"].tolist()
    np.testing.assert_allclose(got["value"], pure["value"], rtol=1e-12)
    with cdnow_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() == got["trades"].sum()


# --- running per-player aggregates ------------------------------------------------------------------------------


def _caught_up(engine: Engine) -> Iterator:
    """A REPEATABLE READ connection whose aggregates have just caught up (the exporter's transaction)."""
    with engine.connect() as conn:
        conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        derived.catch_up(conn.connection.driver_connection)
        yield conn
        conn.commit()


@pytest.mark.parametrize("as_of", [datetime(1997, 3, 31, 12, tzinfo=UTC), datetime(1998, 6, 30, tzinfo=UTC),
                                   datetime(1998, 7, 1, tzinfo=UTC)])  # fmt: skip
def test_aggregates_give_the_same_figures_as_the_events(cdnow_engine: Engine, cdnow: pd.DataFrame,
                                                        as_of: datetime) -> None:  # fmt: skip
    """The first two as-of times have events after them: the late-event corrections of the aggregates are
    exercised; the last is after every event (CDNOW ends on 1998-06-30): the balances are read as they are."""
    buckets = (0, 10, 11.77, 100, 1_000)
    for conn in _caught_up(cdnow_engine):
        active = activity.active_players_by_period(conn, as_of, aggregates=True)
        pd.testing.assert_frame_equal(active, activity.active_players_by_period(conn, as_of))
        gini, hist = economy_sql.wealth_distribution(conn, buckets, as_of, aggregates=True)
        raw_gini, raw_hist = economy_sql.wealth_distribution(conn, buckets, as_of)
    pd.testing.assert_frame_equal(gini, raw_gini, rtol=1e-12)
    assert hist.keys() == raw_hist.keys() and hist[("cdnow", "USD")][0] == raw_hist[("cdnow", "USD")][0]
    subset = cdnow[cdnow["date"] <= pd.Timestamp(as_of).tz_localize(None)]
    spend = subset.groupby("player_id")["dollar_value"].sum().to_numpy()
    assert gini.loc[0, "players"] == len(spend) > 0
    assert gini.loc[0, "gini"] == pytest.approx(economy.gini(spend), abs=1e-9)
    assert hist[("cdnow", "USD")][0] == [int((spend <= b).sum()) for b in buckets] + [len(spend)]


def _flow(conn, player: str, amount: float, at: datetime, event_id: str) -> None:
    conn.execute(text("""
        INSERT INTO events (event_id, event_type, occurred_at, player_id, game, payload)
        VALUES (:id, 'purchase', :at, :player, 'g', jsonb_build_object('amount', CAST(:amount AS numeric)))"""),
        {"id": event_id, "at": at, "player": player, "amount": amount})  # fmt: skip


def test_catch_up_folds_in_late_commits_exactly_once(db_dsn: str) -> None:
    """A transaction that stored its rows before a catch-up but committed after it is still included (a
    high-water mark on ``id`` would skip it), and nothing is counted twice."""
    engine = make_engine(db_dsn)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    try:
        with engine.begin() as conn:
            _flow(conn, "a", 10.0, t0, "e1")
        slow = engine.connect()
        slow.begin()
        _flow(slow, "b", 5.0, t0, "e2")  # stored, not committed yet
        with engine.begin() as conn:
            _flow(conn, "a", 2.5, t0 + timedelta(hours=1), "e3")  # a later id, committed first
        for conn in _caught_up(engine):
            assert derived.catch_up(conn.connection.driver_connection) == 0  # a second catch-up in one snapshot finds nothing
        slow.commit()
        slow.close()
        with engine.begin() as conn:
            _flow(conn, "b", 1.0, t0 + timedelta(hours=2), "e4")
        for _conn in _caught_up(engine):
            pass
        with engine.connect() as conn:
            balances = conn.execute(text("SELECT player_id, wealth, events FROM player_balances ORDER BY 1")).all()
            last = dict(conn.execute(text("SELECT player_id, last_at FROM player_activity")).all())
            state = conn.execute(text("SELECT events FROM aggregate_state")).scalar_one()
        assert [(p, float(w), n) for p, w, n in balances] == [("a", 12.5, 2), ("b", 6.0, 2)]
        assert last == {"a": t0 + timedelta(hours=1), "b": t0 + timedelta(hours=2)}
        assert state == 4
        expected = economy_sql.wealth_per_player(engine)
        assert expected["wealth"].tolist() == [12.5, 6.0]
    finally:
        engine.dispose()
