"""Bulk loading of events (:func:`copy_events`, :func:`publish_events`) and ``game-analytics load``, which
replays the real data sets as events.

``game-analytics load [--dataset bundesliga|cdnow|all] [--via stream|copy] [--limit N] [--shards N]``

* ``--via copy`` (default) validates the events and stores them straight into PostgreSQL with the ingest
  worker's COPY fast path (:func:`copy_events`): events, players and matches.
* ``--via stream`` publishes them to the Redis stream (``XADD``, pipelined) for the ingest worker to consume,
  which is the path live games take; with ``--shards N`` (``spec.stream.shards``) to the shard streams
  ``STREAM:0`` .. ``STREAM:N-1`` the ingest replicas consume (:mod:`game_analytics.workers.shards`).

The data sets come from :mod:`game_analytics.data` (Bundesliga matches 1963-2009, CDNOW purchases 1997-98) and
must be in the cache first (``make data``). Their event dicts (:func:`game_analytics.data.match_events`,
:func:`~game_analytics.data.purchase_events`) carry a few descriptive extras; :func:`to_event` maps them onto the
strict event schema of :mod:`game_analytics.events` (a match's participants are the clubs' player ids such as
``bayern-muenchen``).
Loading is idempotent: event ids are derived from the data, so a second load stores nothing new.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

import psycopg
import redis

from game_analytics.settings import environment
from game_analytics.storage import derived
from game_analytics.storage.engine import libpq_dsn
from game_analytics.workers.batches import (
    DATA_FIELD,
    DEFAULT_STREAM,
    prefetched,
    prepare_connection,
    prepare_dicts,
    to_json_bytes,
    write_batch,
)
from game_analytics.workers.shards import MAX_SHARDS, publish_sharded

__all__ = ["DATASETS", "LoadResult", "copy_events", "dataset_events", "load_events", "main", "publish",
           "publish_events", "to_event"]

#: Data sets by name: (loader of the DataFrame, converter to event dicts) as import paths.
DATASETS = ("bundesliga", "cdnow")


def to_event(event: dict[str, Any]) -> dict[str, Any]:
    """Map a data-set event dict (:mod:`game_analytics.data.events`) onto the ingest event schema. Pure.

    The payload keeps the fields the schema's payload model declares. When that model names a match's sides
    ``home_team``/``away_team`` with ``home_goals``/``away_goals`` (and has no ``home_player_id``), the sides are
    the clubs' player ids and the goals are renamed. Other event types are returned unchanged.

    Raises:
        KeyError: a required payload field is missing.
    """
    from game_analytics.events import MatchResultPayload, PurchasePayload

    payload = dict(event["payload"])
    if event["event_type"] == "match_result":
        fields = set(MatchResultPayload.model_fields)
        if "home_player_id" not in fields and "home_goals" in fields:
            payload.update(home_team=payload["home_player_id"], away_team=payload["away_player_id"],
                           home_goals=payload["home_score"], away_goals=payload["away_score"])  # fmt: skip
    elif event["event_type"] == "purchase":
        fields = set(PurchasePayload.model_fields)
    else:
        return event
    return {**event, "payload": {k: v for k, v in payload.items() if k in fields}}


def dataset_events(name: str) -> list[dict[str, Any]]:
    """All events of data set ``name`` (``bundesliga`` or ``cdnow``), in schema form, chronological.

    Raises:
        game_analytics.data.DataNotFoundError: the data set is not in the cache (run ``make data``).
        ValueError: unknown name.
    """
    from game_analytics.data import load_bundesliga, load_cdnow_master, match_events, purchase_events

    converters: dict[str, tuple[Callable[[], Any], Callable[[Any], list[dict[str, Any]]]]] = {
        "bundesliga": (load_bundesliga, match_events),
        "cdnow": (load_cdnow_master, purchase_events),
    }
    if name not in converters:
        raise ValueError(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}")
    load, convert = converters[name]
    events = [to_event(e) for e in convert(load())]
    events.sort(key=lambda e: e["occurred_at"])  # stable: keeps the source order within a day
    return events


# --- bulk loading ---------------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    """Outcome of a bulk load: events newly stored, skipped as duplicates, and rejected."""

    inserted: int = 0
    duplicates: int = 0
    dead_lettered: int = 0


def copy_events(
    events: Iterable[dict[str, Any]],
    dsn: str,
    *,
    batch_size: int = 10_000,
    source: str = "bulk",
    catch_up: bool = True,
) -> LoadResult:
    """Validate event dicts and store them with the COPY fast path, ``batch_size`` per transaction, validating
    the next batch while the current one is stored (:func:`prefetched`).

    Idempotent by ``event_id``.  Invalid events are written to ``dead_letters`` with stream ``load:<source>``
    and their 0-based position as ``stream_id``.  With ``catch_up`` the derived tables (players, matches, ...)
    then fold in the new events (:func:`game_analytics.storage.derived.catch_up_now`) and, when anything was
    inserted, the planner statistics are refreshed (``ANALYZE``; tables the role may not analyse are skipped with
    a warning), so a bulk load leaves the store ready to query.  Raises ``psycopg.Error`` on database errors
    (committed batches stay).
    """
    result = LoadResult()
    stream = f"load:{source}"
    numbered = enumerate(events)
    batches = (prepare_dicts(chunk) for chunk in iter(lambda: list(islice(numbered, batch_size)), []))
    with psycopg.connect(libpq_dsn(dsn)) as conn:
        prepare_connection(conn)
        direct = True
        for batch in prefetched(batches):
            with conn.transaction():
                outcome = write_batch(conn, batch, stream, direct=direct)
            direct = outcome.duplicates == 0  # after duplicates (a re-load), expect more: skip the attempt
            result.inserted += outcome.valid - outcome.duplicates
            result.duplicates += outcome.duplicates
            result.dead_lettered += len(batch.dead) + len(outcome.rejected)
        if catch_up:
            derived.catch_up_now(conn)
            if result.inserted:  # fresh planner statistics at once, not when autovacuum gets to it (a query
                conn.execute("ANALYZE")  # planned on an unanalysed load can nest-loop for minutes)
                conn.commit()
    return result


def publish(events: Iterable[dict[str, Any] | bytes | str], client: Any, stream: str = DEFAULT_STREAM,
            chunk: int = 1000) -> int:  # fmt: skip
    """``XADD`` events (dicts are JSON-encoded into field ``data``; bytes/str sent as is) to ``stream`` through
    ``client`` (a ``redis.Redis``) in pipelined chunks; returns the number of entries added.

    No validation here: the ingest worker validates and dead-letters.  Raises ``redis.RedisError`` on
    connection errors.
    """
    count = 0
    pipe = client.pipeline(transaction=False)
    for event in events:
        pipe.xadd(stream, {DATA_FIELD: to_json_bytes(event)})
        count += 1
        if count % chunk == 0:
            pipe.execute()
    pipe.execute()
    return count


def publish_events(
    events: Iterable[dict[str, Any] | bytes | str], redis_url: str, *, stream: str = DEFAULT_STREAM,
    chunk: int = 1000,
) -> int:  # fmt: skip
    """:func:`publish` through a client of ``redis_url`` (closed afterwards); returns the number of entries added.

    Raises ``redis.RedisError`` on connection errors.
    """
    client = redis.Redis.from_url(redis_url)
    try:
        return publish(events, client, stream, chunk)
    finally:
        client.close()


def load_events(
    events: Iterable[dict[str, Any]], *, dsn: str | None = None, redis_url: str | None = None,
    stream: str = DEFAULT_STREAM, batch_size: int = 10_000, source: str = "bulk",
) -> LoadResult:  # fmt: skip
    """Load events either straight into PostgreSQL (``dsn``: :func:`copy_events`) or through the stream
    (``redis_url``: :func:`publish_events`; the ingest worker stores them, so only ``inserted`` = published is set).

    Raises ``ValueError`` unless exactly one of ``dsn`` / ``redis_url`` is given.
    """
    if (dsn is None) == (redis_url is None):
        raise ValueError("give exactly one of dsn= (direct COPY) or redis_url= (publish to the stream)")
    if dsn is not None:
        return copy_events(events, dsn, batch_size=batch_size, source=source)
    assert redis_url is not None
    return LoadResult(inserted=publish_events(events, redis_url, stream=stream))


# --- command line ---------------------------------------------------------------------------------------------


def _tracked(events: Sequence[dict[str, Any]], advance: Callable[[int], None]) -> Iterator[dict[str, Any]]:
    for i, event in enumerate(events, 1):
        yield event
        if i % 500 == 0 or i == len(events):
            advance(500 if i % 500 == 0 else i % 500)


def build_parser() -> argparse.ArgumentParser:
    """Options of ``game-analytics load``."""
    p = argparse.ArgumentParser(
        prog="game-analytics load", description="Replay the real data sets as events."
    )
    p.add_argument("--dataset", choices=[*DATASETS, "all"], default="all")
    p.add_argument("--via", choices=["stream", "copy"], default="copy",
                   help="copy: straight into PostgreSQL (COPY); stream: XADD for the ingest worker")  # fmt: skip
    p.add_argument("--limit", type=int, default=None, help="at most N events per data set (the earliest)")
    p.add_argument("--dsn", help="PostgreSQL URL for --via copy (default: GAME_ANALYTICS_DSN)")
    p.add_argument(
        "--redis-url", help="Redis URL for --via stream (default: GAME_ANALYTICS_REDIS_URL / _SENTINELS)"
    )
    p.add_argument("--stream", help="stream key (default: GAME_ANALYTICS_STREAM or game-events)")
    p.add_argument("--shards", type=int, default=None,
                   help="--via stream: publish to the shard streams STREAM:0.. (crc32 of the player, as the game "
                        "servers do; default: GAME_ANALYTICS_STREAM_SHARDS or 1, the stream itself)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``game-analytics load``; returns 0, 1 (data missing / storage error) or 2 (usage)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from game_analytics.data import DataNotFoundError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be >= 1")
    err = Console(stderr=True)
    settings = environment(parser)
    dsn = args.dsn or settings.dsn
    if args.via == "copy" and not dsn:
        err.print("error: --via copy needs a database: pass --dsn or set GAME_ANALYTICS_DSN")
        return 2
    shards = settings.stream_shards if args.shards is None else args.shards
    if not 1 <= shards <= MAX_SHARDS:
        parser.error(f"--shards must be in 1..{MAX_SHARDS}")
    if args.via == "stream":
        if args.redis_url:
            settings = settings.model_copy(update={"redis_url": args.redis_url, "redis_sentinels": []})
        if not (settings.redis_url or settings.redis_sentinels):
            err.print("error: --via stream needs Redis: pass --redis-url or set GAME_ANALYTICS_REDIS_URL")
            return 2
    names = list(DATASETS) if args.dataset == "all" else [args.dataset]
    try:
        batches = {name: dataset_events(name)[: args.limit] for name in names}
    except DataNotFoundError as exc:
        err.print(f"error: data set missing: {exc}\nrun `make data` (or `game-analytics data`) first")
        return 1

    summary: dict[str, dict[str, int]] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=err, disable=args.quiet) as progress:
            for name, events in batches.items():
                task = progress.add_task(f"{name} -> {args.via}", total=len(events))
                tracked = _tracked(events, lambda n, t=task: progress.advance(t, n))
                if args.via == "copy":
                    result = copy_events(tracked, dsn, source=name)
                    summary[name] = {"events": len(events), "inserted": result.inserted,
                                     "duplicates": result.duplicates, "dead_lettered": result.dead_lettered}  # fmt: skip
                else:
                    from game_analytics.redis_client import connect

                    client = connect(settings)
                    try:
                        stream = args.stream or settings.stream
                        if shards > 1:  # the streams the ingest replicas consume (workers/shards.py)
                            published = sum(publish_sharded(tracked, client, stream, shards).values())
                        else:
                            published = publish(tracked, client, stream)
                    finally:
                        client.close()
                    summary[name] = {"events": len(events), "published": published}
    except Exception as exc:  # noqa: BLE001 - any storage failure ends the command with a message
        err.print(f"error: loading failed: {type(exc).__name__}: {exc}")
        return 1
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
