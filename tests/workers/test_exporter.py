"""The exporter against real PostgreSQL and Redis: scrape its HTTP endpoint, compare with SQL, promtool-check it."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import redis
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, create_engine, text

from game_analytics.analytics import economy
from game_analytics.data.datasets import load_cdnow_master
from game_analytics.data.events import purchase_events
from game_analytics.monitoring import names
from game_analytics.storage.engine import make_engine
from game_analytics.storage.queries import economy as economy_sql
from game_analytics.workers import exporter
from game_analytics.workers.exporter import AnalyticsCollector
from game_analytics.workers.load import copy_events

_names = itertools.count()




def add_synthetic_players(engine: Engine, n: int, *, game: str = "synth", board: str = "synth-elo") -> None:
    """``n`` players with 2 purchases each in the 40 days before 2024-01-01 and a leaderboard row each."""
    with engine.begin() as conn:
        conn.execute(text("""
            INSERT INTO events (event_id, event_type, occurred_at, player_id, game, region, payload)
            SELECT 'syn-' || g || '-' || k, 'purchase',
                   timestamptz '2024-01-01' - (g % 40) * interval '1 day' - k * interval '1 minute',
                   'p' || g, :game, (ARRAY['EU', 'US', 'AS'])[1 + (g + k) % 3],
                   jsonb_build_object('quantity', 1 + g % 5, 'amount', ((g::bigint * 7919) % 100000) / 100.0,
                                      'currency', 'USD')
            FROM generate_series(1, :n) AS g, generate_series(1, 2) AS k"""), {"n": n, "game": game})
        conn.execute(text("""
            INSERT INTO leaderboard_entries (board, season, player_id, rating, rank, percentile, league)
            SELECT :board, '2024', 'p' || g, 400 + (g * 37) % 2800, g, 100.0 * (:n - g) / :n,
                   (ARRAY['bronze', 'silver', 'gold'])[1 + g % 3]
            FROM generate_series(1, :n) AS g"""), {"n": n, "board": board})
        conn.execute(text("ANALYZE"))


@pytest.fixture(scope="module")
def store(postgres_server, _migrated_template) -> Iterator[Engine]:
    """CDNOW purchases, a leaderboard, detections with interventions and a finished report run."""
    name = f"ga_exporter_{next(_names)}"
    dsn = postgres_server.create_database(name, template=_migrated_template)
    result = copy_events(purchase_events(load_cdnow_master()), dsn)
    assert result.dead_lettered == 0
    engine = make_engine(dsn)
    add_synthetic_players(engine, 300)
    with engine.begin() as conn:
        conn.execute(text("""
            INSERT INTO detections (rule, category, severity, player_id, score, evidence)
            VALUES ('ns/a', 'player', 'critical', 'cdnow-00001', 9, '{}'), ('ns/a', 'player', 'critical', 'cdnow-00002', 8, '{}'),
                   ('ns/b', 'economic', 'warning', NULL, 2, '{}')"""))  # fmt: skip
        conn.execute(text("""
            INSERT INTO interventions (detection_id, priority, category, status)
            SELECT id, CASE severity WHEN 'critical' THEN 1 ELSE 2 END, category,
                   CASE WHEN player_id = 'cdnow-00002' THEN 'resolved' ELSE 'open' END::intervention_status
            FROM detections"""))
        conn.execute(text("""
            INSERT INTO report_runs (report_name, namespace, report_type, finished_at, outcome)
            VALUES ('weekly', 'ns', 'economy', '2024-01-02T00:00:00Z', 'succeeded'),
                   ('weekly', 'ns', 'economy', '2024-01-03T00:00:00Z', 'failed')"""))
        conn.execute(text("ANALYZE"))
    yield engine
    engine.dispose()
    postgres_server.drop_database(name)


@pytest.fixture
def stream(clean_redis_url: str) -> redis.Redis:
    """A stream with 5 entries: 2 delivered but not acknowledged by group ``ingest``, 3 not delivered."""
    client = redis.Redis.from_url(clean_redis_url)
    client.xgroup_create("game-events", "ingest", id="0", mkstream=True)
    for i in range(5):
        client.xadd("game-events", {"data": f"{i}"}, id=f"{1_700_000_000_000 + i}-0")
    client.xreadgroup("ingest", "c1", {"game-events": ">"}, count=2)
    return client


def serve(collector: AnalyticsCollector) -> tuple[str, Any]:
    registry = CollectorRegistry()
    registry.register(collector)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    return f"http://127.0.0.1:{server.server_port}/metrics", server


def scrape(url: str) -> str:
    response = httpx.get(url, timeout=60)
    response.raise_for_status()
    return response.text


def samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found: dict, metric: str, /, **labels: str) -> float:
    return found[(metric, tuple(sorted(labels.items())))]


def test_as_of_latest_is_the_newest_event(store: Engine) -> None:
    found = samples(exporter.generate_latest(_registry(AnalyticsCollector(store, as_of="latest"))).decode())
    with store.connect() as conn:
        newest = conn.execute(text("SELECT max(occurred_at) FROM events")).scalar_one()
    assert value(found, names.EXPORTER_AS_OF) == newest.timestamp()
    assert value(found, names.ACTIVE_PLAYERS, game="synth", period="1d") > 0
    now = samples(exporter.generate_latest(_registry(AnalyticsCollector(store, as_of="now"))).decode())
    assert not any(key[0] == names.ACTIVE_PLAYERS for key in now)  # nothing happened in the last 30 days


def test_scrape_values_against_sql(store: Engine, stream: redis.Redis) -> None:
    as_of = datetime(1998, 6, 30, tzinfo=UTC)
    collector = AnalyticsCollector(store, games=["cdnow"], as_of=as_of, ttl=60, redis_client=stream,
                                   clock=lambda: 1_700_000_100.0)  # fmt: skip
    url, server = serve(collector)
    try:
        body = scrape(url)
    finally:
        server.shutdown()
    found = samples(body)
    cdnow = load_cdnow_master()
    cdnow["day"] = cdnow["date"].dt.normalize()

    for period, days in (("1d", 1), ("7d", 7), ("30d", 30)):
        since = pd.Timestamp("1998-06-30") - pd.Timedelta(days=days)
        assert value(found, names.ACTIVE_PLAYERS, game="cdnow", period=period) == (
            cdnow.loc[cdnow["day"] > since, "customer_id"].nunique())
    assert value(found, names.ACTIVE_PLAYERS_BY_REGION, game="cdnow", region="US") == (
        cdnow.loc[cdnow["day"] == "1998-06-30", "customer_id"].nunique())
    assert not any(key[1] and ("game", "synth") in key[1] for key in found)  # --games filter

    spend = cdnow.groupby("customer_id")["dollar_value"].sum().to_numpy()
    assert value(found, names.GINI, game="cdnow", currency="USD") == pytest.approx(economy.gini(spend), abs=1e-9)
    assert value(found, names.PLAYER_WEALTH + "_gcount", game="cdnow", currency="USD") == len(spend)
    assert value(found, names.PLAYER_WEALTH + "_gsum", game="cdnow", currency="USD") == pytest.approx(spend.sum())
    for bound in names.WEALTH_BUCKETS:
        assert value(found, names.PLAYER_WEALTH + "_bucket", game="cdnow", currency="USD", le=str(float(bound))) == (
            (spend <= bound).sum())
    index = economy_sql.price_index_at(store, as_of, ["cdnow"]).iloc[0]["index"]
    assert value(found, names.PRICE_INDEX, game="cdnow", currency="USD") == pytest.approx(index)
    last_day = cdnow[cdnow["day"] == "1998-06-30"]["dollar_value"].sum()
    assert value(found, names.TRADE_VOLUME, game="cdnow", currency="USD") == pytest.approx(last_day)

    # leaderboard (not game-filtered: rankings are per board): 300 synthetic entries in three leagues
    assert value(found, names.PLAYER_RATING + "_gcount", game="unknown", ranking="synth-elo") == 300
    assert sum(value(found, names.LEAGUE_PLAYERS, game="unknown", ranking="synth-elo", league=lg)
               for lg in ("bronze", "silver", "gold")) == 300  # fmt: skip
    assert value(found, names.DETECTIONS_STORED, rule="ns/a", category="player", severity="critical") == 2
    assert value(found, names.DETECTIONS_OPEN, category="player", status="open", priority="1") == 1
    assert value(found, names.INTERVENTIONS_OPEN, action="review_economic", status="open", priority="2") == 1
    assert value(found, names.SCHEDULED_RUNS, kind="ScheduledReport", name="ns/weekly", outcome="failure") == 1
    assert value(found, names.SCHEDULED_LAST_SUCCESS, kind="ScheduledReport", name="ns/weekly") == (
        datetime(2024, 1, 2, tzinfo=UTC).timestamp())

    # stream: 2 pending (oldest entry at 1_700_000_000.000), 3 undelivered
    assert value(found, names.INGEST_LAG, stream="game-events") == pytest.approx(100.0)
    assert value(found, names.INGEST_GROUP_PENDING, stream="game-events", group="ingest") == 2
    assert value(found, names.INGEST_GROUP_LAG, stream="game-events", group="ingest") == 3


def test_ingest_lag_follows_acknowledgements(stream: redis.Redis) -> None:
    now = 1_700_000_010.0
    assert exporter.stream_lag(stream, "game-events", "ingest", now) == (pytest.approx(10.0), 3, 2)
    ids = [entry_id for entry_id, _ in stream.xrange("game-events", count=2)]
    stream.xack("game-events", "ingest", *ids)
    # nothing pending: the lag is the age of the first undelivered entry (the third, 2 ms later)
    assert exporter.stream_lag(stream, "game-events", "ingest", now)[0] == pytest.approx(9.998)
    stream.xreadgroup("ingest", "c1", {"game-events": ">"})
    stream.xack("game-events", "ingest", *[e for e, _ in stream.xrange("game-events")])
    assert exporter.stream_lag(stream, "game-events", "ingest", now) == (0.0, 0, 0)
    assert exporter.stream_lag(stream, "no-such-stream", "ingest", now) is None


def test_ingest_lag_per_shard_stream(clean_redis_url: str) -> None:
    """With --shards 3 the lag of every shard stream is exported (a shard nobody publishes to has no stream yet
    and no series), not the unsharded stream's, which no one reads."""
    client = redis.Redis.from_url(clean_redis_url)
    for shard, (entries, delivered) in enumerate(((4, 1), (2, 0))):
        key = f"game-events:{shard}"
        client.xgroup_create(key, "ingest", id="0", mkstream=True)
        for i in range(entries):
            client.xadd(key, {"data": f"{i}"}, id=f"{1_700_000_000_000 + 1000 * shard + i}-0")
        if delivered:
            client.xreadgroup("ingest", "c1", {key: ">"}, count=delivered)
    collector = AnalyticsCollector(create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"), redis_client=client,
                                   shards=3, clock=lambda: 1_700_000_010.0)  # fmt: skip
    found = {(m.name, tuple(sorted(s.labels.items()))): s.value for m in collector._ingest() for s in m.samples}
    assert value(found, names.INGEST_LAG, stream="game-events:0") == pytest.approx(10.0)
    assert value(found, names.INGEST_LAG, stream="game-events:1") == pytest.approx(9.0)
    assert value(found, names.INGEST_GROUP_LAG, stream="game-events:0", group="ingest") == 3
    assert value(found, names.INGEST_GROUP_PENDING, stream="game-events:1", group="ingest") == 0
    assert {dict(k[1])["stream"] for k in found} == {"game-events:0", "game-events:1"}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
