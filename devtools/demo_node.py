"""``make demo`` on a real node (the default): the chart's operator and every workload it generates run as pods.

1. the node binaries (kubelet, kube-proxy, kube-scheduler, CoreDNS) and the images, built once and then taken
   from the machine's caches; the cold build times are printed from the caches' records;
2. a control plane on the node IP and one node (:class:`devtools.node.NodeCluster`), the images imported;
3. ``helm install`` of the chart: the operator Deployment's pod runs from the local image;
4. PostgreSQL on the node IP (as the node tests run it), the pager and chat webhooks and an SMTP sink there too;
5. ``examples/`` applied (:func:`devtools.demo_steps.local_overlay`): the RedisFailover's Redis and Sentinel pods,
   the GameDataSource's ingest, exporter and detection pods (their init container migrates the schema);
6. Prometheus and Alertmanager on the host, scraping the worker pods by pod IP;
7. the real data replayed into the master pod's stream, stored by the ingest pods; a Job from the RankingJob's
   CronJob rates the Bundesliga; a Job from the ScheduledReport's CronJob delivers its report; a sudden wealth
   jump is detected by the detection pod and paged;
8. ``pods: N/M Running`` and ``kubectl get pods -A``.

Where a node cannot start, :class:`NodeUnavailable` carries the one-line reason and :mod:`devtools.demo` runs the
process mode instead.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from . import prometheus_operator
from .demo_steps import (
    DATABASE,
    NAMESPACE,
    REDIS_PASSWORD,
    RELEASE,
    ROOT,
    SYSTEM_NAMESPACE,
    DemoBase,
    DemoError,
    console,
    example_documents,
    local_overlay,
)
from .waiting import wait_for

BIN = ROOT / ".cache" / "bin"
#: What the demo leaves out on the node, and why (printed).
LEFT_OUT = {"MongoShardedCluster": "no mongod image is built on this machine (docs/topologies.md)"}


class NodeUnavailable(RuntimeError):
    """The node cannot start here; the message is one line saying why."""


def _build(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=3600)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise NodeUnavailable(f"building {what} failed: {last}")


def _recorded_seconds(stamp: str) -> str:
    seconds = BIN / f"{stamp}.seconds"
    return f"cold build {seconds.read_text().strip()} s" if seconds.exists() else "cold build time not recorded"


def pod_ready(pod: dict) -> bool:
    """Running with condition Ready=True."""
    return pod["status"].get("phase") == "Running" and any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def pods_line(pods: list[dict]) -> str:
    """``pods: N/M Running``: N counts the Running pods and the Succeeded ones (Completed Jobs are done)."""
    done = sum(p["status"].get("phase") in ("Running", "Succeeded") for p in pods)
    return f"pods: {done}/{len(pods)} Running"


class NodeDemo(DemoBase):
    """The demo with the operator and the workers as pods on one local node."""

    mode = "node"

    def node_parts(self) -> None:
        """Build (or take from the caches) the node binaries and the images; print what came from where."""
        from . import images
        from .node_host import node_available

        if os.geteuid() != 0:
            raise NodeUnavailable("the node needs root (containerd, runc, cgroups, bridges)")
        started = time.monotonic()
        _build(["bash", "hack/envtest/build.sh", "node"], "kubelet, kube-proxy and kube-scheduler")
        _build(["bash", "hack/coredns/build.sh"], "CoreDNS")
        binaries = time.monotonic() - started
        ok, reason = node_available()
        if not ok:
            raise NodeUnavailable(reason)
        console.print(f"      kubelet, kube-proxy, kube-scheduler: {binaries:.1f}s this run "
                      f"({_recorded_seconds('.node-stamp')}); CoreDNS ({_recorded_seconds('.coredns-stamp')})")
        recipes = [r for r in images.catalog() if not r.optional]
        cached = {r.key: images.build_record(r) is not None for r in recipes}
        started = time.monotonic()
        try:
            self.images = images.build_images(recipes=recipes)
        except images.ImageBuildError as exc:
            raise NodeUnavailable(f"building the images failed: {str(exc).splitlines()[0]}") from exc
        self.figures["images_seconds"] = time.monotonic() - started
        for r in recipes:
            meta = self.images[r.name].with_suffix(".json")
            record = json.loads(meta.read_text()) if meta.exists() else {}
            origin = "from the cache" if cached[r.key] else "built now"
            console.print(f"      image {r.name}: {origin} (cold build {record.get('seconds', '?')} s, "
                          f"{record.get('bytes', 0) / 2**20:.0f} MiB)")

    def node(self) -> None:
        """Control plane on the node IP and the node; raises :class:`NodeUnavailable` when it cannot start."""
        from .node import NodeCluster, NodeError

        self.nc = NodeCluster(self.workdir / "cluster", images=self.images)
        try:
            self.nc.start()
        except NodeError as exc:
            raise NodeUnavailable(f"the node did not start: {str(exc).splitlines()[0]}") from exc
        assert self.nc.control_plane is not None and self.nc.node is not None
        self.stack.add("node", self.nc.stop, dict(self.nc.control_plane.pids))
        self.kubeconfig = self.nc.control_plane.kubeconfig
        self.node_ip = self.nc.node.node_ip
        console.print("      " + ", ".join(f"{k} {v}s" for k, v in self.nc.timings.items()))
        console.print(f"      node {self.nc.node.name} Ready on {self.node_ip} (export KUBECONFIG={self.kubeconfig})")

    def operator(self) -> None:
        """``helm install`` with the local image; wait until the operator pod is Running and Ready."""
        self.kubectl(*prometheus_operator.apply_crds_args())  # the real CRDs (make prometheus-operator)
        helm = subprocess.run([self.bin("helm"), "install", RELEASE, str(ROOT / "charts" / "game-analytics"),
                               "--namespace", SYSTEM_NAMESPACE, "--create-namespace", "--kubeconfig",
                               str(self.kubeconfig), "--set", "image.pullPolicy=Never"],
                              capture_output=True, text=True, timeout=120)
        if helm.returncode != 0:
            raise DemoError(f"helm install failed:\n{helm.stderr}")
        pod = self.wait_pod(SYSTEM_NAMESPACE, "app.kubernetes.io/name=game-analytics", 180)
        self.operator_pod = pod
        console.print(f"      operator pod {pod['metadata']['name']} Running and Ready as "
                      f"{pod['spec']['serviceAccountName']}, image {pod['spec']['containers'][0]['image']}")

    def services(self) -> None:
        """PostgreSQL listening on loopback and the node IP (trusting the pod network); the webhooks there too."""
        from .postgres import start_postgres

        assert self.nc.node is not None
        # Not under the work dir: its parents may be root-only, and the server runs as the postgres user.
        base = Path(tempfile.mkdtemp(prefix="ga-demo-postgres-"))
        hba = base / "pg_hba.conf"
        hba.write_text(f"local all all trust\nhost all all 127.0.0.1/32 trust\n"
                       f"host all all {self.nc.node.net.cidr} trust\n")
        owner = pwd.getpwnam("postgres")
        for path in (base, hba):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        pg = start_postgres(base, settings={"listen_addresses": f"127.0.0.1,{self.node_ip}", "hba_file": str(hba),
                                            "synchronous_commit": "on"})

        def stop_postgres() -> None:
            pg.stop()
            shutil.rmtree(base, ignore_errors=True)

        self.stack.add("postgres", stop_postgres, pg.pid)
        pg.create_database(DATABASE)
        self.dsn = f"postgresql+psycopg://postgres@{self.node_ip}:{pg.port}/{DATABASE}"
        console.print(f"      PostgreSQL on {self.node_ip}:{pg.port} (empty: the workers' init containers migrate it)")
        self.webhooks(self.node_ip)

    def apply_examples(self) -> None:
        self.create_secrets(self.dsn)
        docs = []
        for doc in example_documents():
            if doc["kind"] in LEFT_OUT:
                console.print(f"      left out: {doc['kind']}/{doc['metadata']['name']}: {LEFT_OUT[doc['kind']]}")
                continue
            doc, changes = local_overlay(doc, sentinels=None, smtp=(self.node_ip, self.smtp.port), node=True)
            for change in changes:
                console.print(f"      overlay: {change}")
            docs.append(doc)
        self.apply(docs, timeout=120, alive=self.alive)
        started = time.monotonic()

        def running() -> bool:
            pods = self.get("pods")["items"]
            failover = self.get("redisfailover", "leaderboards").get("status", {})
            elected = any(c["type"] == "MasterElected" and c["status"] == "True"
                          for c in failover.get("conditions", []))
            masters = [p for p in pods if p["metadata"].get("labels", {}).get("gameanalytics.io/redis-role") == "master"]
            return bool(pods) and all(map(pod_ready, pods)) and elected and len(masters) == 1

        wait_for("every pod in games Running and Ready, and a Redis master elected", running, 420, interval=2,
                 alive=self.alive, error=DemoError)
        pods = self.get("pods")["items"]
        master = self.get("redisfailover", "leaderboards")["status"].get("master")
        console.print(f"      {len(pods)} pods Running and Ready in {NAMESPACE} after {time.monotonic() - started:.0f}s "
                      f"(schema migrated by the workers' init containers); Redis master {master}")

    def monitoring_on_host(self) -> None:
        targets: dict[str, list[str]] = {}
        for worker in ("ingest", "exporter", "detection"):
            pods = self.get("pods", "-l", f"app.kubernetes.io/component={worker}-worker")["items"]
            targets[f"game-analytics-{worker}"] = [f"{p['status']['podIP']}:{self._metrics_port(p)}" for p in pods
                                                   if pod_ready(p)]
        op = self.operator_pod
        targets["game-analytics-operator"] = [f"{op['status']['podIP']}:{self._metrics_port(op)}"]
        console.print("      scrape targets (pod IPs): " + ", ".join(
            f"{job.removeprefix('game-analytics-')} {' '.join(addrs)}" for job, addrs in targets.items()))
        self.monitoring(targets)

    @staticmethod
    def _metrics_port(pod: dict) -> int:
        return next(p["containerPort"] for p in pod["spec"]["containers"][0].get("ports", []) if p["name"] == "metrics")

    def replay_and_rank(self) -> None:
        config = self.get("configmap", "default-workers")["data"]
        self.env = {**os.environ, "GAME_ANALYTICS_STREAM": config["GAME_ANALYTICS_STREAM"]}
        self.env.pop("KUBECONFIG", None)
        master = self.get("pods", "-l", "gameanalytics.io/redis-role=master")["items"]
        if len(master) != 1:
            raise DemoError(f"expected one Redis master pod, found {len(master)}")
        ip = master[0]["status"]["podIP"]
        self.redis_url = f"redis://:{REDIS_PASSWORD}@{ip}:6379/0"
        console.print(f"      publishing to the stream on the master pod {master[0]['metadata']['name']} ({ip})")
        self.replay("kubectl logs -n games deploy/default-ingest")
        cronjob = "bundesliga-glicko2-ranking"
        started = time.monotonic()
        self.kubectl("create", "job", "demo-ranking", "-n", NAMESPACE, f"--from=cronjob/{cronjob}")
        logs = self.wait_job("demo-ranking", 300)
        self.figures["ranking_seconds"] = time.monotonic() - started
        summary = json.loads(logs[logs.index("{"):]) if "{" in logs else {}
        console.print(f"      Job demo-ranking from CronJob {cronjob}: {summary.get('matches', '?')} matches, "
                      f"{summary.get('players', '?')} clubs rated")
        self.leaderboard = self.top_of_leaderboard()
        import redis

        client = redis.Redis.from_url(self.redis_url, socket_timeout=5)
        boards = [k.decode() for k in client.scan_iter(match="*bundesliga-glicko2*") if client.type(k) == b"zset"]
        console.print("      leaderboard in Redis (written through the Sentinel Service with its password): "
                      + ", ".join(f"{k} ({client.zcard(k)} entries)" for k in boards))

    def report(self) -> None:
        """A Job from the ScheduledReport's CronJob (its template, plus ``--now`` at the end of the CDNOW data so
        that the week has purchases in it); wait until it completed and delivered by webhook and email."""
        cronjob = self.get("cronjob", "weekly-studio-report-report")
        now = (self.latest_event("cdnow") + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        template = json.loads(json.dumps(cronjob["spec"]["jobTemplate"]))
        container = template["spec"]["template"]["spec"]["containers"][0]
        container["args"] = [*container.get("args", []), "--now", now.isoformat()]
        job = {"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": "demo-report", "labels": template.get("metadata", {}).get("labels", {}),
                            "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
                            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob",
                                                 "name": cronjob["metadata"]["name"],
                                                 "uid": cronjob["metadata"]["uid"]}]},
               "spec": template["spec"]}
        started = time.monotonic()
        self.kubectl("create", "-n", NAMESPACE, "-f", "-", input=json.dumps(job))
        console.print(f"      Job demo-report from CronJob {cronjob['metadata']['name']}, --now {now:%Y-%m-%d}")
        logs = self.wait_job("demo-report", 300)
        self.wait_delivered()
        self.figures["report_seconds"] = time.monotonic() - started
        self.figures["report_files"] = [f"{path} (in the pod)" for path in re.findall(r"wrote (\S+)", logs)]

    # -- waiting -----------------------------------------------------------------------------------------
    def wait_pod(self, namespace: str, selector: str, timeout: float) -> dict:
        def ready() -> dict | None:
            pods = json.loads(self.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json"))["items"]
            return next((p for p in pods if pod_ready(p)), None)

        try:
            return wait_for(f"a Running and Ready pod {selector} in {namespace}", ready, timeout, interval=1,
                            error=DemoError)
        except DemoError as exc:
            logs = subprocess.run([self.bin("kubectl"), f"--kubeconfig={self.kubeconfig}", "logs", "-n", namespace,
                                   "-l", selector, "--tail=20", "--previous"], capture_output=True, text=True,
                                  timeout=60)
            raise DemoError(f"{exc}\n{(logs.stdout or logs.stderr)[-2500:]}") from None

    def wait_job(self, name: str, timeout: float) -> str:
        """Wait until Job ``name`` succeeded; its logs. :class:`DemoError` with the logs when it failed."""
        def finished() -> str | None:
            status = self.get("job", name).get("status", {})
            if status.get("succeeded"):
                return "succeeded"
            if any(c["type"] == "Failed" and c["status"] == "True" for c in status.get("conditions", [])):
                return "failed"
            return None

        outcome = wait_for(f"Job {name} to finish", finished, timeout, interval=1, error=DemoError)
        logs = subprocess.run([self.bin("kubectl"), f"--kubeconfig={self.kubeconfig}", "logs", "-n", NAMESPACE,
                               f"job/{name}"], capture_output=True, text=True, timeout=60).stdout
        (self.logs / f"{name}.log").write_text(logs)
        if outcome != "succeeded":
            raise DemoError(f"Job {name} failed:\n{logs[-3000:]}")
        return logs

    _last_check = 0.0

    def alive(self) -> None:
        """Fail early when a pod in the namespace is crash-looping (checked at most every 10 s)."""
        if time.monotonic() - self._last_check < 10:
            return
        self._last_check = time.monotonic()
        for pod in self.get("pods")["items"]:
            for c in pod["status"].get("containerStatuses", []) + pod["status"].get("initContainerStatuses", []):
                waiting = c.get("state", {}).get("waiting", {}).get("reason")
                if waiting == "ErrImageNeverPull" or (waiting == "CrashLoopBackOff" and c.get("restartCount", 0) >= 5):
                    raise DemoError(f"pod {pod['metadata']['name']} container {c['name']}: {waiting}; "
                                    f"kubectl logs -n {NAMESPACE} {pod['metadata']['name']} -c {c['name']}")

    # -- end -----------------------------------------------------------------------------------------------
    def pods_summary(self) -> None:
        pods = json.loads(self.kubectl("get", "pods", "-A", "-o", "json"))["items"]
        console.print(pods_line(pods))
        console.print(self.kubectl("get", "pods", "-A").rstrip())

    def run(self) -> None:
        """Every step in order, then the summary and the pods."""
        self.run_steps([
            ("Node binaries and images (built once, then from the machine's caches)", self.node_parts),
            ("Control plane on the node IP and the node: containerd, kubelet, kube-proxy, scheduler, CoreDNS",
             self.node),
            ("helm install: the operator as a pod, from the local image", self.operator),
            ("PostgreSQL on the node IP, pager and chat webhooks, SMTP sink", self.services),
            ("Apply examples/: the Redis, Sentinel and worker pods run; every custom resource Ready",
             self.apply_examples),
            ("Prometheus and Alertmanager scraping the pods", self.monitoring_on_host),
            ("Replay the real data into the stream; a Job from the RankingJob's CronJob rates the Bundesliga",
             self.replay_and_rank),
            ("A Job from the ScheduledReport's CronJob; wait for webhook and email delivery", self.report),
            ("Inject a sudden wealth jump and wait for the page from the detection pod",
             lambda: self.inject_and_page(datetime.now(UTC) - timedelta(seconds=5))),
        ])
        self.summary(self.figures["report_files"] or ["(written in the report pod; see logs/demo-report.log)"])
        self.pods_summary()
