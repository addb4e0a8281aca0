"""GameDataSource: where a game's analytics data lives, and the always-on workers that process it.

Every other kind points at a GameDataSource through ``dataSourceRef``. It holds the PostgreSQL DSN (by Secret
reference) and the Redis endpoint, and reconciles into the ingest, exporter and detection worker Deployments.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .affinity import Affinity
from .common import (
    DNS_SUBDOMAIN_PATTERN,
    BaseStatus,
    Duration,
    GameName,
    ImageRef,
    KubernetesLabels,
    LabelValue,
    LocalObjectReference,
    Model,
    QualifiedName,
    Resources,
    SecretKeyRef,
    cel,
    duration_rules,
    monitoring_labels_field,
)


class PostgresRef(Model):
    """The analytics database: the workers' DSN and, optionally, the schema owner's (docs/interventions.md)."""

    dsn_secret_ref: SecretKeyRef = Field(
        alias="dsnSecretRef",
        description="Secret key holding the postgresql:// DSN the workers and jobs connect with. With "
                    "migrationDsnSecretRef set, best a login role of game_analytics_writer (insert-only on "
                    "audit_log, owns nothing); without it, this role also migrates the schema and so must own it.")
    migration_dsn_secret_ref: SecretKeyRef | None = Field(
        default=None, alias="migrationDsnSecretRef",
        description="Secret key holding the DSN of the role that owns the tables (it runs the migrations and the "
                    "partition DDL): the workers' migrate init container and the hourly partition-maintenance "
                    "CronJob use it, the workers never see it, so they cannot switch off the audit log's "
                    "append-only trigger. Unset: dsnSecretRef does everything.")


class SentinelRef(Model):
    redis_failover_ref: LocalObjectReference = Field(description="A RedisFailover in the same namespace.")


class RedisRef(Model):
    """A Redis endpoint: exactly one of a URL Secret or a RedisFailover (reached through its Sentinels)."""

    model_config = Model.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel("has(self.urlSecretRef) != has(self.sentinel)", "set exactly one of urlSecretRef or sentinel")
            ]
        }
    }

    url_secret_ref: SecretKeyRef | None = Field(default=None, alias="urlSecretRef", description="Secret key holding a redis:// URL.")
    sentinel: SentinelRef | None = Field(default=None, description="Use a RedisFailover through its Sentinels.")


class StreamSettings(Model):
    name: str = Field(default="game-events", max_length=128, description="Redis Stream that game servers publish to.")
    consumer_group: str = Field(default="ingest", max_length=128, description="Consumer group of the ingest workers.")
    dead_letter_stream: str = Field(default="game-events-dead", max_length=128, description="Stream for rejected events.")
    shards: int = Field(default=1, ge=1, le=64, description="Shard streams NAME:0..NAME:N-1, by crc32 of the "
                        "player id (1: the stream NAME itself); every ingest replica consumes every shard.")


class WorkerSettings(Model):
    replicas: int = Field(default=1, ge=0, le=50, description="Pods of this worker.")
    resources: Resources = Field(default_factory=Resources, description="Container resources.")


AlertmanagerURL = Annotated[str, Field(pattern=r"^https?://[!-+\--~]+$", max_length=2048)]


class DetectionSettings(WorkerSettings):
    interval_seconds: int = Field(default=30, ge=1, le=3600, description="Seconds between detection passes.")
    alertmanager_urls: list[AlertmanagerURL] = Field(
        default_factory=list, alias="alertmanagerURLs", max_length=8,
        description="Alertmanager base URLs (e.g. http://alertmanager-operated.monitoring:9093) the detection "
                    "worker's streaming path posts its alerts to (POST /api/v2/alerts) as events arrive; empty: "
                    "the operator's default (chart monitoring.alertmanagerURLs). With none at all only the "
                    "PrometheusRule path pages.")


class Toleration(Model):
    """A pod toleration, as in a pod spec's ``tolerations``; the rules of the Pod validation are CEL rules here, so
    that a bad one is refused at apply naming this field rather than in the generated Deployments."""

    model_config = Model.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel("!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
                    "value must be empty when operator is Exists", ".value"),
                cel("(has(self.key) && self.key != '') || (has(self.operator) && self.operator == 'Exists')",
                    "operator must be Exists when key is empty (a toleration of every taint)", ".operator"),
                cel("!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
                    "tolerationSeconds needs effect NoExecute", ".tolerationSeconds"),
            ]
        }
    }

    key: QualifiedName | None = Field(default=None, description="Taint key, a label key (empty with Exists: "
                                      "every taint).")
    operator: Literal["Exists", "Equal"] | None = Field(default=None, description="Exists or Equal (default).")
    value: LabelValue | None = Field(default=None, description="Taint value, a label value, with Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect (empty: every effect).")
    toleration_seconds: int | None = Field(default=None, alias="tolerationSeconds", ge=0,
                                           description="With NoExecute: how long the pod stays bound.")


class Workers(Model):
    image: ImageRef | None = Field(default=None, description="Worker image; the operator's default when unset.")
    image_pull_secrets: list[LocalObjectReference] = Field(
        default_factory=list, alias="imagePullSecrets", max_length=16,
        description="Secrets (docker-registry type) to pull a private worker image with.")
    node_selector: KubernetesLabels = Field(default_factory=dict, alias="nodeSelector", max_length=32,
                                            description="Node labels the worker pods must run on.")
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32,
                                          description="Taints the worker pods tolerate.")
    priority_class_name: str | None = Field(default=None, alias="priorityClassName", max_length=253,
                                            pattern=DNS_SUBDOMAIN_PATTERN,
                                            description="PriorityClass of the worker pods.")
    affinity: Affinity | None = Field(default=None, description="Node affinity, pod affinity and pod "
                                      "anti-affinity of the worker pods, as in a pod spec.")
    log_level: Literal["debug", "info", "warning", "error", "critical"] | None = Field(
        default=None, alias="logLevel",
        description="Log level of every worker of this data source (ingest, exporter, detection, and the ranking and "
                    "report Jobs), rendered as GAME_ANALYTICS_LOG_LEVEL; unset: info.")
    ingest: WorkerSettings = Field(default_factory=WorkerSettings, description="Stream-to-Postgres ingest.")
    exporter: WorkerSettings = Field(default_factory=WorkerSettings, description="Prometheus exporter of analytics.")
    detection: DetectionSettings = Field(default_factory=DetectionSettings, description="Rule and anomaly detection.")


class GameDataSourceSpec(Model):
    """Desired state of a GameDataSource."""

    games: list[GameName] = Field(default_factory=list, max_length=100,
                                  description="Games served (all when empty); no commas (they are passed on "
                                              "comma-joined).")
    postgres: PostgresRef = Field(description="The analytics store.")
    redis: RedisRef = Field(description="The event stream and leaderboard cache.")
    stream: StreamSettings = Field(default_factory=StreamSettings, description="Event stream names.")
    workers: Workers = Field(default_factory=Workers, description="Always-on workers.")
    retention: Duration | None = Field(default=None, description="Events older than this are dropped, whole "
                                       "time partitions at a time (e.g. 90d), more than 0 and at most 1000y; kept "
                                       "forever when unset.",
                                       json_schema_extra={"x-kubernetes-validations": duration_rules()})
    partition_interval: Literal["month", "day"] = Field(
        default="month", alias="partitionInterval",
        description="Time partitions of the events table: month, or day for ~1B events/day.")
    monitoring_labels: KubernetesLabels = monitoring_labels_field()


class GameDataSourceStatus(BaseStatus):
    ready_workers: int | None = Field(default=None, ge=0, description="Worker Deployments that are available.")
