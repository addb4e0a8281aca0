"""Alembic revision scripts (package so that they ship in wheels)."""
