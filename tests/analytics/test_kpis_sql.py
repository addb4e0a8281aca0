"""The game KPIs (storage/queries/kpis.py) on the real CDNOW log in PostgreSQL, against an independent pandas
computation on the data set's DataFrame (docs/analytics.md defines them)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from datetime import UTC, datetime

import pandas as pd
import pytest
from sqlalchemy import Engine, text

from game_analytics.data.events import customer_player_id, purchase_events
from game_analytics.storage.engine import make_engine
from game_analytics.storage.queries import Filters
from game_analytics.storage.queries.kpis import kpis
from game_analytics.workers.load import copy_events

_names = itertools.count()
START, END = datetime(1997, 3, 1, tzinfo=UTC), datetime(1997, 4, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def cdnow_engine(postgres_server, _migrated_template, cdnow_master: pd.DataFrame) -> Iterator[Engine]:
    name = f"ga_kpis_{next(_names)}"
    dsn = postgres_server.create_database(name, template=_migrated_template)
    assert copy_events(purchase_events(cdnow_master), dsn).dead_lettered == 0
    engine = make_engine(dsn)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    yield engine
    engine.dispose()
    postgres_server.drop_database(name)


def pandas_kpis(master: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> dict[str, float]:
    """The docs/analytics.md definitions, written again in pandas on the purchase log (one row per purchase)."""
    df = master.assign(player=master["customer_id"].map(customer_player_id), day=master["date"].dt.normalize())
    win = df[(df["date"] >= start) & (df["date"] < end)]
    days = (end - start).days
    active = win["player"].nunique()
    player_days = len(win[["player", "day"]].drop_duplicates())
    revenue = win["dollar_value"].sum()
    paying = win.loc[win["dollar_value"] > 0, "player"].nunique()
    first = df.groupby("player")["day"].min()
    cohort = first[(first >= start) & (first < end)]
    active_days = set(zip(df["player"], df["day"], strict=True))
    last = df["day"].max()
    out = {"active_players": active, "player_days": player_days, "mean_dau": player_days / days,
           "stickiness": player_days / days / active, "revenue": revenue, "paying_players": paying,
           "arpdau": revenue / player_days, "arppu": revenue / paying, "conversion": paying / active,
           "new_players": len(cohort), "returning_players": active - len(cohort),
           # purchases are dated (midnight), so a player's purchases of one day are one session of length 0
           "sessions": player_days, "sessions_per_dau": 1.0, "session_mean_seconds": 0.0}  # fmt: skip
    for n in (1, 7, 30):
        eligible = cohort[cohort + pd.Timedelta(days=n) <= last]
        kept = sum((p, d + pd.Timedelta(days=n)) in active_days for p, d in eligible.items())
        out[f"d{n}"] = kept / len(eligible)
    return out


def test_kpis_of_march_1997_match_pandas(cdnow_engine: Engine, cdnow_master: pd.DataFrame) -> None:
    got = kpis(cdnow_engine, Filters(START, END))
    want = pandas_kpis(cdnow_master, pd.Timestamp("1997-03-01"), pd.Timestamp("1997-04-01"))
    print("\nKPI (CDNOW, March 1997)   SQL            pandas")
    for key, value in want.items():
        print(f"{key:24s} {got[key]:14.6f} {value:14.6f}")
        assert got[key] == pytest.approx(value, rel=1e-9), key
    assert got["days"] == 31 and got["session_method"].startswith("inter-event")
    assert got["new_players"] > 0 and got["returning_players"] > 0  # March: the cohort still being acquired
    assert 0 < got["d30"] < 1 and 0 < got["d1"] < 1


def test_kpis_edge_cases(cdnow_engine: Engine) -> None:
    with pytest.raises(ValueError):
        kpis(cdnow_engine, Filters(START, None))
    empty = kpis(cdnow_engine, Filters(datetime(2001, 1, 1, tzinfo=UTC), datetime(2001, 2, 1, tzinfo=UTC)))
    assert empty["active_players"] == 0 and math.isnan(empty["arppu"]) and math.isnan(empty["d1"])
    other = kpis(cdnow_engine, Filters(START, END, games=("no-such-game",)))
    assert other["revenue"] == 0 and other["new_players"] == 0
