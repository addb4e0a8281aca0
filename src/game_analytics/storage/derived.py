"""Tables derived from ``events``, kept current by an incremental catch-up instead of on the ingest path.

``events`` is the only table the ingest path writes (so that it runs near the speed of a raw ``COPY``).  Ten
tables are folded from it here, set-based and only over the events committed since the previous catch-up:

    players          one row per participant: the ``player_id`` of every event, both sides of every match
                     result (``*_player_id``, else the team name) and every player in a team match's ``teams``;
                     ``region`` is the greatest non-null region seen (SQL ``max``), ``first_seen_at`` / ``last_seen_at`` the earliest / latest event time
    matches          one row per home/away ``match_result`` event (``match_id`` = ``event_id``), in storing order;
                     team matches (payload ``teams``) stay in ``events`` (the TrueSkill reader takes them there)
    player_activity  newest event time per (game, player)
    player_balances  running wealth per (game, currency, player): purchase amounts and currency deltas
    wealth_values    the balances counted by value: players per (game, currency, wealth); a changed balance
                     moves its player from the old value to the new one (the exporter's Gini and wealth histogram
                     read one row per distinct value, not per player)
    activity_hourly  events per (game, event type, UTC hour)
    last_activity_hourly  players per (game, UTC hour of their newest event): a player moves from one hour to
                     another when a newer event arrives (-1 / +1; the upsert of player_activity keeps the time it
                     replaces in ``prev_at`` and returns both, so no second lookup per player), so the active
                     players of a window are a sum over hours (:mod:`.queries.rollups`)
    market_hourly    purchases (count, quantity, amount per currency) and trades (count, value) per game and UTC
                     hour: what the exporter's price index and trade volume read instead of payloads
    session_logins   logins per (game, region), all time: the exporter's ``sessions_total``
    session_lengths  finished sessions per (game, ``ceil(session_seconds)``) and their summed length: the
                     exporter's session-length histogram (integer bounds are sums of these rows)

Which events are new: those whose storing transaction was not visible in the snapshot recorded by the previous
catch-up (``aggregate_state.snapshot``): ``xact_id >= pg_snapshot_xmin(S) AND NOT pg_visible_in_snapshot`` -- an
index range scan on ``events.xact_id`` that, unlike a high-water mark on ``id`` or a timestamp, also finds rows
that a long transaction committed after later ones.

Readers catch up before they read (the exporter on every refresh, the ranking and report workers before a run),
so what they see is exact for their snapshot and nobody waits for a background job.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

__all__ = ["STATE_NAME", "catch_up", "catch_up_engine", "catch_up_now"]

#: ``aggregate_state.name`` of the derived tables' snapshot.
STATE_NAME = "players"

_NEW_EVENTS = """e.xact_id >= pg_snapshot_xmin(%(previous)s::pg_snapshot)::text::bigint
    AND NOT pg_visible_in_snapshot(e.xact_id::text::xid8, %(previous)s::pg_snapshot)"""

_FLOW = "CASE event_type WHEN 'purchase' THEN (payload->>'amount')::numeric ELSE (payload->>'delta')::numeric END"

# Upserts go in key order, so that concurrent writers lock rows in the same order (no deadlocks).
_CATCH_UP = """
WITH new AS MATERIALIZED (
    SELECT e.id, e.event_id, e.game, e.player_id, e.region, e.occurred_at, e.event_type,
           CASE WHEN e.event_type IN ('purchase', 'currency_change', 'match_result', 'trade') THEN e.payload END
               AS payload,
           CASE WHEN e.event_type = 'logout' AND jsonb_typeof(e.payload->'session_seconds') = 'number'
                THEN (e.payload->>'session_seconds')::float8 END AS session_seconds
    FROM events e WHERE {new}
), sides AS (
    SELECT id, event_id, game, region, occurred_at, payload,
           coalesce(payload->>'home_player_id', payload->>'home_team') AS home_id,
           coalesce(payload->>'away_player_id', payload->>'away_team') AS away_id
    FROM new WHERE event_type = 'match_result' AND NOT payload ? 'teams'
), participants AS (
    SELECT player_id, region, occurred_at FROM new WHERE player_id IS NOT NULL
    UNION ALL SELECT home_id, region, occurred_at FROM sides
    UNION ALL SELECT away_id, region, occurred_at FROM sides
    UNION ALL SELECT p.player_id, n.region, n.occurred_at
    FROM new n, jsonb_array_elements(n.payload->'teams') team, jsonb_array_elements_text(team->'players') p(player_id)
    WHERE n.event_type = 'match_result' AND n.payload ? 'teams'
), players_upsert AS (
    INSERT INTO players AS p (player_id, region, first_seen_at, last_seen_at)
    SELECT player_id, max(region), min(occurred_at), max(occurred_at) FROM participants
    GROUP BY 1 ORDER BY 1
    ON CONFLICT (player_id) DO UPDATE SET
        first_seen_at = least(p.first_seen_at, excluded.first_seen_at),
        last_seen_at = greatest(p.last_seen_at, excluded.last_seen_at),
        region = coalesce(p.region, excluded.region)
    WHERE excluded.first_seen_at < p.first_seen_at OR p.first_seen_at IS NULL
       OR excluded.last_seen_at > p.last_seen_at OR p.last_seen_at IS NULL
       OR (p.region IS NULL AND excluded.region IS NOT NULL)
), matches_insert AS (
    INSERT INTO matches (match_id, game, season, round, home_id, away_id, home_score, away_score, occurred_at)
    SELECT event_id, game, payload->>'season', (payload->>'round')::int, home_id, away_id,
           (payload->>'home_score')::int, (payload->>'away_score')::int, occurred_at
    FROM sides ORDER BY id
    ON CONFLICT (match_id) DO NOTHING
), newest AS MATERIALIZED (
    SELECT game, player_id, max(occurred_at) AS last_at FROM new WHERE player_id IS NOT NULL GROUP BY 1, 2
), activity AS (  -- prev_at: the newest time before this update (NULL for a new row), for last_rollup
    INSERT INTO player_activity AS a (game, player_id, last_at)
    SELECT game, player_id, last_at FROM newest ORDER BY 1, 2
    ON CONFLICT (game, player_id) DO UPDATE SET prev_at = a.last_at, last_at = greatest(a.last_at, excluded.last_at)
    RETURNING a.game, a.prev_at, a.last_at
), moved AS (  -- each touched player's newest hour before and after
    SELECT game, date_trunc('hour', prev_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS old_hour,
           date_trunc('hour', last_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS new_hour
    FROM activity
), last_rollup AS (
    INSERT INTO last_activity_hourly AS l (game, hour, players)
    SELECT game, hour, sum(d) FROM (
        SELECT game, new_hour AS hour, 1 AS d FROM moved WHERE old_hour IS DISTINCT FROM new_hour
        UNION ALL SELECT game, old_hour, -1 FROM moved WHERE old_hour <> new_hour
    ) AS deltas GROUP BY 1, 2 HAVING sum(d) <> 0 ORDER BY 1, 2
    ON CONFLICT (game, hour) DO UPDATE SET players = l.players + excluded.players
), flows AS MATERIALIZED (
    SELECT game, coalesce(payload->>'currency', 'USD') AS currency, player_id, coalesce(sum({flow}), 0) AS wealth,
           count(*) AS events
    FROM new WHERE event_type IN ('purchase', 'currency_change') AND player_id IS NOT NULL GROUP BY 1, 2, 3
), balances AS (
    INSERT INTO player_balances AS b (game, currency, player_id, wealth, events)
    SELECT game, currency, player_id, wealth, events FROM flows ORDER BY 1, 2, 3
    ON CONFLICT (game, currency, player_id)
    DO UPDATE SET wealth = b.wealth + excluded.wealth, events = b.events + excluded.events
    RETURNING b.game, b.currency, b.player_id, b.wealth, b.events
), wealth_moves AS (  -- each balance before and after: a new row has only this catch-up's events (numeric: exact)
    SELECT b.game, b.currency, CASE WHEN b.events = f.events THEN NULL ELSE b.wealth - f.wealth END AS old,
           b.wealth AS new
    FROM balances b JOIN flows f USING (game, currency, player_id)
), wealth_rollup AS (
    INSERT INTO wealth_values AS v (game, currency, wealth, players)
    SELECT game, currency, wealth, sum(d) FROM (
        SELECT game, currency, new AS wealth, 1 AS d FROM wealth_moves WHERE old IS DISTINCT FROM new
        UNION ALL SELECT game, currency, old, -1 FROM wealth_moves WHERE old <> new
    ) AS deltas GROUP BY 1, 2, 3 HAVING sum(d) <> 0 ORDER BY 1, 2, 3
    ON CONFLICT (game, currency, wealth) DO UPDATE SET players = v.players + excluded.players
), activity_rollup AS (
    INSERT INTO activity_hourly AS h (game, event_type, hour, events)
    SELECT game, event_type, date_trunc('hour', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', count(*)
    FROM new GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (game, event_type, hour) DO UPDATE SET events = h.events + excluded.events
), market_rollup AS (
    INSERT INTO market_hourly AS m (game, kind, currency, hour, events, quantity, value)
    SELECT game, event_type, CASE event_type WHEN 'purchase' THEN coalesce(payload->>'currency', 'USD') ELSE 'item' END,
           date_trunc('hour', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', count(*),
           sum((payload->>'quantity')::float8),
           sum(CASE event_type WHEN 'purchase' THEN (payload->>'amount')::float8
                               ELSE coalesce((payload->>'value')::float8, 0) END)
    FROM new WHERE event_type IN ('purchase', 'trade') GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (game, kind, currency, hour) DO UPDATE SET
        events = m.events + excluded.events,
        quantity = CASE WHEN m.quantity IS NULL THEN excluded.quantity
                        ELSE m.quantity + coalesce(excluded.quantity, 0) END,
        value = CASE WHEN m.value IS NULL THEN excluded.value ELSE m.value + coalesce(excluded.value, 0) END
), login_rollup AS (
    INSERT INTO session_logins AS s (game, region, logins)
    SELECT game, coalesce(region, 'unknown'), count(*) FROM new WHERE event_type = 'login'
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (game, region) DO UPDATE SET logins = s.logins + excluded.logins
), length_rollup AS (
    INSERT INTO session_lengths AS s (game, seconds_ceil, sessions, seconds)
    SELECT game, ceil(session_seconds)::bigint, count(*), sum(session_seconds) FROM new
    WHERE session_seconds IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (game, seconds_ceil) DO UPDATE SET sessions = s.sessions + excluded.sessions,
                                                   seconds = s.seconds + excluded.seconds
)
SELECT count(*) FROM new
"""


def catch_up(conn: psycopg.Connection) -> int:
    """Fold the ``events`` committed since the last catch-up into the derived tables (see the module docstring).

    Runs in the caller's transaction, which must be REPEATABLE READ (the snapshot recorded is the transaction's
    own, so the derived tables read later in it are exact for that snapshot); the caller commits.  Concurrent
    catch-ups serialize on the ``aggregate_state`` row: under REPEATABLE READ the second fails with a
    serialization error (SQLSTATE 40001, ``psycopg.errors.SerializationFailure``) and may be retried.  Wealth sums
    are ``numeric`` (exact for the decimal amounts in the JSON payloads).

    Returns:
        The number of new events folded in (0 when up to date).
    """
    conn.execute("INSERT INTO aggregate_state (name) VALUES (%s) ON CONFLICT DO NOTHING", (STATE_NAME,))
    previous = conn.execute(
        "SELECT snapshot FROM aggregate_state WHERE name = %s FOR UPDATE", (STATE_NAME,)
    ).fetchone()[0]
    new = "TRUE" if previous is None else _NEW_EVENTS
    count = conn.execute(_CATCH_UP.format(new=new, flow=_FLOW), {"previous": previous}).fetchone()[0]
    conn.execute("DELETE FROM wealth_values WHERE players = 0")  # values no one holds any more (a partial index)
    conn.execute(
        "UPDATE aggregate_state SET snapshot = pg_current_snapshot()::text, events = events + %s, updated_at = now() "
        "WHERE name = %s",
        (count, STATE_NAME),
    )
    return int(count)


def catch_up_now(conn: psycopg.Connection, *, attempts: int = 5) -> int:
    """Run :func:`catch_up` in a REPEATABLE READ transaction of its own on ``conn`` (not inside a transaction)
    and commit; on a serialization failure (another catch-up committed meanwhile) retry on a new snapshot, up to
    ``attempts`` times in all.

    Returns:
        The number of new events folded in.

    Raises:
        ValueError: ``conn`` is inside a transaction (commit or roll back first).
        psycopg.errors.SerializationFailure: still conflicting after ``attempts`` tries.
        psycopg.Error: any other database error.
    """
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise ValueError("catch_up_now needs a connection outside a transaction: commit or roll back first")
    for attempt in range(1, attempts + 1):
        try:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                return catch_up(conn)
        except psycopg.errors.SerializationFailure:
            if attempt == attempts:
                raise
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


def catch_up_engine(engine: Any) -> int:
    """:func:`catch_up_now` on a connection of the SQLAlchemy ``engine``'s pool (given back afterwards).

    Returns:
        The number of new events folded in. Raises what :func:`catch_up_now` raises."""
    connection = engine.raw_connection()
    try:
        return catch_up_now(connection.driver_connection)
    finally:
        connection.close()
