"""Leaderboard read latency at scale: top-100 and rank-of-player on a Redis board of 1 million players.

Starts a throwaway redis-server (``devtools.redis``), builds a board of ``--players`` players with
random ratings (many exact ties) through :func:`game_analytics.leaderboard.build_entries`, publishes it with
:meth:`Leaderboard.publish` (timed), then times ``--samples`` calls each of ``top(100)``, ``rank(player)``,
``entry(player)`` and ``around(player, 5)`` for random players, from this Python client over loopback (so the
figures include redis-py and the network stack). Prints p50 / p99 / max in milliseconds; goal: p99 < 2 ms.

Usage: ``python benchmarks/bench_leaderboard.py [--players 1000000] [--samples 5000]``.
"""

from __future__ import annotations

import argparse
import time

import benchargs
import numpy as np

from devtools.redis import start_redis
from game_analytics.api.rankingjob import DEFAULT_LEAGUES, League
from game_analytics.leaderboard import Leaderboard, build_entries


def _latencies(fn, args_list) -> np.ndarray:
    out = np.empty(len(args_list))
    for i, args in enumerate(args_list):
        t0 = time.perf_counter()
        fn(*args)
        out[i] = time.perf_counter() - t0
    return out * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--players", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=5000)
    args = benchargs.parse(parser, None, {"players": 20_000, "samples": 500})

    rng = np.random.default_rng(0)
    n = args.players
    ids = [f"player-{i:07d}" for i in range(n)]
    t0 = time.perf_counter()
    entries = build_entries(ids, np.round(rng.normal(1500, 200, n), 1), rng.uniform(30, 350, n).round(0),
                            rng.integers(0, 500, n), [League(name=a, min_percentile=b) for a, b in DEFAULT_LEAGUES])  # fmt: skip
    t_build = time.perf_counter() - t0
    server = start_redis()
    try:
        client = server.client()
        board = Leaderboard(client, "bench/board")
        t0 = time.perf_counter()
        board.publish(entries, 1)
        t_publish = time.perf_counter() - t0
        memory = client.info("memory")["used_memory"] / 2**20
        players = [(ids[i],) for i in rng.integers(0, n, args.samples)]
        _latencies(board.top, [(100,)] * 200)  # warm-up
        rows = [
            ("PING (round-trip noise floor)", _latencies(client.ping, [()] * args.samples)),
            ("top(100): one Lua ZRANGE + HMGET", _latencies(board.top, [(100,)] * args.samples)),
            ("rank(player): ZSCORE", _latencies(board.rank, players)),
            ("entry(player): ZSCORE + HGET, pipelined", _latencies(board.entry, players)),
            (
                "around(player, 5): ZSCORE, then top script",
                _latencies(board.around, [(p[0], 5) for p in players]),
            ),
        ]
        assert board.top(1)[0].player_id == entries[0].player_id and board.rank(entries[-1].player_id) == n
    finally:
        server.stop()

    print(f"board: {n:,} players; build_entries {t_build:.2f} s; publish (ZADD+HSET, atomic swap) {t_publish:.2f} s; "
          f"Redis memory {memory:.0f} MiB")  # fmt: skip
    print(f"{'operation':45s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s}  goal p99 < 2 ms")
    for name, lat in rows:
        p50, p99 = np.percentile(lat, [50, 99])
        print(f"{name:45s} {p50:8.3f} {p99:8.3f} {lat.max():8.3f}  {'met' if p99 < 2 else 'MISSED'}")


if __name__ == "__main__":
    main()
