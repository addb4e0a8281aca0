"""Detection worker: evaluates the AlertRules' player-level detectors in SQL and queues interventions.

Rules come from the detector ConfigMaps the operator renders (label selector ``settings.detector_selector`` in
``settings.namespace``, key ``rule.json``; read through the Kubernetes API) or, for tests and the demo, from a
directory of ``*.json`` files (``--rules-dir``, searched recursively, e.g. ``<dir>/<rule>/rule.json``).  A rule
document is ``{"rule": "<ns>/<name>", "category", "severity", "detector": "<camelCase kind>", "params": {...},
"suspended": bool}``; ``params`` are validated with the AlertRule API models.

Every ``interval`` seconds each active rule is evaluated at the evaluation time ``as_of``:

``suddenWealthChange``
    wealth = cumulative net flow per (player, game, currency) - see :mod:`game_analytics.analytics.economy_sql`.
    ``before`` = wealth at ``as_of - window``, ``after`` = wealth at ``as_of``; with ``floor = max(minWealth, 1)``
    the ratio is ``max(after, floor) / max(before, floor)`` (the same convention as
    :func:`game_analytics.analytics.economy.sudden_wealth_changes`); flagged when ``ratio >= thresholdRatio`` or
    ``ratio <= 1 / thresholdRatio`` and ``max(before, after) >= minWealth``.
``rapidAssetTransfer``
    at least ``count`` outgoing ``trade`` events of one player in the window.
``unusualLoginPattern``
    more than ``maxDistinctRegions`` distinct regions or more than ``maxLogins`` ``login`` events in the window.
``marketManipulation``
    an item whose unit price (trade ``value / quantity``, purchase ``amount / quantity``) in the window differs
    from its unit price in the window before by more than ``priceChange`` (relative); the subject is the item.
``monopolyFormation``
    a player holding more than ``marketShare`` of a game's transaction value (trades and purchases) in the window.
``anomalyScore``
    Isolation Forest (:mod:`game_analytics.analytics.anomaly`; Liu, Ting and Zhou, ICDM 2008) over per-player
    features of the activity type ``activityType`` (events, total / mean / max amount, active days, amount per
    active day), fitted on all players and refitted when older than ``refit_seconds``; players scoring above
    ``threshold`` are flagged.  The fitted model and the latest scores are persisted as files in ``model_dir``
    (``<rule>.<activity>.joblib`` and ``<rule>.<activity>.scores.csv``).

Each flagged subject becomes a row of ``detections`` (``evidence`` jsonb holds the figures, the subject, window
and ``as_of``) and an ``open`` intervention (priority 1 critical, 2 warning, 3 info) - unless an open or
in-progress intervention of the same rule and subject exists: re-flagging a subject while its case is open adds
nothing (one transaction per rule under an advisory lock, so concurrent workers agree).

Prometheus sees only bounded aggregates: ``DETECTION_FLAGGED{rule, detector, category, severity}`` (subjects the
rule flags in the current pass; the alert fires while > 0) and ``DETECTIONS_total{rule, category, severity}``
(new detections).  A suspended rule is not evaluated and exports no series.

Evaluation time: "now" by default; ``--as-of latest`` uses the newest stored event, so that replayed historical
data (the demo's CDNOW 1997-98 purchases with an injected wealth jump) is evaluated at its own end.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from pydantic import ValidationError
from sqlalchemy import Connection, Engine, text

from game_analytics.analytics.anomaly import ActivityAnomalyDetector
from game_analytics.analytics.economy_sql import wealth_sql
from game_analytics.api.alertrule import DETECTOR_CATEGORIES, Detector
from game_analytics.monitoring import names
from game_analytics.settings import WorkerSettings, configure_logging
from game_analytics.storage.engine import make_engine
from game_analytics.workers.exporter import parse_as_of, resolve_as_of

__all__ = [
    "DETECTORS",
    "DetectionMetrics",
    "DetectionWorker",
    "Finding",
    "RuleConfig",
    "RuleError",
    "load_rules_dir",
    "load_rules_kubernetes",
    "main",
    "parse_duration",
    "parse_rule",
    "record_findings",
]

log = logging.getLogger(__name__)

PRIORITY = {"critical": 1, "warning": 2, "info": 3}
_DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
_UNITS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)


class RuleError(ValueError):
    """A rule document is invalid; the message names the source and the offending field."""


def parse_duration(value: str) -> timedelta:
    """Prometheus duration (``90s``, ``10m``, ``1h30m``, ``7d``, ``1w``, ``1y`` = 365 d) -> timedelta.

    Raises:
        ValueError: not a duration.
    """
    match = _DURATION.match(value)
    if not value or match is None:
        raise ValueError(f"not a duration: {value!r} (expected e.g. 30s, 10m, 1h30m, 7d)")
    return timedelta(seconds=sum(int(n) * u for n, u in zip(match.groups(), _UNITS, strict=True) if n))


@dataclass(frozen=True)
class RuleConfig:
    """One detector rule: identity and labels, the detector kind and its validated parameters."""

    rule: str
    category: str
    severity: str
    detector: str
    params: Any
    suspended: bool = False
    source: str = ""


def parse_rule(document: dict[str, Any], source: str = "rule.json") -> RuleConfig:
    """Validate a ``rule.json`` document (see the module docstring).

    Raises:
        RuleError: missing keys, unknown detector, or invalid parameters (naming ``source`` and the field).
    """
    try:
        rule, category, detector = str(document["rule"]), str(document["category"]), str(document["detector"])
        severity = str(document.get("severity", "warning"))
    except KeyError as exc:
        raise RuleError(f"{source}: missing key {exc.args[0]!r}") from None
    if detector not in DETECTOR_CATEGORIES:
        raise RuleError(f"{source}: detector: unknown detector {detector!r}")
    if severity not in PRIORITY:
        raise RuleError(f"{source}: severity: must be one of {', '.join(PRIORITY)}, got {severity!r}")
    try:
        params = Detector.model_validate({detector: document.get("params") or {}}).params()
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "params"
        raise RuleError(f"{source}: params.{where}: {first['msg']}") from None
    return RuleConfig(rule, category, severity, detector, params, bool(document.get("suspended", False)), source)


def load_rules_dir(path: str | Path) -> tuple[list[RuleConfig], list[str]]:
    """Rules from every ``*.json`` file under ``path`` (sorted); returns ``(rules, errors)``.

    Raises:
        FileNotFoundError: ``path`` is not a directory.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"--rules-dir: {root} is not a directory")
    rules, errors = [], []
    for file in sorted(root.rglob("*.json")):
        try:
            rules.append(parse_rule(json.loads(file.read_text()), str(file)))
        except (RuleError, json.JSONDecodeError) as exc:
            errors.append(f"{file}: {exc}" if isinstance(exc, json.JSONDecodeError) else str(exc))
    return rules, errors


