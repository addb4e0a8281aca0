"""One way for every worker to reach Redis: through Sentinel when Sentinels are configured, else by URL."""

from __future__ import annotations

import redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection

from game_analytics.settings import WorkerSettings

__all__ = ["RETRIES", "MasterFollowingConnection", "connect", "retry_policy"]

#: Retries of a command after a connection error or timeout (each reconnect asks the Sentinels for the master
#: again). With :func:`retry_policy`'s backoff (50 ms doubling, at most 0.5 s) 12 retries span about 5 s: a
#: master hand-over (about 1-2 s) or an unplanned failover after ``down-after-milliseconds`` is ridden out.
RETRIES = 12
#: Connecting to a pod that is gone (its IP no longer answers) must cost this, not the read timeout, seconds.
CONNECT_TIMEOUT = 1.0


class MasterFollowingConnection(SentinelManagedConnection):
    """A Sentinel-managed master connection that asks the Sentinels for the master on *every* reconnect.

    redis-py 8.1 reconnects a dropped connection inside a command's retries through ``connect_check_health``, which
    skips :class:`SentinelManagedConnection`'s discovery and dials the old address again: after a failover each
    retry reached the demoted master (``READONLY`` -> "The previous master is now a slave") until the retries
    ran out, about 6 s (tests/topology/test_sentinel_auth_live.py). Here the address is looked up first.
    """

    def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
        """Connect to the master the Sentinels name now (a no-op when connected)."""
        if self._sock is None and self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        super().connect_check_health(check_health=check_health, retry_socket_connect=retry_socket_connect)


def retry_policy(retries: int = RETRIES) -> Retry:
    """Short jittered exponential backoff (50 ms, doubling, capped at 0.5 s) over ``retries`` attempts, on
    connection errors and timeouts. redis-py's default waits up to seconds between its 3 attempts."""
    return Retry(ExponentialWithJitterBackoff(cap=0.5, base=0.05), retries)


def connect(settings: WorkerSettings, *, socket_timeout: float = 5.0) -> redis.Redis:
    """A client for the Redis master described by ``settings``.

    With ``settings.redis_sentinels`` (``host:port`` strings) the client is redis-py's Sentinel-managed master
    connection for ``settings.redis_master``: it asks the Sentinels for the current master on every (re)connect, and
    a ``READONLY`` answer (the old master, demoted) drops the connection, so it follows failovers.
    ``settings.redis_sentinel_password`` authenticates to the Sentinels, ``settings.redis_password`` to the data
    nodes; neither is sent to the other. No connection is opened until the first command.

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
        sentinel = Sentinel(addresses, socket_timeout=socket_timeout, sentinel_kwargs={
            "password": settings.redis_sentinel_password, "socket_timeout": CONNECT_TIMEOUT,
            "socket_connect_timeout": CONNECT_TIMEOUT, "retry": Retry(NoBackoff(), 0)})  # a dead one: ask the next
        return sentinel.master_for(
            settings.redis_master, password=settings.redis_password, socket_timeout=socket_timeout,
            socket_connect_timeout=CONNECT_TIMEOUT, retry=retry_policy(), connection_class=MasterFollowingConnection)
    if settings.redis_url:
        return redis.Redis.from_url(
            settings.redis_url, password=settings.redis_password, socket_timeout=socket_timeout,
            socket_connect_timeout=CONNECT_TIMEOUT, retry=retry_policy())
    raise ValueError("no Redis configured: set GAME_ANALYTICS_REDIS_URL or GAME_ANALYTICS_REDIS_SENTINELS")
