"""Leaderboards: PostgreSQL ``leaderboard_entries`` is the source of truth, a Redis sorted set serves reads fast.

Ordering (deterministic, also under ties): rating descending, rating deviation ascending (more certain first),
games played descending, player id ascending -- :func:`game_analytics.analytics.leagues.leaderboard_order`.
The rank computed that way is stored in PostgreSQL, and the Redis sorted set uses **the rank itself as the
score**: scores are unique, so Redis never falls back to its own lexicographic tie order, ``ZRANGE`` by index is
the leaderboard, and ``ZSCORE`` gives a player's rank in O(1). A rebuild from PostgreSQL therefore reproduces the
ranking exactly.

Redis keys of board ``B`` (``namespace/name`` of the RankingJob; ``{B}`` is a Cluster hash tag keeping them in one
slot), only the current season lives in Redis:

* ``ga:lb:{B}:rank`` - sorted set, member player id, score rank (1 = best)
* ``ga:lb:{B}:info`` - hash, player id -> ``rating|percentile|league``
* ``ga:lb:{B}:meta`` - hash: ``season``, ``players``, ``leagues`` (JSON name -> size), ``updated`` (Unix time)

:meth:`Leaderboard.publish` writes new keys under temporary names and swaps them in with ``RENAME`` inside one
``MULTI``/``EXEC``, so readers see either the old or the new board, never a mix.

Percentiles are :func:`game_analytics.analytics.leagues.percentile_ranks` (share of players rated strictly lower,
0..100, ties share a value); a player belongs to the league with the highest ``minPercentile`` <= percentile.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from itertools import count
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from game_analytics.analytics.leagues import leaderboard_order, percentile_ranks

if TYPE_CHECKING:  # annotations only: `game-analytics rate` builds entries without importing the clients
    import psycopg
    import redis

__all__ = [
    "Entry",
    "Leaderboard",
    "assign_leagues",
    "build_entries",
    "read_entries",
    "rating_history",
    "rebuild_from_postgres",
    "write_entries",
]

_CHUNK = 10_000

#: ZRANGE by index plus each member's info (HMGET in chunks of 1,000), flattened as id1, info1, id2, info2, ... (one round trip).
_TOP_LUA = """
local ids = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2])
local out = {}
for first = 1, #ids, 1000 do
    local chunk = {unpack(ids, first, math.min(first + 999, #ids))}
    local infos = redis.call('HMGET', KEYS[2], unpack(chunk))
    for i, id in ipairs(chunk) do
        out[2 * (first + i - 1) - 1] = id
        out[2 * (first + i - 1)] = infos[i] or false
    end
end
return out
"""


class Entry(NamedTuple):
    """One leaderboard row (an immutable named tuple: cheap to create by the million).

    Attributes:
        rank: 1-based position.
        player_id: the player.
        rating: the rating the board is sorted by (Glicko-2/Elo rating, OpenSkill ordinal).
        percentile: 0..100, share of players rated strictly lower.
        league: league name, or None.
        rd: rating deviation (None when unknown, e.g. Elo or read back from storage).
        games: games played this season (None when read back from storage).
    """

    rank: int
    player_id: str
    rating: float
    percentile: float
    league: str | None
    rd: float | None = None
    games: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (floats rounded to 4 decimals)."""
        d = self._asdict()
        for key in ("rating", "percentile", "rd"):
            if d[key] is not None:
                d[key] = round(d[key], 4)
        return d


def assign_leagues(percentiles: ArrayLike, leagues: Sequence[Any]) -> list[str | None]:
    """League name per percentile: the league with the highest ``min_percentile`` <= the percentile.

    ``leagues`` are objects with ``name`` and ``min_percentile`` (e.g. :class:`~game_analytics.api.rankingjob.League`),
    in any order. Percentiles below every league get None. Shape (n,) -> list of n names.
    """
    if not leagues:
        return [None] * len(np.atleast_1d(percentiles))
    ordered = sorted(leagues, key=lambda lg: lg.min_percentile)
    mins = np.array([lg.min_percentile for lg in ordered], dtype=np.float64)
    idx = np.searchsorted(mins, np.asarray(percentiles, dtype=np.float64), side="right") - 1
    names = [lg.name for lg in ordered]
    return [names[i] if i >= 0 else None for i in idx.tolist()]


def build_entries(
    players: Sequence[str],
    rating: ArrayLike,
    rd: ArrayLike,
    games: ArrayLike,
    leagues: Sequence[Any],
    *,
    rd_present: bool = True,
) -> list[Entry]:
    """Rank players (module ordering), with percentiles and leagues. Pure.

    Args:
        players: ids, shape (n,).
        rating, rd, games: shape (n,); ``rd`` ties are broken ascending (pass zeros when there is none).
        leagues: league definitions (see :func:`assign_leagues`).
        rd_present: False to leave :attr:`Entry.rd` None (Elo).

    Returns:
        n entries in rank order, ranks 1..n.
    """
    r = np.asarray(rating, dtype=np.float64)
    d = np.asarray(rd, dtype=np.float64)
    g = np.asarray(games, dtype=np.int64)
    ids = np.asarray(list(players), dtype=str)
    if not r.size:
        return []
    order = leaderboard_order(r, d, g, ids)
    pct = percentile_ranks(r)
    league = assign_leagues(pct[order], leagues)
    # Plain Python lists: per-element numpy scalar access would dominate at a million players.
    cols = zip(ids[order].tolist(), r[order].tolist(), pct[order].tolist(), league,
               d[order].tolist() if rd_present else [None] * r.size, g[order].tolist(), strict=True)  # fmt: skip
    return [
        Entry(k, pid, rating, p, lg, dev, games) for k, (pid, rating, p, lg, dev, games) in enumerate(cols, 1)
    ]


# --- PostgreSQL --------------------------------------------------------------------------------------------------

_STAGE = "_leaderboard_stage"


def write_entries(
    conn: psycopg.Connection,
    board: str,
    season: int,
    entries: Sequence[Entry],
    *,
    computed_at: datetime | None = None,
) -> None:
    """Upsert ``entries`` as ``board``'s leaderboard of ``season`` in the caller's transaction.

    Rows of players not in ``entries`` are deleted. An existing row keeps its ``computed_at`` (the time the
    player first entered the season's board); new rows get ``computed_at`` (default: now).
    Raises ``psycopg.Error``.
    """
    conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (player_id text, rating double precision, rank integer, "
        "percentile double precision, league text) ON COMMIT DELETE ROWS"
    )
    with conn.cursor() as cur:
        with cur.copy(f"COPY {_STAGE} (player_id, rating, rank, percentile, league) FROM STDIN") as copy:
            for e in entries:
                copy.write_row((e.player_id, e.rating, e.rank, e.percentile, e.league))
        cur.execute(
            f"DELETE FROM leaderboard_entries l WHERE board = %s AND season = %s "
            f"AND NOT EXISTS (SELECT 1 FROM {_STAGE} s WHERE s.player_id = l.player_id)",
            (board, str(season)),
        )
        cur.execute(
            f"""INSERT INTO leaderboard_entries (board, season, player_id, rating, rank, percentile, league, computed_at)
            SELECT %s, %s, player_id, rating, rank, percentile, league, COALESCE(%s, now()) FROM {_STAGE}
            ON CONFLICT (board, season, player_id) DO UPDATE SET rating = EXCLUDED.rating, rank = EXCLUDED.rank,
                percentile = EXCLUDED.percentile, league = EXCLUDED.league""",
            (board, str(season), computed_at),
        )
        cur.execute(f"TRUNCATE {_STAGE}")


def read_entries(
    conn: psycopg.Connection, board: str, season: int | None = None
) -> tuple[int | None, list[Entry]]:
    """``(season, entries)`` of ``board`` from PostgreSQL in rank order; ``season`` None = the newest season."""
    with conn.cursor() as cur:
        if season is None:
            cur.execute(
                "SELECT max(season::integer) FROM leaderboard_entries WHERE board = %s AND season ~ '^[0-9]+$'",
                (board,),
            )
            season = cur.fetchone()[0]  # type: ignore[index]
            if season is None:
                return None, []
        cur.execute(
            "SELECT rank, player_id, rating, percentile, league FROM leaderboard_entries "
            "WHERE board = %s AND season = %s ORDER BY rank, player_id",
            (board, str(season)),
        )
        return season, [
            Entry(rank=r, player_id=p, rating=x, percentile=q, league=lg) for r, p, x, q, lg in cur
        ]


def rating_history(
    conn: psycopg.Connection, board: str, player_id: str
) -> list[tuple[int, str, float, float | None, float | None]]:
    """The player's stored ratings under ``board``: ``(period, algorithm, rating, rd, volatility)`` by period."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT period, algorithm, rating, rd, volatility FROM rating_history "
            "WHERE job = %s AND player_id = %s ORDER BY period, algorithm",
            (board, player_id),
        )
        return list(cur.fetchall())


# --- Redis ----------------------------------------------------------------------------------------------------------


class Leaderboard:
    """The Redis view of one board (see the module docstring for the keys).

    Args:
        client: a ``redis.Redis`` (e.g. from :func:`game_analytics.redis_client.connect`); replies may be bytes.
        board: board name, ``namespace/name``.
    """

    def __init__(self, client: redis.Redis, board: str) -> None:
        self.client = client
        self.board = board
        prefix = f"ga:lb:{{{board}}}"
        self.rank_key = f"{prefix}:rank"
        self.info_key = f"{prefix}:info"
        self.meta_key = f"{prefix}:meta"
        self._top_script = client.register_script(_TOP_LUA)

    # writing -----------------------------------------------------------------------------------------------

    def publish(self, entries: Sequence[Entry], season: int, *, limit: int | None = None) -> None:
        """Replace the board with ``entries`` (rank order not required) for ``season``, atomically.

        ``limit`` (the RankingJob's ``leaderboard.size``) keeps only ranks ``1..limit`` in the sorted set and the
        info hash; the meta hash still counts every rated player and league member. ``None`` keeps all.
        Only what PostgreSQL stores is kept (rank, rating, percentile, league), so a rebuild is exact.
        Raises ``redis.RedisError``; on failure the previous board stays in place (temporary keys may remain and
        expire after an hour).
        """
        token = uuid.uuid4().hex
        tmp_rank, tmp_info = f"{self.rank_key}:tmp:{token}", f"{self.info_key}:tmp:{token}"
        kept = list(entries) if limit is None else [e for e in entries if e.rank <= limit]
        pipe = self.client.pipeline(transaction=False)
        for start in range(0, len(kept), _CHUNK):
            chunk = kept[start : start + _CHUNK]
            pipe.zadd(tmp_rank, {e.player_id: e.rank for e in chunk})
            pipe.hset(tmp_info, mapping={e.player_id: _encode(e) for e in chunk})
            pipe.expire(tmp_rank, 3600)
            pipe.expire(tmp_info, 3600)
            pipe.execute()
        leagues = Counter(e.league for e in entries if e.league is not None)
        tx = self.client.pipeline(transaction=True)
        if kept:
            tx.rename(tmp_rank, self.rank_key)
            tx.rename(tmp_info, self.info_key)
            tx.persist(self.rank_key)
            tx.persist(self.info_key)
        else:
            tx.delete(self.rank_key, self.info_key)
        tx.delete(self.meta_key)
        tx.hset(self.meta_key, mapping={"season": season, "players": len(entries),
                                        "leagues": json.dumps(dict(sorted(leagues.items()))),
                                        "updated": f"{time.time():.3f}"})  # fmt: skip
        tx.execute()

    # reading -------------------------------------------------------------------------------------------------

    def top(self, n: int = 100, offset: int = 0) -> list[Entry]:
        """Entries of ranks ``offset+1 .. offset+n``, in one round trip (a server-side ZRANGE + HGET script)."""
        if n <= 0:
            return []
        reply = self._top_script(keys=[self.rank_key, self.info_key], args=[offset, offset + n - 1])
        return [
            _decode(pid, rank, info) for rank, pid, info in zip(count(offset + 1), reply[::2], reply[1::2])
        ]

    def rank(self, player_id: str) -> int | None:
        """The player's rank (1 = best), or None if not on the board (one ZSCORE)."""
        score = self.client.zscore(self.rank_key, player_id)
        return None if score is None else int(score)

    def entry(self, player_id: str) -> Entry | None:
        """The player's entry, or None."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zscore(self.rank_key, player_id)
        pipe.hget(self.info_key, player_id)
        score, info = pipe.execute()
        return None if score is None else _decode(player_id, int(score), info)

    def around(self, player_id: str, radius: int = 5) -> list[Entry]:
        """The player's entry with up to ``radius`` neighbours above and below, in rank order ([] if absent)."""
        rank = self.rank(player_id)
        if rank is None:
            return []
        start = max(rank - 1 - radius, 0)
        return self.top(rank - start + radius, start)

    def size(self) -> int:
        """Number of players on the board."""
        return int(self.client.zcard(self.rank_key))

    def meta(self) -> dict[str, Any]:
        """``{"season": int, "players": int, "leagues": {name: size}, "updated": float}`` or {} if never published."""
        raw = {_str(k): _str(v) for k, v in self.client.hgetall(self.meta_key).items()}
        if not raw:
            return {}
        return {"season": int(raw["season"]), "players": int(raw["players"]), "leagues": json.loads(raw["leagues"]),
                "updated": float(raw["updated"])}  # fmt: skip

    def season(self) -> int | None:
        """The season on the board, or None."""
        value = self.client.hget(self.meta_key, "season")
        return None if value is None else int(value)


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _encode(e: Entry) -> str:
    return f"{e.rating!r}|{e.percentile!r}|{e.league or ''}"


def _decode(player_id: bytes | str, rank: int, info: bytes | str | None) -> Entry:
    if info is None:
        return Entry(rank, _str(player_id), math.nan, math.nan, None)
    rating, percentile, league = _str(info).split("|", 2)
    return Entry(rank, _str(player_id), float(rating), float(percentile), league or None)


def rebuild_from_postgres(client: redis.Redis, conn: psycopg.Connection, board: str) -> int:
    """Rebuild ``board``'s Redis view from PostgreSQL's newest season (e.g. after a Redis failover lost writes).

    Returns the number of entries published (0 when PostgreSQL has no board; the Redis keys are then left alone).
    Raises ``psycopg.Error`` / ``redis.RedisError``.
    """
    season, entries = read_entries(conn, board)
    if season is None:
        return 0
    Leaderboard(client, board).publish(entries, season)
    return len(entries)
