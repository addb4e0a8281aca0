"""suddenWealthChange from the running balances (``player_balances`` at the catch-up's snapshot, plus the events
not folded in yet, minus those after ``as_of``) gives exactly what the sum of every flow up to ``as_of`` gives, on
the real PostgreSQL: with folded and unfolded events, flows after ``as_of``, several games and currencies, and a
catch-up committing between the read of its snapshot and the query."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from game_analytics.api.alertrule import SuddenWealthChange
from game_analytics.storage import derived
from game_analytics.storage.engine import make_engine
from game_analytics.workers import detectors
from game_analytics.workers.load import copy_events

AS_OF = datetime(2026, 11, 30, 12, tzinfo=UTC)
PARAMS = SuddenWealthChange(threshold_ratio=2, window="1d", min_wealth=50)


def flows(seed: int, n: int, tag: str) -> list[dict[str, Any]]:
    """``n`` purchases and currency changes of 40 players in 2 games over the 10 days before ``AS_OF`` and the
    hour after it (so some flows are later than ``AS_OF``), amounts with cents."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        player, game = f"p{rng.randrange(40):02d}", rng.choice(["g1", "g2"])
        at = AS_OF - timedelta(seconds=rng.randrange(-3600, 10 * 86400))
        if rng.random() < 0.6:
            payload = {"amount": round(rng.uniform(0.5, 400), 2), "quantity": 1, "currency": rng.choice(["USD", "EUR"])}
            kind = "purchase"
        else:
            payload = {"delta": rng.randrange(-300, 900), "currency": "GEMS", "reason": "quest"}
            kind = "currency_change"
        out.append({"event_id": f"{tag}-{i}", "event_type": kind, "occurred_at": at, "player_id": player,
                    "game": game, "region": "EU", "payload": payload})  # fmt: skip
    return out


def run(conn, players: list[str] | None, *, folded: bool | None = None) -> list[tuple]:
    """The findings of ``sudden_wealth_change`` (``folded=None``), or of one form of its query, as tuples."""
    ctx = detectors.Context(conn, AS_OF, [], "games/x", Path("/tmp"), 3600.0, players)
    if folded is None:
        found = [(f.subject, f.evidence["game"], f.evidence["currency"], f.evidence["wealth_before"],
                  f.evidence["wealth_after"]) for f in detectors.sudden_wealth_change(ctx, PARAMS)]  # fmt: skip
        return sorted(found)
    params = {"since": AS_OF - timedelta(days=1), "as_of": AS_OF, "floor": 50.0, "min_wealth": 50.0, "threshold": 2.0,
              **detectors._games(ctx)[1], **detectors._players(ctx)[1]}  # fmt: skip
    if folded:
        snapshot = conn.execute(text(detectors._SNAPSHOT), {"name": derived.STATE_NAME}).scalar()
        params.update(name=derived.STATE_NAME, xmin=int(snapshot.split(":")[0]))
    rows = conn.execute(text(detectors._wealth_change_sql(ctx, folded)), params).mappings()
    return sorted((r["player_id"], r["game"], r["currency"], float(r["before"]), float(r["after"])) for r in rows)


def test_balances_plus_unfolded_minus_later_equal_every_flow(db_dsn: str) -> None:
    copy_events(flows(1, 1500, "a"), db_dsn)  # folded into player_balances (catch_up=True)
    copy_events(flows(2, 500, "b"), db_dsn, catch_up=False)  # stored, not folded yet
    engine = make_engine(db_dsn)
    try:
        with engine.connect() as conn:
            unfolded = conn.execute(text("SELECT count(*) FROM events WHERE event_id LIKE 'b-%'")).scalar()
            later = conn.execute(text("SELECT count(*) FROM events WHERE occurred_at > :t"), {"t": AS_OF}).scalar()
            assert unfolded == 500 and later > 0
            history = run(conn, None, folded=False)
            assert len(history) >= 5, history  # the data flags players, or the comparison proves nothing
            assert run(conn, None, folded=True) == history
            assert run(conn, None) == history
            some = ["p00", "p03", "p07", "p11", "p19", "p23", "nobody"]
            assert run(conn, some, folded=True) == [f for f in history if f[0] in some] == run(conn, some)
    finally:
        engine.dispose()


def test_a_catch_up_committing_after_the_snapshot_was_read_is_counted_once(db_dsn: str) -> None:
    """A catch-up committing between the detector's read of the snapshot (its xmin: the index range) and its
    query would count the events it folds twice if the query used that snapshot; the query reads the snapshot
    itself, with the balances, so one query gives the exact figures (the old read-and-check lost this race at
    every fold and ran the query again, up to 3 times, then summed every event)."""
    copy_events(flows(3, 1000, "a"), db_dsn)
    copy_events(flows(4, 600, "b"), db_dsn, catch_up=False)
    engine = make_engine(db_dsn)
    try:
        with engine.connect() as conn:
            expected = run(conn, None, folded=False)
            conn.rollback()
        queries: list[str] = []

        class CatchUpAfterSnapshotRead:
            """A connection whose read of the catch-up's snapshot is followed by a catch-up on another one."""

            def __init__(self, conn) -> None:
                self.conn = conn

            def execute(self, statement, params=None):
                result = self.conn.execute(statement, params)
                if str(statement) == detectors._SNAPSHOT:
                    raw = engine.raw_connection()
                    try:
                        assert derived.catch_up_now(raw.driver_connection) == 600
                    finally:
                        raw.close()
                elif "WITH" in str(statement):
                    queries.append(str(statement))
                return result

        with engine.connect() as conn:
            ctx = detectors.Context(CatchUpAfterSnapshotRead(conn), AS_OF, [], "games/x", Path("/tmp"), 3600.0, None)
            found = sorted((f.subject, f.evidence["game"], f.evidence["currency"], f.evidence["wealth_before"],
                            f.evidence["wealth_after"]) for f in detectors.sudden_wealth_change(ctx, PARAMS))  # fmt: skip
        assert len(queries) == 1 and "folded_at" in queries[0], "one query, from the running balances"
        assert found == expected and len(expected) >= 5
    finally:
        engine.dispose()
