"""AlertRule: a player, economic, system, ML-anomaly or retention alert, with where its notifications go."""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from pydantic import Field

from .common import (
    EMAIL_LIST_PATTERN,
    PRINTABLE,
    PROMQL_STRING_PATTERN,
    BaseStatus,
    Duration,
    EmailAddress,
    KubernetesLabels,
    LocalObjectReference,
    Model,
    PrometheusLabelName,
    SecretKeyRef,
    cel,
    monitoring_labels_field,
    opt,
)


class Category(StrEnum):
    PLAYER = "player"
    ECONOMIC = "economic"
    SYSTEM = "system"
    ANOMALY = "anomaly"
    RETENTION = "retention"


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class SuddenWealthChange(Model):
    """A player's wealth changes by more than ``thresholdRatio`` (e.g. 3.0 = +300 % or -75 %) within ``window``."""

    threshold_ratio: float = Field(gt=1.0, le=1000.0, description="Ratio of new to old wealth (or its inverse).")
    window: Duration = Field(default="1h", description="Look-back window, e.g. 1h.")
    min_wealth: float = Field(
        default=0.0, ge=0, description="Ignore players whose wealth stays below this amount (noise floor)."
    )


class RapidAssetTransfer(Model):
    """A player sends more than ``count`` trades or gifts within ``window``."""

    count: int = Field(ge=1, le=1_000_000, description="Number of outgoing transfers that triggers the rule.")
    window: Duration = Field(default="10m", description="Look-back window, e.g. 10m.")


class UnusualLoginPattern(Model):
    """A player logs in from more than ``maxDistinctRegions`` regions, or more than ``maxLogins`` times, in ``window``."""

    max_distinct_regions: int = Field(default=2, ge=1, le=100, description="Distinct regions allowed per window.")
    max_logins: int = Field(default=50, ge=1, le=100_000, description="Logins allowed per window.")
    window: Duration = Field(default="1h", description="Look-back window, e.g. 1h.")


class CurrencyInflation(Model):
    """The game's price index grows faster than ``rate`` per ``window`` (0.05 = 5 %)."""

    rate: float = Field(gt=0, le=100, description="Growth rate per window that triggers the rule (0.05 = 5 %).")
    window: Duration = Field(default="1d", description="Comparison window, e.g. 1d.")
    currency: str = Field(default="USD", min_length=1, max_length=16, pattern=PROMQL_STRING_PATTERN,
                          description="Currency to watch (no quotes, backslashes or control characters: it is "
                                      "matched in PromQL).")


class MarketManipulation(Model):
    """An item's price moves by more than ``priceChange`` (0.5 = 50 %) within ``window``."""

    price_change: float = Field(gt=0, le=100, description="Relative price change that triggers the rule.")
    window: Duration = Field(default="1h", description="Comparison window, e.g. 1h.")


class MonopolyFormation(Model):
    """A single player holds more than ``marketShare`` (0..1) of a market's volume over ``window``."""

    market_share: float = Field(gt=0, le=1, description="Share of trade volume held by one player (0..1).")
    window: Duration = Field(default="1d", description="Look-back window, e.g. 1d.")


class HighErrorRate(Model):
    """Error events exceed ``ratio`` (0..1) of all events over ``window``."""

    ratio: float = Field(gt=0, le=1, description="Errors as a fraction of all events.")
    window: Duration = Field(default="5m", description="Rate window, e.g. 5m.")


class ActivityPeriod(StrEnum):
    HOUR = "1h"
    DAY = "1d"
    WEEK = "7d"
    MONTH = "30d"


class LowEngagement(Model):
    """Fewer than ``minActivePlayers`` distinct players were active in the last ``period`` (the exporter's
    ``game_analytics_active_players{period=...}`` gauge: hourly, daily, weekly or monthly active players)."""

    min_active_players: int = Field(ge=1, le=1_000_000_000, description="Active players below this alert.")
    period: ActivityPeriod = Field(default=ActivityPeriod.HOUR, description="Activity period: 1h, 1d (DAU), 7d (WAU) or 30d (MAU).")


