"""The steps both modes of ``make demo`` share (:mod:`devtools.demo_node`, :mod:`devtools.demo_processes`).

:class:`DemoBase` holds the helpers (kubectl, the Stack of what was started) and the steps that do not depend on
where the workers run: the example Secrets and manifests with :func:`local_overlay`, Prometheus and Alertmanager
from the rendered PrometheusRules and AlertRules, the real data replayed through the event stream, the wealth jump
injected and paged, the leaderboard read back and the summary. A mode supplies where things are: the DSN, the
Redis master URL, the scrape targets, and whether the workers are alive.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from . import REPO_ROOT
from .processes import LoggedProcess
from .waiting import wait_for

ROOT = REPO_ROOT
EXAMPLES = ROOT / "examples"
NAMESPACE = "games"
SYSTEM_NAMESPACE = "game-analytics-system"
RELEASE = "ga"
DATABASE = "game_analytics"
REDIS_PASSWORD = "demo-" + "leaderboards"
#: the Sentinels' own password (examples/redisfailover.yaml spec.sentinel.authSecretRef)
SENTINEL_PASSWORD = "demo-" + "sentinels"
WATCHED_ALERT = "WhaleWealthJump"
EXPECTED_EVENTS = 14_018 + 69_659  # Bundesliga matches + CDNOW purchases

console = Console(highlight=False, soft_wrap=True)


class DemoError(RuntimeError):
    """A step failed; the message says what and where to look."""


class Stack:
    """Everything the demo started, stopped in reverse order; PIDs are recorded in ``state.json``."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self._stops: list[tuple[str, Callable[[], None]]] = []
        self.pids: dict[str, int] = {}

    def add(self, name: str, stop: Callable[[], None], pid: int | dict[str, int] | None = None) -> None:
        """Register ``stop``; record ``pid`` (or several, by name) so that ``--down`` can stop a crashed demo."""
        self._stops.append((name, stop))
        pids = pid if isinstance(pid, dict) else {name: pid} if pid else {}
        if pids:
            self.pids.update(pids)
            (self.workdir / "state.json").write_text(json.dumps({"pids": self.pids}, indent=2))

    def close(self) -> None:
        """Run every registered stop, newest first; a failing one is reported and the rest still run."""
        while self._stops:
            name, stop = self._stops.pop()
            try:
                stop()
            except Exception as exc:  # keep stopping the rest
                console.print(f"  [yellow]could not stop {name}: {exc}[/]")
        (self.workdir / "state.json").unlink(missing_ok=True)


@contextmanager
def step(number: int, total: int, title: str) -> Iterator[None]:
    """Print ``[number/total] title ...`` and, once the block is done, how long it took."""
    started = time.monotonic()
    console.print(f"[bold cyan][{number}/{total}][/] {title} ...")
    yield
    console.print(f"      [green]done[/] in {time.monotonic() - started:.1f}s")


