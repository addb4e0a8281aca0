"""The custom resources' API: pydantic models per kind, the single source of truth for the CRDs in ``crds/``."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .common import API_VERSION, CATEGORY, GROUP, VERSION

if TYPE_CHECKING:
    from pydantic import BaseModel

#: the kinds' modules, imported on first use of :data:`KINDS` / :data:`KINDS_BY_NAME` (or of the module itself):
#: building every kind's pydantic models costs about half a second, which ``game-analytics rate`` (RankingJob only)
#: and the other one-off commands should not pay
_KIND_MODULES = ("alertrule", "gamedatasource", "mongoshardedcluster", "rankingjob", "redisfailover",
                 "scheduledreport")


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"
    priority: int = 0
    description: str = ""


@dataclass(frozen=True)
class KindInfo:
    """Everything needed to describe one kind to Kubernetes and to the operator."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str
    key_columns: tuple[PrinterColumn, ...] = field(default_factory=tuple)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    def printer_columns(self) -> list[PrinterColumn]:
        """The kind's key figures, then Ready, Reason and Age (the same three on every kind)."""
        ready = '.status.conditions[?(@.type=="Ready")]'
        return [
            *self.key_columns,
            PrinterColumn("Ready", f"{ready}.status", description="Whether the resource is reconciled and healthy."),
            PrinterColumn("Reason", f"{ready}.reason", description="Why it is (not) ready."),
            PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
        ]


def _kinds() -> tuple[KindInfo, ...]:
    """The :class:`KindInfo` of every kind (imports the kinds' modules)."""
    from . import alertrule, gamedatasource, mongoshardedcluster, rankingjob, redisfailover, scheduledreport

    return (
        KindInfo(
            "AlertRule", "alertrules", ("gar",), alertrule.AlertRuleSpec, alertrule.AlertRuleStatus,
            "A player, economic, system, anomaly or retention alert and its notification channels.",
            (
                PrinterColumn("Category", ".spec.category"),
                PrinterColumn("Severity", ".spec.severity"),
                PrinterColumn("Detector", ".status.detector"),
                PrinterColumn("Mode", ".status.mode", description="Live pages its channels; DryRun notifies nobody."),
                PrinterColumn("Pages-7d", ".status.backtest.pages", type="integer",
                              description="Pages the rule would have sent in the last 7 days (its backtest)."),
            ),
        ),
        KindInfo(
            "ScheduledReport", "scheduledreports", ("gsr",), scheduledreport.ScheduledReportSpec,
            scheduledreport.ScheduledReportStatus,
            "Analytics reports rendered on a schedule and delivered by webhook or email.",
            (
                PrinterColumn("Schedule", ".spec.schedule"),
                PrinterColumn("Last-Outcome", ".status.lastOutcome"),
                PrinterColumn("Last-Success", ".status.lastSuccessfulTime", type="date"),
            ),
        ),
        KindInfo(
            "RankingJob", "rankingjobs", ("grj",), rankingjob.RankingJobSpec, rankingjob.RankingJobStatus,
            "Player ratings (Glicko-2, Elo, OpenSkill, TrueSkill), leaderboards and leagues computed on a schedule.",
            (
                PrinterColumn("Algorithm", ".spec.algorithm"),
                PrinterColumn("Schedule", ".spec.schedule"),
                PrinterColumn("Players", ".status.playersRated", type="integer"),
            ),
        ),
        KindInfo(
            "RedisFailover", "redisfailovers", ("grf",), redisfailover.RedisFailoverSpec,
            redisfailover.RedisFailoverStatus,
            "Redis with replicas and Sentinels for automatic failover.",
            (
                PrinterColumn("Redis", ".spec.redis.replicas", type="integer"),
                PrinterColumn("Sentinels", ".spec.sentinel.replicas", type="integer"),
                PrinterColumn("Master", ".status.master"),
            ),
        ),
        KindInfo(
            "MongoShardedCluster", "mongoshardedclusters", ("gmsc",), mongoshardedcluster.MongoShardedClusterSpec,
            mongoshardedcluster.MongoShardedClusterStatus,
            "A sharded MongoDB: config-server replica set, shard replica sets and mongos routers.",
            (
                PrinterColumn("Shards", ".spec.shards.count", type="integer"),
                PrinterColumn("Mongos", ".spec.mongos.replicas", type="integer"),
            ),
        ),
        KindInfo(
            "GameDataSource", "gamedatasources", ("gds",), gamedatasource.GameDataSourceSpec,
            gamedatasource.GameDataSourceStatus,
            "Where a game's analytics data lives, and the ingest, exporter and detection workers processing it.",
            (
                PrinterColumn("Workers", ".status.readyWorkers", type="integer"),
            ),
        ),
    )


def __getattr__(name: str) -> Any:
    """``KINDS``, ``KINDS_BY_NAME`` and the kinds' modules, built or imported on first access (PEP 562)."""
    if name in ("KINDS", "KINDS_BY_NAME"):
        kinds = _kinds()
        globals().update(KINDS=kinds, KINDS_BY_NAME={k.kind: k for k in kinds})
        return globals()[name]
    if name in _KIND_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


KINDS: tuple[KindInfo, ...]
KINDS_BY_NAME: dict[str, KindInfo]

__all__ = ["API_VERSION", "CATEGORY", "GROUP", "KINDS", "KINDS_BY_NAME", "VERSION", "KindInfo", "PrinterColumn"]