class IngestLag(Model):
    """The ingest worker is more than ``maxLagSeconds`` behind the event stream."""

    max_lag_seconds: float = Field(gt=0, le=86_400, description="Allowed lag, in seconds.")


class AnomalyScore(Model):
    """An IsolationForest anomaly score (0..1, higher is stranger) above ``threshold`` for an activity type."""

    activity_type: str = Field(
        default="purchase", min_length=1, max_length=63, description="Event type whose per-player features are scored."
    )
    threshold: float = Field(default=0.81, gt=0, lt=1, description="Score above which a player is flagged (0.81: the tuned default, docs/backtest.md).")
    contamination: float = Field(
        default=0.01, gt=0, le=0.5, description="Expected share of anomalies when fitting the forest."
    )


class RiskTier(StrEnum):
    """Churn-risk tiers a retention rule opens cases for (``analytics.churn.value.RISK_TIERS``)."""

    HIGH = "high"
    MEDIUM = "medium"


class ChurnRisk(Model):
    """Players in churn-risk tier ``minTier`` or above (P(alive) from BG/NBD and the churn classifier, scored on the
    purchases up to the last complete UTC day; docs/analytics.md) open retention interventions, highest risk first."""

    min_tier: RiskTier = Field(default=RiskTier.HIGH, description="Lowest tier that opens a case: high (risk >= "
                               "0.7) or medium (risk >= 0.4).")
    min_clv: float = Field(default=0.0, ge=0, le=1e12, description="Only players whose 12-month customer lifetime "
                           "value is at least this (USD); 0 = every player, also without a CLV fit.")
    min_purchase_days: int = Field(default=2, ge=1, le=10_000, description="Only players with at least this many "
                                   "purchase days (2 = repeat customers).")
    max_cases: int = Field(default=100, ge=1, le=10_000, description="At most this many players flagged per game "
                           "and pass (the highest risk).")


class ForecastMetric(StrEnum):
    DAU = "dau"
    REVENUE = "revenue"


class DeviationDirection(StrEnum):
    BOTH = "both"
    ABOVE = "above"
    BELOW = "below"


class ForecastDeviation(Model):
    """The last complete UTC day's DAU or revenue lies outside the ``level`` prediction interval of an ETS forecast
    fitted on the ``historyDays`` days before it (analytics/forecast.py; one subject per game)."""

    metric: ForecastMetric = Field(default=ForecastMetric.DAU, description="dau (distinct active players) or "
                                   "revenue (USD purchases).")
    level: float = Field(default=0.95, ge=0.5, le=0.999, description="Coverage of the prediction interval "
                         "(0.95 = the 95 % band).")
    history_days: int = Field(default=90, ge=14, le=730, description="Days of history the forecast is fitted on "
                              "(at least 14).")
    direction: DeviationDirection = Field(default=DeviationDirection.BOTH, description="Fire above the band, "
                                          "below it, or both.")


class PromQLExpression(Model):
    """A raw PromQL expression, for anything the detectors do not cover. It is parsed before anything is created."""

    expr: str = Field(min_length=1, max_length=8192, description="PromQL expression; the alert fires while it returns series.")


class Evaluator(StrEnum):
    """Who evaluates a detector: the detection worker (in SQL, per player) or Prometheus (a PromQL template)."""

    WORKER = "worker"
    PROMQL = "promql"


class DetectorType(NamedTuple):
    """One row of :data:`DETECTOR_TYPES`: the AlertRule category the detector belongs to (None = any) and
    who evaluates it."""

    category: Category | None
    evaluator: Evaluator