def local_overlay(doc: dict, *, sentinels: list[tuple[str, int]] | None, smtp: tuple[str, int],
                  node: bool = False) -> tuple[dict, list[str]]:
    """Adapt an example to this machine, returning the changed document and what changed (printed to the user).

    The examples are written for a real cluster; here SMTP goes to the local sink at ``smtp`` (host, port),
    PagerDuty (unreachable here) is left out, and detection runs every 2 s. ``sentinels``: the local Sentinels
    the operator probes (process mode); ``None`` when the operator runs as a pod and probes the Sentinel pods.
    ``node``: the workers run as pods with the current time as their as-of, so the GameDataSource keeps the
    replayed 1963-2009 data (no retention).
    """
    doc = json.loads(json.dumps(doc))
    kind, name, spec = doc["kind"], doc["metadata"]["name"], doc["spec"]
    smtp_host, smtp_port = smtp
    changes = []
    if kind == "RedisFailover" and sentinels is not None:
        addresses = ",".join(f"{h}:{p}" for h, p in sentinels)
        doc["metadata"].setdefault("annotations", {})["gameanalytics.io/probe-addresses"] = addresses
        changes.append(f"{kind}/{name}: probe the local Sentinels {addresses}")
    if kind == "AlertRule":
        kept = [c for c in spec.get("channels", []) if "pagerduty" not in c]
        if len(kept) != len(spec.get("channels", [])):
            changes.append(f"{kind}/{name}: PagerDuty channel left out (no route to PagerDuty from here)")
        for channel in kept:
            if "email" in channel:
                channel["email"].update(smarthost=f"{smtp_host}:{smtp_port}", requireTLS=False)
                channel["email"].pop("authUsername", None)
                channel["email"].pop("authPasswordSecretRef", None)
                changes.append(f"{kind}/{name}: email through the local SMTP sink")
        spec["channels"] = kept
    if kind == "ScheduledReport" and "email" in spec.get("delivery", {}):
        smtp_spec = spec["delivery"]["email"]["smtp"]
        smtp_spec.update(host=smtp_host, port=smtp_port, startTLS=False)
        smtp_spec.pop("username", None)
        smtp_spec.pop("passwordSecretRef", None)
        changes.append(f"{kind}/{name}: email through the local SMTP sink")
    if kind == "GameDataSource":
        spec.setdefault("workers", {}).setdefault("detection", {})["intervalSeconds"] = 2
        changes.append(f"{kind}/{name}: detection every 2 s")
        if node and spec.pop("retention", None):
            changes.append(f"{kind}/{name}: no retention (the replayed data is 1963-2009)")
    return doc, changes


