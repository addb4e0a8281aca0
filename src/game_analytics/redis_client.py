"""One way for every worker to reach Redis: through Sentinel when Sentinels are configured, else by URL."""

from __future__ import annotations

import redis
from redis.sentinel import Sentinel

from game_analytics.settings import WorkerSettings

__all__ = ["connect"]


def connect(settings: WorkerSettings, *, socket_timeout: float = 5.0) -> redis.Redis:
    """A client for the Redis master described by ``settings``.

    With ``settings.redis_sentinels`` (``host:port`` strings) the client is redis-py's Sentinel-managed master
    connection for ``settings.redis_master``: it asks the Sentinels for the current master on (re)connect, so it
    follows failovers.  Otherwise it connects to ``settings.redis_url``.  ``settings.redis_password`` authenticates
    to the data nodes (not to the Sentinels).  No connection is opened until the first command.

    Raises:
        ValueError: neither Sentinels nor a URL are configured, or a Sentinel address has no valid port.
    """
    if settings.redis_sentinels:
        addresses = []
        for item in settings.redis_sentinels:
            host, _, port = item.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"redis_sentinels: {item!r} is not host:port")
            addresses.append((host, int(port)))
        sentinel = Sentinel(addresses, socket_timeout=socket_timeout)
        return sentinel.master_for(
            settings.redis_master, password=settings.redis_password, socket_timeout=socket_timeout
        )
    if settings.redis_url:
        return redis.Redis.from_url(
            settings.redis_url, password=settings.redis_password, socket_timeout=socket_timeout
        )
    raise ValueError("no Redis configured: set GAME_ANALYTICS_REDIS_URL or GAME_ANALYTICS_REDIS_SENTINELS")
