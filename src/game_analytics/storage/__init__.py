"""Relational storage: SQLAlchemy 2 models, packaged Alembic migrations, engine/session helpers.

* :mod:`.models` - the typed ORM models (one per table)
* :mod:`.migrate` - ``upgrade(url)`` / ``downgrade(url)`` running the packaged migrations
* :mod:`.engine` - ``make_engine``, ``session_scope``, DSN conversion
"""

from game_analytics.storage.engine import libpq_dsn, make_engine, session_scope, sqlalchemy_url
from game_analytics.storage.migrate import downgrade, upgrade
from game_analytics.storage.models import Base

__all__ = ["Base", "downgrade", "libpq_dsn", "make_engine", "session_scope", "sqlalchemy_url", "upgrade"]
