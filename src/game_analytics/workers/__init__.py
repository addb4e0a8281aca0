"""Long-running workers: ingest, exporter, detection, ranking, reports."""
