"""Run the packaged Alembic migrations programmatically (works from an installed wheel; no alembic.ini).

Example::

    from game_analytics.storage.migrate import upgrade
    upgrade("postgresql+psycopg://user@host/db")

In a cluster every worker pod of a GameDataSource runs ``game-analytics migrate`` as an init container, so a new
database or a new image is migrated before a worker starts; with ``spec.postgres.migrationDsnSecretRef`` it runs
as the tables' owner, the workers themselves as the insert-only role (docs/interventions.md). Concurrent runs are serialised by a PostgreSQL advisory
lock (:data:`MIGRATION_LOCK`): the first upgrades, the others find the schema at head and do nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, pool, text

__all__ = ["alembic_config", "current_revision", "downgrade", "head_revision", "main", "upgrade"]

SCRIPT_LOCATION = "game_analytics.storage:migrations"
#: pg_advisory_lock key held while migrating (the bytes of "gamemigr").
MIGRATION_LOCK = int.from_bytes(b"gamemigr", "big") - 2**63


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """Build an Alembic :class:`~alembic.config.Config` for the packaged migrations.

    Args:
        url: SQLAlchemy URL (``postgresql+psycopg://...``) the environment connects to.
        connection: an open connection to use instead (the caller owns its transaction).
    """
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if url is not None:
        config.attributes["url"] = url
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision`` (default: the newest), holding :data:`MIGRATION_LOCK`.

    Safe to run from several processes at once. Raises SQLAlchemy errors (e.g. ``OperationalError`` when the
    database cannot be reached).
    """
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            conn.commit()
            try:
                command.upgrade(alembic_config(connection=conn), revision)
                conn.commit()
            finally:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
                conn.commit()
    finally:
        engine.dispose()


def downgrade(url: str, revision: str = "base") -> None:
    """Downgrade the database at ``url`` to ``revision`` (default: empty schema)."""
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str:
    """Revision id of the newest packaged migration."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(url: str) -> str | None:
    """Revision id the database at ``url`` is at (None for an unmigrated database)."""
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    """Upgrade the database to the schema of this version (``game-analytics migrate``).

    Exit codes: 0 done, 1 failed (one line naming the error), 2 usage.
    """
    from ..console import ArgumentParser, fail
    from ..settings import configure_logging, environment
    from .engine import sqlalchemy_url

    parser = ArgumentParser(prog="game-analytics migrate", description="Upgrade the database to the schema of this version.")
    parser.add_argument("--dsn", help="PostgreSQL URL (env GAME_ANALYTICS_DSN)")
    parser.add_argument("--revision", default="head", help="target revision (default: head)")
    args = parser.parse_args(argv)
    args.dsn = args.dsn or environment(parser).dsn
    if not args.dsn:
        parser.error("give --dsn or GAME_ANALYTICS_DSN")
    configure_logging("INFO")
    url = sqlalchemy_url(args.dsn)
    try:
        upgrade(url, args.revision)
    except Exception as exc:  # noqa: BLE001 - one line for the pod's log, no traceback: the reason is the message
        return fail("game-analytics migrate", f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}")
    print(f"game-analytics migrate: database at {current_revision(url)}", flush=True)
    return 0
