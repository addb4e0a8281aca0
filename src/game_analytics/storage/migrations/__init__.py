"""Alembic environment and revisions for the analytics store (run via :mod:`game_analytics.storage.migrate`)."""
