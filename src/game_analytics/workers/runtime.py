"""What every worker process shares: settings and logging, the evaluation time ("as of"), the Kubernetes client,
and :func:`serve` (metrics port, health endpoints, SIGTERM).

* **Settings**: :func:`parser` builds a worker's parser from the one settings model
  (:class:`game_analytics.settings.WorkerSettings`: every flag has a ``GAME_ANALYTICS_*`` variable, rendered by the
  operator into each worker's ConfigMap); :func:`start` parses the flags, builds the settings (a bad value is a
  one-line usage error, exit code 2), configures the log format and insists on a database URL.
* **As of**: analytics windows end at "now" by default.  For replayed historical data (the demo replays CDNOW's
  1997-98 purchases) every window would be empty, so ``--as-of latest`` (or ``GAME_ANALYTICS_AS_OF=latest``)
  evaluates relative to the newest stored event and ``--as-of 1998-06-30T00:00:00Z`` at a fixed time.
* **Kubernetes**: :func:`kube_api_client` loads the in-cluster service account, else the local kubeconfig.
* **Serving**: :func:`serve` exposes a registry on ``/metrics`` and answers ``/healthz``, ``/livez`` and
  ``/readyz`` with ``ok``; :func:`stop_event` turns SIGTERM/SIGINT into a :class:`threading.Event`.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app
from sqlalchemy import Connection

from game_analytics.console import ArgumentParser
from game_analytics.settings import ENV_PREFIX, WorkerSettings, add_flags, configure_logging, load, parse_time
from game_analytics.storage.queries import latest_event_time

__all__ = [
    "ENV_AS_OF",
    "HEALTH_PATHS",
    "MetricsServer",
    "parser",
    "kube_api_client",
    "parse_as_of",
    "resolve_as_of",
    "serve",
    "start",
    "stop_event",
]

#: environment default of ``--as-of`` (read through :class:`WorkerSettings`)
ENV_AS_OF = f"{ENV_PREFIX}AS_OF"
#: paths :func:`serve` answers with ``200 ok`` (liveness and readiness probes)
HEALTH_PATHS = ("/healthz", "/livez", "/readyz")


# --- settings and logging -------------------------------------------------------------------------------------


def parser(worker: str, description: str) -> argparse.ArgumentParser:
    """The parser of ``game-analytics worker WORKER`` with every flag of its settings
    (:func:`game_analytics.settings.add_flags`); the worker adds its own on top."""
    p = ArgumentParser(prog=f"game-analytics worker {worker}", description=description,
                       epilog="Every flag can be set by its environment variable instead (shown in brackets); "
                              "exit codes: 0 ok, 1 the work failed, 2 usage (docs/cli.md).")  # fmt: skip
    add_flags(p, worker)
    return p


def start(parser: argparse.ArgumentParser, argv: Sequence[str] | None, worker: str, *,
          need_dsn: bool = True) -> tuple[argparse.Namespace, WorkerSettings]:
    """Parse ``argv`` with ``parser`` (from :func:`parser`), build the worker's settings (flags over
    ``GAME_ANALYTICS_*`` over defaults), configure logging at their level and return both.

    Raises:
        SystemExit: exit code 2 with a one-line message naming the flag or variable: bad usage, a bad value, or no
            ``--dsn`` (nor ``GAME_ANALYTICS_DSN``) while ``need_dsn``.
    """
    args = parser.parse_args(argv)
    settings = load(parser, args, worker)
    configure_logging(settings.log_level)
    if need_dsn and not settings.dsn:
        parser.error(f"--dsn (or {ENV_PREFIX}DSN) is required")
    return args, settings


# --- as of ----------------------------------------------------------------------------------------------------


def parse_as_of(value: str | None) -> str | datetime:
    """``"now"`` (also for None), ``"latest"`` or an ISO 8601 time (naive = UTC, returned timezone-aware).

    Raises:
        ValueError: anything else, with the accepted forms in the message.
    """
    try:
        return parse_time(value or "now", keywords=("now", "latest"))
    except ValueError as exc:
        raise ValueError(f"--as-of: {exc}") from None


def resolve_as_of(conn: Connection, as_of: str | datetime, clock: Callable[[], float] = time.time) -> datetime:
    """The evaluation time for ``as_of`` (see :func:`parse_as_of`): the datetime itself, the newest stored event
    for ``"latest"`` (now when the store is empty), else ``clock()`` (Unix seconds) as a UTC datetime."""
    if isinstance(as_of, datetime):
        return as_of
    if as_of == "latest":
        latest = latest_event_time(conn)
        if latest is not None:
            return latest
    return datetime.fromtimestamp(clock(), UTC)


# --- Kubernetes -----------------------------------------------------------------------------------------------


def kube_api_client() -> Any:
    """A ``kubernetes.client.ApiClient`` from the in-cluster service account, or else from the kubeconfig
    (``$KUBECONFIG``, ``~/.kube/config``).

    Raises:
        kubernetes.config.ConfigException: neither is available.
    """
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


# --- serving --------------------------------------------------------------------------------------------------


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Scrapes and probes are not logged."""


class MetricsServer:
    """A running :func:`serve` server: ``port`` (the bound port) and :meth:`shutdown`."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self.thread = thread
        self.port: int = server.server_port

    def shutdown(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()


def serve(port: int, registry: CollectorRegistry = REGISTRY, addr: str = "0.0.0.0", *,
          ready: Callable[[], bool] = lambda: True) -> MetricsServer:
    """Serve ``registry`` on ``addr:port`` (``/metrics``, and any other path but the health ones, as
    prometheus_client does) and the health endpoints, from a daemon thread.  ``port`` 0 picks a free port (see
    ``MetricsServer.port``).

    ``/livez`` and ``/healthz`` answer 200 ``ok`` while the process serves: they never touch a database, so a
    database outage or a slow query cannot turn into a liveness restart loop. ``/readyz`` answers 200 when
    ``ready()`` is true and 503 ``not ready`` otherwise (the exporter: until its first snapshot exists).

    Raises:
        OSError: the address is in use or cannot be bound.
    """
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO")
        if path in HEALTH_PATHS:
            ok = path != "/readyz" or ready()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n" if ok else b"not ready\n"]
        return metrics(environ, start_response)

    server = make_server(addr, port, app, _ThreadingServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name=f"metrics-{port}", daemon=True)
    thread.start()
    return MetricsServer(server, thread)


def stop_event() -> threading.Event:
    """An event set by SIGTERM or SIGINT (installs the handlers; call from the main thread)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


__all__ += ["WorkerSettings"]
