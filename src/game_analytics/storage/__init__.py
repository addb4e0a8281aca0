"""Relational storage: SQLAlchemy 2 models, packaged Alembic migrations, engine/session helpers.

* :mod:`.models` - the typed ORM models (one per table)
* :mod:`.migrate` - ``upgrade(url)`` / ``downgrade(url)`` running the packaged migrations
* :mod:`.engine` - ``make_engine``, ``session_scope``, DSN conversion
"""

from typing import Any

__all__ = ["Base", "downgrade", "libpq_dsn", "make_engine", "session_scope", "sqlalchemy_url", "upgrade"]

#: name -> module of the re-exports, imported on first use (PEP 562): importing a submodule such as
#: ``storage.derived`` must not load SQLAlchemy's ORM and Alembic (``game-analytics rate`` starts faster)
_LAZY = {"Base": "models", "downgrade": "migrate", "upgrade": "migrate", "libpq_dsn": "engine",
         "make_engine": "engine", "session_scope": "engine", "sqlalchemy_url": "engine"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
