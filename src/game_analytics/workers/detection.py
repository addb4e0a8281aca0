"""Detection worker: evaluates the AlertRules' player-level detectors in SQL and queues interventions.

Rules come from the detector ConfigMaps the operator renders (label selector ``settings.detector_selector`` in
``settings.namespace``, key ``rule.json``; read through the Kubernetes API) or, for tests and the demo, from a
directory of ``*.json`` files (``--rules-dir``, searched recursively, e.g. ``<dir>/<rule>/rule.json``).  A rule
document is ``{"rule": "<ns>/<name>", "category", "severity", "detector": "<camelCase kind>", "params": {...},
"suspended": bool, "autoResolveAfter": "30m", "mode": "DryRun"}`` (the last two optional); ``params`` are validated
with the AlertRule API models.  A ``DryRun`` rule is evaluated and exported like any other, but records no
detection and opens no case (its AlertRule only measures how often it would page, docs/backtest.md).

Every ``interval`` seconds each active rule is evaluated at the evaluation time ``as_of`` by its detector
(:mod:`game_analytics.workers.detectors`, one per worker-evaluated type of the detector table
``api.alertrule.DETECTOR_TYPES``; rules of PromQL-evaluated types are accepted and left to Prometheus).

Each flagged subject becomes a row of ``detections`` (``evidence`` jsonb holds the figures, the subject, window
and ``as_of``) and an ``open`` intervention (priority 1 critical, 2 warning, 3 info); when the subject already
has an open or in-progress case of the rule, a detection with new evidence is linked to that case as a repeat
offence and an unchanged one (the same offence still in the window) adds nothing.  A rule with
``autoResolveAfter`` resolves a case as ``auto-cleared`` once its subject has not been flagged for that long.  Every case opened or linked
is audited (:mod:`game_analytics.interventions.detections`; one transaction per rule under an advisory lock,
so concurrent workers agree).

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
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import ValidationError
from sqlalchemy import Connection, Engine, text

from game_analytics.api.alertrule import DETECTOR_TYPES, Detector
from game_analytics.api.common import parse_duration
from game_analytics.interventions.detections import NewDetection, Recorded, record_detections
from game_analytics.interventions.service import PRIORITY_OF_SEVERITY
from game_analytics.monitoring import names
from game_analytics.storage import derived
from game_analytics.storage.engine import make_engine
from game_analytics.workers import runtime, streaming
from game_analytics.workers.alert_sender import AlertSpec, parse_alert
from game_analytics.workers.detectors import DETECTORS, PLAYER_SCOPED, Context, Finding
from game_analytics.workers.runtime import kube_api_client, resolve_as_of, serve, stop_event

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
    "parse_rule",
    "record_findings",
]

log = logging.getLogger(__name__)

#: with the streaming path on, the player-scoped rules it evaluates get a whole pass every this many passes (see
#: ``DetectionWorker.run``): every 5 minutes or so at the shipped 30 s interval
STREAMED_FULL_EVERY = 10


class RuleError(ValueError):
    """A rule document is invalid; the message names the source and the offending field."""


@dataclass(frozen=True)
class RuleConfig:
    """One detector rule: identity and labels, the detector kind and its validated parameters;
    ``auto_resolve_after`` (None = never) from ``autoResolveAfter``."""

    rule: str
    category: str
    severity: str
    detector: str
    params: Any
    suspended: bool = False
    source: str = ""
    auto_resolve_after: timedelta | None = None
    #: the rule's alert for the streaming path (``alert`` key; None in documents of older operators and DryRun)
    alert: AlertSpec | None = None
    #: ``"mode": "DryRun"``: evaluated and exported, nothing recorded
    dry_run: bool = False


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
    if detector not in DETECTOR_TYPES:
        raise RuleError(f"{source}: detector: unknown detector {detector!r}")
    if severity not in PRIORITY_OF_SEVERITY:
        raise RuleError(f"{source}: severity: must be one of {', '.join(PRIORITY_OF_SEVERITY)}, got {severity!r}")
    try:
        params = Detector.model_validate({detector: document.get("params") or {}}).params()
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "params"
        raise RuleError(f"{source}: params.{where}: {first['msg']}") from None
    try:
        raw = document.get("autoResolveAfter")
        after = parse_duration(str(raw), allow_zero=True) if raw else None
    except ValueError as exc:
        raise RuleError(f"{source}: autoResolveAfter: {exc}") from None
    try:
        alert = parse_alert(document["alert"]) if document.get("alert") else None
    except ValueError as exc:
        raise RuleError(f"{source}: {exc}") from None
    return RuleConfig(rule, category, severity, detector, params, bool(document.get("suspended", False)), source,
                      after, alert, document.get("mode") == "DryRun")  # fmt: skip


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

    A document whose ``rule`` is not ``<namespace>/...`` is reported in ``errors`` and not evaluated: a
    ConfigMap in namespace B naming rule ``A/x`` must never export series for (and so page) namespace A.

    ``api`` is a ``kubernetes.client.CoreV1Api`` (default: in-cluster config, else the local kubeconfig).
    Raises ``kubernetes.client.ApiException`` when the API refuses the list.
    """
    if api is None:
        from kubernetes import client

        api = client.CoreV1Api(kube_api_client())
    rules, errors = [], []
    for item in api.list_namespaced_config_map(namespace, label_selector=selector).items:
        source = f"configmap {namespace}/{item.metadata.name}"
        raw = (item.data or {}).get("rule.json")
        if raw is None:
            errors.append(f"{source}: no rule.json key")
            continue
        try:
            rule = parse_rule(json.loads(raw), source)
        except (RuleError, json.JSONDecodeError) as exc:
            errors.append(str(exc) if isinstance(exc, RuleError) else f"{source}: {exc}")
            continue
        if not rule.rule.startswith(f"{namespace}/"):  # a ConfigMap may only name a rule of its own namespace
            errors.append(f"{source}: rule: {rule.rule!r} is not a rule of namespace {namespace!r}; ignored")
            continue
        rules.append(rule)
    return rules, errors


