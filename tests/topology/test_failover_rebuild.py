"""A Redis master dies under leaderboard writes; the board on the promoted replica is rebuilt from PostgreSQL.

PostgreSQL is the leaderboard's source of truth (the ranking worker commits there first); Redis is a fast copy.
Replication is asynchronous, so a failover can lose writes the old master acknowledged: the rebuild must restore the
exact PostgreSQL ranking on the new master.
"""

from __future__ import annotations

import threading
import time

import psycopg
import redis
from redis.sentinel import Sentinel

from devtools.redis import start_sentinel_set
from game_analytics import leaderboard as lb
from game_analytics.api.rankingjob import League
from game_analytics.storage.engine import libpq_dsn

BOARD = "bundesliga-glicko2"


def test_leaderboard_rebuilt_from_postgres_after_master_crash(db_dsn):
    players = [f"club-{i:03d}" for i in range(300)]
    entries = lb.build_entries(players, [1500.0 + (i * 37) % 400 for i in range(300)], [50.0] * 300,
                               [30] * 300, [League(name="Bronze", min_percentile=0), League(name="Gold", min_percentile=80)])
    with psycopg.connect(libpq_dsn(db_dsn)) as conn:
        lb.write_entries(conn, BOARD, 1, entries)
    cluster = start_sentinel_set(master_name="leaderboards", down_after_ms=1000, failover_timeout_ms=3000)
    try:
        sentinel = Sentinel(cluster.sentinel_addresses, socket_timeout=0.3, socket_connect_timeout=0.3)
        client = sentinel.master_for("leaderboards", socket_timeout=0.3, socket_connect_timeout=0.3)
        board = lb.Leaderboard(client, BOARD)
        board.publish(entries, 1)
        stop, resumed_after = threading.Event(), []

        def writer() -> None:  # live score updates, as game servers would send between ranking runs
            failing_since = None
            i = 0
            while not stop.is_set():
                try:
                    client.zadd(board.rank_key, {players[i % 300]: float(i % 300 + 1)})
                    if failing_since is not None:
                        resumed_after.append(time.monotonic() - failing_since)
                        failing_since = None
                    i += 1
                except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError, redis.ResponseError):
                    failing_since = failing_since or time.monotonic()
                    time.sleep(0.02)

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        time.sleep(0.5)
        killed_at = time.monotonic()
        cluster.master.kill()  # SIGKILL by PID
        deadline = killed_at + 20
        while not resumed_after and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        thread.join(5)
        assert resumed_after, "writes never resumed after the master was killed"
        print(f"writes resumed {resumed_after[0]:.2f}s after SIGKILL of the master")
        assert resumed_after[0] < 5.0
        new_master = sentinel.discover_master("leaderboards")
        assert new_master == cluster.replica.address

        # the live updates scrambled the Redis ranking; PostgreSQL still holds the committed one
        with psycopg.connect(libpq_dsn(db_dsn)) as conn:
            _, truth = lb.read_entries(conn, BOARD)
            assert [e.player_id for e in board.top(300)] != [e.player_id for e in truth]
            assert lb.rebuild_from_postgres(client, conn, BOARD) == 300
        top = board.top(300)
        assert [e.player_id for e in top] == [e.player_id for e in truth]
        assert board.rank(truth[0].player_id) == 1 and board.season() == 1
    finally:
        cluster.stop()