def example_documents() -> list[dict]:
    """Every document of ``examples/*.yaml``, in file order."""
    return [doc for path in sorted(EXAMPLES.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


class DemoBase:
    """The helpers and shared steps; a mode sets :attr:`kubeconfig`, :attr:`dsn`, :attr:`redis_url`, the
    webhooks and the SMTP sink, and overrides :meth:`alive`."""

    #: "node" or "processes"
    mode = ""
    kubeconfig: Path
    dsn: str
    redis_url: str
    env: dict[str, str]

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.stack = Stack(workdir)
        self.figures: dict[str, Any] = {}

    # -- helpers ---------------------------------------------------------------------------------------------
    def kubectl(self, *args: str, input: str | None = None, timeout: float = 120) -> str:
        """Run kubectl as cluster admin; its stdout. Raises :class:`DemoError` with stderr on failure."""
        result = subprocess.run([self.bin("kubectl"), f"--kubeconfig={self.kubeconfig}", *args], input=input,
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise DemoError(f"kubectl {' '.join(args)} failed:\n{result.stderr.strip()}")
        return result.stdout

    def get(self, *args: str) -> dict:
        """``kubectl get ARGS -n games -o json``, parsed."""
        return json.loads(self.kubectl("get", *args, "-n", NAMESPACE, "-o", "json"))

    def secret(self, name: str, key: str) -> str:
        """The decoded value of ``key`` in Secret ``name`` (namespace games)."""
        return base64.b64decode(self.get("secret", name)["data"][key]).decode()

    @staticmethod
    def bin(name: str) -> str:
        """The path of tool ``name`` in .cache/bin or on PATH; :class:`DemoError` when missing."""
        found = shutil.which(name, path=f"{ROOT / '.cache' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
        if not found:
            raise DemoError(f"{name} not found: run `make tools` (or plain `make demo`, which installs it)")
        return found

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> LoggedProcess:
        """Start a logged process (logs/NAME.log) and register it to be stopped."""
        process = LoggedProcess(name, argv, env, self.logs / f"{name}.log")
        self.stack.add(name, process.stop, process.pid)
        return process

    def alive(self) -> None:
        """Raise :class:`DemoError` when a worker the demo depends on died (checked while waiting)."""

    # -- shared steps ----------------------------------------------------------------------------------------
    def webhooks(self, host: str = "127.0.0.1") -> None:
        """The pager and chat webhooks and the SMTP sink, listening on ``host``."""
        from .monitoring_stack import SmtpSink, WebhookReceiver

        self.pager = WebhookReceiver(log_file=self.workdir / "pages.jsonl", host=host)
        self.chat = WebhookReceiver(log_file=self.workdir / "chat.jsonl", host=host)
        self.smtp = SmtpSink(self.workdir / "mail", host=host)
        for name, server in (("pager", self.pager), ("chat", self.chat), ("smtp", self.smtp)):
            self.stack.add(name, server.stop, None)
        console.print(f"      pager webhook {self.pager.url}, chat webhook {self.chat.url}, "
                      f"SMTP sink {host}:{self.smtp.port}")

    def create_secrets(self, dsn: str) -> None:
        """The namespace and the Secrets the examples name, pointing at this machine's services."""
        self.kubectl("create", "namespace", NAMESPACE)
        secrets = {
            "analytics-postgres": {"dsn": dsn},
            "analytics-postgres-owner": {"dsn": dsn},  # one role here: it owns the schema and writes
            "leaderboards-redis": {"password": REDIS_PASSWORD},
            "leaderboards-sentinel": {"password": SENTINEL_PASSWORD},
            "alerting-secrets": {"pager-webhook-url": f"{self.pager.url}/ops", "slack-webhook-url": f"{self.chat.url}/slack",
                                 "discord-webhook-url": f"{self.chat.url}/discord",
                                 "crm-webhook-url": f"{self.chat.url}/crm"},  # examples/alertrule-churn-risk.yaml
            "reporting-secrets": {"slack-webhook-url": f"{self.chat.url}/report"},
        }
        for name, data in secrets.items():
            self.kubectl("create", "secret", "generic", name, "-n", NAMESPACE,
                         *(f"--from-literal={k}={v}" for k, v in data.items()))

    def apply(self, docs: list[dict], *, timeout: float, alive: Callable[[], None] | None = None) -> None:
        """Apply ``docs`` and wait until every custom resource is Ready for its current generation."""
        self.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=yaml.safe_dump_all(docs))
        self.examples = docs

        def ready(item: dict) -> bool:
            # a MongoShardedCluster is Ready only once bootstrapped, which needs a live mongod (none runs here):
            # its children applied, it stays Ready=False with reason Bootstrapping
            return any(c["type"] == "Ready" and c.get("observedGeneration") == item["metadata"]["generation"]
                       and (c["status"] == "True" or (item["kind"] == "MongoShardedCluster" and c["status"] == "False"
                                                      and c["reason"] == "Bootstrapping"))
                       for c in item.get("status", {}).get("conditions", []))

        def all_ready() -> bool:
            items = self.get("game-analytics")["items"]
            return len(items) == len(docs) and all(map(ready, items))

        try:
            wait_for("every custom resource to be Ready (see the operator's log)", all_ready, timeout, alive=alive,
                     error=DemoError, interval=1)
        except DemoError as exc:  # name the ones that are not, with their Ready condition
            pending = [f"{i['kind']}/{i['metadata']['name']}: " + ("; ".join(
                f"{c['status']} {c.get('reason', '')}: {c.get('message', '')}"
                for c in i.get("status", {}).get("conditions", []) if c["type"] == "Ready") or "no Ready condition")
                for i in self.get("game-analytics")["items"] if not ready(i)]
            raise DemoError(f"{exc}\nnot Ready:\n  " + "\n  ".join(pending)) from None
        console.print(self.kubectl("get", "game-analytics", "-n", NAMESPACE).rstrip())

    def monitoring(self, targets: dict[str, list[str]]) -> None:
        """Prometheus with the rule groups of the rendered PrometheusRules scraping ``targets`` ({job: [addr]}),
        and Alertmanager with the routing rendered from the AlertRules."""
        from game_analytics.api.alertrule import AlertRuleSpec

        from . import alertmanager as am
        from .monitoring_stack import Alertmanager, Prometheus

        groups = [g for rule in self.get("prometheusrules")["items"] for g in rule["spec"]["groups"]]
        routing = [am.RuleRouting(NAMESPACE, r["metadata"]["name"], AlertRuleSpec.model_validate(r["spec"]))
                   for r in self.get("alertrules")["items"]]
        secrets_dir = self.workdir / "alertmanager-secrets"
        options = am.Options(resolve_secret=self.secret, secrets_dir=str(secrets_dir), group_wait="0s",
                             group_interval="1s", repeat_interval="1h")
        for name, keys in am.mounted_secrets(routing, options).items():
            for key in keys:
                (secrets_dir / name).mkdir(parents=True, exist_ok=True)
                (secrets_dir / name / key).write_text(self.secret(name, key))
        self.alertmanager = Alertmanager(self.workdir / "alertmanager", am.render(routing, options))
        self.stack.add("alertmanager", self.alertmanager.stop, self.alertmanager.pid)
        self.prometheus = Prometheus(self.workdir / "prometheus", targets, groups,
                                     alertmanager=self.alertmanager.address, target_labels={"namespace": NAMESPACE})
        self.stack.add("prometheus", self.prometheus.stop, self.prometheus.pid)
        console.print(f"      Prometheus {self.prometheus.url} ({len(groups)} rule groups read from the "
                      f"PrometheusRules), Alertmanager {self.alertmanager.url} (routing rendered from "
                      f"{len(routing)} AlertRules)")

    def replay(self, where: str) -> None:
        """Publish the real data sets to the stream at :attr:`redis_url`; wait until ``where`` stored them all."""
        from sqlalchemy import create_engine, text

        started = time.monotonic()
        load = subprocess.run([sys.executable, "-m", "game_analytics.cli", "load", "--dataset", "all", "--via",
                               "stream", "--redis-url", self.redis_url, "--stream", self.env["GAME_ANALYTICS_STREAM"]],
                              env=self.env, cwd=ROOT, timeout=600)
        if load.returncode != 0:
            raise DemoError("game-analytics load failed (is the data there? `make data`)")
        self.engine = create_engine(self.dsn)

        def ingested() -> int:
            with self.engine.connect() as conn:
                n = conn.execute(text("SELECT count(*) FROM events")).scalar_one()
            return n if n >= EXPECTED_EVENTS else 0

        n = wait_for(f"{EXPECTED_EVENTS} events ingested (see {where})", ingested, 300, alive=self.alive,
                     error=DemoError)
        seconds = time.monotonic() - started
        self.figures["ingest"] = (n, seconds)
        console.print(f"      {n:,} events (Bundesliga matches, CDNOW purchases) published and ingested "
                      f"in {seconds:.1f}s")

    def top_of_leaderboard(self) -> list[tuple[int, str, float]]:
        """The first 10 of the newest season's leaderboard in PostgreSQL: (rank, player, rating)."""
        from sqlalchemy import text

        with self.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT rank, player_id, rating FROM leaderboard_entries WHERE rank <= 10 "
                "ORDER BY season DESC, rank LIMIT 10")).all()
        return [(r.rank, r.player_id, float(r.rating)) for r in rows]

    def latest_event(self, game: str | None = None) -> datetime:
        """The newest ``occurred_at`` stored (of ``game``, if given)."""
        from sqlalchemy import text

        where = " WHERE game = :game" if game else ""
        with self.engine.connect() as conn:
            return conn.execute(text(f"SELECT max(occurred_at) FROM events{where}"), {"game": game}).scalar_one()

    def inject_and_page(self, at: datetime) -> None:
        """Publish a $25,000 purchase at ``at`` by a customer with a modest history; wait for its page."""
        from sqlalchemy import text

        from game_analytics.workers.load import publish_events

        with self.engine.connect() as conn:
            # a customer with a modest history, so that one big purchase is a sudden jump in wealth
            player = conn.execute(text(
                "SELECT player_id FROM events WHERE event_type = 'purchase' GROUP BY player_id "
                "HAVING sum((payload->>'amount')::numeric) BETWEEN 150 AND 400 ORDER BY player_id LIMIT 1")).scalar_one()
        at = at.astimezone(UTC)
        event = {"event_id": str(uuid.uuid4()), "event_type": "purchase", "occurred_at": at.isoformat(),
                 "player_id": player, "game": "cdnow", "region": "US",
                 "payload": {"quantity": 400, "amount": 25_000.0, "currency": "USD"}}
        sent = time.time()
        publish_events([event], self.redis_url, stream=self.env["GAME_ANALYTICS_STREAM"])
        console.print(f"      injected a sudden wealth jump: {player} buys $25,000 at {at:%Y-%m-%d %H:%M} UTC")

        def paged() -> dict | None:
            for entry in self.pager.received:
                for alert in entry["body"].get("alerts", []):
                    if alert["labels"].get("alertname") == WATCHED_ALERT and alert["status"] == "firing":
                        return entry
            return None

        entry = wait_for(f"a {WATCHED_ALERT} page (logs: detection, prometheus/, alertmanager/)", paged, 180,
                         alive=self.alive, error=DemoError)
        self.figures["page_latency"] = entry["received_at"] - sent
        self.figures["page"] = entry
        self.figures["flagged_player"] = player

    def wait_delivered(self) -> None:
        """Wait for the report on the chat webhook (path /report) and in the SMTP sink."""
        wait_for("the report by webhook", lambda: any(e["path"] == "/report" for e in self.chat.received), 30,
                 error=DemoError)
        wait_for("the report by email", lambda: self.smtp.messages, 30, error=DemoError)

    def summary(self, report_where: list[str]) -> None:
        """Print the leaderboard, the alerts, the page, the figures and where the report went."""
        table = Table(title="Leaderboard (Glicko-2, Bundesliga 1963-2009)")
        for col in ("rank", "club", "rating"):
            table.add_column(col)
        for rank, player, rating in self.leaderboard:
            table.add_row(str(rank), player, f"{rating:.1f}")
        console.print(table)
        alerts = [a for a in self.prometheus.alerts() if a["state"] == "firing"]
        console.print("Alerts firing in Prometheus: " + (", ".join(sorted({a["labels"]["alertname"] for a in alerts}))
                                                         or "none"))
        page = self.figures["page"]["body"]["alerts"][0]
        console.print(f"Page received: {page['labels']['alertname']} severity={page['labels'].get('severity')} "
                      f"player flagged={self.figures['flagged_player']} runbook={page['annotations'].get('runbook_url')}")
        console.print(f"  event-to-page latency {self.figures['page_latency']:.1f}s "
                      f"(pages: {self.workdir / 'pages.jsonl'})")
        n, seconds = self.figures["ingest"]
        console.print(f"Ingest: {n:,} real events in {seconds:.1f}s; ranking run {self.figures['ranking_seconds']:.1f}s;"
                      f" report run + delivery {self.figures['report_seconds']:.1f}s")
        console.print(f"Report delivered by webhook ({self.workdir / 'chat.jsonl'}) and email "
                      f"({self.workdir / 'mail'}); files:")
        for line in report_where:
            console.print(f"  {line}")
        console.print(f"Prometheus {self.prometheus.url}   Alertmanager {self.alertmanager.url}")
        console.print(f"kubectl: export KUBECONFIG={self.kubeconfig}; kubectl get game-analytics -n {NAMESPACE}")
        console.print(f"Logs: {self.logs}")

    def run_steps(self, steps: list[tuple[str, Callable[[], Any]]]) -> None:
        """Run ``(title, action)`` steps, numbered."""
        for number, (title, action) in enumerate(steps, 1):
            with step(number, len(steps), title):
                action()

