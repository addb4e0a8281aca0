"""Run the packaged Alembic migrations programmatically (works from an installed wheel; no alembic.ini).

Example::

    from game_analytics.storage.migrate import upgrade
    upgrade("postgresql+psycopg://user@host/db")
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, pool

__all__ = ["alembic_config", "current_revision", "downgrade", "head_revision", "upgrade"]

SCRIPT_LOCATION = "game_analytics.storage:migrations"


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
    """Upgrade the database at ``url`` to ``revision`` (default: the newest).  Raises SQLAlchemy errors."""
    command.upgrade(alembic_config(url), revision)


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
