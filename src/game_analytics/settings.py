"""THE settings model of every worker (pydantic-settings), and the command-line flags derived from it.

Each field is one setting: its command-line flag is ``--<field-with-dashes>`` and its environment variable
``GAME_ANALYTICS_<FIELD>`` (:data:`ENV_PREFIX`). A flag wins over the variable, the variable over the default.
:data:`FLAGS` says which workers take which flag (plus old spellings kept as aliases); :func:`add_flags` adds them
to a worker's parser and :func:`load` builds the model from flags and environment, turning any bad value into a
one-line usage error naming the flag or the variable (exit code 2). docs/cli.md holds the table of all of them
(:func:`flags_table`; a test keeps it equal).

The operator renders these variables into each worker's pod (a ConfigMap for the plain settings, Secret references
for credentials: :meth:`WorkerSettings.to_env`), and ``make demo`` reads the same ConfigMap back from the API to run
the workers as local processes.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_origin

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: every worker (``game-analytics worker NAME``): defined in game_analytics.workers for the CLI's start-up
from game_analytics.workers import WORKERS

ENV_PREFIX = "GAME_ANALYTICS_"
#: the accepted ``--log-level`` values (any case)
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
#: default ``--metrics-port`` of the long-running workers; the ranking and report Jobs serve none by default
DEFAULT_METRICS_PORT = 9102

#: settings that are credentials: never rendered into a ConfigMap, and no flag
SECRETS = frozenset({"dsn", "redis_url", "redis_password", "redis_sentinel_password", "report_webhook_url",
                     "report_smtp_password"})

LogLevel = Literal["debug", "info", "warning", "error", "critical"]
CommaList = Annotated[list[str], NoDecode]


def configure_logging(level: str | int = "INFO") -> None:
    """Log to stderr at ``level`` (a name such as ``"info"``, any case, or a ``logging`` constant) in the format
    every worker shares: time, level, logger, message."""
    logging.basicConfig(level=level.upper() if isinstance(level, str) else level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip


class WorkerSettings(BaseSettings):
    """Settings of the ingest, exporter, detection, ranking and report workers, read from ``GAME_ANALYTICS_*``.

    ``WorkerSettings()`` reads the process environment (empty variables count as unset);
    ``WorkerSettings.model_validate(values)`` and :meth:`from_env` with a mapping do not. Lists are comma separated.

    Raises:
        pydantic.ValidationError: a value of the wrong type or out of range (the error names the field).
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", env_ignore_empty=True,
                                      validate_default=False)  # fmt: skip

    # --- connections (every worker)
    dsn: str | None = Field(default=None, description="SQLAlchemy URL of the PostgreSQL store.")
    log_level: LogLevel = Field(default="info", description="Log level: " + ", ".join(LOG_LEVELS) + ".")
    metrics_port: int | None = Field(default=None, ge=0, le=65535, description=(
        f"Port of /metrics, /livez and /readyz; 0: off (default {DEFAULT_METRICS_PORT}; 0 for ranking and report)."))
    listen: str = Field(default="0.0.0.0", description="Address the metrics port listens on.")
    redis_url: str | None = Field(default=None, description="redis:// URL, when not using Sentinels.")
    redis_sentinels: CommaList = Field(default_factory=list, description="host:port of each Sentinel (repeat or comma).")
    redis_master: str = Field(default="mymaster", description="Sentinel master group name.")
    redis_password: str | None = Field(default=None, description="Redis password (environment only).")
    redis_sentinel_password: str | None = Field(default=None, description=(
        "The Sentinels' own password, not the Redis one (environment only)."))
    no_redis: bool = Field(default=False, description="Do not use Redis (exporter: no stream lag; ranking: "
                                                      "PostgreSQL only).")
    # --- the stream (ingest)
    stream: str = Field(default="game-events", description="Redis stream of events (shards: STREAM:0..).")
    consumer_group: str = Field(default="ingest", description="Consumer group reading the stream.")
    consumer: str | None = Field(default=None, description="Stable consumer name (default: the hostname).")
    stream_shards: int = Field(default=1, ge=1, le=64, description="Shard streams STREAM:0.. (1: the stream itself).")
    dead_letter_stream: str = Field(default="game-events-dead", description="Stream of events that failed validation.")
    batch_size: int = Field(default=1000, ge=1, description="Entries read and stored per batch.")
    block_ms: int = Field(default=1000, ge=0, description="Milliseconds a read waits for new entries.")
    claim_idle_ms: int = Field(default=30_000, ge=0, description="Claim entries pending longer than this (ms) "
                                                                 "from dead consumers.")
    migrate: bool = Field(default=False, description="Run the database migrations before starting.")
    retention: str | None = Field(default=None, description="Drop events older than this (e.g. 90d); unset: keep all.")
    partition_interval: Literal["month", "day"] = Field(default="month", description="Time partitions of events.")
    partition_maintenance: bool = Field(default=True, description="The ingest worker maintains the partitions.")
    # --- analytics (exporter, detection, ranking)
    games: CommaList = Field(default_factory=list, description="Only these games (comma separated; default: all).")
    as_of: str | None = Field(default=None, description=(
        "End of the analytics windows: now, latest (the newest event; for replayed data) or an ISO 8601 time "
        "(default: now; ranking: the newest match)."))
    ttl: float = Field(default=15.0, ge=0, description="Seconds a metrics refresh is cached.")
    once: bool = Field(default=False, description="One scrape (exporter) or pass (detection) to stdout, then exit.")
    namespace: str = Field(default="default", description="Namespace of the detector ConfigMaps (the pod's own).")
    data_source: str = Field(default="default", description="Name of the GameDataSource (environment only).")
    alertmanager_urls: CommaList = Field(default_factory=list, description=(
        "Alertmanagers the detection worker's streaming path posts to (environment only: the operator renders it)."))
    detector_selector: str = Field(default="", description="Label selector of the detector-rule ConfigMaps.")
    detection_interval_seconds: float = Field(default=30.0, gt=0, description="Seconds between detection passes.")
    rules_dir: Path | None = Field(default=None, description="Read rule .json files from here, not the Kubernetes API.")
    model_dir: Path = Field(default=Path("/tmp/game-analytics-models"),
                            description="Where anomaly models and scores are stored.")
    refit_seconds: float = Field(default=3600.0, ge=0, description="Refit anomaly models older than this.")
    # --- jobs (ranking, report)
    config: Path | None = Field(default=None, description=(
        "The document the operator rendered: ranking.json (required) or report.json (default "
        "/etc/game-analytics/report.json)."))
    status_file: Path | None = Field(default=None, description="Also write the RankingJob status fields here.")
    season_reset: bool = Field(default=False, description="Start a new season with a soft reset.")
    reset_at: str | None = Field(default=None, description="Start time of the new season (default: scheduled-for).")
    scheduled_for: str | None = Field(default=None, description=(
        "The CronJob's scheduled time of this run (default: the time in the Job's name, else now)."))
    output_dir: Path = Field(default=Path("/tmp/reports"), description="Where report files are written.")
    now: str | None = Field(default=None, description="End of the reporting period, ISO 8601 (default: now).")
    run_key: str | None = Field(default=None, description=(
        "Identifies this scheduled run across Job retries (default: the Job name or the hostname)."))
    report_webhook_url: str | None = Field(default=None, description="Webhook URL of a report (environment only).")
    report_smtp_password: str | None = Field(default=None, description="SMTP password of a report (environment "
                                                                       "only).")

    @field_validator("redis_sentinels", "games", "alertmanager_urls", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        """``"a,b"`` or ``["a,b", "c"]`` -> ``["a", "b", "c"]``."""
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list | tuple):
            return [item.strip() for part in value for item in str(part).split(",") if item.strip()]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("as_of")
    @classmethod
    def _as_of(cls, value: str | None) -> str | None:
        if value is not None:
            parse_time(value, keywords=("now", "latest"))
        return value

    @field_validator("retention")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            from game_analytics.api.common import parse_duration

            parse_duration(value)
        return value

    @field_validator("reset_at", "scheduled_for", "now")
    @classmethod
    def _time(cls, value: str | None) -> str | None:
        if value is not None:
            parse_time(value)
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkerSettings:
        """Read ``GAME_ANALYTICS_<FIELD>`` variables from ``environ`` (default: the process environment).

        Raises:
            pydantic.ValidationError: naming the variable's field when a value has the wrong type.
        """
        if environ is None:
            return cls()
        values = {name: environ[ENV_PREFIX + name.upper()] for name in cls.model_fields
                  if environ.get(ENV_PREFIX + name.upper())}  # fmt: skip
        return cls.model_validate(values)

    def to_env(self, *, exclude: set[str] = SECRETS) -> dict[str, str]:
        """The non-secret settings explicitly set as environment variables (the inverse of :meth:`from_env`)."""
        env = {}
        for name, value in self.model_dump(exclude=exclude, exclude_unset=True).items():
            if value is None:
                continue
            env[ENV_PREFIX + name.upper()] = ",".join(value) if isinstance(value, list) else str(value)
        return env

    def port(self, default: int = DEFAULT_METRICS_PORT) -> int:
        """``metrics_port``, or ``default`` when unset (0: serve nothing)."""
        return default if self.metrics_port is None else self.metrics_port