def test_promtool_accepts_the_scrape(store: Engine, stream: redis.Redis) -> None:
    url, server = serve(AnalyticsCollector(store, as_of="latest", redis_client=stream))
    try:
        body = scrape(url)
    finally:
        server.shutdown()
    check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True, check=False)
    assert check.returncode == 0 and check.stdout == "" and check.stderr == "", check.stdout + check.stderr


def test_series_count_does_not_grow_with_players(postgres_server, _migrated_template) -> None:
    counts = []
    for n in (100, 10_000):
        name = f"ga_exporter_{next(_names)}"
        engine = make_engine(postgres_server.create_database(name, template=_migrated_template))
        try:
            add_synthetic_players(engine, n)
            found = samples(exporter.generate_latest(_registry(AnalyticsCollector(engine, as_of="latest"))).decode())
            counts.append(sorted(key for key in found))
            with engine.connect() as conn:
                expected = conn.execute(text(
                    "SELECT count(DISTINCT player_id) FROM events"
                    " WHERE occurred_at > (SELECT max(occurred_at) FROM events) - interval '30 days'")).scalar_one()
            assert value(found, names.ACTIVE_PLAYERS, game="synth", period="30d") == expected > 0.7 * n
        finally:
            engine.dispose()
            postgres_server.drop_database(name)
    assert counts[0] == counts[1]
    assert len(counts[0]) < 200


