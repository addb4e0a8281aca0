"""``make demo ARGS=--processes`` (and the fallback where no node can start): the workers as local processes.

1. a real control plane (etcd, kube-apiserver, kube-controller-manager), the chart's CRDs and RBAC, the operator
   running locally with the chart ServiceAccount's token;
2. PostgreSQL, Redis with Sentinel, a pager webhook, a chat webhook and an SMTP sink on loopback;
3. ``examples/`` applied (with :func:`devtools.demo_steps.local_overlay`);
4. the workers as local processes, configured from what the operator rendered (read back from the API), Prometheus
   with the rendered rules, Alertmanager with routing rendered from the AlertRules;
5. the real data replayed through the event stream, a leaderboard, a report delivered by webhook and email, a
   sudden wealth jump detected and paged.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta

import yaml

from . import prometheus_operator
from .demo_steps import (
    DATABASE,
    EXAMPLES,
    NAMESPACE,
    REDIS_PASSWORD,
    RELEASE,
    ROOT,
    SENTINEL_PASSWORD,
    SYSTEM_NAMESPACE,
    DemoBase,
    DemoError,
    console,
    example_documents,
    local_overlay,
)
from .processes import LoggedProcess


class ProcessDemo(DemoBase):
    """The demo with the operator and the workers as local processes (no node)."""

    mode = "processes"

    # -- steps -----------------------------------------------------------------------------------------------
    def control_plane(self) -> None:
        from .cluster import LocalControlPlane, find_binaries
        from .operator_process import OperatorProcess

        started = time.monotonic()
        self.cp = LocalControlPlane(self.workdir / "cluster", find_binaries())
        self.cp.start()
        self.kubeconfig = self.cp.kubeconfig
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

        from .postgres import start_postgres
        from .redis import start_sentinel_set

        # its own temporary directory: the server runs as the unprivileged postgres user when we are root
        self.pg = start_postgres(settings={"synchronous_commit": "on"})
        self.stack.add("postgres", self.pg.stop, self.pg.pid)
        self.dsn = self.pg.create_database(DATABASE)
        upgrade(self.dsn)
        console.print(f"      PostgreSQL on 127.0.0.1:{self.pg.port}, schema migrated")
        failover = yaml.safe_load((EXAMPLES / "redisfailover.yaml").read_text())
        self.redis = start_sentinel_set(master_name=failover["spec"]["masterName"], password=REDIS_PASSWORD,
                                        sentinel_password=SENTINEL_PASSWORD)
        self.stack.add("redis", self.redis.stop, self.redis.master.pid)
        self.redis_url = self.redis.master.url
        console.print(f"      Redis master {self.redis.master.port}, replica {self.redis.replica.port}, Sentinels "
                      + ", ".join(str(p) for _, p in self.redis.sentinel_addresses))
        self.webhooks()

    def apply_examples(self) -> None:
        self.create_secrets(self.dsn)
        docs = []
        for doc in example_documents():
            doc, changes = local_overlay(doc, sentinels=self.redis.sentinel_addresses,
                                         smtp=("127.0.0.1", self.smtp.port))
            for change in changes:
                console.print(f"      overlay: {change}")
            docs.append(doc)
        self.apply(docs, timeout=120, alive=self.operator_alive)
        failover = self.get("redisfailover", "leaderboards")
        for c in failover["status"]["conditions"]:
            if c["type"] != "Ready":
                console.print(f"      RedisFailover {c['type']}={c['status']} ({c['reason']}): {c['message']}")
        pods = self.get("pods")["items"]
        console.print(f"      {len(pods)} pods exist but none runs: in this mode the control plane has no node")

    def worker_env(self) -> dict[str, str]:
        """The workers' environment, read back from what the operator rendered (ConfigMap + Secret refs)."""
        config = self.get("configmap", "default-workers")["data"]
        env = {**os.environ, **config}
        cluster_sentinels = config.get("GAME_ANALYTICS_REDIS_SENTINELS", "")
        local = ",".join(f"{h}:{p}" for h, p in self.redis.sentinel_addresses)
        console.print(f"      GAME_ANALYTICS_* from ConfigMap default-workers; Sentinels {cluster_sentinels} "
                      f"-> {local} (no cluster DNS in this mode)")
        deployment = self.get("deployment", "default-ingest")
        for var in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                env[var["name"]] = self.secret(ref["name"], ref["key"])
        env.update(GAME_ANALYTICS_REDIS_SENTINELS=local, GAME_ANALYTICS_NAMESPACE=NAMESPACE,
                   GAME_ANALYTICS_AS_OF="latest", GAME_ANALYTICS_RETENTION="",  # replayed 1997-2019 data: no retention
                   PYTHONUNBUFFERED="1", MPLCONFIGDIR=str(self.workdir / "mpl"))
        env.pop("KUBECONFIG", None)
        return env

    def workers(self) -> None:
        from .waiting import free_port

        env = self.worker_env()
        self.env = env
        ports: dict[str, int] = {}
        procs = []
        for worker, extra in (("ingest", []), ("exporter", ["--ttl", "1"]), ("detection", [])):
            port = free_port()
            ports[worker] = port
            wenv = {**env, "GAME_ANALYTICS_METRICS_PORT": str(port)}
            if worker == "detection":  # reads its rules with the ServiceAccount the operator made for it
                wenv["KUBECONFIG"] = str(self.cp.service_account_kubeconfig(NAMESPACE, "default-detection",
                                                                            create=False))
            procs.append(self.spawn(worker, LoggedProcess.cli("worker", worker, *extra), wenv))
        self.worker_procs = procs
        console.print("      ingest, exporter and detection workers running: "
                      + ", ".join(f"{p.name} pid {p.pid} :{ports[p.name]}" for p in procs))
        targets = {f"game-analytics-{w}": [f"127.0.0.1:{p}"] for w, p in ports.items()}
        targets["game-analytics-operator"] = [f"127.0.0.1:{self.operator.metrics_port}"]
        self.monitoring(targets)

    def operator_alive(self) -> None:
        if self.operator.proc.poll() is not None:
            raise DemoError(f"the operator exited; see {self.operator.log_path}")

    def alive(self) -> None:
        for p in self.worker_procs:
            p.check_alive()

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
        self.leaderboard = self.top_of_leaderboard()

    def report(self) -> None:
        config = self.get("configmap", "weekly-studio-report-report")["data"]["report.json"]
        path = self.workdir / "report.json"
        path.write_text(config)
        out = self.workdir / "reports"
        now = (self.latest_event("cdnow") + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        env = {**self.env, "GAME_ANALYTICS_REPORT_WEBHOOK_URL": f"{self.chat.url}/report"}
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "game_analytics.cli", "worker", "report", "--config",
                                 str(path), "--output-dir", str(out), "--now", now.isoformat()], env=env, cwd=ROOT,
                                capture_output=True, text=True, timeout=600)
        (self.logs / "report.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise DemoError(f"report worker failed; see {self.logs / 'report.log'}")
        self.wait_delivered()
        self.figures["report_seconds"] = time.monotonic() - started
        self.figures["report_files"] = sorted(str(p) for p in out.rglob("*") if p.is_file())

    def run(self) -> None:
        """Every step in order, then the summary."""
        self.run_steps([
            ("Local control plane, chart CRDs and RBAC, operator", self.control_plane),
            ("PostgreSQL, Redis with Sentinel, pager and chat webhooks, SMTP sink", self.services),
            ("Apply examples/ and wait until every custom resource is Ready", self.apply_examples),
            ("Workers from the rendered configuration; Prometheus and Alertmanager", self.workers),
            ("Replay the real data through the event stream; rate the Bundesliga",
             lambda: (self.replay("logs/ingest.log"), self.rank())),
            ("Run the ScheduledReport once and wait for webhook and email delivery", self.report),
            ("Inject a sudden wealth jump and wait for the page",
             lambda: self.inject_and_page(self.latest_event() + timedelta(minutes=30))),
        ])
        self.summary(self.figures["report_files"])