#: THE detector table: detector field name (camelCase) -> its category and evaluator.  Player-level detectors
#: are evaluated by the detection worker in SQL (Prometheus must never hold a series per player; the worker
#: exports how many subjects each rule flags), aggregate ones by Prometheus over the exporter's gauges.
#: ``DETECTOR_CATEGORIES`` here, ``monitoring.promql.WORKER_EVALUATED`` and ``workers.detectors.DETECTORS`` are
#: derived from it (tests/workers/test_detection.py checks they cannot disagree).
DETECTOR_TYPES: dict[str, DetectorType] = {
    "suddenWealthChange": DetectorType(Category.PLAYER, Evaluator.WORKER),
    "rapidAssetTransfer": DetectorType(Category.PLAYER, Evaluator.WORKER),
    "unusualLoginPattern": DetectorType(Category.PLAYER, Evaluator.WORKER),
    "currencyInflation": DetectorType(Category.ECONOMIC, Evaluator.PROMQL),
    "marketManipulation": DetectorType(Category.ECONOMIC, Evaluator.WORKER),
    "monopolyFormation": DetectorType(Category.ECONOMIC, Evaluator.WORKER),
    "highErrorRate": DetectorType(Category.SYSTEM, Evaluator.PROMQL),
    "lowEngagement": DetectorType(Category.SYSTEM, Evaluator.PROMQL),
    "ingestLag": DetectorType(Category.SYSTEM, Evaluator.PROMQL),
    "anomalyScore": DetectorType(Category.ANOMALY, Evaluator.WORKER),
    "churnRisk": DetectorType(Category.RETENTION, Evaluator.WORKER),
    "forecastDeviation": DetectorType(Category.SYSTEM, Evaluator.WORKER),
    "promql": DetectorType(None, Evaluator.PROMQL),
}

#: detector field name -> the category it belongs to (``promql`` fits any category).
DETECTOR_CATEGORIES: dict[str, Category | None] = {name: t.category for name, t in DETECTOR_TYPES.items()}

#: the detectors the detection worker evaluates (the others are PromQL templates).
WORKER_EVALUATED: frozenset[str] = frozenset(n for n, t in DETECTOR_TYPES.items() if t.evaluator is Evaluator.WORKER)


def _exactly_one(fields: list[str]) -> str:
    return " + ".join(f"(has(self.{f}) ? 1 : 0)" for f in fields) + " == 1"


class Mode(StrEnum):
    """``Live`` notifies the rule's channels; ``DryRun`` evaluates and backtests it without notifying anyone."""

    LIVE = "Live"
    DRY_RUN = "DryRun"


class Detector(Model):
    """What the rule detects. Exactly one member must be set (a Kubernetes-style union)."""

    model_config = Model.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(_exactly_one(list(DETECTOR_CATEGORIES)), "exactly one detector must be set", reason="FieldValueInvalid")
            ]
        }
    }

    sudden_wealth_change: SuddenWealthChange | None = Field(default=None, description="Player: sudden wealth change.")
    rapid_asset_transfer: RapidAssetTransfer | None = Field(default=None, description="Player: rapid asset transfer.")
    unusual_login_pattern: UnusualLoginPattern | None = Field(default=None, description="Player: unusual logins.")
    currency_inflation: CurrencyInflation | None = Field(default=None, description="Economic: currency inflation.")
    market_manipulation: MarketManipulation | None = Field(default=None, description="Economic: price manipulation.")
    monopoly_formation: MonopolyFormation | None = Field(default=None, description="Economic: monopoly formation.")
    high_error_rate: HighErrorRate | None = Field(default=None, description="System: high error rate.")
    low_engagement: LowEngagement | None = Field(default=None, description="System: low engagement.")
    ingest_lag: IngestLag | None = Field(default=None, description="System: ingest lag.")
    anomaly_score: AnomalyScore | None = Field(default=None, description="Anomaly: IsolationForest score.")
    churn_risk: ChurnRisk | None = Field(default=None, description="Retention: players in a high churn-risk tier.")
    forecast_deviation: ForecastDeviation | None = Field(default=None, description="System: DAU or revenue "
                                                         "outside the forecast's prediction band.")
    promql: PromQLExpression | None = Field(default=None, description="Any category: a raw PromQL expression.")

    def kind(self) -> str:
        """The camelCase name of the member that is set, e.g. ``suddenWealthChange``.

        Raises:
            ValueError: if not exactly one member is set (the CRD's CEL rule normally prevents this).
        """
        chosen = [name for name in self.to_api()]
        if len(chosen) != 1:
            raise ValueError(f"spec.detector: exactly one detector must be set, found {chosen or 'none'}")
        return chosen[0]

    def params(self) -> Model:
        """The parameters of the detector that is set."""
        return getattr(self, to_snake(self.kind()))