def _registry(collector: AnalyticsCollector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def test_ttl_cache_serves_concurrent_scrapes_with_one_refresh(store: Engine) -> None:
    collector = AnalyticsCollector(store, as_of="latest", ttl=300)
    url, server = serve(collector)
    try:
        bodies: list[str] = []
        threads = [threading.Thread(target=lambda: bodies.append(scrape(url))) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        started = time.perf_counter()
        again = scrape(url)
        cached = time.perf_counter() - started
    finally:
        server.shutdown()
    assert collector.refreshes == 1
    assert len(set(bodies)) == 1 and again == bodies[0]
    assert cached < collector.last_refresh_seconds + 1.0
    zero = AnalyticsCollector(store, as_of="latest", ttl=0, background=False)
    list(zero.collect()), list(zero.collect())
    assert zero.refreshes == 2
    # stale-while-revalidate: a stale snapshot is served at once and refreshed in the background
    lazy = AnalyticsCollector(store, as_of="latest", ttl=0)
    first = list(lazy.collect())
    assert lazy.refreshes == 1
    assert list(lazy.collect()) == first  # served from the snapshot while the refresh runs
    deadline = time.monotonic() + 60
    while lazy.refreshes < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lazy.refreshes == 2


def test_a_failing_query_is_counted_and_the_rest_exported(store: Engine) -> None:
    collector = AnalyticsCollector(store, as_of="latest", ttl=0, background=False)

    def broken(conn: Any, as_of: datetime) -> list:
        conn.execute(text("SELECT * FROM no_such_table"))
        return []

    collector._rankings = broken  # type: ignore[method-assign]
    found = samples(exporter.generate_latest(_registry(collector)).decode())
    assert value(found, names.EXPORTER_QUERY_ERRORS, query="rankings") == 1
    assert value(found, names.ACTIVE_PLAYERS, game="synth", period="30d") > 0
    assert not any(key[0].startswith(names.PLAYER_RATING) for key in found)


def test_main_once_and_flag_errors(store: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    dsn = store.url.render_as_string(hide_password=False)
    assert exporter.main(["--dsn", dsn, "--as-of", "1998-06-30", "--once", "--no-redis"]) == 0
    out = capsys.readouterr().out
    assert f'{names.ACTIVE_PLAYERS}{{game="cdnow",period="30d"}}' in out
    with pytest.raises(SystemExit):
        exporter.main(["--dsn", dsn, "--as-of", "yesterday"])
    assert "--as-of" in capsys.readouterr().err


def test_refresh_folds_in_only_the_new_events(postgres_server, _migrated_template) -> None:
    name = f"ga_exporter_{next(_names)}"
    engine = make_engine(postgres_server.create_database(name, template=_migrated_template))
    try:
        add_synthetic_players(engine, 50)
        collector = AnalyticsCollector(engine, as_of="latest", ttl=300)
        collector.warm_up().join(60)
        assert collector.refreshes == 1 and collector.last_catch_up_events == 100
        list(collector.collect())
        assert collector.refreshes == 1  # the first scrape was served from the warm-up's snapshot
        with engine.begin() as conn:  # 3 more purchases of player p1 at the newest time
            conn.execute(text("""
                INSERT INTO events (event_id, event_type, occurred_at, player_id, game, payload)
                SELECT 'new-' || k, 'purchase', (SELECT max(occurred_at) FROM events), 'p1', 'synth',
                       '{"amount": 1000.25, "quantity": 1}' FROM generate_series(1, 3) AS k"""))
        found = samples(exporter.generate_latest(_registry(collector)).decode())  # cached
        before = value(found, names.PLAYER_WEALTH + "_gsum", game="synth", currency="USD")
        found = samples(_refreshed(collector))
        assert collector.last_catch_up_events == 3
        assert value(found, names.PLAYER_WEALTH + "_gsum", game="synth", currency="USD") == pytest.approx(
            before + 3000.75)
        with engine.connect() as conn:
            spend = conn.execute(text("""SELECT sum((payload->>'amount')::float8) FROM events
                                         GROUP BY player_id"""), {}).scalars().all()  # fmt: skip
        assert value(found, names.GINI, game="synth", currency="USD") == pytest.approx(
            economy.gini(np.array(spend)), abs=1e-9)
        _refreshed(collector)
        assert collector.last_catch_up_events == 0
    finally:
        engine.dispose()
        postgres_server.drop_database(name)


def _refreshed(collector: AnalyticsCollector) -> str:
    registry = CollectorRegistry()
    registry.register(_Fixed(collector.refresh()))
    return exporter.generate_latest(registry).decode()


class _Fixed:
    def __init__(self, families: list) -> None:
        self.families = families

    def collect(self) -> list:
        return self.families


def test_schedule_interval_from_cron():
    from datetime import UTC, datetime

    from game_analytics.workers.exporter import schedule_interval_seconds

    monday = datetime(2026, 11, 23, 12, tzinfo=UTC)
    assert schedule_interval_seconds("0 6 * * 1", "Europe/Berlin", monday) == 7 * 24 * 3600
    assert schedule_interval_seconds("*/15 * * * *", "UTC", monday) == 900
    assert schedule_interval_seconds("61 * * * *", "UTC", monday) is None
    assert schedule_interval_seconds("0 6 * * 1", "Mars/Olympus", monday) is None


def test_health_endpoints_never_wait_for_the_database() -> None:
    """The pod's probes: /livez answers at once while the database is unreachable (it used to be /metrics, which ran
    the whole refresh, so an outage became a liveness restart loop); /readyz is 503 until a snapshot exists."""
    import socket
    import sys

    with socket.socket() as s:  # a port nobody listens on: every connection attempt is refused
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "game_analytics.cli", "worker", "exporter", "--dsn",
         f"postgresql://nobody@127.0.0.1:{dead}/none", "--no-redis", "--port", str(port), "--listen", "127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                live = httpx.get(f"http://127.0.0.1:{port}/livez", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "the exporter did not start serving"
                time.sleep(0.2)
        assert live.status_code == 200 and live.elapsed.total_seconds() < 1
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
        assert ready.status_code == 503 and ready.text == "not ready\n"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_readiness_follows_the_first_snapshot(store: Engine) -> None:
    from game_analytics.workers.runtime import serve as serve_metrics

    collector = AnalyticsCollector(store, as_of="latest", ttl=60)
    registry = CollectorRegistry()
    registry.register(collector)
    server = serve_metrics(0, registry, "127.0.0.1", ready=collector.ready)
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert httpx.get(f"{base}/readyz").status_code == 503
        collector.warm_up().join(timeout=120)
        assert httpx.get(f"{base}/readyz").status_code == 200
        assert httpx.get(f"{base}/livez").status_code == 200
    finally:
        server.shutdown()


def _independent_forecast(daily: pd.Series, horizon: int = 30) -> pd.DataFrame:
    """statsmodels' ETS (additive error, damped additive trend, weekly seasonality) fitted here directly:
    ``mean``, ``pi_lower``, ``pi_upper`` of the ``horizon`` days after ``daily``, clipped at 0."""
    import warnings

    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ETSModel(daily, error="add", trend="add", damped_trend=True, seasonal="add",
                       seasonal_periods=7).fit(disp=False, maxiter=500)  # fmt: skip
        frame = fit.get_prediction(start=len(daily), end=len(daily) + horizon - 1).summary_frame(alpha=0.05)
    return frame[["mean", "pi_lower", "pi_upper"]].clip(lower=0.0)


def test_kpis_clv_churn_tiers_and_forecasts_against_pandas(store: Engine) -> None:
    """The slow section at the end of the CDNOW log: the 30-day KPIs against pandas, the CLV histogram and the risk
    tiers over every CDNOW player, the DAU and revenue forecasts against statsmodels fitted here on pandas' daily
    series; bounded labels only."""
    from game_analytics.workers.exporter_value import KPI_NAMES

    as_of = datetime(1998, 6, 30, tzinfo=UTC)
    found = samples(exporter.generate_latest(_registry(AnalyticsCollector(store, as_of=as_of, ttl=0,
                                                                          background=False))).decode())  # fmt: skip
    master = load_cdnow_master()
    window = master[master["date"] > pd.Timestamp("1998-05-31")]  # (as_of - 30 d, as_of]: June 1998 at midnight
    revenue = window["dollar_value"].sum()
    days = len(window[["customer_id", "date"]].drop_duplicates())
    paying = window.loc[window["dollar_value"] > 0, "customer_id"].nunique()
    kpi = {labels[1][1]: v for (name, labels), v in found.items() if name == names.KPI and labels[0][1] == "cdnow"}
    assert set(kpi) <= set(KPI_NAMES)
    assert kpi["active_players"] == window["customer_id"].nunique()
    assert kpi["revenue"] == pytest.approx(revenue) and kpi["arpdau"] == pytest.approx(revenue / days)
    assert kpi["arppu"] == pytest.approx(revenue / paying)
    assert kpi["new_players"] == 0 and kpi["returning_players"] == kpi["active_players"]  # one 1997 cohort
    customers = master["customer_id"].nunique()
    assert value(found, f"{names.PLAYER_CLV}_gcount", game="cdnow") == customers
    assert value(found, f"{names.PLAYER_CLV}_bucket", game="cdnow", le="+Inf") == customers
    tiers = {t: value(found, names.CHURN_RISK_PLAYERS, game="cdnow", tier=t) for t in ("high", "medium", "low")}
    assert sum(tiers.values()) == customers and tiers["high"] > 0
    assert not any("cdnow-" in str(labels) for _, labels in found)

    # forecasts of 1998-06-30 (the as_of day) on, from the complete days 1997-01-01 .. 1998-06-29
    days = pd.date_range("1997-01-01", "1998-06-29", freq="D")
    history = master[master["date"] < pd.Timestamp("1998-06-30")]
    dau = history.drop_duplicates(["customer_id", "date"]).groupby("date").size().reindex(days, fill_value=0)
    daily_revenue = history.groupby("date")["dollar_value"].sum().reindex(days, fill_value=0.0)
    for metric, series in (("dau", dau.astype(float)), ("revenue", daily_revenue.astype(float))):
        expected = _independent_forecast(series)
        for bound, column in (("forecast", "mean"), ("lower", "pi_lower"), ("upper", "pi_upper")):
            got = value(found, names.FORECAST, game="cdnow", metric=metric, bound=bound)
            assert got == pytest.approx(float(expected[column].iloc[0]), rel=1e-6, abs=1e-9), (metric, bound)
        total = expected["mean"].mean() if metric == "dau" else expected["mean"].sum()
        assert value(found, names.FORECAST_30D, game="cdnow", metric=metric) == pytest.approx(float(total), rel=1e-6)
        held_out = _independent_forecast(series.iloc[:-30])["mean"].to_numpy()
        actual = series.iloc[-30:].to_numpy()
        keep = actual != 0
        mape = float(np.mean(np.abs(actual[keep] - held_out[keep]) / actual[keep]))
        assert value(found, names.FORECAST_MAPE, game="cdnow", metric=metric) == pytest.approx(mape, rel=1e-6)
        print(f"\nexporter {metric}: forecast of 1998-06-30 {expected['mean'].iloc[0]:.2f} "
              f"[{expected['pi_lower'].iloc[0]:.2f}, {expected['pi_upper'].iloc[0]:.2f}], next 30 days "
              f"{'mean' if metric == 'dau' else 'total'} {total:.2f}, backtest MAPE {100 * mape:.1f} %")
    assert value(found, names.MODEL_FIT_TIMESTAMP, game="cdnow", model="forecast") > 0
