"""Engine, session and DSN helpers for the analytics store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, make_url
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["libpq_dsn", "make_engine", "session_scope", "sqlalchemy_url"]


def libpq_dsn(url: str) -> str:
    """Turn a SQLAlchemy URL (``postgresql+psycopg://u:p@h:5432/db``) into a libpq URL for ``psycopg.connect``.

    Plain ``postgresql://`` URLs and libpq keyword strings are returned unchanged.
    Raises ``sqlalchemy.exc.ArgumentError`` for an unparsable URL.
    """
    if "://" not in url:
        return url
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def sqlalchemy_url(dsn: str) -> str:
    """Inverse of :func:`libpq_dsn`: force the ``postgresql+psycopg`` driver on a ``postgresql://`` URL."""
    parsed = make_url(dsn)
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def make_engine(url: str, **kwargs: object) -> Engine:
    """Create an engine for ``url`` (a ``postgresql://`` URL is switched to the psycopg 3 driver).

    ``kwargs`` go to :func:`sqlalchemy.create_engine`; ``pool_pre_ping`` defaults to True.
    """
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(sqlalchemy_url(url), **kwargs)  # type: ignore[arg-type]


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back (and re-raises) on error."""
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session, session.begin():
        yield session
