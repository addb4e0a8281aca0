"""Alembic environment: runs migrations online against the URL or connection given by the caller.

Configured in code by :func:`game_analytics.storage.migrate.alembic_config`; there is no ``alembic.ini``.  The
caller passes either ``config.attributes["connection"]`` (an open SQLAlchemy connection) or
``config.attributes["url"]`` (a SQLAlchemy URL string).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from game_analytics.storage.models import Base

config = context.config
target_metadata = Base.metadata


def _configure_and_run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True,
                      transaction_per_migration=True)  # fmt: skip
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade --sql``) instead of connecting."""
    context.configure(url=config.attributes.get("url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against ``attributes["connection"]`` if given, else a short-lived engine for ``attributes["url"]``."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    url = config.attributes.get("url")
    if not url:
        raise RuntimeError("alembic config needs attributes['url'] or attributes['connection']")
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            _configure_and_run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