def to_snake(camel: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in camel)


class SlackChannel(Model):
    """A Slack incoming webhook."""

    channel: str = Field(min_length=1, max_length=80, description="Channel name, e.g. #game-alerts.")
    api_url_secret_ref: SecretKeyRef = Field(alias="apiURLSecretRef", description="Secret key holding the incoming webhook URL.")


class DiscordChannel(Model):
    """A Discord webhook."""

    webhook_url_secret_ref: SecretKeyRef = Field(alias="webhookURLSecretRef", description="Secret key holding the Discord webhook URL.")


class PagerDutyChannel(Model):
    """A PagerDuty service integration."""

    routing_key_secret_ref: SecretKeyRef = Field(description="Secret key holding the Events API v2 routing key.")


class EmailChannel(Model):
    """Email through an SMTP server."""

    to: str = Field(min_length=3, max_length=1024, pattern=EMAIL_LIST_PATTERN,
                    description="Recipient address(es), comma separated, e.g. oncall@example.com.")
    from_: EmailAddress = Field(alias="from", description="Sender address, e.g. alerts@example.com.")
    smarthost: str = Field(pattern=r"^[!-9;-~]+:[0-9]{1,5}$", description="SMTP server as host:port.")
    auth_username: str | None = Field(default=None, max_length=254, description="SMTP user name.")
    auth_password_secret_ref: SecretKeyRef | None = Field(default=None, description="Secret key holding the SMTP password.")
    require_tls: bool = Field(default=True, alias="requireTLS", description="Require STARTTLS.")


class WebhookChannel(Model):
    """A generic webhook receiving Alertmanager's JSON payload."""

    url_secret_ref: SecretKeyRef = Field(alias="urlSecretRef", description="Secret key holding the webhook URL.")


CHANNEL_TYPES = ["slack", "discord", "pagerduty", "email", "webhook"]


class Channel(Model):
    """One notification target. Exactly one of its members must be set."""

    model_config = Model.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [cel(_exactly_one(CHANNEL_TYPES), "exactly one channel type must be set")]
        }
    }

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63, description="Unique name of the channel in this rule.")
    slack: SlackChannel | None = Field(default=None, description="Post to a Slack channel.")
    discord: DiscordChannel | None = Field(default=None, description="Post to a Discord channel.")
    pagerduty: PagerDutyChannel | None = Field(default=None, description="Page through PagerDuty Events API v2.")
    email: EmailChannel | None = Field(default=None, description="Send an email.")
    webhook: WebhookChannel | None = Field(default=None, description="POST Alertmanager's JSON to a URL.")

    def type(self) -> str:
        """Which channel type is set (``slack``, ``discord``, ...)."""
        return next(t for t in CHANNEL_TYPES if getattr(self, t) is not None)


_CATEGORY_RULE = " && ".join(
    f"(self.category == '{cat.value}' || !has(self.detector.{field}))"
    for field, cat in DETECTOR_CATEGORIES.items()
    if cat is not None
)