# --- persistence ----------------------------------------------------------------------------------------------


def record_findings(conn: Connection, rule: RuleConfig, findings: Sequence[Finding], as_of: datetime) -> int:
    """Write the detections of ``findings`` (inside the caller's transaction): a new open case per subject, or a
    repeat offence linked to the subject's open case (see :func:`~game_analytics.interventions.detections.
    record_detections`, which also audits them); with ``rule.auto_resolve_after`` cases whose subject is no
    longer flagged are auto-resolved.  Returns how many detections were inserted.
    """
    return _record(conn, rule, findings, as_of).inserted


def _record(conn: Connection, rule: RuleConfig, findings: Sequence[Finding], as_of: datetime,
            every_subject: bool = True) -> Recorded:
    """:func:`record_findings` returning what was written; ``every_subject=False`` (findings of some subjects
    only, the streaming path) never auto-resolves, since the others were not evaluated."""
    window = getattr(rule.params, "window", None)
    found = [NewDetection(f.subject, f.player_id, f.score, {
        **f.evidence, "subject": f.subject, "detector": rule.detector, "as_of": as_of.isoformat(), "window": window,
    }) for f in findings]  # fmt: skip
    return record_detections(conn, rule.rule, rule.category, rule.severity, PRIORITY_OF_SEVERITY[rule.severity], found,
                             context={"as_of": as_of.isoformat(), "detector": rule.detector}, as_of=as_of,
                             auto_resolve_after=rule.auto_resolve_after if every_subject else None)  # fmt: skip


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
        self.top = Gauge(names.DETECTION_TOP_CASE, f"Intervention id of the rule's rank-th flagged subject "
                         f"(highest score first, ranks 1-{names.TOP_CASES}).", ["rule", "rank"],
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
        #: the rules of the last pass (the streaming path evaluates these)
        self.rules: list[RuleConfig] = []
        #: rule -> subject -> (score, intervention id): what each rule flags now (passes and the streaming path)
        self.subjects: dict[str, dict[str, tuple[float, int | None]]] = {}
        #: called as ``listener(rule, count, top, as_of)`` after every change of a rule's flagged subjects;
        #: ``top`` is :meth:`top_cases` (``[(subject, intervention id)]``, at most ``names.TOP_CASES``)
        self.listeners: list[Callable[[RuleConfig, int, list[tuple[str, int]], datetime], None]] = []
        self._lock = threading.RLock()
        self._touched: dict[str, dict[str, float]] = {}  # rule -> subject -> monotonic time of a scoped update
        self._top_ranks: dict[str, int] = {}  # rule -> ranks exported
        #: the streaming path (:class:`~game_analytics.workers.streaming.StreamEvaluator`) once started: its
        #: player-scoped rules get a whole pass only every ``STREAMED_FULL_EVERY``-th pass (see :meth:`run`)
        self.stream: Any = None
        #: rule -> (query, record + commit, bookkeeping + listeners) seconds of its last evaluation
        self.timings: dict[str, tuple[float, float, float]] = {}

    def evaluate(self, rule: RuleConfig, as_of: datetime, players: Sequence[str] | None = None) -> int:
        """Evaluate ``rule`` at ``as_of`` (for ``players`` only, or every subject), record its detections and
        update :attr:`subjects`, the flagged and top-subjects gauges and the listeners. Returns detections
        inserted. Raises whatever the detector or the database raises (nothing is updated then)."""
        started = time.monotonic()
        with self.engine.begin() as conn:
            if players is not None:
                # psycopg prepares a statement run 5 times; PostgreSQL may then reuse a generic plan, in which
                # ``player_id = ANY($1)`` is a linear search of the array per row (a custom plan hashes it): with
                # 10,000+ players over a growing table, 8-52 s CPU-bound queries instead of about 1 s
                conn.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
            ctx = Context(conn, as_of, self.games, rule.rule, self.model_dir, self.refit_seconds, players)
            findings = DETECTORS[rule.detector](ctx, rule.params)
            queried = time.monotonic()
            recorded = Recorded() if rule.dry_run else _record(conn, rule, findings, as_of,
                                                                 every_subject=players is None)
        committed = time.monotonic()
        found = {f.subject: (f.score, recorded.cases.get(f.subject)) for f in findings}
        with self._lock:
            current = self.subjects.setdefault(rule.rule, {})
            touched = self._touched.setdefault(rule.rule, {})
            if players is None:  # a whole pass: keep what a scoped evaluation decided after it started
                newer = {s for s, t in touched.items() if t > started}
                merged = {s: v for s, v in found.items() if s not in newer}
                merged.update({s: v for s, v in current.items() if s in newer})
                current = merged
                self._touched[rule.rule] = {s: t for s, t in touched.items() if s in newer}
            else:
                now = time.monotonic()
                for subject in players:
                    current.pop(subject, None)
                    touched[subject] = now
                current.update(found)
            self.subjects[rule.rule] = current
            count, top = len(current), self.top_cases(current)
            self._export(rule, count, top)
            listeners = list(self.listeners)
        for listener in listeners:
            listener(rule, count, top, as_of)
        self.timings[rule.rule] = (queried - started, committed - queried, time.monotonic() - committed)
        if recorded.inserted:
            self.metrics.detections.labels(rule.rule, rule.category, rule.severity).inc(recorded.inserted)
        return recorded.inserted

    @staticmethod
    def top_cases(current: dict[str, tuple[float, int | None]],
                  limit: int = names.TOP_CASES) -> list[tuple[str, int]]:
        """The top ``limit`` flagged subjects with an intervention, highest score first (ties by subject):
        ``[("p1", 7), ("p2", 9)]`` from :attr:`subjects` ``[rule]`` (``subject -> (score, intervention id)``)."""
        ranked = sorted(((s, v) for s, v in current.items() if v[1] is not None), key=lambda kv: (-kv[1][0], kv[0]))
        return [(subject, case) for subject, (_, case) in ranked[:limit]]

    def _export(self, rule: RuleConfig, count: int, top: list[tuple[str, int]]) -> None:
        """The flagged gauge and the rule's ``rank`` series of the top-case gauge (ranks past ``top`` removed)."""
        self.metrics.flagged.labels(rule.rule, rule.detector, rule.category, rule.severity).set(count)
        for rank, (_, case) in enumerate(top, start=1):
            self.metrics.top.labels(rule.rule, str(rank)).set(case)
        for rank in range(len(top) + 1, self._top_ranks.get(rule.rule, 0) + 1):
            self.metrics.top.remove(rule.rule, str(rank))
        self._top_ranks[rule.rule] = len(top)

    def forget(self, rule: str) -> None:
        """Drop a deleted or suspended rule's state and its top-subjects series."""
        with self._lock:
            self.subjects.pop(rule, None)
            self._touched.pop(rule, None)
            for rank in range(1, self._top_ranks.pop(rule, 0) + 1):
                self.metrics.top.remove(rule, str(rank))

    def run_once(self, streamed: bool = True) -> PassResult:
        """Load the rules and evaluate every active one (each in its own transaction).

        ``streamed=False``: leave out the rules the streaming path evaluates as their events arrive (the
        player-scoped ones, ``detectors.PLAYER_SCOPED``, when :attr:`stream` is set); their series and subjects
        stay as the streaming path keeps them."""
        started = time.perf_counter()
        rules, errors = self.load_rules()
        for message in errors:
            log.error("invalid detector rule: %s", message)
        active = [r for r in rules if not r.suspended and r.detector in DETECTORS]
        self.metrics.rules.labels("active").set(len(active))
        self.metrics.rules.labels("suspended").set(sum(r.suspended for r in rules))
        self.metrics.rules.labels("invalid").set(len(errors))
        if active:
            self.fold()
        with self.engine.connect() as conn:
            as_of = resolve_as_of(conn, self.as_of)
            conn.rollback()
        result = PassResult(as_of, errors=list(errors))
        seen: set[tuple[str, str, str, str]] = set()
        self.rules = active
        for rule in active:
            labels = (rule.rule, rule.detector, rule.category, rule.severity)
            if not streamed and self.stream is not None and rule.detector in PLAYER_SCOPED and labels in self._series:
                seen.add(labels)
                result.flagged[rule.rule], result.inserted[rule.rule] = len(self.subjects.get(rule.rule, {})), 0
                continue
            try:
                inserted = self.evaluate(rule, as_of)
            except Exception as exc:  # noqa: BLE001 - one broken rule must not stop the others
                log.exception("rule %s failed", rule.rule)
                self.metrics.errors.labels(rule.rule).inc()
                result.errors.append(f"{rule.rule}: {exc}")
                if labels in self._series:
                    seen.add(labels)  # keep its last value rather than pretend it flags nothing
                continue
            flagged = len(self.subjects.get(rule.rule, {}))
            seen.add(labels)
            result.flagged[rule.rule] = flagged
            result.inserted[rule.rule] = inserted
            log.info("rule %s (%s): %d flagged, %d new", rule.rule, rule.detector, flagged, inserted)
        for labels in self._series - seen:  # deleted or suspended rules: drop their series
            self.metrics.flagged.remove(*labels)
            if labels[0] not in {r.rule for r in active}:
                self.forget(labels[0])
        self._series = seen
        self.metrics.duration.set(time.perf_counter() - started)
        return result

    def fold(self) -> int:
        """Fold the events stored since the last catch-up into the derived tables
        (:func:`~game_analytics.storage.derived.catch_up_engine`): suddenWealthChange reads its running balances
        there and sums only the flows they lack, so the fewer those, the cheaper it is. Runs before every pass
        and, with the streaming path on, every few seconds (``StreamEvaluator.fold_every_s``). A failure (e.g. a
        role that may not write them) is logged and counted in nothing else: the detectors stay exact, only
        slower. Returns the events folded in (0 on failure)."""
        try:
            return derived.catch_up_engine(self.engine)
        except Exception as exc:  # noqa: BLE001 - the detectors do without, more slowly
            log.warning("catch-up of the derived tables failed (%s): suddenWealthChange sums the events not folded "
                        "in instead", exc)  # fmt: skip
            return 0

    def run(self, stop: threading.Event, interval: float) -> None:
        """Evaluate every ``interval`` seconds until ``stop`` is set.

        With the streaming path on (:attr:`stream`), the rules it evaluates on their events (player-scoped) are
        evaluated whole only on the first pass and then every ``STREAMED_FULL_EVERY``-th pass (the whole pass
        is what auto-resolves and corrects what the stream missed); such a pass waits while the stream has a
        backlog (``stream.backlog()``), at most one more interval. Whole passes over the population (seconds at
        a few 100k events in the window) and the streaming path's scoped ones compete for the same database: at
        every interval they put the streaming path's events behind them (docs/alerting.md, latency)."""
        passes = 0
        while not stop.is_set():
            whole = self.stream is None or passes % STREAMED_FULL_EVERY == 0
            if whole and self.stream is not None and passes:
                deadline = time.monotonic() + interval
                while self.stream.backlog() and time.monotonic() < deadline and not stop.wait(0.2):
                    pass
            passes += 1
            try:
                self.run_once(streamed=whole)
            except Exception:  # noqa: BLE001 - e.g. the database or the API server is briefly unavailable
                log.exception("detection pass failed")
            stop.wait(interval)


def build_parser() -> argparse.ArgumentParser:
    """Flags of ``game-analytics worker detection``: the detection settings (each also read from its
    ``GAME_ANALYTICS_*`` variable)."""
    return runtime.parser("detection", __doc__.split("\n")[0])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the detection worker (see the module docstring); returns the exit code (1 if a ``--once`` pass had
    errors)."""
    parser = build_parser()
    _, settings = runtime.start(parser, argv, "detection")
    if settings.rules_dir:
        if not settings.rules_dir.is_dir():
            parser.error(f"--rules-dir: {settings.rules_dir} is not a directory")
        rules_dir = str(settings.rules_dir)

        def load() -> tuple[list[RuleConfig], list[str]]:
            return load_rules_dir(rules_dir)
    else:
        if not settings.detector_selector:
            parser.error("--detector-selector (or GAME_ANALYTICS_DETECTOR_SELECTOR) is required without --rules-dir")

        def load() -> tuple[list[RuleConfig], list[str]]:
            return load_rules_kubernetes(settings.namespace, settings.detector_selector)

    engine = make_engine(settings.dsn, pool_size=2, max_overflow=0)
    worker = DetectionWorker(engine, load, as_of=runtime.parse_as_of(settings.as_of), games=settings.games,
                             model_dir=str(settings.model_dir), refit_seconds=settings.refit_seconds)  # fmt: skip
    try:
        if settings.once:
            result = worker.run_once()
            for rule, count in sorted(result.flagged.items()):
                print(f"{rule}: {count} flagged, {result.inserted[rule]} new (as of {result.as_of.isoformat()})")
            for error in result.errors:
                print(f"error: {error}")
            return 1 if result.errors else 0
        port = settings.port()
        server = serve(port, worker.registry, settings.listen) if port else None
        stop = stop_event()
        streaming.start_from_env(worker, settings, stop)  # on with GAME_ANALYTICS_ALERTMANAGER_URLS
        worker.run(stop, settings.detection_interval_seconds)
        if server is not None:
            server.shutdown()
        return 0
    finally:
        engine.dispose()


if __name__ == "__main__":
    raise SystemExit(main())

