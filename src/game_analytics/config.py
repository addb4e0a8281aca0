"""Operator-wide defaults, overridable through environment variables (set by the Helm chart)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

#: Labels put on every generated PrometheusRule, ServiceMonitor and AlertmanagerConfig unless the operator is
#: told otherwise: what kube-prometheus-stack's default rule, ServiceMonitor and AlertmanagerConfig selectors
#: select (``release: <its Helm release name>``, here the name its documentation installs it under).
DEFAULT_MONITORING_LABELS: dict[str, str] = {"release": "kube-prometheus-stack"}
MONITORING_LABELS_ENV = "GAME_ANALYTICS_MONITORING_LABELS"


def monitoring_labels_from_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """``GAME_ANALYTICS_MONITORING_LABELS`` (a JSON object of string values; ``{}`` = no labels), else
    :data:`DEFAULT_MONITORING_LABELS`.

    Raises:
        ValueError: the variable is not a JSON object of strings.
    """
    raw = (os.environ if environ is None else environ).get(MONITORING_LABELS_ENV)
    if raw is None or not raw.strip():
        return dict(DEFAULT_MONITORING_LABELS)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{MONITORING_LABELS_ENV}: not JSON: {exc}") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError(f"{MONITORING_LABELS_ENV}: must be a JSON object of string values, got {raw!r}")
    return value


@dataclass(frozen=True)
class BacktestSettings:
    """How the operator backtests every AlertRule into ``status.backtest`` (chart ``alertRules.backtest``;
    docs/backtest.md "In the cluster"): over ``window`` before the start of the current ``bucket``, at ``step``,
    each backtest aborted after ``budget_seconds``. Durations are Prometheus-style (``7d``, ``5m``, ``1h``)."""

    window: str = "7d"
    step: str = "5m"
    bucket: str = "1h"
    budget_seconds: float = 60.0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> BacktestSettings | None:
        """``GAME_ANALYTICS_BACKTEST`` (``false``: off, None), ``GAME_ANALYTICS_BACKTEST_STEP`` and
        ``GAME_ANALYTICS_BACKTEST_BUDGET_SECONDS``; on with the defaults when unset.

        Raises:
            ValueError: the step is not a positive duration or the budget not a positive number.
        """
        from .api.common import parse_duration

        env = os.environ if environ is None else environ
        if env.get("GAME_ANALYTICS_BACKTEST", "true").strip().lower() == "false":
            return None
        d = cls()
        step = env.get("GAME_ANALYTICS_BACKTEST_STEP", "").strip() or d.step
        parse_duration(step)
        budget = float(env.get("GAME_ANALYTICS_BACKTEST_BUDGET_SECONDS", "").strip() or d.budget_seconds)
        if budget <= 0:
            raise ValueError(f"GAME_ANALYTICS_BACKTEST_BUDGET_SECONDS must be positive, got {budget}")
        return cls(step=step, budget_seconds=budget)


@dataclass(frozen=True)
class NetworkPolicySettings:
    """The NetworkPolicies the operator renders for its workloads (chart ``networkPolicy``; docs/hardening.md):
    ingress denied but for the clients' ports from the product's pods (and the operator's namespace), and the
    ``metrics`` ports from ``prometheus_namespaces`` (empty: from every namespace)."""

    prometheus_namespaces: tuple[str, ...] = ("monitoring",)
    #: the operator's namespace (it probes Sentinels); None: no rule for it (an operator outside the cluster)
    operator_namespace: str | None = None
    #: restrict a GameDataSource's workers' egress too (``controller.common.netpol.worker_egress``)
    worker_egress: bool = False
    #: the API server's addresses (CIDRs) for the detection worker's ConfigMap list; empty: ports 443/6443 to any
    api_server_cidrs: tuple[str, ...] = ()
    #: the PostgreSQL ports the workers may connect to (the DSN's host and port are in a Secret)
    worker_postgres_ports: tuple[int, ...] = (5432,)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> NetworkPolicySettings | None:
        """``GAME_ANALYTICS_NETWORK_POLICIES`` (``true``: on; unset or anything else: off, None),
        ``GAME_ANALYTICS_PROMETHEUS_NAMESPACES`` (comma-separated), ``GAME_ANALYTICS_OPERATOR_NAMESPACE``,
        ``GAME_ANALYTICS_WORKER_EGRESS`` (``true``: restrict workers' egress), ``GAME_ANALYTICS_API_SERVER_CIDRS`` and
        ``GAME_ANALYTICS_WORKER_POSTGRES_PORTS`` (comma-separated; unset: 5432).

        Raises:
            ValueError: a PostgreSQL port that is not an integer."""
        env = os.environ if environ is None else environ
        if env.get("GAME_ANALYTICS_NETWORK_POLICIES", "").strip().lower() != "true":
            return None
        namespaces = tuple(n.strip() for n in env.get("GAME_ANALYTICS_PROMETHEUS_NAMESPACES", "").split(",") if n.strip())
        cidrs = tuple(c.strip() for c in env.get("GAME_ANALYTICS_API_SERVER_CIDRS", "").split(",") if c.strip())
        ports = tuple(int(p) for p in env.get("GAME_ANALYTICS_WORKER_POSTGRES_PORTS", "").split(",") if p.strip())
        return cls(namespaces, env.get("GAME_ANALYTICS_OPERATOR_NAMESPACE", "").strip() or None,
                   env.get("GAME_ANALYTICS_WORKER_EGRESS", "").strip().lower() == "true", cidrs, ports or (5432,))


@dataclass(frozen=True)
class Images:
    """Operator-wide defaults for generated children: container images put into workloads, and the labels of
    generated monitoring objects (``monitoring_labels``, see :data:`DEFAULT_MONITORING_LABELS`)."""

    worker: str = "ghcr.io/game-analytics/game-analytics:0.1.0"
    redis: str = "redis:7.4-alpine"
    redis_exporter: str = "oliver006/redis_exporter:v1.67.0"
    mongo: str = "mongo"  # tagged with the cluster's spec.version
    mongodb_exporter: str = "percona/mongodb_exporter:0.43.1"
    monitoring_labels: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_MONITORING_LABELS))
    #: e-mail domains a ScheduledReport may send to (chart ``reports.allowedRecipientDomains``); empty: any
    allowed_recipient_domains: tuple[str, ...] = ()
    #: hosts a ScheduledReport webhook may post to (chart ``reports.allowedWebhookHosts``); empty: any
    allowed_webhook_hosts: tuple[str, ...] = ()
    #: honour the RedisFailover annotation ``gameanalytics.io/probe-addresses`` (chart
    #: ``redisFailover.probeAddressAnnotation``); off by default: whoever may edit a RedisFailover could
    #: otherwise point the operator's Sentinel probe at any host
    probe_address_annotation: bool = False
    #: Grafana's base URL (chart ``monitoring.grafanaURL``): pages link the alerts dashboard there; empty: no link
    grafana_url: str = ""
    #: Alertmanager base URLs the detection workers' streaming path posts to (chart
    #: ``monitoring.alertmanagerURLs``), unless a GameDataSource names its own; empty: the path is off
    alertmanager_urls: tuple[str, ...] = ()
    #: Prometheus base URL (chart ``monitoring.prometheusURL``): PromQL-evaluated AlertRules are backtested with
    #: its ``query_range``; empty: they are not (status condition ``Backtested``)
    prometheus_url: str = ""
    #: the AlertRule backtest into ``status.backtest``; None (the default here, so tests opt in): off
    backtest: BacktestSettings | None = None
    #: NetworkPolicies for the generated workloads (chart ``networkPolicy.enabled``); None (the default here): none
    network_policies: NetworkPolicySettings | None = None

    @classmethod
    def from_env(cls) -> Images:
        d = cls()
        return cls(
            worker=os.environ.get("GAME_ANALYTICS_WORKER_IMAGE", d.worker),
            redis=os.environ.get("GAME_ANALYTICS_REDIS_IMAGE", d.redis),
            redis_exporter=os.environ.get("GAME_ANALYTICS_REDIS_EXPORTER_IMAGE", d.redis_exporter),
            mongo=os.environ.get("GAME_ANALYTICS_MONGO_IMAGE", d.mongo),
            mongodb_exporter=os.environ.get("GAME_ANALYTICS_MONGODB_EXPORTER_IMAGE", d.mongodb_exporter),
            monitoring_labels=monitoring_labels_from_env(),
            allowed_recipient_domains=_list_env("GAME_ANALYTICS_ALLOWED_RECIPIENT_DOMAINS"),
            allowed_webhook_hosts=_list_env("GAME_ANALYTICS_ALLOWED_WEBHOOK_HOSTS"),
            probe_address_annotation=os.environ.get("GAME_ANALYTICS_PROBE_ADDRESS_ANNOTATION", "") == "true",
            network_policies=NetworkPolicySettings.from_env(),
            grafana_url=os.environ.get("GAME_ANALYTICS_GRAFANA_URL", d.grafana_url),
            alertmanager_urls=_list_env("GAME_ANALYTICS_ALERTMANAGER_URLS"),
            prometheus_url=os.environ.get("GAME_ANALYTICS_PROMETHEUS_URL", d.prometheus_url),
            backtest=BacktestSettings.from_env(),
        )


def _list_env(name: str) -> tuple[str, ...]:
    """A comma-separated environment variable as a tuple of its non-empty, stripped items."""
    return tuple(item.strip() for item in os.environ.get(name, "").split(",") if item.strip())
