"""Long-running workers: ingest, exporter, detection, ranking, reports."""

#: the workers ``game-analytics worker NAME`` runs (here, not in :mod:`game_analytics.settings`, so that the CLI's
#: parser does not import pydantic-settings for every command)
WORKERS = ("ingest", "exporter", "detection", "ranking", "report")