def load_rules_kubernetes(namespace: str, selector: str, api: Any = None) -> tuple[list[RuleConfig], list[str]]:
    """Rules from the ``rule.json`` key of the ConfigMaps matching ``selector`` in ``namespace``.

    ``api`` is a ``kubernetes.client.CoreV1Api`` (default: in-cluster config, else the local kubeconfig).
    Raises ``kubernetes.client.ApiException`` when the API refuses the list.
    """
    if api is None:
        from kubernetes import client, config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        api = client.CoreV1Api()
    rules, errors = [], []
    for item in api.list_namespaced_config_map(namespace, label_selector=selector).items:
        source = f"configmap {namespace}/{item.metadata.name}"
        raw = (item.data or {}).get("rule.json")
        if raw is None:
            errors.append(f"{source}: no rule.json key")
            continue
        try:
            rules.append(parse_rule(json.loads(raw), source))
        except (RuleError, json.JSONDecodeError) as exc:
            errors.append(str(exc) if isinstance(exc, RuleError) else f"{source}: {exc}")
    return rules, errors


# --- detectors ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """A flagged subject: ``subject`` (player id, or ``item:<id>``), ``player_id`` (None for non-players),
    ``score`` (the detector's figure: ratio, count, share, anomaly score) and ``evidence`` (JSON-able)."""

    subject: str
    player_id: str | None
    score: float
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    """What a detector needs besides its parameters."""

    conn: Connection
    as_of: datetime
    games: list[str]
    rule: str
    model_dir: Path
    refit_seconds: float


def _games(ctx: Context, alias: str = "e") -> tuple[str, dict[str, Any]]:
    if ctx.games:
        return f"AND {alias}.game = ANY(:games)", {"games": ctx.games}
    return "", {}


def _rows(ctx: Context, sql: str, params: dict[str, Any]) -> list[Any]:
    return ctx.conn.execute(text(sql), params).mappings().all()


def sudden_wealth_change(ctx: Context, p: Any) -> list[Finding]:
    window = parse_duration(p.window)
    since = ctx.as_of - window
    floor = max(float(p.min_wealth), 1.0)
    wealth, params = wealth_sql(ctx.as_of, ctx.games)
    flow = ("CASE e.event_type WHEN 'purchase' THEN (e.payload->>'amount')::float8 "
            "ELSE (e.payload->>'delta')::float8 END")  # fmt: skip
    sql = f"""
    WITH movers AS (
        SELECT DISTINCT e.player_id FROM events e
        WHERE e.event_type IN ('purchase', 'currency_change') AND e.occurred_at > :since AND e.occurred_at <= :as_of
    ), recent AS (
        SELECT e.game, coalesce(e.payload->>'currency', 'USD') AS currency, e.player_id, sum({flow}) AS change
        FROM events e JOIN movers USING (player_id)
        WHERE e.event_type IN ('purchase', 'currency_change') AND e.occurred_at > :since AND e.occurred_at <= :as_of
        GROUP BY 1, 2, 3
    ), total AS (
        SELECT w.* FROM ({wealth}) AS w JOIN movers USING (player_id)
    )
    SELECT t.game, t.currency, t.player_id, t.wealth - coalesce(r.change, 0) AS before, t.wealth AS after,
           greatest(t.wealth, :floor) / greatest(t.wealth - coalesce(r.change, 0), :floor) AS ratio
    FROM total t LEFT JOIN recent r USING (game, currency, player_id)
    WHERE greatest(t.wealth, t.wealth - coalesce(r.change, 0)) >= :min_wealth
      AND (greatest(t.wealth, :floor) / greatest(t.wealth - coalesce(r.change, 0), :floor) >= :threshold
           OR greatest(t.wealth, :floor) / greatest(t.wealth - coalesce(r.change, 0), :floor) <= 1.0 / :threshold)
    ORDER BY ratio DESC, player_id
    """
    params.update(since=since, floor=floor, min_wealth=float(p.min_wealth), threshold=float(p.threshold_ratio))
    out = []
    for r in _rows(ctx, sql, params):
        ratio = float(r["ratio"])
        out.append(Finding(r["player_id"], r["player_id"], ratio, {
            "game": r["game"], "currency": r["currency"], "wealth_before": float(r["before"]),
            "wealth_after": float(r["after"]), "ratio": ratio, "direction": "gain" if ratio >= 1 else "loss",
            "threshold_ratio": float(p.threshold_ratio), "min_wealth": float(p.min_wealth),
        }))  # fmt: skip
    return out


def rapid_asset_transfer(ctx: Context, p: Any) -> list[Finding]:
    game_cond, params = _games(ctx)
    sql = f"""
    SELECT e.player_id, e.game, count(*) AS transfers, count(DISTINCT e.payload->>'counterparty_id') AS counterparties,
           coalesce(sum((e.payload->>'value')::float8), 0) AS value
    FROM events e
    WHERE e.event_type = 'trade' AND e.occurred_at > :since AND e.occurred_at <= :as_of {game_cond}
    GROUP BY 1, 2 HAVING count(*) >= :count ORDER BY transfers DESC, player_id
    """
    params.update(since=ctx.as_of - parse_duration(p.window), as_of=ctx.as_of, count=p.count)
    return [Finding(r["player_id"], r["player_id"], float(r["transfers"]), {
        "game": r["game"], "transfers": int(r["transfers"]), "counterparties": int(r["counterparties"]),
        "value": float(r["value"]), "count_threshold": p.count,
    }) for r in _rows(ctx, sql, params)]  # fmt: skip


def unusual_login_pattern(ctx: Context, p: Any) -> list[Finding]:
    game_cond, params = _games(ctx)
    sql = f"""
    SELECT e.player_id, e.game, count(*) AS logins, count(DISTINCT e.region) AS regions,
           (array_agg(DISTINCT e.region))[1:10] AS sample_regions
    FROM events e
    WHERE e.event_type = 'login' AND e.occurred_at > :since AND e.occurred_at <= :as_of {game_cond}
    GROUP BY 1, 2 HAVING count(DISTINCT e.region) > :max_regions OR count(*) > :max_logins
    ORDER BY regions DESC, logins DESC, player_id
    """
    params.update(since=ctx.as_of - parse_duration(p.window), as_of=ctx.as_of,
                  max_regions=p.max_distinct_regions, max_logins=p.max_logins)  # fmt: skip
    return [Finding(r["player_id"], r["player_id"], float(r["regions"]), {
        "game": r["game"], "logins": int(r["logins"]), "distinct_regions": int(r["regions"]),
        "regions": list(r["sample_regions"] or []), "max_distinct_regions": p.max_distinct_regions,
        "max_logins": p.max_logins,
    }) for r in _rows(ctx, sql, params)]  # fmt: skip


def market_manipulation(ctx: Context, p: Any) -> list[Finding]:
    game_cond, params = _games(ctx)
    window = parse_duration(p.window)
    sql = f"""
    WITH priced AS (
        SELECT e.game, coalesce(e.payload->>'item_id', 'item') AS item, e.occurred_at > :since AS current,
               CASE e.event_type WHEN 'trade' THEN (e.payload->>'value')::float8
                                 ELSE (e.payload->>'amount')::float8 END AS value,
               (e.payload->>'quantity')::float8 AS quantity
        FROM events e
        WHERE e.event_type IN ('trade', 'purchase') AND e.occurred_at > :previous AND e.occurred_at <= :as_of
          AND (e.event_type = 'purchase' OR e.payload ? 'value') {game_cond}
    ), prices AS (
        SELECT game, item,
               sum(value) FILTER (WHERE current) / nullif(sum(quantity) FILTER (WHERE current), 0) AS now,
               sum(value) FILTER (WHERE NOT current) / nullif(sum(quantity) FILTER (WHERE NOT current), 0) AS before,
               count(*) FILTER (WHERE current) AS trades
        FROM priced GROUP BY 1, 2
    )
    SELECT game, item, now, before, now / before - 1 AS change, trades FROM prices
    WHERE before > 0 AND now IS NOT NULL AND abs(now / before - 1) > :threshold
    ORDER BY abs(now / before - 1) DESC, game, item
    """
    params.update(since=ctx.as_of - window, previous=ctx.as_of - 2 * window, as_of=ctx.as_of,
                  threshold=float(p.price_change))  # fmt: skip
    return [Finding(f"item:{r['game']}/{r['item']}", None, abs(float(r["change"])), {
        "game": r["game"], "item": r["item"], "unit_price_before": float(r["before"]),
        "unit_price_now": float(r["now"]), "relative_change": float(r["change"]), "trades": int(r["trades"]),
        "price_change_threshold": float(p.price_change),
    }) for r in _rows(ctx, sql, params)]  # fmt: skip


def monopoly_formation(ctx: Context, p: Any) -> list[Finding]:
    game_cond, params = _games(ctx)
    sql = f"""
    WITH volume AS (
        SELECT e.game, e.player_id,
               sum(CASE e.event_type WHEN 'purchase' THEN (e.payload->>'amount')::float8
                                     ELSE coalesce((e.payload->>'value')::float8, 0) END) AS value
        FROM events e
        WHERE e.event_type IN ('trade', 'purchase') AND e.player_id IS NOT NULL
          AND e.occurred_at > :since AND e.occurred_at <= :as_of {game_cond}
        GROUP BY 1, 2
    ), shares AS (
        SELECT game, player_id, value, value / nullif(sum(value) OVER (PARTITION BY game), 0) AS share,
               count(*) OVER (PARTITION BY game) AS traders
        FROM volume
    )
    SELECT * FROM shares WHERE share > :share ORDER BY share DESC, player_id
    """
    params.update(since=ctx.as_of - parse_duration(p.window), as_of=ctx.as_of, share=float(p.market_share))
    return [Finding(r["player_id"], r["player_id"], float(r["share"]), {
        "game": r["game"], "value": float(r["value"]), "share": float(r["share"]), "traders": int(r["traders"]),
        "market_share_threshold": float(p.market_share),
    }) for r in _rows(ctx, sql, params)]  # fmt: skip


ANOMALY_FEATURES = ("events", "total", "mean", "max", "active_days", "per_day")


def anomaly_features(ctx: Context, activity: str) -> pd.DataFrame:
    """Per-player features of event type ``activity`` up to ``as_of``: one row per player (index ``player_id``),
    columns :data:`ANOMALY_FEATURES` plus ``activity``.  The amount is ``amount`` (purchases), ``value``
    (trades), ``|delta|`` (currency changes), ``session_seconds`` (logouts), else 0."""
    game_cond, params = _games(ctx)
    sql = f"""
    SELECT e.player_id, count(*) AS events, sum(a) AS total, avg(a) AS mean, max(a) AS max,
           count(DISTINCT date_trunc('day', e.occurred_at AT TIME ZONE 'UTC')) AS active_days
    FROM (SELECT e.*, coalesce((e.payload->>'amount')::float8, (e.payload->>'value')::float8,
                               abs((e.payload->>'delta')::float8), (e.payload->>'session_seconds')::float8, 0) AS a
          FROM events e) AS e
    WHERE e.event_type = :activity AND e.player_id IS NOT NULL AND e.occurred_at <= :as_of {game_cond}
    GROUP BY 1 ORDER BY 1
    """
    params.update(activity=activity, as_of=ctx.as_of)
    frame = pd.DataFrame(_rows(ctx, sql, params))
    if frame.empty:
        return frame
    frame = frame.set_index("player_id").astype(float)
    frame["per_day"] = frame["total"] / frame["active_days"]
    frame["activity"] = activity
    return frame


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def anomaly_score(ctx: Context, p: Any) -> list[Finding]:
    features = anomaly_features(ctx, p.activity_type)
    if len(features) < 2:
        return []
    base = ctx.model_dir / f"{_safe(ctx.rule)}.{_safe(p.activity_type)}"
    model_file = base.with_name(base.name + ".joblib")
    detector = None
    if model_file.exists() and time.time() - model_file.stat().st_mtime < ctx.refit_seconds:
        try:
            detector = ActivityAnomalyDetector.from_bytes(model_file.read_bytes())
        except (TypeError, ValueError, EOFError):
            log.warning("discarding unreadable anomaly model %s", model_file)
    if detector is None or list(detector.features) != list(ANOMALY_FEATURES):
        # log1p: amounts are heavy-tailed; the forest isolates on ranges, so compressing them keeps scale sane
        detector = ActivityAnomalyDetector(ANOMALY_FEATURES, random_state=0)
        detector.fit(_transform(features))
        ctx.model_dir.mkdir(parents=True, exist_ok=True)
        tmp = model_file.with_suffix(".tmp")
        tmp.write_bytes(detector.to_bytes())
        os.replace(tmp, model_file)
    scores = detector.score(_transform(features))
    scored = features.assign(score=scores).sort_values("score", ascending=False)
    scored[["score", *ANOMALY_FEATURES]].to_csv(base.with_name(base.name + ".scores.csv"))
    flagged = scored[scored["score"] > p.threshold]
    return [Finding(str(player), str(player), float(row.score), {
        "activity_type": p.activity_type, "score": float(row.score), "threshold": float(p.threshold),
        "features": {f: float(getattr(row, f)) for f in ANOMALY_FEATURES},
    }) for player, row in zip(flagged.index, flagged.itertuples(index=False), strict=True)]  # fmt: skip


def _transform(features: pd.DataFrame) -> pd.DataFrame:
    out = features.copy()
    out[list(ANOMALY_FEATURES)] = np.log1p(out[list(ANOMALY_FEATURES)].clip(lower=0))
    return out


DETECTORS: dict[str, Callable[[Context, Any], list[Finding]]] = {
    "suddenWealthChange": sudden_wealth_change,
    "rapidAssetTransfer": rapid_asset_transfer,
    "unusualLoginPattern": unusual_login_pattern,
    "marketManipulation": market_manipulation,
    "monopolyFormation": monopoly_formation,
    "anomalyScore": anomaly_score,
}


# --- persistence ----------------------------------------------------------------------------------------------


def record_findings(conn: Connection, rule: RuleConfig, findings: Sequence[Finding], as_of: datetime) -> int:
    """Write new detections and their open interventions for ``findings`` (inside the caller's transaction).

    A subject that already has an open or in-progress intervention for this rule is skipped.  Takes a
    transaction-scoped advisory lock on the rule, so concurrent workers do not both insert.  Returns how many
    detections were inserted.
    """
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:rule))"), {"rule": rule.rule})
    existing = set(conn.execute(text("""
        SELECT d.evidence->>'subject' FROM detections d JOIN interventions i ON i.detection_id = d.id
        WHERE d.rule = :rule AND i.status IN ('open', 'in_progress')"""), {"rule": rule.rule}).scalars())
    new = [f for f in findings if f.subject not in existing]
    for finding in new:
        evidence = {**finding.evidence, "subject": finding.subject, "detector": rule.detector,
                    "as_of": as_of.isoformat(), "window": getattr(rule.params, "window", None)}  # fmt: skip
        detection_id = conn.execute(text("""
            INSERT INTO detections (rule, category, severity, player_id, score, evidence)
            VALUES (:rule, :category, :severity, :player_id, :score, CAST(:evidence AS jsonb)) RETURNING id"""),
            {"rule": rule.rule, "category": rule.category, "severity": rule.severity, "player_id": finding.player_id,
             "score": finding.score, "evidence": json.dumps(evidence, default=str)}).scalar_one()  # fmt: skip
        conn.execute(text("""
            INSERT INTO interventions (detection_id, priority, category, status)
            VALUES (:id, :priority, :category, 'open')"""),
            {"id": detection_id, "priority": PRIORITY[rule.severity], "category": rule.category})  # fmt: skip
    return len(new)


