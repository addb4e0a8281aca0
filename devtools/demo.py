"""``make demo``: the whole stack on real data on one machine, end to end, with progress at each step.

1. a real control plane (etcd, kube-apiserver, kube-controller-manager), the chart's CRDs and RBAC, the operator
   running with the chart ServiceAccount's token;
2. PostgreSQL, Redis with Sentinel, a pager webhook, a chat webhook and an SMTP sink on loopback;
3. ``examples/`` applied (with the local overlay listed by :func:`local_overlay`);
4. the workers as local processes, configured from what the operator rendered (read back from the API), Prometheus
   with the rendered rules, Alertmanager with routing rendered from the AlertRules;
5. the real data replayed through the event stream, a leaderboard, a sudden wealth jump detected and paged, a
   report delivered by webhook and email;
6. a summary, then everything is stopped by PID (``--keep`` leaves it running; ``--down`` stops a kept demo).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from . import REPO_ROOT, prometheus_operator
from .processes import LoggedProcess
from .waiting import wait_for

ROOT = REPO_ROOT
EXAMPLES = ROOT / "examples"
NAMESPACE = "games"
SYSTEM_NAMESPACE = "game-analytics-system"
RELEASE = "ga"
DATABASE = "game_analytics"
REDIS_PASSWORD = "demo-" + "leaderboards"
WATCHED_ALERT = "WhaleWealthJump"

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
        while self._stops:
            name, stop = self._stops.pop()
            try:
                stop()
            except Exception as exc:  # keep stopping the rest
                console.print(f"  [yellow]could not stop {name}: {exc}[/]")
        (self.workdir / "state.json").unlink(missing_ok=True)


@contextmanager
def step(number: int, total: int, title: str) -> Iterator[None]:
    started = time.monotonic()
    console.print(f"[bold cyan][{number}/{total}][/] {title} ...")
    yield
    console.print(f"      [green]done[/] in {time.monotonic() - started:.1f}s")


def local_overlay(doc: dict, *, sentinels: list[tuple[str, int]], smtp_port: int) -> tuple[dict, list[str]]:
    """Adapt an example to this machine, returning the changed document and what changed (printed to the user).

    The examples are written for a real cluster; here the services run on loopback: SMTP goes to the local sink,
    the operator probes the local Sentinels, PagerDuty (unreachable here) is left out, and detection runs every 2 s.
    """
    doc = json.loads(json.dumps(doc))
    kind, name, spec = doc["kind"], doc["metadata"]["name"], doc["spec"]
    changes = []
    if kind == "RedisFailover":
        addresses = ",".join(f"{h}:{p}" for h, p in sentinels)
        doc["metadata"].setdefault("annotations", {})["gameanalytics.io/probe-addresses"] = addresses
        changes.append(f"{kind}/{name}: probe the local Sentinels {addresses}")
    if kind == "AlertRule":
        kept = [c for c in spec.get("channels", []) if "pagerduty" not in c]
        if len(kept) != len(spec.get("channels", [])):
            changes.append(f"{kind}/{name}: PagerDuty channel left out (no route to PagerDuty from here)")
        for channel in kept:
            if "email" in channel:
                channel["email"].update(smarthost=f"127.0.0.1:{smtp_port}", requireTLS=False)
                channel["email"].pop("authUsername", None)
                channel["email"].pop("authPasswordSecretRef", None)
                changes.append(f"{kind}/{name}: email through the local SMTP sink")
        spec["channels"] = kept
    if kind == "ScheduledReport" and "email" in spec.get("delivery", {}):
        smtp = spec["delivery"]["email"]["smtp"]
        smtp.update(host="127.0.0.1", port=smtp_port, startTLS=False)
        smtp.pop("username", None)
        smtp.pop("passwordSecretRef", None)
        changes.append(f"{kind}/{name}: email through the local SMTP sink")
    if kind == "GameDataSource":
        spec.setdefault("workers", {}).setdefault("detection", {})["intervalSeconds"] = 2
        changes.append(f"{kind}/{name}: detection every 2 s")
    return doc, changes


class Demo:
    """The demo's steps; attributes hold what later steps need."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.stack = Stack(workdir)
        self.figures: dict[str, Any] = {}

    # -- helpers ---------------------------------------------------------------------------------------------
    def kubectl(self, *args: str, input: str | None = None) -> str:
        result = subprocess.run([self.bin("kubectl"), f"--kubeconfig={self.cp.kubeconfig}", *args], input=input,
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise DemoError(f"kubectl {' '.join(args)} failed:\n{result.stderr.strip()}")
        return result.stdout

    def get(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-n", NAMESPACE, "-o", "json"))

    @staticmethod
    def bin(name: str) -> str:
        found = shutil.which(name, path=f"{ROOT / '.cache' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
        if not found:
            raise DemoError(f"{name} not found: run `make tools` (or plain `make demo`, which installs it)")
        return found

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> LoggedProcess:
        process = LoggedProcess(name, argv, env, self.logs / f"{name}.log")
        self.stack.add(name, process.stop, process.pid)
        return process

    # -- steps -----------------------------------------------------------------------------------------------
    def control_plane(self) -> None:
        from .cluster import LocalControlPlane, find_binaries
        from .operator_process import OperatorProcess

        started = time.monotonic()
        self.cp = LocalControlPlane(self.workdir / "cluster", find_binaries())
        self.cp.start()
        self.stack.add("control plane", self.cp.stop, dict(self.cp.pids))
        console.print(f"      kube-apiserver {self.cp.server} ready in {time.monotonic() - started:.1f}s "
                      f"(export KUBECONFIG={self.cp.kubeconfig})")
        self.kubectl(*prometheus_operator.apply_crds_args())  # the real CRDs (make prometheus-operator)
        helm = subprocess.run([self.bin("helm"), "install", RELEASE, str(ROOT / "charts" / "game-analytics"),
                               "--namespace", SYSTEM_NAMESPACE, "--create-namespace", "--kubeconfig",
                               str(self.cp.kubeconfig), "--set", "replicaCount=0"],
                              capture_output=True, text=True, timeout=120)
        if helm.returncode != 0:
            raise DemoError(f"helm install failed:\n{helm.stderr}")
        console.print("      helm install: CRDs, ServiceAccount and RBAC of the chart (the operator runs locally)")
        sa_kubeconfig = self.cp.service_account_kubeconfig(SYSTEM_NAMESPACE, f"{RELEASE}-game-analytics",
                                                           create=False)
        self.operator = OperatorProcess(sa_kubeconfig, self.logs / "operator.log", resync_seconds=5).start()
        self.stack.add("operator", self.operator.stop, self.operator.pid)
        console.print(f"      operator running as the chart's ServiceAccount, pid {self.operator.pid}")

    def services(self) -> None:
        from game_analytics.storage.migrate import upgrade

        from .monitoring_stack import SmtpSink, WebhookReceiver
        from .postgres import start_postgres
        from .redis import start_sentinel_set

        # its own temporary directory: the server runs as the unprivileged postgres user when we are root
        self.pg = start_postgres(settings={"synchronous_commit": "on"})
        self.stack.add("postgres", self.pg.stop, self.pg.pid)
        self.dsn = self.pg.create_database(DATABASE)
        upgrade(self.dsn)
        console.print(f"      PostgreSQL on 127.0.0.1:{self.pg.port}, schema migrated")
        failover = yaml.safe_load((EXAMPLES / "redisfailover.yaml").read_text())
        self.redis = start_sentinel_set(master_name=failover["spec"]["masterName"], password=REDIS_PASSWORD)
        self.stack.add("redis", self.redis.stop, self.redis.master.pid)
        console.print(f"      Redis master {self.redis.master.port}, replica {self.redis.replica.port}, Sentinels "
                      + ", ".join(str(p) for _, p in self.redis.sentinel_addresses))
        self.pager = WebhookReceiver(log_file=self.workdir / "pages.jsonl")
        self.chat = WebhookReceiver(log_file=self.workdir / "chat.jsonl")
        self.smtp = SmtpSink(self.workdir / "mail")
        for name, server in (("pager", self.pager), ("chat", self.chat), ("smtp", self.smtp)):
            self.stack.add(name, server.stop, None)
        console.print(f"      pager webhook {self.pager.url}, chat webhook {self.chat.url}, "
                      f"SMTP sink 127.0.0.1:{self.smtp.port}")

    def apply_examples(self) -> None:
        self.kubectl("create", "namespace", NAMESPACE)
        secrets = {
            "analytics-postgres": {"dsn": self.dsn},
            "leaderboards-redis": {"password": REDIS_PASSWORD},
            "alerting-secrets": {"pager-webhook-url": f"{self.pager.url}/ops", "slack-webhook-url": f"{self.chat.url}/slack",
                                 "discord-webhook-url": f"{self.chat.url}/discord"},
            "reporting-secrets": {"slack-webhook-url": f"{self.chat.url}/report"},
        }
        for name, data in secrets.items():
            self.kubectl("create", "secret", "generic", name, "-n", NAMESPACE,
                         *(f"--from-literal={k}={v}" for k, v in data.items()))
        docs = []
        for path in sorted(EXAMPLES.glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if doc:
                    doc, changes = local_overlay(doc, sentinels=self.redis.sentinel_addresses, smtp_port=self.smtp.port)
                    for change in changes:
                        console.print(f"      overlay: {change}")
                    docs.append(doc)
        self.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=yaml.safe_dump_all(docs))
        self.examples = docs

        def all_ready() -> bool:
            # a MongoShardedCluster is Ready only once bootstrapped, which needs a live mongod (none runs here):
            # its children applied, it stays Ready=False with reason Bootstrapping
            items = self.get("game-analytics")["items"]
            return len(items) == len(docs) and all(
                any(c["type"] == "Ready" and c.get("observedGeneration") == i["metadata"]["generation"]
                    and (c["status"] == "True" or (i["kind"] == "MongoShardedCluster" and c["status"] == "False"
                                                   and c["reason"] == "Bootstrapping"))
                    for c in i.get("status", {}).get("conditions", [])) for i in items)

        wait_for("every custom resource to be Ready (see logs/operator.log)", all_ready, 120,
                 alive=self.operator_alive, error=DemoError)
        console.print(self.kubectl("get", "game-analytics", "-n", NAMESPACE).rstrip())
        failover = self.get("redisfailover", "leaderboards")
        for c in failover["status"]["conditions"]:
            if c["type"] != "Ready":
                console.print(f"      RedisFailover {c['type']}={c['status']} ({c['reason']}): {c['message']}")
        pods = self.get("pods")["items"]
        console.print(f"      {len(pods)} pods exist but none runs: this control plane has no nodes")

    def worker_env(self) -> dict[str, str]:
        """The workers' environment, read back from what the operator rendered (ConfigMap + Secret refs)."""
        config = self.get("configmap", "default-workers")["data"]
        env = {**os.environ, **config}
        cluster_sentinels = config.get("GAME_ANALYTICS_REDIS_SENTINELS", "")
        local = ",".join(f"{h}:{p}" for h, p in self.redis.sentinel_addresses)
        console.print(f"      GAME_ANALYTICS_* from ConfigMap default-workers; Sentinels {cluster_sentinels} "
                      f"-> {local} (no cluster DNS on this machine)")
        deployment = self.get("deployment", "default-ingest")
        for var in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                secret = self.get("secret", ref["name"])
                env[var["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
        env.update(GAME_ANALYTICS_REDIS_SENTINELS=local, GAME_ANALYTICS_NAMESPACE=NAMESPACE,
                   GAME_ANALYTICS_AS_OF="latest", GAME_ANALYTICS_RETENTION="",  # replayed 1997-2019 data: no retention
                   PYTHONUNBUFFERED="1", MPLCONFIGDIR=str(self.workdir / "mpl"))
        env.pop("KUBECONFIG", None)
        return env

    def workers(self) -> None:
        from .waiting import free_port

        env = self.worker_env()
        self.env = env
        self.ports: dict[str, int] = {}
        procs = []
        for worker, extra in (("ingest", []), ("exporter", ["--ttl", "1"]), ("detection", [])):
            port = free_port()
            self.ports[worker] = port
            wenv = {**env, "GAME_ANALYTICS_METRICS_PORT": str(port)}
            if worker == "detection":  # reads its rules with the ServiceAccount the operator made for it
                wenv["KUBECONFIG"] = str(self.cp.service_account_kubeconfig(NAMESPACE, "default-detection",
                                                                            create=False))
            procs.append(self.spawn(worker, LoggedProcess.cli("worker", worker, *extra), wenv))
        self.worker_procs = procs
        console.print("      ingest, exporter and detection workers running: "
                      + ", ".join(f"{p.name} pid {p.pid} :{self.ports[p.name]}" for p in procs))
        self.monitoring()

    def operator_alive(self) -> None:
        if self.operator.proc.poll() is not None:
            raise DemoError(f"the operator exited; see {self.operator.log_path}")

    def alive(self) -> None:
        for p in self.worker_procs:
            p.check_alive()

    def monitoring(self) -> None:
        from game_analytics.api.alertrule import AlertRuleSpec

        from . import alertmanager as am
        from .monitoring_stack import Alertmanager, Prometheus

        groups = [g for rule in self.get("prometheusrules")["items"] for g in rule["spec"]["groups"]]

        def secret(name: str, key: str) -> str:
            return base64.b64decode(self.get("secret", name)["data"][key]).decode()

        routing = [am.RuleRouting(NAMESPACE, r["metadata"]["name"], AlertRuleSpec.model_validate(r["spec"]))
                   for r in self.get("alertrules")["items"]]
        secrets_dir = self.workdir / "alertmanager-secrets"
        options = am.Options(resolve_secret=secret, secrets_dir=str(secrets_dir), group_wait="0s",
                             group_interval="1s", repeat_interval="1h")
        for name, keys in am.mounted_secrets(routing, options).items():
            for key in keys:
                (secrets_dir / name).mkdir(parents=True, exist_ok=True)
                (secrets_dir / name / key).write_text(secret(name, key))
        self.alertmanager = Alertmanager(self.workdir / "alertmanager", am.render(routing, options))
        self.stack.add("alertmanager", self.alertmanager.stop, self.alertmanager.pid)
        targets = {f"game-analytics-{w}": [f"127.0.0.1:{p}"] for w, p in self.ports.items()}
        targets["game-analytics-operator"] = [f"127.0.0.1:{self.operator.metrics_port}"]
        self.prometheus = Prometheus(self.workdir / "prometheus", targets, groups,
                                     alertmanager=self.alertmanager.address, target_labels={"namespace": NAMESPACE})
        self.stack.add("prometheus", self.prometheus.stop, self.prometheus.pid)
        console.print(f"      Prometheus {self.prometheus.url} ({len(groups)} rule groups read from the "
                      f"PrometheusRules), Alertmanager {self.alertmanager.url} (routing rendered from "
                      f"{len(routing)} AlertRules)")

    def replay(self) -> None:
        from sqlalchemy import create_engine, text

        py = [sys.executable, "-m", "game_analytics.cli"]
        self.redis_url = redis_url = self.redis.master.url
        started = time.monotonic()
        load = subprocess.run([*py, "load", "--dataset", "all", "--via", "stream", "--redis-url", redis_url,
                               "--stream", self.env["GAME_ANALYTICS_STREAM"]], env=self.env, cwd=ROOT,
                              timeout=600)
        if load.returncode != 0:
            raise DemoError("game-analytics load failed (is the data there? `make data`)")
        self.engine = create_engine(self.dsn)
        expected = 14_018 + 69_659

        def ingested() -> int:
            with self.engine.connect() as conn:
                n = conn.execute(text("SELECT count(*) FROM events")).scalar_one()
            return n if n >= expected else 0

        n = wait_for(f"{expected} events ingested (see logs/ingest.log)", ingested, 300, alive=self.alive, error=DemoError)
        seconds = time.monotonic() - started
        self.figures["ingest"] = (n, seconds)
        console.print(f"      {n:,} events (Bundesliga matches, CDNOW purchases) published and ingested "
                      f"in {seconds:.1f}s")

    def rank(self) -> None:
        config = self.get("configmap", "bundesliga-glicko2-ranking")["data"]["ranking.json"]
        path = self.workdir / "ranking.json"
        path.write_text(config)
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "game_analytics.cli", "worker", "ranking", "--config",
                                 str(path)], env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=600)
        (self.logs / "ranking.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise DemoError(f"ranking worker failed; see {self.logs / 'ranking.log'}")
        self.figures["ranking_seconds"] = time.monotonic() - started
        self.leaderboard = self._top_of_leaderboard()

    def _top_of_leaderboard(self) -> list[tuple[int, str, float]]:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT rank, player_id, rating FROM leaderboard_entries WHERE rank <= 10 "
                "ORDER BY season DESC, rank LIMIT 10")).all()
        return [(r.rank, r.player_id, float(r.rating)) for r in rows]

    def inject_and_page(self) -> None:
        from sqlalchemy import text

        from game_analytics.workers.load import publish_events

        with self.engine.connect() as conn:
            # a customer with a modest history, so that one big purchase is a sudden jump in wealth
            player = conn.execute(text(
                "SELECT player_id FROM events WHERE event_type = 'purchase' GROUP BY player_id "
                "HAVING sum((payload->>'amount')::numeric) BETWEEN 150 AND 400 ORDER BY player_id LIMIT 1")).scalar_one()
            latest = conn.execute(text("SELECT max(occurred_at) FROM events")).scalar_one()
        at = (latest + timedelta(minutes=30)).astimezone(UTC)
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

        entry = wait_for(f"a {WATCHED_ALERT} page (logs: detection.log, prometheus/, alertmanager/)", paged, 180,
                         alive=self.alive, error=DemoError)
        self.figures["page_latency"] = entry["received_at"] - sent
        self.figures["page"] = entry
        self.figures["flagged_player"] = player

    def report(self) -> None:
        config = self.get("configmap", "weekly-studio-report-report")["data"]["report.json"]
        path = self.workdir / "report.json"
        path.write_text(config)
        out = self.workdir / "reports"
        with self.engine.connect() as conn:
            from sqlalchemy import text

            latest = conn.execute(text("SELECT max(occurred_at) FROM events WHERE game = 'cdnow'")).scalar_one()
        now = (latest + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        env = {**self.env, "GAME_ANALYTICS_REPORT_WEBHOOK_URL": f"{self.chat.url}/report"}
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "game_analytics.cli", "worker", "report", "--config",
                                 str(path), "--output-dir", str(out), "--now", now.isoformat()], env=env, cwd=ROOT,
                                capture_output=True, text=True, timeout=600)
        (self.logs / "report.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise DemoError(f"report worker failed; see {self.logs / 'report.log'}")
        wait_for("the report by webhook", lambda: any(e["path"] == "/report" for e in self.chat.received), 30,
                 error=DemoError)
        wait_for("the report by email", lambda: self.smtp.messages, 30, error=DemoError)
        self.figures["report_seconds"] = time.monotonic() - started
        self.figures["report_files"] = sorted(str(p) for p in out.rglob("*") if p.is_file())

    def summary(self) -> None:
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
        for path in self.figures["report_files"]:
            console.print(f"  {path}")
        console.print(f"Prometheus {self.prometheus.url}   Alertmanager {self.alertmanager.url}")
        console.print(f"kubectl: export KUBECONFIG={self.cp.kubeconfig}; kubectl get game-analytics -n {NAMESPACE}")
        console.print(f"Logs: {self.logs}")

    def run(self) -> None:
        steps = [
            ("Local control plane, chart CRDs and RBAC, operator", self.control_plane),
            ("PostgreSQL, Redis with Sentinel, pager and chat webhooks, SMTP sink", self.services),
            ("Apply examples/ and wait until every custom resource is Ready", self.apply_examples),
            ("Workers from the rendered configuration; Prometheus and Alertmanager", self.workers),
            ("Replay the real data through the event stream; rate the Bundesliga", lambda: (self.replay(),
                                                                                           self.rank())),
            ("Run the ScheduledReport once and wait for webhook and email delivery", self.report),
            ("Inject a sudden wealth jump and wait for the page", self.inject_and_page),
        ]
        for number, (title, action) in enumerate(steps, 1):
            with step(number, len(steps), title):
                action()
        self.summary()


def _running_demo(workdir: Path) -> dict[str, int]:
    state = workdir / "state.json"
    if not state.exists():
        return {}
    pids = json.loads(state.read_text()).get("pids", {})
    alive = {}
    for name, pid in pids.items():
        try:
            os.kill(pid, 0)
            alive[name] = pid
        except ProcessLookupError:
            pass
    return alive


def down(workdir: Path) -> int:
    """Stop, by the PIDs it recorded, whatever a demo that was killed left running."""
    for name, pid in _running_demo(workdir).items():
        try:
            os.kill(pid, signal.SIGTERM)
            console.print(f"stopped {name} (pid {pid})")
        except ProcessLookupError:
            pass
    (workdir / "state.json").unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true",
                        help="leave everything running for exploring, until Ctrl-C")
    parser.add_argument("--down", action="store_true", help="stop what a crashed demo left running (by PID)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "demo", help="where state and logs go")
    parser.add_argument("--timeout", type=float, default=900, help="overall time limit in seconds")
    args = parser.parse_args(argv)
    if args.down:
        return down(args.workdir)
    if running := _running_demo(args.workdir):
        console.print(f"[red]A demo is already running ({', '.join(f'{k} pid {v}' for k, v in running.items())}).[/] "
                      "Stop it (Ctrl-C where it runs), or clean up after a killed one with `make demo ARGS=--down`.")
        return 1
    shutil.rmtree(args.workdir, ignore_errors=True)
    (args.workdir / "logs").mkdir(parents=True)
    demo = Demo(args.workdir)
    started = time.monotonic()

    def out_of_time(*_: object) -> None:
        raise DemoError(f"the demo exceeded its time limit of {args.timeout:.0f}s (--timeout)")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(int(args.timeout))
    try:
        demo.run()
        signal.alarm(0)
        console.print(f"[bold green]Demo finished in {time.monotonic() - started:.0f}s.[/]")
        if args.keep:
            console.print("Everything is still running for you to explore. Press Ctrl-C to stop it.")
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass
        return 0
    except Exception as exc:  # every failure ends in a clear message and a full clean-up
        what = "" if isinstance(exc, DemoError) else f"{type(exc).__name__}: "
        console.print(f"[bold red]Demo failed:[/] {what}{exc}")
        console.print(f"Logs: {demo.logs}")
        return 1
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted.[/]")
        return 130
    finally:
        signal.alarm(0)
        console.print("Stopping everything the demo started ...")
        demo.stack.close()


if __name__ == "__main__":
    sys.exit(main())
