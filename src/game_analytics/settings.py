"""Worker settings, read from environment variables.

The operator renders these variables into each worker's pod (a ConfigMap for the plain settings, Secret references
for credentials), and ``make demo`` reads the same ConfigMap back from the API to run the workers as local processes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from pydantic import BaseModel, Field

ENV_PREFIX = "GAME_ANALYTICS_"


def configure_logging(level: str | int = "INFO") -> None:
    """Log to stderr at ``level`` (a name such as ``"info"``, any case, or a ``logging`` constant) in the format
    every worker shares: time, level, logger, message."""
    logging.basicConfig(level=level.upper() if isinstance(level, str) else level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip


class WorkerSettings(BaseModel):
    """Settings shared by the ingest, exporter, detection, ranking and report workers."""

    dsn: str | None = Field(default=None, description="SQLAlchemy URL of the PostgreSQL store.")
    redis_url: str | None = Field(default=None, description="redis:// URL, when not using Sentinels.")
    redis_sentinels: list[str] = Field(default_factory=list, description="host:port of each Sentinel.")
    redis_master: str = Field(default="mymaster", description="Sentinel master group name.")
    redis_password: str | None = Field(default=None, description="Redis password.")
    stream: str = "game-events"
    consumer_group: str = "ingest"
    stream_shards: int = Field(default=1, ge=1, le=64, description="Shard streams STREAM:0.. (1: the stream itself).")
    dead_letter_stream: str = "game-events-dead"
    games: list[str] = Field(default_factory=list)
    namespace: str = "default"
    data_source: str = "default"
    detector_selector: str = Field(default="", description="Label selector of the detector-rule ConfigMaps.")
    detection_interval_seconds: float = 30.0
    metrics_port: int = 9102
    retention: str | None = Field(default=None, description="Drop events older than this (e.g. 90d); None: keep all.")
    partition_interval: str = Field(default="month", description="Time partitions of events: month or day.")
    partition_maintenance: bool = Field(default=True, description="The ingest worker maintains the partitions.")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkerSettings:
        """Read ``GAME_ANALYTICS_<FIELD>`` variables; lists are comma separated.

        Raises:
            pydantic.ValidationError: naming the variable's field when a value has the wrong type.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name, field in cls.model_fields.items():
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw is None:
                continue
            is_list = getattr(field.annotation, "__origin__", None) is list
            values[name] = [item for item in raw.split(",") if item] if is_list else raw
        return cls.model_validate(values)

    def to_env(self, *, exclude: set[str] = frozenset({"dsn", "redis_url", "redis_password"})) -> dict[str, str]:
        """The non-secret settings as environment variables (the inverse of :meth:`from_env`)."""
        env = {}
        for name, value in self.model_dump(exclude=exclude).items():
            if value is None:
                continue
            env[ENV_PREFIX + name.upper()] = ",".join(value) if isinstance(value, list) else str(value)
        return env