# --- the worker -----------------------------------------------------------------------------------------------


class DetectionMetrics:
    """The worker's metrics in ``registry``: flagged subjects, detections, rules loaded, pass duration, errors."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.flagged = Gauge(names.DETECTION_FLAGGED, "Subjects the rule flags in the current pass.",
                             ["rule", "detector", "category", "severity"], registry=registry)  # fmt: skip
        self.detections = Counter(names.DETECTIONS.removesuffix("_total"), "New detections recorded.",
                                  ["rule", "category", "severity"], registry=registry)  # fmt: skip
        self.rules = Gauge(names.DETECTION_RULES, "Detector rules loaded, by state.", ["state"], registry=registry)
        self.duration = Gauge(names.DETECTION_PASS_DURATION, "Duration of the last evaluation pass.",
                              registry=registry)  # fmt: skip
        self.errors = Counter(names.DETECTION_ERRORS.removesuffix("_total"), "Failed rule evaluations.", ["rule"],
                              registry=registry)  # fmt: skip


@dataclass
class PassResult:
    """Outcome of one pass: ``flagged[rule]`` subjects and ``inserted[rule]`` new detections; ``errors``."""

    as_of: datetime
    flagged: dict[str, int] = field(default_factory=dict)
    inserted: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


class DetectionWorker:
    """Evaluates rules against the store.

    Args:
        engine: SQLAlchemy engine.
        load_rules: returns ``(rules, errors)`` - :func:`load_rules_dir` or :func:`load_rules_kubernetes`.
        as_of: ``"now"``, ``"latest"`` or a datetime.
        games: only these games (empty = all).
        registry: where the metrics live.
        model_dir: where anomaly models and scores are written.
        refit_seconds: anomaly models older than this are refitted.
    """

    def __init__(
        self, engine: Engine, load_rules: Callable[[], tuple[list[RuleConfig], list[str]]], *,
        as_of: str | datetime = "now", games: Sequence[str] = (), registry: CollectorRegistry | None = None,
        model_dir: str | Path = "/tmp/game-analytics-models", refit_seconds: float = 3600.0,
    ) -> None:  # fmt: skip
        self.engine = engine
        self.load_rules = load_rules
        self.as_of = as_of
        self.games = list(games)
        self.registry = registry or CollectorRegistry()
        self.metrics = DetectionMetrics(self.registry)
        self.model_dir = Path(model_dir)
        self.refit_seconds = refit_seconds
        self._series: set[tuple[str, str, str, str]] = set()

    def run_once(self) -> PassResult:
        """Load the rules and evaluate every active one (each in its own transaction)."""
        started = time.perf_counter()
        rules, errors = self.load_rules()
        for message in errors:
            log.error("invalid detector rule: %s", message)
        active = [r for r in rules if not r.suspended and r.detector in DETECTORS]
        self.metrics.rules.labels("active").set(len(active))
        self.metrics.rules.labels("suspended").set(sum(r.suspended for r in rules))
        self.metrics.rules.labels("invalid").set(len(errors))
        with self.engine.connect() as conn:
            as_of = resolve_as_of(conn, self.as_of)
            conn.rollback()
        result = PassResult(as_of, errors=list(errors))
        seen: set[tuple[str, str, str, str]] = set()
        for rule in active:
            labels = (rule.rule, rule.detector, rule.category, rule.severity)
            try:
                with self.engine.begin() as conn:
                    ctx = Context(conn, as_of, self.games, rule.rule, self.model_dir, self.refit_seconds)
                    findings = DETECTORS[rule.detector](ctx, rule.params)
                    inserted = record_findings(conn, rule, findings, as_of)
            except Exception as exc:  # noqa: BLE001 - one broken rule must not stop the others
                log.exception("rule %s failed", rule.rule)
                self.metrics.errors.labels(rule.rule).inc()
                result.errors.append(f"{rule.rule}: {exc}")
                if labels in self._series:
                    seen.add(labels)  # keep its last value rather than pretend it flags nothing
                continue
            self.metrics.flagged.labels(*labels).set(len(findings))
            if inserted:
                self.metrics.detections.labels(rule.rule, rule.category, rule.severity).inc(inserted)
            seen.add(labels)
            result.flagged[rule.rule] = len(findings)
            result.inserted[rule.rule] = inserted
            log.info("rule %s (%s): %d flagged, %d new", rule.rule, rule.detector, len(findings), inserted)
        for labels in self._series - seen:  # deleted or suspended rules: drop their series
            self.metrics.flagged.remove(*labels)
        self._series = seen
        self.metrics.duration.set(time.perf_counter() - started)
        return result

    def run(self, stop: threading.Event, interval: float) -> None:
        """Evaluate every ``interval`` seconds until ``stop`` is set."""
        while not stop.is_set():
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - e.g. the database or the API server is briefly unavailable
                log.exception("detection pass failed")
            stop.wait(interval)


def build_parser(settings: WorkerSettings | None = None) -> argparse.ArgumentParser:
    """Flags of ``game-analytics worker detection``; defaults come from ``settings`` (the environment)."""
    s = settings or WorkerSettings()
    parser = argparse.ArgumentParser(prog="game-analytics worker detection", description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", default=s.dsn, help="PostgreSQL URL (env GAME_ANALYTICS_DSN)")
    parser.add_argument("--rules-dir", help="read rule .json files from this directory instead of the Kubernetes API")
    parser.add_argument("--namespace", default=s.namespace, help="namespace of the detector ConfigMaps")
    parser.add_argument("--selector", default=s.detector_selector, help="label selector of the detector ConfigMaps")
    parser.add_argument("--games", default=",".join(s.games), help="comma-separated games (default: all)")
    parser.add_argument("--as-of", default=os.environ.get("GAME_ANALYTICS_AS_OF", "now"), type=parse_as_of,
                        help="'now' (default), 'latest' (newest event; for replayed data) or an ISO time")
    parser.add_argument("--interval", type=float, default=s.detection_interval_seconds, help="seconds between passes")
    parser.add_argument("--model-dir", default=os.environ.get("GAME_ANALYTICS_MODEL_DIR", "/tmp/game-analytics-models"),
                        help="where anomaly models and scores are stored")
    parser.add_argument("--refit-seconds", type=float, default=3600.0, help="refit anomaly models older than this")
    parser.add_argument("--port", type=int, default=s.metrics_port, help="metrics port (0 = none)")
    parser.add_argument("--once", action="store_true", help="run one pass, print a summary and exit")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the detection worker (see the module docstring); returns the exit code (1 if a ``--once`` pass had
    errors)."""
    settings = WorkerSettings.from_env()
    parser = build_parser(settings)
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    if not args.dsn:
        parser.error("--dsn (or GAME_ANALYTICS_DSN) is required")
    if args.rules_dir:
        if not Path(args.rules_dir).is_dir():
            parser.error(f"--rules-dir: {args.rules_dir} is not a directory")
        rules_dir = args.rules_dir

        def load() -> tuple[list[RuleConfig], list[str]]:
            return load_rules_dir(rules_dir)
    else:
        if not args.selector:
            parser.error("--selector (or GAME_ANALYTICS_DETECTOR_SELECTOR) is required without --rules-dir")

        def load() -> tuple[list[RuleConfig], list[str]]:
            return load_rules_kubernetes(args.namespace, args.selector)

    engine = make_engine(args.dsn, pool_size=2, max_overflow=0)
    worker = DetectionWorker(engine, load, as_of=args.as_of, games=[g for g in args.games.split(",") if g],
                             model_dir=args.model_dir, refit_seconds=args.refit_seconds)  # fmt: skip
    try:
        if args.once:
            result = worker.run_once()
            for rule, count in sorted(result.flagged.items()):
                print(f"{rule}: {count} flagged, {result.inserted[rule]} new (as of {result.as_of.isoformat()})")
            for error in result.errors:
                print(f"error: {error}")
            return 1 if result.errors else 0
        if args.port:
            start_http_server(args.port, registry=worker.registry)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        worker.run(stop, args.interval)
        return 0
    finally:
        engine.dispose()


if __name__ == "__main__":
    raise SystemExit(main())