class AlertRuleSpec(Model):
    """Desired state of an AlertRule."""

    model_config = Model.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(_CATEGORY_RULE, "the detector does not belong to spec.category", ".detector"),
                cel(
                    "!has(self.channels) || self.channels.all(c, self.channels.exists_one(d, d.name == c.name))",
                    "channel names must be unique",
                    ".channels",
                ),
                cel(
                    f"{opt('severity', 'warning')} != 'critical' || (has(self.channels) && size(self.channels) > 0)",
                    "a critical rule pages on-call: it needs at least one channel",
                    ".channels",
                ),
            ]
        }
    }

    category: Category = Field(description="player, economic, system, anomaly or retention.")
    detector: Detector = Field(description="What to detect; exactly one detector is set.")
    severity: Severity = Field(default=Severity.WARNING, description="critical pages on-call; warning and info notify.")
    for_: Duration = Field(default="0s", alias="for", description="How long the condition must hold before firing.")
    team: str = Field(default="game-ops", pattern=r"^[a-z0-9][-a-z0-9_]*$", max_length=63, description="Owning team; used for routing.")
    labels: dict[PrometheusLabelName, str] = Field(
        default_factory=dict, max_length=32, description="Extra labels on the alert (Prometheus label names).",
        json_schema_extra={"x-kubernetes-validations": [cel("!('__name__' in self)", "__name__ is reserved")]})
    annotations: dict[PrometheusLabelName, str] = Field(
        default_factory=dict, max_length=32, description="Extra annotations on the alert (Prometheus label names).")
    runbook_url: str = Field(alias="runbookURL", pattern=f"^https?://[{PRINTABLE}]+$", max_length=2048, description="Runbook for whoever is paged.")
    channels: list[Channel] = Field(default_factory=list, max_length=16, description="Where notifications go.")
    data_source_ref: LocalObjectReference = Field(
        default_factory=lambda: LocalObjectReference(name="default"),
        description="The GameDataSource whose detection worker evaluates this rule.",
    )
    suspend: bool = Field(default=False, description="Stop alerting without deleting the rule.")
    mode: Mode = Field(default=Mode.LIVE, description="Live: the rule pages its channels. DryRun: it is evaluated "
                       "(a recording rule, no alert sent to Alertmanager, no route, no streaming alert) and only "
                       "backtested into status.backtest; see docs/backtest.md.")
    auto_resolve_after: Duration | None = Field(
        default=None,
        description="Resolve a worker-evaluated case as auto-cleared once its subject has not been flagged for "
                    "this long, e.g. 30m (the requirements' auto_resolve_minutes); unset = never.",
    )
    monitoring_labels: KubernetesLabels = monitoring_labels_field()


class BacktestStatus(Model):
    """The rule backtested over the last ``window`` before ``computedAt`` (docs/backtest.md, "In the cluster")."""

    pages: int = Field(ge=0, description="Pages the rule would have sent in the window (for, group and repeat "
                                         "timing applied).")
    pages_per_week: float = Field(ge=0, description="Pages per week over the window.")
    incidents: int = Field(ge=0, description="Paged incidents (firing stretches) in the window.")
    last_fired: str | None = Field(default=None, description="When the last incident in the window started firing "
                                                             "(RFC 3339); unset: it never fired.")
    window: Duration = Field(description="The backtested span before computedAt, e.g. 7d.")
    step: Duration = Field(description="The evaluation step of the backtest, e.g. 5m.")
    computed_at: str = Field(description="End of the backtested window (RFC 3339, the start of an hour).")


class DetectorQualityStatus(Model):
    """The last measured quality of the rule's detector type (the detector-quality harness; docs/backtest.md)."""

    precision: float = Field(ge=0, le=1, description="Flagged runs that were planted anomalies / all flagged runs.")
    recall: float = Field(ge=0, le=1, description="Planted anomalies detected / planted anomalies.")
    false_pages_per_week: float = Field(ge=0, description="Pages per week on the data without plants.")
    plants: int = Field(ge=0, description="Planted anomalies the figures are measured on.")
    measured_at: str = Field(description="When the harness measured these figures (RFC 3339).")
    source: str = Field(description="How they were measured (the benchmark run and its span).")


class AlertRuleStatus(BaseStatus):
    expression: str | None = Field(default=None, description="The PromQL expression the rule compiled to.")
    detector: str | None = Field(default=None, description="The detector type in use.")
    mode: Mode | None = Field(default=None, description="The mode in effect (Live or DryRun).")
    backtest: BacktestStatus | None = Field(default=None, description="The last 7 days backtested (every "
                                            "non-suspended rule, recomputed hourly and on spec changes).")
    quality: DetectorQualityStatus | None = Field(default=None, description="The last measured quality of the "
                                                  "detector type (unset for types the harness does not measure).")
