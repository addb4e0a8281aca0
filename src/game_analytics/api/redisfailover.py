"""RedisFailover: Redis with a replica set watched by Sentinels, for leaderboards and streams."""

from __future__ import annotations

from pydantic import Field

from .common import BaseStatus, ImageRef, Model, Resources, SecretKeyRef, Storage, cel, opt


class RedisSettings(Model):
    replicas: int = Field(default=3, ge=1, le=9, description="Redis pods: one master plus replicas.")
    image: ImageRef | None = Field(default=None, description="Redis image; the operator's default when unset.")
    resources: Resources = Field(default_factory=Resources, description="Redis container resources.")
    storage: Storage = Field(default_factory=Storage, description="Persistent volume per Redis pod.")


_REPLICAS, _QUORUM = opt("replicas", 3), opt("quorum", 2)  # CEL readings of the Sentinel fields (their defaults)


class SentinelSettings(Model):
    model_config = Model.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(f"{_REPLICAS} % 2 == 1", "sentinel replicas must be odd", ".replicas"),
                cel(
                    f"{_QUORUM} <= {_REPLICAS}",
                    "quorum must not exceed the number of sentinels",
                    ".quorum",
                ),
                cel(
                    f"{_QUORUM} > {_REPLICAS} / 2",
                    "quorum must be a majority of the sentinels, or split brain becomes possible",
                    ".quorum",
                ),
            ]
        }
    }

    replicas: int = Field(default=3, ge=3, le=9, description="Sentinel pods; odd, at least 3.")
    quorum: int = Field(default=2, ge=2, le=9, description="Sentinels that must agree the master is down.")
    image: ImageRef | None = Field(default=None, description="Sentinel image; the Redis image when unset.")
    resources: Resources = Field(default_factory=Resources, description="Sentinel container resources.")
    down_after_milliseconds: int = Field(default=5000, ge=1000, le=600_000, description="Time before a master is considered down.")
    failover_timeout_milliseconds: int = Field(default=60_000, ge=1000, le=3_600_000, description="Failover timeout.")
    auth_secret_ref: SecretKeyRef | None = Field(default=None, description=(
        "Secret key holding the Sentinels' own password (requirepass; the Sentinels also use it with each other). "
        "The workers and the operator authenticate to the Sentinels with it. Keep it in a Secret of its own, not "
        "the Redis one: the operator reads this value to probe, and never reads the Redis password. Unset: the "
        "Sentinels accept any client that can reach port 26379 (the generated NetworkPolicies still limit who can)."))


class ExporterSettings(Model):
    enabled: bool = Field(default=True, description="Run a redis_exporter sidecar in each Redis pod.")
    image: ImageRef | None = Field(default=None, description="Exporter image; the operator's default when unset.")


class RedisFailoverSpec(Model):
    """Desired state of a RedisFailover."""

    redis: RedisSettings = Field(default_factory=RedisSettings, description="The Redis data pods.")
    sentinel: SentinelSettings = Field(default_factory=SentinelSettings, description="The Sentinel pods.")
    master_name: str = Field(default="mymaster", pattern=r"^[A-Za-z0-9_-]+$", max_length=63, description="Sentinel master group name.")
    auth_secret_ref: SecretKeyRef | None = Field(default=None, description="Secret key holding the Redis password.")
    exporter: ExporterSettings = Field(default_factory=ExporterSettings, description="Prometheus exporter.")


class RedisFailoverStatus(BaseStatus):
    master: str | None = Field(default=None, description="Address of the current master as the Sentinels report it.")
    sentinels_reachable: int | None = Field(default=None, ge=0, description="Sentinels that answered the last probe.")
