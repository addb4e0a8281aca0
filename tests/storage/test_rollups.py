"""The hourly rollups (activity_hourly, market_hourly) kept by the catch-up, and the exporter's economy figures
read from them: equal to the same figures over the raw payloads, for windows cutting hours at both ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import psycopg
import pytest
from sqlalchemy import create_engine, pool

from game_analytics.storage.derived import catch_up_now
from game_analytics.storage.engine import libpq_dsn
from game_analytics.storage.queries import activity, economy, rollups
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


LAST = T0 + timedelta(minutes=37 * 399)  # the newest event


@pytest.mark.parametrize("as_of", [T0 + timedelta(days=5, minutes=23), T0 + timedelta(days=9, hours=6),
                                   T0 + timedelta(minutes=50), T0 + timedelta(hours=61), LAST,
                                   LAST + timedelta(minutes=5), T0 + timedelta(hours=5)])  # fmt: skip
def test_rollup_activity_equals_the_event_queries(engine, as_of: datetime) -> None:
    """Events and active players per period from activity_hourly / last_activity_hourly equal the scans of
    events, both with events after as_of (the late-player correction, the partial top hour) and without (LAST:
    the top hour read whole from the rollups), for periods shorter than an hour and cutting hours."""
    periods = {"20m": timedelta(minutes=20), "1h": timedelta(hours=1), "1d7m": timedelta(days=1, minutes=7),
               "7d": timedelta(days=7), "30d": timedelta(days=30)}  # fmt: skip
    with engine.connect() as conn:
        complete = not rollups.events_after(conn, as_of)
        assert complete == (as_of >= LAST)
        for games in ((), ("arena",)):
            fast = rollups.events_by_period(conn, as_of, games, periods)
            assert fast == activity.events_by_period(conn, as_of, games, periods)
            assert fast and sum(row[-1] for row in fast) > 0
            players = rollups.active_players_by_period(conn, as_of, games, periods)
            pd.testing.assert_frame_equal(players, activity.active_players_by_period(conn, as_of, games, periods))
            assert players["players"].max() > 0


def test_last_activity_rollup_moves_players_between_hours(engine) -> None:
    """A newer event moves a player to a later hour, an older one (a late arrival) leaves them where they are, a
    new player is added: after each catch-up the rollup equals player_activity counted by hour."""
    def by_hour(conn) -> list:
        return conn.exec_driver_sql("""SELECT game, date_trunc('hour', last_at AT TIME ZONE 'UTC'), count(*)
            FROM player_activity GROUP BY 1, 2 ORDER BY 1, 2""").all()

    def rolled(conn) -> list:
        return conn.exec_driver_sql("""SELECT game, hour AT TIME ZONE 'UTC', players FROM last_activity_hourly
            WHERE players <> 0 ORDER BY 1, 2""").all()

    with engine.connect() as conn:
        players = conn.exec_driver_sql("SELECT count(*) FROM player_activity").scalar_one()
        assert rolled(conn) == by_hour(conn) and sum(n for *_, n in rolled(conn)) == players > 9
    late = [{"event_id": "late-1", "event_type": "login", "occurred_at": T0.isoformat(), "player_id": "u3",
             "game": "arena"},
            {"event_id": "new-1", "event_type": "login", "occurred_at": (T0 + timedelta(hours=3)).isoformat(),
             "player_id": "newcomer", "game": "arena"},
            {"event_id": "next-1", "event_type": "login", "occurred_at": (LAST + timedelta(hours=2)).isoformat(),
             "player_id": "u4", "game": "arena"},
            {"event_id": "next-2", "event_type": "login", "occurred_at": (LAST + timedelta(hours=2)).isoformat(),
             "player_id": "u5", "game": "arena"}]  # fmt: skip
    with psycopg.connect(engine.url.render_as_string(hide_password=False).replace("+psycopg", "")) as raw:
        prepare_connection(raw)
        with raw.transaction():
            write_batch(raw, prepare_dicts(enumerate(late)))
        assert catch_up_now(raw) == 4
    with engine.connect() as conn:
        assert rolled(conn) == by_hour(conn)
        assert conn.exec_driver_sql("SELECT sum(players) FROM last_activity_hourly").scalar_one() == players + 1
        top = conn.exec_driver_sql("SELECT players FROM last_activity_hourly WHERE game = 'arena' AND hour = %s",
                                   (LAST.replace(minute=0) + timedelta(hours=2),)).scalar_one()  # fmt: skip
        assert top == 2


def test_wealth_values_count_the_balances_by_value(engine) -> None:
    """After catch-ups that change balances (new players, new flows, a currency change taking one below 0 and two
    players meeting at the same value), wealth_values is player_balances counted by value, with no value that no
    one holds."""
    def counted(conn) -> tuple[list, list]:
        by_value = conn.exec_driver_sql("""SELECT game, currency, wealth, count(*) FROM player_balances
            GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""").all()
        rolled = conn.exec_driver_sql("SELECT game, currency, wealth, players FROM wealth_values ORDER BY 1, 2, 3").all()
        return by_value, rolled

    with engine.connect() as conn:
        by_value, rolled = counted(conn)
        assert rolled == by_value and len(rolled) > 5
        (low, low_wealth), (high, high_wealth), (third, _) = conn.exec_driver_sql(
            """SELECT player_id, wealth FROM player_balances WHERE game = 'shop' AND currency = 'USD'
               ORDER BY wealth, player_id LIMIT 3""").all()
    assert low_wealth < high_wealth
    at = (LAST + timedelta(hours=1)).isoformat()
    more = [{"event_id": "w-1", "event_type": "currency_change", "occurred_at": at, "player_id": third,
             "game": "shop", "payload": {"currency": "USD", "delta": -10_000, "reason": "refund"}},
            {"event_id": "w-2", "event_type": "purchase", "occurred_at": at, "player_id": low, "game": "shop",
             "payload": {"quantity": 1, "amount": float(high_wealth - low_wealth), "currency": "USD"}},
            {"event_id": "w-3", "event_type": "purchase", "occurred_at": at, "player_id": "whale", "game": "shop",
             "payload": {"quantity": 1, "amount": 99.5, "currency": "USD"}}]  # fmt: skip
    with psycopg.connect(engine.url.render_as_string(hide_password=False).replace("+psycopg", "")) as raw:
        prepare_connection(raw)
        with raw.transaction():
            write_batch(raw, prepare_dicts(enumerate(more)))
        assert catch_up_now(raw) == 3
    with engine.connect() as conn:
        by_value, rolled = counted(conn)
        assert rolled == by_value
        assert conn.exec_driver_sql("SELECT count(*) FROM wealth_values WHERE players = 0").scalar_one() == 0
        assert conn.exec_driver_sql("SELECT players FROM wealth_values WHERE game = 'shop' AND currency = 'USD' "
                                    "AND wealth = %s", (high_wealth,)).scalar_one() == 2  # fmt: skip
        assert conn.exec_driver_sql("SELECT min(wealth) FROM wealth_values").scalar_one() < 0
