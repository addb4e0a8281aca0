"""The real alert path, event to page: Redis stream -> ingest worker -> PostgreSQL -> detection worker ->
Prometheus -> Alertmanager -> webhook, all real processes on loopback.

Shared by ``tests/monitoring/test_alert_path.py`` (one run, asserted) and ``benchmarks/bench_alert_latency.py``
(several runs, figures). Everything is configured from ``examples/alertrule-wealth-jump.yaml``: the PrometheusRule
group and the detector document come from :func:`game_analytics.controller.alertrule.render.render`, the Alertmanager routing
from :func:`devtools.alertmanager.render`. The PagerDuty channel of the example is left out
(PagerDuty is unreachable from here, as in ``make demo``); its Slack and webhook channels both post to a local
:class:`~devtools.monitoring_stack.WebhookReceiver`.

Event-to-page latency = wall-clock time from just before ``XADD`` of the wealth jump to the webhook's receipt of
the firing notification, both measured in this process.
"""

from __future__ import annotations

import os
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from game_analytics.api.alertrule import AlertRuleSpec
from game_analytics.controller.alertrule import render as alertrule
from game_analytics.controller.common.render import Owner
from game_analytics.data.datasets import load_cdnow_master
from game_analytics.data.events import purchase_events
from game_analytics.monitoring import names
from game_analytics.workers.load import copy_events, publish_events, to_event

from . import REPO_ROOT
from . import alertmanager as am
from .monitoring_stack import Alertmanager, Prometheus, WebhookReceiver
from .processes import LoggedProcess
from .waiting import free_port, wait_for

EXAMPLE = REPO_ROOT / "examples" / "alertrule-wealth-jump.yaml"
NAMESPACE = "games"
#: CDNOW customers 1..CUSTOMERS (of 23,570): about a tenth of the purchase log, enough history for wealth
CUSTOMERS = 2_000
JUMP_AMOUNT = 25_000.0


class PathError(AssertionError):
    """A stage of the path did not happen in time; the message names it and quotes the relevant log."""


