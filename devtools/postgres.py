"""Throwaway PostgreSQL server for tests and benchmarks.

Starts a real ``postgres`` process from the Debian ``postgresql`` package on a random free loopback port, with
its data directory and Unix socket in a temporary directory, and stops it by PID.  Durability is switched off
(``fsync=off``, ``synchronous_commit=off``, ``full_page_writes=off``) because the cluster is thrown away; tests
that crash the server and count on acknowledged commits must pass ``settings={"synchronous_commit": "on"}``.

PostgreSQL refuses to run as root, so when the current user is root the server binaries run as the unprivileged
``postgres`` system user (created by the Debian package) through ``setpriv``.

Example::

    with postgres_server() as pg:
        engine = sqlalchemy.create_engine(pg.dsn())
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from .waiting import free_port

__all__ = [
    "PostgresServer",
    "PostgresStartError",
    "find_pg_bindir",
    "postgres_server",
    "start_postgres",
]

SUPERUSER = "postgres"


class PostgresStartError(RuntimeError):
    """Raised when the PostgreSQL binaries are missing or the server does not become ready."""


def find_pg_bindir() -> Path:
    """Return the newest ``/usr/lib/postgresql/<major>/bin`` holding ``postgres`` and ``initdb``.

    ``$PG_BINDIR`` overrides the search.  Raises :class:`PostgresStartError` when no installation is found.
    """
    override = os.environ.get("PG_BINDIR")
    candidates = [override] if override else []
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    for candidate in candidates:
        path = Path(candidate)
        if (path / "postgres").is_file() and (path / "initdb").is_file():
            return path
    raise PostgresStartError(
        "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
        "(install the Debian package 'postgresql' or set PG_BINDIR)"
    )


def _run_as_prefix() -> tuple[list[str], pwd.struct_passwd | None]:
    """Command prefix that drops root privileges to the ``postgres`` user, or nothing when not root."""
    if os.geteuid() != 0:
        return [], None
    try:
        user = pwd.getpwnam("postgres")
    except KeyError as exc:  # pragma: no cover - depends on the machine
        raise PostgresStartError(
            "running as root but there is no 'postgres' system user to run the server"
        ) from exc
    setpriv = shutil.which("setpriv")
    if setpriv is None:  # pragma: no cover - util-linux is essential on Debian
        raise PostgresStartError("running as root but 'setpriv' (util-linux) is not installed")
    prefix = [setpriv, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", "--"]
    return prefix, user


@dataclass
class PostgresServer:
    """A running throwaway PostgreSQL server.

    Attributes:
        port: TCP port on ``host``.
        host: loopback address the server listens on.
        base_dir: temporary directory holding ``data/``, ``sock/`` and ``postgres.log``.
        process: the ``postgres`` postmaster process.
    """

    port: int
    base_dir: Path
    process: subprocess.Popen[bytes]
    host: str = "127.0.0.1"
    user: str = SUPERUSER
    _owns_dir: bool = field(default=True, repr=False)

    @property
    def pid(self) -> int:
        """PID of the postmaster."""
        return self.process.pid

    @property
    def log_path(self) -> Path:
        """Path of the server log file."""
        return self.base_dir / "postgres.log"

    def dsn(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        """SQLAlchemy URL for ``database`` as the superuser (trust auth, no password).

        Pass ``driver="postgresql"`` for a plain libpq URL usable by ``psycopg.connect``.
        """
        return f"{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def log_tail(self, lines: int = 40) -> str:
        """Last ``lines`` lines of the server log (for error messages)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database ``name`` (optionally copying ``template``) and return its SQLAlchemy URL.

        ``name`` and ``template`` must be plain identifiers (letters, digits, underscores); raises ``ValueError``.
        """
        for ident in (name, template):
            if ident is not None and not ident.replace("_", "").isalnum():
                raise ValueError(f"not a plain identifier: {ident!r}")
        sql = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
        with psycopg.connect(self.dsn(driver="postgresql"), autocommit=True) as conn:
            conn.execute(sql)
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, disconnecting its sessions (PostgreSQL >= 13 ``WITH (FORCE)``)."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"not a plain identifier: {name!r}")
        with psycopg.connect(self.dsn(driver="postgresql"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def crash(self, timeout: float = 20.0) -> None:
        """Simulate a crash: immediate shutdown (SIGQUIT: no checkpoint, crash recovery on the next start).

        The data directory is kept, so ``start_postgres(server.base_dir, port=server.port)`` restarts it.
        """
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGQUIT)
            self.process.wait(timeout=timeout)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server by PID (SIGINT = fast shutdown, SIGKILL after ``timeout`` s) and remove its files."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout)
        if self._owns_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)


def start_postgres(
    base_dir: Path | None = None,
    *,
    port: int | None = None,
    timeout: float = 30.0,
    settings: dict[str, str] | None = None,
) -> PostgresServer:
    """Initialise a cluster in a temporary directory and start ``postgres`` on a free loopback port.

    Args:
        base_dir: directory to use (created if missing; kept on stop); a fresh ``tempfile.mkdtemp`` by default,
            removed on stop.  If it already holds a cluster (``data/PG_VERSION``), that cluster is started again,
            which lets tests restart a server on the same data and port.
        port: TCP port; a free one by default.
        timeout: seconds to wait for ``initdb`` and for the server to accept connections.
        settings: extra ``-c name=value`` server settings, overriding the defaults.

    Returns:
        The running :class:`PostgresServer`; call :meth:`PostgresServer.stop` (also registered with ``atexit``).

    Raises:
        PostgresStartError: binaries missing, ``initdb`` failed, or the server exited / did not get ready in time.
    """
    bindir = find_pg_bindir()
    prefix, user = _run_as_prefix()
    owns_dir = base_dir is None
    base = Path(base_dir) if base_dir is not None else Path(tempfile.mkdtemp(prefix="ga-postgres-"))
    base.mkdir(parents=True, exist_ok=True)
    data_dir, sock_dir = base / "data", base / "sock"
    sock_dir.mkdir(exist_ok=True)
    if user is not None:
        for path in (base, sock_dir):
            os.chown(path, user.pw_uid, user.pw_gid)
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "TZ": "UTC"}

    if not (data_dir / "PG_VERSION").exists():  # a fresh cluster, unless restarting on an existing one
        initdb = subprocess.run(
            [*prefix, str(bindir / "initdb"), "-D", str(data_dir), "-U", SUPERUSER, "--auth=trust",
             "--encoding=UTF8", "--locale=C", "--no-sync"],
            env=env, capture_output=True, timeout=timeout, check=False,
        )  # fmt: skip
        if initdb.returncode != 0:
            if owns_dir:
                shutil.rmtree(base, ignore_errors=True)
            raise PostgresStartError(
                f"initdb failed ({initdb.returncode}): {initdb.stderr.decode(errors='replace')}"
            )

    options = {
        "listen_addresses": "127.0.0.1",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "200",
        "shared_buffers": "128MB",
        "max_wal_size": "2GB",
        "timezone": "UTC",
        "log_min_messages": "warning",
        # statement statistics for the platform dashboard (the extension is created per database where wanted)
        "shared_preload_libraries": "pg_stat_statements",
    } | (settings or {})
    last_error = ""
    for _attempt in range(3):  # a free port can be taken between free_port() and bind(): retry on a new one
        chosen = port or free_port()
        log_path = base / "postgres.log"
        log = open(log_path, "ab")  # noqa: SIM115 - handed to the child process
        if user is not None:
            os.chown(log_path, user.pw_uid, user.pw_gid)
        cmd = [*prefix, str(bindir / "postgres"), "-D", str(data_dir), "-k", str(sock_dir), "-p", str(chosen)]
        for name, value in options.items():
            cmd += ["-c", f"{name}={value}"]
        process = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        server = PostgresServer(port=chosen, base_dir=base, process=process, _owns_dir=owns_dir)
        if _wait_ready(server, timeout):
            atexit.register(server.stop)
            return server
        last_error = server.log_tail()
        server._owns_dir = False
        server.stop()
        if port is not None or "could not bind" not in last_error.lower():
            break
    if owns_dir:
        shutil.rmtree(base, ignore_errors=True)
    raise PostgresStartError(f"postgres did not become ready:\n{last_error}")


def _wait_ready(server: PostgresServer, timeout: float) -> bool:
    """Poll until the server accepts a connection; False if it exited or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            with psycopg.connect(server.dsn(driver="postgresql"), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            time.sleep(0.05)
    return False


@contextlib.contextmanager
def postgres_server(**kwargs: object) -> Iterator[PostgresServer]:
    """Context manager around :func:`start_postgres` that always stops the server."""
    server = start_postgres(**kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()
