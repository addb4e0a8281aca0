"""The ingest consumer group's lag on the Redis event stream (exported by the exporter as ``INGEST_LAG``)."""

from __future__ import annotations

import redis

__all__ = ["stream_lag"]


def _stream_id_seconds(entry_id: bytes | str) -> float:
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(raw.split("-", 1)[0]) / 1000.0


def stream_lag(client: redis.Redis, stream: str, group: str, now: float) -> tuple[float, int | None, int] | None:
    """``(lag_seconds, undelivered_entries, pending_entries)`` of consumer ``group`` on ``stream``, or None when
    the stream or group does not exist.

    ``lag_seconds`` = ``now`` (Unix seconds) minus the time of the oldest entry the group has not acknowledged:
    its oldest pending entry, else the first entry after its last-delivered id; 0 when it is caught up.
    ``undelivered_entries`` is ``XINFO GROUPS``' ``lag`` (None when Redis cannot tell, e.g. after XDEL).
    """
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:
        return None
    info = next((g for g in groups if (g["name"].decode() if isinstance(g["name"], bytes) else g["name"]) == group),
                None)  # fmt: skip
    if info is None:
        return None
    pending = int(info.get("pending") or 0)
    lag = info.get("lag")
    oldest: float | None = None
    if pending:
        summary = client.xpending(stream, group)
        if summary.get("min"):
            oldest = _stream_id_seconds(summary["min"])
    if oldest is None and (lag is None or lag > 0):
        last = info.get("last-delivered-id") or b"0-0"
        last = last.decode() if isinstance(last, bytes) else last
        first = client.xrange(stream, min=f"({last}", count=1)
        if first:
            oldest = _stream_id_seconds(first[0][0])
    seconds = max(0.0, now - oldest) if oldest is not None else 0.0
    return seconds, None if lag is None else int(lag), pending