class Worker(LoggedProcess):
    """A worker run as ``game-analytics worker <kind> ...`` (log ``<name>.log``), without the caller's
    GAME_ANALYTICS_* variables but with ``env``."""

    def __init__(self, name: str, argv: list[str], logs: Path, env: dict[str, str] | None = None,
                 kind: str | None = None):
        base = {k: v for k, v in os.environ.items() if not k.startswith("GAME_ANALYTICS_")}
        super().__init__(name, self.cli("worker", kind or name, *argv), {**base, **(env or {})}, logs / f"{name}.log")


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` of ``http://127.0.0.1:<port>/metrics`` ({} if not reachable)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            body = response.read().decode()
    except OSError:
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def example_rule() -> tuple[Owner, AlertRuleSpec]:
    """The wealth-jump example as (owner, spec), PagerDuty channel left out (unreachable from here)."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"]["channels"] = [c for c in doc["spec"]["channels"] if "pagerduty" not in c]
    owner = Owner(doc["apiVersion"], doc["kind"], doc["metadata"]["name"], NAMESPACE, "uid-alert-path", 1)
    return owner, AlertRuleSpec.model_validate(doc["spec"])


def cdnow_subset(customers: int = CUSTOMERS) -> list[dict[str, Any]]:
    """Purchase events of CDNOW customers ``1..customers`` in the ingest schema (real data, ``make data``)."""
    frame = load_cdnow_master()
    return [to_event(e) for e in purchase_events(frame[frame["customer_id"] <= customers])]


@dataclass
class Page:
    """One alert of a webhook notification and when it arrived (Unix seconds)."""

    path: str
    received_at: float
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]

    @property
    def streaming(self) -> bool:
        """Whether the streaming path's Alertmanager sent it (its receivers post under ``/stream-``)."""
        return self.path.startswith("/stream-")


@dataclass
class AlertPath:
    """Start the path on an existing migrated database ``dsn`` and Redis ``redis_url`` (see the module docstring).

    Call :meth:`start`, then :meth:`load_history`, :meth:`inject_jump` / :meth:`wait_page`, :meth:`advance` /
    :meth:`wait_resolved`; always :meth:`stop` (stops every process it started, by PID).

    Args:
        workdir: logs, configuration and TSDB folders (created).
        dsn: SQLAlchemy URL of a migrated database (loaded here with a CDNOW subset).
        redis_url: ``redis://`` URL; the stream name is unique per instance.
        interval: detection interval in seconds (``--interval``) of the worker Prometheus scrapes.
        streaming: also run the streaming path: a second detection worker reading the stream in its own group
            and posting to a second Alertmanager (same routing; its receivers post to ``/stream-...``), so that
            the pages of each path are told apart.
        prometheus_interval: Prometheus' scrape and evaluation interval.
        group_wait / group_interval: the Alertmanager route timing of both Alertmanagers; ``stream_group_wait``
            and ``stream_group_interval`` (default: the same) that of the streaming path's.
    """

    workdir: Path
    dsn: str
    redis_url: str
    interval: float = 0.5
    streaming: bool = False
    prometheus_interval: str = "1s"
    group_wait: str = "0s"
    group_interval: str = "1s"
    stream_group_wait: str | None = None
    stream_group_interval: str | None = None
    stream: str = field(default_factory=lambda: f"alert-path-{uuid.uuid4().hex[:8]}")
    _stops: list[Callable[[], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.logs = self.workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.owner, self.spec = example_rule()
        self.rule = f"{NAMESPACE}/{self.owner.name}"
        self.alert_name = alertrule.alert_name(self.owner.name)
        self.engine = create_engine(self.dsn)
        self._stops.append(self.engine.dispose)
        self.workers: list[Worker] = []

    # -- processes --------------------------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str], **kwargs: Any) -> Worker:
        worker = Worker(name, argv, self.logs, **kwargs)
        self._stops.append(worker.stop)
        self.workers.append(worker)
        return worker

    def alive(self) -> None:
        """Raises PathError if a worker died."""
        for worker in self.workers:
            worker.check_alive()

    def start(self) -> AlertPath:
        """Render the rule, start the webhook, Alertmanager, ingest and detection workers and Prometheus."""
        children = {m["kind"]: m for m in alertrule.render(self.owner, self.spec)}
        groups = children["PrometheusRule"]["spec"]["groups"]
        rules_dir = self.workdir / "rules" / self.owner.name
        rules_dir.mkdir(parents=True, exist_ok=True)
        (rules_dir / alertrule.DETECTOR_CONFIG_KEY).write_text(
            children["ConfigMap"]["data"][alertrule.DETECTOR_CONFIG_KEY])

        self.pager = WebhookReceiver(log_file=self.workdir / "pages.jsonl")
        self._stops.append(self.pager.stop)
        secrets = {("alerting-secrets", "pager-webhook-url"): f"{self.pager.url}/ops",
                   ("alerting-secrets", "slack-webhook-url"): f"{self.pager.url}/slack"}
        self.alertmanager = self._alertmanager("alertmanager", secrets)
        if self.streaming:
            self.stream_alertmanager = self._alertmanager("alertmanager-stream", {
                k: v.replace(self.pager.url + "/", self.pager.url + "/stream-") for k, v in secrets.items()},
                self.stream_group_wait, self.stream_group_interval)

        self.ingest_port, self.detection_port, self.stream_port = free_port(), free_port(), free_port()
        self._spawn("ingest", ["--redis-url", self.redis_url, "--dsn", self.dsn, "--stream", self.stream,
                               "--group", "ingest", "--consumer", "alert-path", "--block-ms", "100",
                               "--metrics-port", str(self.ingest_port)])
        self._spawn("detection", ["--dsn", self.dsn, "--rules-dir", str(self.workdir / "rules"),
                                  "--interval", str(self.interval), "--as-of", "latest",
                                  "--model-dir", str(self.workdir / "models"), "--port", str(self.detection_port)])
        if self.streaming:
            self._spawn("detection-stream", [
                "--dsn", self.dsn, "--rules-dir", str(self.workdir / "rules"), "--interval", str(self.interval),
                "--as-of", "latest", "--model-dir", str(self.workdir / "models-stream"),
                "--port", str(self.stream_port)], kind="detection", env={
                "GAME_ANALYTICS_ALERTMANAGER_URLS": self.stream_alertmanager.url,
                "GAME_ANALYTICS_REDIS_URL": self.redis_url, "GAME_ANALYTICS_STREAM": self.stream,
                "GAME_ANALYTICS_NAMESPACE": NAMESPACE})
        self.prometheus = Prometheus(self.workdir / "prometheus", {
            "ingest": [f"127.0.0.1:{self.ingest_port}"], "detection": [f"127.0.0.1:{self.detection_port}"],
        }, groups, alertmanager=self.alertmanager.address, interval=self.prometheus_interval,
            target_labels={"namespace": NAMESPACE})
        self._stops.append(self.prometheus.stop)
        return self

    def _alertmanager(self, name: str, secrets: dict[tuple[str, str], str],
                      group_wait: str | None = None, group_interval: str | None = None) -> Alertmanager:
        """An Alertmanager routing the rule as the operator would, its receivers' URLs from ``secrets``."""
        secrets_dir = self.workdir / f"{name}-secrets"
        options = am.Options(resolve_secret=lambda n, key: secrets[(n, key)], secrets_dir=str(secrets_dir),
                             group_wait=group_wait or self.group_wait,
                             group_interval=group_interval or self.group_interval,
                             repeat_interval="1h")
        routing = [am.RuleRouting(NAMESPACE, self.owner.name, self.spec)]
        for secret, keys in am.mounted_secrets(routing, options).items():
            for key in keys:  # what the Alertmanager pod would mount from the Secret
                (secrets_dir / secret).mkdir(parents=True, exist_ok=True)
                (secrets_dir / secret / key).write_text(secrets[(secret, key)])
        manager = Alertmanager(self.workdir / name, am.render(routing, options))
        self._stops.append(manager.stop)
        return manager

    def stop(self) -> None:
        """Stop everything started, in reverse order (processes by PID)."""
        while self._stops:
            self._stops.pop()()

    # -- data -------------------------------------------------------------------------------------------------
    def flagged(self, port: int | None = None) -> float | None:
        """The detection worker's (on ``port``; default the one Prometheus scrapes) current flagged-subjects
        value for the rule (None before its first pass)."""
        for (name, labels), value in scrape(port or self.detection_port).items():
            if name == names.DETECTION_FLAGGED and dict(labels).get("rule") == self.rule:
                return value
        return None

    def load_history(self) -> int:
        """COPY the CDNOW subset into PostgreSQL; wait until Prometheus sees the workers up and the rule evaluated
        on the history with nothing flagged. Returns the number of events stored."""
        result = copy_events(cdnow_subset(), self.dsn)
        assert result.dead_lettered == 0, result
        wait_for("Prometheus to scrape both workers", lambda: len([
            r for r in self.prometheus.query("up == 1")]) == 2, 60, interval=0.2, alive=self.alive, error=PathError)
        wait_for("the first detection pass on the history", lambda: self.flagged() is not None, 60,
                 interval=0.05, alive=self.alive, error=PathError)
        if self.streaming:
            wait_for("the streaming worker's first pass", lambda: self.flagged(self.stream_port) is not None, 60,
                     interval=0.05, alive=self.alive, error=PathError)
        if (value := self.flagged()) != 0:
            raise PathError(f"the real history alone flags {value} subjects: pick another subset")
        return result.inserted

    def latest(self) -> datetime:
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT max(occurred_at) FROM events")).scalar_one()

    def modest_customer(self, skip: int = 0) -> str:
        """A customer whose whole history is worth $150-400, so that one big purchase is a sudden jump; ``skip``
        picks the next ones (one per jump: a second jump of the same customer is no longer sudden)."""
        with self.engine.connect() as conn:
            return conn.execute(text(
                "SELECT player_id FROM events WHERE event_type = 'purchase' GROUP BY player_id "
                "HAVING sum((payload->>'amount')::numeric) BETWEEN 150 AND 400 ORDER BY player_id "
                "LIMIT 1 OFFSET :skip"), {"skip": skip}).scalar_one()

    def publish(self, player: str, at: datetime, amount: float) -> float:
        """Publish one purchase through the Redis stream; returns the Unix time just before ``XADD``."""
        event = {"event_id": str(uuid.uuid4()), "event_type": "purchase", "occurred_at": at.astimezone(UTC).isoformat(),
                 "player_id": player, "game": "cdnow", "region": "US",
                 "payload": {"quantity": 1, "amount": amount, "currency": "USD"}}
        sent = time.time()
        publish_events([event], self.redis_url, stream=self.stream)
        return sent

    def inject_jump(self, skip: int = 0) -> tuple[str, datetime, float]:
        """A modest customer (:meth:`modest_customer` ``skip``) buys :data:`JUMP_AMOUNT` 30 minutes after the
        newest event; returns ``(player, occurred_at, sent_at)``."""
        player, at = self.modest_customer(skip), self.latest() + timedelta(minutes=30)
        return player, at, self.publish(player, at, JUMP_AMOUNT)

    def advance(self, after: datetime) -> float:
        """Move ``--as-of latest`` two hours past ``after`` with a small first purchase of a new customer (below
        the rule's ``minWealth``, so it flags nothing): the jump leaves the 1 h window. Returns the send time."""
        return self.publish(f"cdnow-probe-{uuid.uuid4().hex[:6]}", after + timedelta(hours=2), 10.0)

    # -- pages ------------------------------------------------------------------------------------------------
    def pages(self) -> list[Page]:
        return [Page(entry["path"], entry["received_at"], alert["status"], alert["labels"], alert["annotations"])
                for entry in list(self.pager.received) for alert in entry["body"].get("alerts", [])
                if alert["labels"].get("alertname") == self.alert_name]

    def wait_page(self, status: str, since: float, timeout: float = 60, streaming: bool = False) -> Page:
        """The first ``status`` ("firing" / "resolved") page of the rule received after ``since`` through the
        Prometheus path (or, with ``streaming``, the streaming path)."""
        def found() -> Page | None:
            return next((p for p in self.pages() if p.status == status and p.received_at >= since
                         and p.streaming == streaming), None)
        path = "streaming" if streaming else "Prometheus"
        return wait_for(f"a {status} {self.alert_name} page by the {path} path (logs in {self.logs}, "
                        f"{self.workdir})", found, timeout, interval=0.05, alive=self.alive, error=PathError)


    def cycle(self) -> dict[str, Any]:
        """Inject a jump, wait for its page, advance past the window, wait for the resolved page.

        Returns ``{"player", "latency" (event to page, s), "resolve_latency" (clearing event to resolved page, s),
        "firing": Page, "resolved": Page}``. Raises PathError when a page does not come within 60 s.
        """
        player, at, sent = self.inject_jump()
        firing = self.wait_page("firing", sent)
        cleared = self.advance(at)
        resolved = self.wait_page("resolved", cleared)
        return {"player": player, "latency": firing.received_at - sent,
                "resolve_latency": resolved.received_at - cleared, "firing": firing, "resolved": resolved}


def run(workdir: Path, dsn: str, redis_url: str, *, cycles: int = 1, interval: float = 0.5) -> dict[str, Any]:
    """Start the path, load the history, run ``cycles`` jump/page/resolve cycles, stop everything.

    Returns ``{"events", "ready_seconds", "rule", "alert", "cycles": [cycle results], "pages", "received",
    "stored": [(rule, player) of the detections]}``.
    """
    path = AlertPath(workdir, dsn, redis_url, interval=interval)
    try:
        path.start()
        started = time.monotonic()
        events = path.load_history()
        ready_seconds = time.monotonic() - started
        results = [path.cycle() for _ in range(cycles)]
        return {"events": events, "ready_seconds": ready_seconds, "rule": path.rule, "alert": path.alert_name,
                "cycles": results, "pages": path.pages(), "received": list(path.pager.received),
                "stored": _detections(path)}
    finally:
        path.stop()


def _detections(path: AlertPath) -> list[tuple[str, str]]:
    with path.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT rule, player_id FROM detections ORDER BY id"))]
