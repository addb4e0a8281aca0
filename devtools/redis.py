"""Throwaway Redis servers and Sentinel sets for tests and benchmarks.

Runs the real ``redis-server`` / ``redis-sentinel`` binaries from the Debian packages on random free loopback
ports with their working files in a temporary directory, and stops them by PID.  Persistence is off.

Example::

    with redis_server() as server:
        client = redis.Redis.from_url(server.url)

    with redis_sentinel_set() as cluster:   # master + replica + 3 sentinels, quorum 2
        sentinel = redis.sentinel.Sentinel(cluster.sentinel_addresses)
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from .waiting import free_port

__all__ = [
    "RedisServer",
    "RedisSentinelSet",
    "RedisStartError",
    "redis_sentinel_set",
    "redis_server",
    "start_redis",
    "start_sentinel_set",
]


class RedisStartError(RuntimeError):
    """Raised when a Redis binary is missing or a server does not become ready in time."""


def _binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
    if path is None:
        raise RedisStartError(
            f"{name} not found (install the Debian packages 'redis-server' and 'redis-sentinel')"
        )
    return path


@dataclass
class RedisServer:
    """A running ``redis-server`` (or ``redis-sentinel``) process.

    Attributes:
        port: TCP port on ``host``.
        work_dir: directory holding its config file and log.
        process: the server process.
    """

    port: int
    work_dir: Path
    process: subprocess.Popen[bytes]
    host: str = "127.0.0.1"
    password: str | None = None
    _owns_dir: bool = field(default=True, repr=False)

    @property
    def pid(self) -> int:
        """PID of the server process."""
        return self.process.pid

    @property
    def url(self) -> str:
        """``redis://host:port/0`` URL."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` pair."""
        return (self.host, self.port)

    def client(self, **kwargs: object) -> redis.Redis:
        """A new :class:`redis.Redis` client for this server."""
        return redis.Redis(host=self.host, port=self.port, password=self.password, **kwargs)  # type: ignore[arg-type]

    def log_tail(self, lines: int = 30) -> str:
        """Last ``lines`` lines of the server log."""
        try:
            return "\n".join((self.work_dir / "redis.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def kill(self) -> None:
        """SIGKILL the process (simulates a crash) without removing its files."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop by PID (SIGTERM, SIGKILL after ``timeout`` s) and remove the working directory if we made it."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._owns_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)


def _launch(binary: str, config: str, work_dir: Path | None, timeout: float, prefix: str,
            password: str | None = None) -> RedisServer:
    owns_dir = work_dir is None
    base = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix=prefix))
    base.mkdir(parents=True, exist_ok=True)
    last = ""
    for _attempt in range(3):  # retry on another port if the chosen one was taken meanwhile
        port = free_port()
        conf = base / "redis.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\ndir {base}\n"
            f"logfile {base / 'redis.log'}\n{config}"
        )
        process = subprocess.Popen([binary, str(conf)], cwd=base, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        server = RedisServer(port=port, work_dir=base, process=process, password=password, _owns_dir=owns_dir)
        if _wait_ping(server, timeout):
            atexit.register(server.stop)
            return server
        last = server.log_tail()
        server._owns_dir = False
        server.stop()
        if "address already in use" not in last.lower():
            break
    if owns_dir:
        shutil.rmtree(base, ignore_errors=True)
    raise RedisStartError(f"{Path(binary).name} did not become ready:\n{last}")


def _wait_ping(server: RedisServer, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    client = server.client(socket_connect_timeout=1, socket_timeout=2)
    try:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                return False
            try:
                if client.ping():
                    return True
            except redis.ConnectionError:
                time.sleep(0.03)
        return False
    finally:
        client.close()


def start_redis(
    work_dir: Path | None = None, *, extra_config: str = "", timeout: float = 15.0, password: str | None = None
) -> RedisServer:
    """Start a non-persistent ``redis-server`` on a free loopback port.

    Args:
        work_dir: working directory (a fresh temporary one by default, removed on stop).
        extra_config: extra ``redis.conf`` lines, e.g. ``"replicaof 127.0.0.1 6380\\n"``.
        timeout: seconds to wait for ``PING`` to succeed.
        password: ``requirepass`` (and ``masterauth``, for replicas of a server with the same password).

    Raises:
        RedisStartError: binary missing or the server exited / did not answer in time.
    """
    config = 'save ""\nappendonly no\n' + extra_config
    if password:
        config += f'requirepass "{password}"\nmasterauth "{password}"\n'
    return _launch(_binary("redis-server"), config, work_dir, timeout, "ga-redis-", password)


@dataclass
class RedisSentinelSet:
    """A master, one replica and N sentinels monitoring them under ``master_name``."""

    master_name: str
    master: RedisServer
    replica: RedisServer
    sentinels: list[RedisServer]

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every sentinel, as ``redis.sentinel.Sentinel`` expects."""
        return [s.address for s in self.sentinels]

    def stop(self) -> None:
        """Stop every process by PID (sentinels first so that they do not start a failover)."""
        for server in [*self.sentinels, self.replica, self.master]:
            server.stop()


def start_sentinel_set(
    *,
    master_name: str = "mymaster",
    sentinels: int = 3,
    quorum: int = 2,
    down_after_ms: int = 1000,
    failover_timeout_ms: int = 5000,
    timeout: float = 30.0,
    password: str | None = None,
    sentinel_password: str | None = None,
) -> RedisSentinelSet:
    """Start a master, a replica of it and ``sentinels`` sentinels, and wait until the set is fully discovered.

    Ready means: the replica reports ``master_link_status:up`` and every sentinel sees the replica and the other
    ``sentinels - 1`` sentinels.  Failover settings: ``down-after-milliseconds`` = ``down_after_ms``,
    ``failover-timeout`` = ``failover_timeout_ms``. With ``password``, the data servers require it and the Sentinels
    authenticate with it (``sentinel auth-pass``). With ``sentinel_password`` the Sentinels require that password
    (``requirepass``; they also use it with each other), as a RedisFailover with ``spec.sentinel.authSecretRef``;
    each Sentinel's :class:`RedisServer` then carries it, so ``sentinel.client()`` authenticates.

    Raises:
        RedisStartError: a process did not start or the set was not discovered within ``timeout`` seconds.
    """
    started: list[RedisServer] = []
    try:
        master = start_redis(password=password)
        started.append(master)
        replica = start_redis(extra_config=f"replicaof {master.host} {master.port}\n", password=password)
        started.append(replica)
        sentinel_conf = (
            f"sentinel monitor {master_name} {master.host} {master.port} {quorum}\n"
            f"sentinel down-after-milliseconds {master_name} {down_after_ms}\n"
            f"sentinel failover-timeout {master_name} {failover_timeout_ms}\n"
            f"sentinel parallel-syncs {master_name} 1\n"
        )
        if password:
            sentinel_conf += f'sentinel auth-pass {master_name} "{password}"\n'
        if sentinel_password:
            sentinel_conf += f"requirepass {_conf_quote(sentinel_password)}\n"
        nodes = []
        for _ in range(sentinels):
            node = _launch(_binary("redis-sentinel"), sentinel_conf, None, timeout, "ga-sentinel-",
                           sentinel_password)
            started.append(node)
            nodes.append(node)
        cluster = RedisSentinelSet(master_name, master, replica, nodes)
        _wait_discovered(cluster, timeout)
        return cluster
    except BaseException:
        for server in reversed(started):
            server.stop()
        raise


def _conf_quote(value: str) -> str:
    """``value`` as one double-quoted redis.conf argument, every byte ``\\xHH`` (as the RedisFailover scripts)."""
    return '"' + "".join(f"\\x{b:02x}" for b in value.encode()) + '"'


def _wait_discovered(cluster: RedisSentinelSet, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    replica = cluster.replica.client(decode_responses=True)
    clients = [s.client(decode_responses=True) for s in cluster.sentinels]
    try:
        while time.monotonic() < deadline:
            linked = replica.info("replication").get("master_link_status") == "up"
            seen = all(
                len(c.sentinel_slaves(cluster.master_name)) >= 1
                and len(c.sentinel_sentinels(cluster.master_name)) >= len(clients) - 1
                for c in clients
            )
            if linked and seen:
                return
            time.sleep(0.1)
        raise RedisStartError("sentinel set not discovered in time:\n" + cluster.sentinels[0].log_tail())
    finally:
        replica.close()
        for c in clients:
            c.close()


@contextlib.contextmanager
def redis_server(**kwargs: object) -> Iterator[RedisServer]:
    """Context manager around :func:`start_redis` that always stops the server."""
    server = start_redis(**kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def redis_sentinel_set(**kwargs: object) -> Iterator[RedisSentinelSet]:
    """Context manager around :func:`start_sentinel_set` that always stops every process."""
    cluster = start_sentinel_set(**kwargs)  # type: ignore[arg-type]
    try:
        yield cluster
    finally:
        cluster.stop()
