"""Operator-wide defaults, overridable through environment variables (set by the Helm chart)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Images:
    """Container images the operator puts into generated workloads."""

    worker: str = "ghcr.io/game-analytics/game-analytics:0.1.0"
    redis: str = "redis:7.4-alpine"
    redis_exporter: str = "oliver006/redis_exporter:v1.67.0"
    mongo: str = "mongo"  # tagged with the cluster's spec.version

    @classmethod
    def from_env(cls) -> Images:
        d = cls()
        return cls(
            worker=os.environ.get("GAME_ANALYTICS_WORKER_IMAGE", d.worker),
            redis=os.environ.get("GAME_ANALYTICS_REDIS_IMAGE", d.redis),
            redis_exporter=os.environ.get("GAME_ANALYTICS_REDIS_EXPORTER_IMAGE", d.redis_exporter),
            mongo=os.environ.get("GAME_ANALYTICS_MONGO_IMAGE", d.mongo),
        )
