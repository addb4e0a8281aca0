"""The hourly rollups (activity_hourly, market_hourly) kept by the catch-up, and the exporter's economy figures
read from them: equal to the same figures over the raw payloads, for windows cutting hours at both ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import create_engine, pool

from game_analytics.storage.derived import catch_up_now
from game_analytics.storage.engine import libpq_dsn
from game_analytics.storage.queries import economy, rollups
from game_analytics.workers.batches import prepare_connection, prepare_dicts, write_batch

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def events() -> list[dict]:
    out = []
    for i in range(400):
        at = T0 + timedelta(minutes=37 * i)
        if i % 3:
            out.append({"event_id": f"p{i}", "event_type": "purchase", "occurred_at": at.isoformat(),
                        "player_id": f"u{i % 9}", "game": "shop" if i % 2 else "arena",
                        "payload": {"quantity": 1 + i % 4, "amount": round(0.5 + (i % 11) * 1.25, 2),
                                    "currency": "EUR" if i % 5 == 0 else "USD"}})  # fmt: skip
        else:
            out.append({"event_id": f"t{i}", "event_type": "trade", "occurred_at": at.isoformat(),
                        "player_id": f"u{i % 9}", "game": "arena",
                        "payload": {"item_id": "sword", "counterparty_id": "u1", "quantity": 1, "value": 1 + i % 7}})  # fmt: skip
    return out


@pytest.fixture
def engine(db_dsn: str):
    with psycopg.connect(libpq_dsn(db_dsn)) as conn:
        prepare_connection(conn)
        half = events()
        with conn.transaction():
            write_batch(conn, prepare_dicts(enumerate(half[:250])))
        catch_up_now(conn)
        with conn.transaction():
            write_batch(conn, prepare_dicts(enumerate(half[250:])))
        catch_up_now(conn)  # the rollups grow by a second catch-up
    engine = create_engine(db_dsn, poolclass=pool.NullPool)
    yield engine
    engine.dispose()


def test_activity_rollup_counts_every_event_once(engine) -> None:
    with engine.connect() as conn:
        rolled = conn.exec_driver_sql("SELECT game, event_type, sum(events)::bigint FROM activity_hourly GROUP BY 1, 2 "
                                      "ORDER BY 1, 2").all()  # fmt: skip
        raw = conn.exec_driver_sql("SELECT game, event_type, count(*) FROM events GROUP BY 1, 2 ORDER BY 1, 2").all()
    assert rolled == raw and sum(n for *_, n in raw) == 400


@pytest.mark.parametrize("as_of", [T0 + timedelta(days=5, minutes=23), T0 + timedelta(days=9, hours=6),
                                   T0 + timedelta(minutes=50), T0 + timedelta(hours=61)])  # fmt: skip
def test_rollup_economy_equals_the_payload_queries(engine, as_of: datetime) -> None:
    """The last as_of puts the 1-day window's start exactly on an event at a full hour (excluded: (since, as_of])."""
    with engine.connect() as conn:
        for window in (timedelta(days=30), timedelta(days=1, minutes=7), timedelta(minutes=20)):
            fast = rollups.price_index_at(conn, as_of, window=window)
            slow = economy.price_index_at(conn, as_of, window=window)
            assert fast[["game", "currency"]].values.tolist() == slow[["game", "currency"]].values.tolist()
            assert fast["index"].tolist() == pytest.approx(slow["index"].tolist(), rel=1e-12)
            since = as_of - window
            fast_v = rollups.trade_volume_since(conn, since, as_of, ["arena", "shop"])
            slow_v = economy.trade_volume_since(conn, since, as_of, ["arena", "shop"])
            assert fast_v[["game", "currency", "trades"]].values.tolist() == \
                slow_v[["game", "currency", "trades"]].values.tolist()
            assert fast_v["value"].tolist() == pytest.approx(slow_v["value"].tolist(), rel=1e-12)


def test_rollup_economy_restricted_to_one_game(engine) -> None:
    """The game filter applies to both the rollup rows and the raw edges: only that game's rows, same figures."""
    as_of = T0 + timedelta(days=5, minutes=23)
    with engine.connect() as conn:
        fast = rollups.price_index_at(conn, as_of, ["shop"], window=timedelta(days=1, minutes=7))
        slow = economy.price_index_at(conn, as_of, ["shop"], window=timedelta(days=1, minutes=7))
        volume = rollups.trade_volume_since(conn, as_of - timedelta(days=2), as_of, ["shop"])
        slow_volume = economy.trade_volume_since(conn, as_of - timedelta(days=2), as_of, ["shop"])
    assert set(fast["game"]) == {"shop"} and set(volume["game"]) == {"shop"}
    assert fast["index"].tolist() == pytest.approx(slow["index"].tolist(), rel=1e-12)
    assert volume["trades"].tolist() == slow_volume["trades"].tolist()
