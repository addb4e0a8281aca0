"""Sharded event streams: one Redis Stream per shard, each with the ingest consumer group.

With ``spec.stream.shards: N`` (N > 1) a GameDataSource's stream ``game-events`` becomes the N streams
``game-events:0`` .. ``game-events:N-1``; with N = 1 it stays the one stream ``game-events`` (no rename on
upgrade).  An event goes to shard ``crc32(player_id) mod N`` (``event_id`` for events without a player), so one
player's events stay in order in one stream, and a shard is as busy as its share of players.

Every ingest replica consumes every shard, one consumer (thread, connection) per shard, all in the group of that
shard: the replicas share the streams, and a shard's entries left pending by a dead replica are taken over by
the others through ``XAUTOCLAIM`` (:func:`claim_idle`, also used by the detection worker's streaming path for
its own group).  Shards spread
the streams over Redis nodes (or a Redis Cluster: one key per shard), and their lag is seen per stream.

Game servers publish with :func:`stream_for` (or any client doing the same ``crc32``; its definition is zlib's).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = ["MAX_SHARDS", "claim_idle", "publish_sharded", "shard_of", "shard_streams", "stream_for"]

#: upper bound of ``spec.stream.shards``
MAX_SHARDS = 64


def shard_streams(stream: str, shards: int = 1) -> list[str]:
    """The stream keys of ``stream`` split into ``shards`` (``[stream]`` for one shard). Pure.

    Raises:
        ValueError: ``shards`` outside 1..:data:`MAX_SHARDS`.
    """
    if not 1 <= shards <= MAX_SHARDS:
        raise ValueError(f"shards must be in 1..{MAX_SHARDS}, got {shards}")
    return [stream] if shards == 1 else [f"{stream}:{i}" for i in range(shards)]


def shard_of(key: str, shards: int) -> int:
    """The shard (0-based) of a routing key: ``crc32(utf-8 key) mod shards``. Pure."""
    return zlib.crc32(key.encode()) % shards


def stream_for(event: Mapping[str, Any], stream: str, shards: int = 1) -> str:
    """The stream key an event dict is published to: by its ``player_id``, else its ``event_id``. Pure."""
    if shards == 1:
        return stream
    key = event.get("player_id") or event.get("event_id") or ""
    return f"{stream}:{shard_of(str(key), shards)}"


def publish_sharded(events: Iterable[Mapping[str, Any]], client: Any, stream: str, shards: int,
                    chunk: int = 1000) -> dict[str, int]:  # fmt: skip
    """XADD event dicts to their shard streams (field ``data``: the event's JSON), ``chunk`` per pipeline;
    returns entries added per stream.  ``client`` is a ``redis.Redis``; raises ``redis.RedisError``."""
    from game_analytics.workers.batches import DATA_FIELD, to_json_bytes

    added: dict[str, int] = {}
    pipe = client.pipeline(transaction=False)
    for i, event in enumerate(events, 1):
        key = stream_for(event, stream, shards)
        pipe.xadd(key, {DATA_FIELD: to_json_bytes(dict(event))})
        added[key] = added.get(key, 0) + 1
        if i % chunk == 0:
            pipe.execute()
    pipe.execute()
    return added


def claim_idle(client: Any, stream: str, group: str, consumer: str, min_idle_ms: int,
               count: int = 1000) -> Iterator[list[tuple[Any, Any]]]:  # fmt: skip
    """Take over for ``consumer`` the entries of ``stream`` pending in ``group`` for longer than ``min_idle_ms``
    (milliseconds since their last delivery) for any consumer of the group: ``XAUTOCLAIM`` from ``0-0``, ``count``
    per call, until the cursor is back at ``0-0``.  Yields each call's entries, when there are any, as redis-py
    parses them: ``[(entry_id, fields dict, or None for an entry deleted while pending on Redis < 7)]``; they
    are pending for ``consumer`` now and the caller acknowledges them once handled.  A consumer that died
    with entries pending loses them this way (its name stays in the group, with nothing pending).

    ``client`` is a ``redis.Redis``; raises ``redis.RedisError`` (``NOGROUP`` when the group does not exist)."""
    start = "0-0"
    while True:
        reply = client.xautoclaim(stream, group, consumer, min_idle_ms, start_id=start, count=count)
        start = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        if reply[1]:
            yield list(reply[1])
        if start == "0-0":
            return