def parse_time(text: str, keywords: Sequence[str] = ()) -> Any:
    """One of ``keywords`` (returned as is) or an ISO 8601 time (``Z`` allowed; naive = UTC; returned aware).

    Raises:
        ValueError: anything else, with the accepted forms in the message.
    """
    from datetime import UTC, datetime

    if text in keywords:
        return text
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        forms = " or ".join([*(repr(k) for k in keywords), "an ISO 8601 time"])
        raise ValueError(f"expected {forms}, got {text!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- flags ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """Which workers take a setting as a flag, and older spellings of the flag kept working."""

    workers: tuple[str, ...]
    aliases: tuple[str, ...] = ()


_STREAM = ("ingest", "exporter")
_REDIS = ("ingest", "exporter", "ranking")
#: field -> flag; a field not listed here is read from the environment only (credentials, data_source).
FLAGS: dict[str, Flag] = {
    "dsn": Flag(WORKERS),
    "log_level": Flag(WORKERS),
    "metrics_port": Flag(WORKERS, ("--port",)),
    "listen": Flag(WORKERS),
    "redis_url": Flag(_REDIS),
    "redis_sentinels": Flag(_REDIS, ("--sentinel",)),
    "redis_master": Flag(_REDIS, ("--sentinel-master",)),
    "no_redis": Flag(("exporter", "ranking")),
    "stream": Flag(_STREAM),
    "consumer_group": Flag(_STREAM, ("--group",)),
    "consumer": Flag(("ingest",)),
    "stream_shards": Flag(("ingest", "exporter"), ("--shards",)),
    "dead_letter_stream": Flag(("ingest",)),
    "batch_size": Flag(("ingest",)),
    "block_ms": Flag(("ingest",)),
    "claim_idle_ms": Flag(("ingest", "detection")),
    "migrate": Flag(("ingest",)),
    "retention": Flag(("ingest",)),
    "partition_interval": Flag(("ingest",)),
    "partition_maintenance": Flag(("ingest",)),
    "games": Flag(("exporter", "detection")),
    "as_of": Flag(("exporter", "detection", "ranking")),
    "ttl": Flag(("exporter",)),
    "once": Flag(("exporter", "detection")),
    "namespace": Flag(("detection",)),
    "detector_selector": Flag(("detection",), ("--selector",)),
    "detection_interval_seconds": Flag(("detection",), ("--interval",)),
    "rules_dir": Flag(("detection",)),
    "model_dir": Flag(("detection",)),
    "refit_seconds": Flag(("detection",)),
    "config": Flag(("ranking", "report")),
    "status_file": Flag(("ranking",)),
    "season_reset": Flag(("ranking",)),
    "reset_at": Flag(("ranking",)),
    "scheduled_for": Flag(("ranking",)),
    "output_dir": Flag(("report",)),
    "now": Flag(("report",)),
    "run_key": Flag(("report",)),
}


def flag_name(field: str) -> str:
    """``--<field-with-dashes>``: the flag of a setting."""
    return "--" + field.replace("_", "-")


def env_name(field: str) -> str:
    """``GAME_ANALYTICS_<FIELD>``: the environment variable of a setting."""
    return ENV_PREFIX + field.upper()


def _is_bool(field: str) -> bool:
    return WorkerSettings.model_fields[field].annotation is bool


def _is_list(field: str) -> bool:
    return get_origin(WorkerSettings.model_fields[field].annotation) is list


def add_flags(parser: argparse.ArgumentParser, worker: str) -> None:
    """Add every flag of ``worker`` (:data:`FLAGS`) to ``parser``; each defaults to None (= not given).

    Booleans are ``--x/--no-x`` switches, lists repeatable (``--games a --games b`` or ``--games a,b``), and
    ``--log-level`` has fixed choices. Values are checked by :func:`load`, not by argparse.
    """
    for field, flag in FLAGS.items():
        if worker not in flag.workers:
            continue
        info = WorkerSettings.model_fields[field]
        names = [flag_name(field), *flag.aliases]
        help_ = f"{info.description} [env {env_name(field)}]".replace("%", "%%")
        if _is_bool(field) and field.startswith("no_"):  # a switch off: --no-x (argparse would read it as False)
            parser.add_argument(*names, dest=field, action="store_const", const=True, default=None, help=help_)
        elif _is_bool(field):
            parser.add_argument(*names, dest=field, action=argparse.BooleanOptionalAction, default=None, help=help_)
        elif _is_list(field):
            parser.add_argument(*names, dest=field, action="append", default=None, metavar="VALUE", help=help_)
        elif field == "log_level":
            parser.add_argument(*names, dest=field, default=None, choices=LOG_LEVELS, type=str.lower, help=help_)
        else:
            parser.add_argument(*names, dest=field, default=None, metavar=field.split("_")[-1].upper(), help=help_)


def load(parser: argparse.ArgumentParser, args: argparse.Namespace, worker: str,
         environ: Mapping[str, str] | None = None) -> WorkerSettings:
    """The settings of ``worker``: its flags in ``args`` over the environment over the defaults.

    Raises:
        SystemExit: exit code 2 with one line ``PROG: error: --flag (or GAME_ANALYTICS_X): message`` for a bad
            value, naming the flag when it was given and the environment variable otherwise.
    """
    given = {f: getattr(args, f) for f, flag in FLAGS.items() if worker in flag.workers and getattr(args, f, None)
             is not None}  # fmt: skip
    try:
        base = WorkerSettings.from_env(environ)
        return WorkerSettings.model_validate({**base.model_dump(exclude_unset=True), **given})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        where = flag_name(field) if field in given else env_name(field)
        message = first["msg"].removeprefix("Value error, ")
        parser.error(f"{where}: {message} (got {first.get('input')!r})")


def environment(parser: argparse.ArgumentParser) -> WorkerSettings:
    """The settings from the environment alone, for commands that are not workers.

    Raises:
        SystemExit: exit code 2 with one line naming the bad ``GAME_ANALYTICS_*`` variable.
    """
    return load(parser, argparse.Namespace(), worker="")


def flags_table() -> str:
    """The Markdown table of every setting: flag (and aliases), environment variable, default, workers, meaning.

    docs/cli.md holds it; tests/test_cli_flags.py checks that it is up to date.
    """
    lines = ["| flag | environment variable | default | workers | meaning |", "| --- | --- | --- | --- | --- |"]
    for field, info in WorkerSettings.model_fields.items():
        flag = FLAGS.get(field)
        names = ", ".join(f"`{n}`" for n in [flag_name(field), *flag.aliases]) if flag else "-"
        default = info.get_default(call_default_factory=True)
        shown = "-" if default in (None, []) else f"`{default}`"
        workers = "all" if flag and flag.workers == WORKERS else ", ".join(flag.workers) if flag else "all"
        lines.append(f"| {names} | `{env_name(field)}` | {shown} | {workers} | {info.description} |")
    return "\n".join(lines)

