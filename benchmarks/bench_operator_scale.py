"""The operator at scale on the real apiserver: ``--rules`` AlertRules plus ``--each`` of every other kind.

Starts the envtest control plane (etcd + kube-apiserver + kube-controller-manager, :mod:`devtools.cluster`; built
by ``make envtest``), installs the chart with helm (CRDs and RBAC, no operator Deployment) and prometheus-operator's
CRDs, runs the operator as a local process with the chart ServiceAccount's token (as the e2e tier does), creates
copies of the examples in one namespace (``kubectl create``, lists of 200) and prints:

  * the time from the first create until every object is Ready for its current generation (a MongoShardedCluster
    counts when Ready=False only for ``Bootstrapping``: there is no mongod to bootstrap here);
  * the operator's apiserver requests until then, per object, by verb (from the audit log);
  * the time each kind's reconciles took (mean, from the operator's reconcile-duration histogram);
  * the operator's peak memory (VmHWM, the resident set's high-water mark, from ``/proc``);
  * the operator's apiserver requests and writes per idle resync (from the audit log, which records every request
    of the operator's ServiceAccount here; goal 0 writes), over ``--idle-resyncs`` resync periods after a settle;
  * the time from a spec change of one AlertRule among them until its PrometheusRule is updated and the rule is
    Ready for the new generation.

Goals (issue 19): all Ready in under 60 s and RSS under 200 MB at 1,000 AlertRules + 100 of every other kind.
Figures only, no assertions.  ``--quick`` runs 10 rules and 1 of each other kind (the control plane's start and the
chart install take most of its time).

    .venv/bin/python benchmarks/bench_operator_scale.py            # 1,000 rules, 100 of each other kind
    .venv/bin/python benchmarks/bench_operator_scale.py --quick
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import benchargs
import yaml

from devtools import REPO_ROOT, prometheus_operator
from devtools.cluster import WRITE_VERBS, LocalControlPlane, read_audit_events
from devtools.operator_process import OperatorProcess
from devtools.waiting import wait_for
from game_analytics.api import KINDS

EXAMPLES = REPO_ROOT / "examples"
BIN = REPO_ROOT / ".cache" / "bin"
RELEASE, SYSTEM_NS, NS, OPERATOR_SA = "ga", "game-analytics-system", "games", "ga-game-analytics"
OPERATOR_USER = f"system:serviceaccount:{SYSTEM_NS}:{OPERATOR_SA}"
#: kind -> the Ready=False reason that still counts as reconciled (children applied, no live server here)
WAITING_FOR_SERVERS = {"MongoShardedCluster": "Bootstrapping"}
RULE_EXAMPLE = "alertrule-wealth-jump.yaml"


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        raise SystemExit(f"{path} not found: run `make tools envtest`")
    return str(path)


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run([tool("kubectl"), f"--kubeconfig={kubeconfig}", *args], input=stdin, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args[:3])} failed: {done.stderr[-2000:]}")
    return done.stdout


def audit_policy() -> dict:
    """Every request of the operator's ServiceAccount at Metadata level (reads too), writes of everyone."""
    return {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"], "rules": [
        {"level": "None", "nonResourceURLs": ["/healthz*", "/readyz*", "/livez*", "/version"]},
        {"level": "Metadata", "users": [OPERATOR_USER]},
        {"level": "Metadata", "verbs": sorted(WRITE_VERBS)},
        {"level": "None"},
    ]}  # fmt: skip


def objects(rules: int, each: int) -> list[dict]:
    """``rules`` copies of the wealth-jump AlertRule and ``each`` of every other example kind, in the order they
    are created (the first copy keeps the example's name, so that references between the examples resolve)."""
    docs = [d for p in sorted(EXAMPLES.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    out: list[dict] = []
    seen: set[str] = set()
    rule = yaml.safe_load((EXAMPLES / RULE_EXAMPLE).read_text())
    # what others refer to first (a rule waits for its GameDataSource, which names a RedisFailover), rules last
    first = {"RedisFailover": 0, "GameDataSource": 1}
    for doc in sorted((d for d in docs if d["kind"] != "AlertRule"), key=lambda d: first.get(d["kind"], 2)) + [rule]:
        if doc["kind"] in seen:
            continue
        seen.add(doc["kind"])
        for i in range(rules if doc["kind"] == "AlertRule" else each):
            obj = copy.deepcopy(doc)
            obj["metadata"] = {"name": doc["metadata"]["name"] + (f"-{i:04d}" if i else ""), "namespace": NS}
            out.append(obj)
    return out


def reconciled(obj: dict) -> bool:
    for c in obj.get("status", {}).get("conditions", []):
        if c["type"] == "Ready" and c.get("observedGeneration") == obj["metadata"]["generation"]:
            return c["status"] == "True" or c["reason"] == WAITING_FOR_SERVERS.get(obj["kind"])
    return False


def not_ready(kubeconfig: Path) -> dict[str, int]:
    """Objects of each kind in the namespace not yet reconciled (one list call per kind)."""
    left: dict[str, int] = {}
    for info in KINDS:
        items = json.loads(kubectl(kubeconfig, "get", info.crd_name, "-n", NS, "-o", "json"))["items"]
        left[info.kind] = sum(not reconciled(o) for o in items)
    return left


def backtests_running(kubeconfig: Path) -> int:
    """AlertRules of the namespace whose ``Backtested`` condition is still ``Running`` (their first backtest is
    queued behind others in the operator's one backtest thread; its result is a legitimate first write)."""
    items = json.loads(kubectl(kubeconfig, "get", "alertrules.gameanalytics.io", "-n", NS, "-o", "json"))["items"]
    return sum(any(c.get("type") == "Backtested" and c.get("reason") == "Running"
                   for c in (o.get("status") or {}).get("conditions") or []) for o in items)


def statuses(kubeconfig: Path) -> dict[str, dict]:
    """``kind/name -> status`` of every object of the six kinds in the namespace."""
    return {f"{info.kind}/{o['metadata']['name']}": o.get("status") or {} for info in KINDS
            for o in json.loads(kubectl(kubeconfig, "get", info.crd_name, "-n", NS, "-o", "json"))["items"]}


def status_changes(before: dict[str, dict], after: dict[str, dict],
                   examples: dict[str, str] | None = None) -> Counter:
    """What changed between two :func:`statuses` snapshots: ``"kind field"`` -> objects (a condition as
    ``conditions[Type] old-reason -> new-reason``), so an idle write can be traced to the field it wrote.
    ``examples`` (when given) gets, per change, the keys of one such condition whose values differ, old -> new."""
    changes: Counter = Counter()
    for key, new in after.items():
        old, kind = before.get(key, {}), key.split("/")[0]
        for field in sorted(set(old) | set(new)):
            if field == "conditions":
                was = {c["type"]: c for c in old.get(field) or []}
                for c in new.get(field) or []:
                    if (prior := was.get(c["type"]) or {}) != c:
                        change = f"{kind} conditions[{c['type']}] {prior.get('reason')} -> {c.get('reason')}"
                        changes[change] += 1
                        if examples is not None and change not in examples:
                            examples[change] = f"{key}: " + ", ".join(
                                f"{k} {str(prior.get(k))[:80]!r} -> {str(c.get(k))[:80]!r}"
                                for k in sorted(set(prior) | set(c)) if prior.get(k) != c.get(k))
            elif old.get(field) != new.get(field):
                changes[f"{kind} {field}"] += 1
    return changes


def peak_rss_mib(pid: int) -> float:
    """VmHWM (peak resident set) of ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mib(pid: int) -> float:
    """VmRSS (the resident set now) of ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def trace_report(operator: OperatorProcess, path: Path | None, phase: str) -> None:
    """With ``--tracemalloc``: ask the operator for a report now (SIGUSR1) and keep a copy named after ``phase``."""
    if path is None or operator.pid is None:
        return
    os.kill(operator.pid, signal.SIGUSR1)
    time.sleep(5.0)  # the report is written in a thread of the operator
    if path.exists():
        copy_to = path.with_name(f"{path.stem}-{phase}{path.suffix}")
        copy_to.write_text(path.read_text())
        print(f"  tracemalloc report ({phase}): {copy_to}", flush=True)


def reconcile_seconds(metrics_text: str) -> dict[str, tuple[int, float]]:
    """kind -> (reconciles, mean seconds) from the operator's reconcile-duration histogram (Prometheus text)."""
    from prometheus_client.parser import text_string_to_metric_families

    from game_analytics.monitoring import names

    sums: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != names.RECONCILE_DURATION:
            continue
        for sample in family.samples:
            kind = sample.labels.get("kind", "")
            if sample.name.endswith("_count"):
                sums.setdefault(kind, [0.0, 0.0])[0] = sample.value
            elif sample.name.endswith("_sum"):
                sums.setdefault(kind, [0.0, 0.0])[1] = sample.value
    return {k: (int(n), total / n if n else 0.0) for k, (n, total) in sorted(sums.items())}


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=1000, help="AlertRules")
    parser.add_argument("--each", type=int, default=100, help="objects of every other kind")
    parser.add_argument("--resync", type=float, default=15.0, help="the operator's resync period, seconds")
    parser.add_argument("--idle-resyncs", type=int, default=2, help="resync periods the idle figures span")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for all Ready")
    parser.add_argument("--chart", type=Path, default=REPO_ROOT / "charts" / "game-analytics",
                        help="the chart to install (CRDs and RBAC); default: the repository's")
    parser.add_argument("--max-workers", type=int, default=None,
                        help="the operator's GAME_ANALYTICS_MAX_WORKERS (default: the operator's own)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="an extra variable of the operator's environment, e.g. MALLOC_ARENA_MAX=2 (repeatable)")
    parser.add_argument("--tracemalloc", type=Path, default=None, metavar="FILE",
                        help="run the operator with GAME_ANALYTICS_TRACEMALLOC=FILE (a report every 60 s and at "
                             "each phase: controller/memtrace.py)")
    parser.add_argument("--no-cache", action="store_true",
                        help="run the operator with GAME_ANALYTICS_WATCH_CACHE=false (every read from the API server)")
    args = benchargs.parse(parser, argv, {"rules": 10, "each": 1, "resync": 3.0, "idle_resyncs": 1,
                                          "timeout": 120.0})  # fmt: skip
    figures: list[tuple[str, str]] = []

    def figure(name: str, value: str) -> None:
        figures.append((name, value))
        print(f"  {name:56} {value}", flush=True)

    work = Path(tempfile.mkdtemp(prefix="bench-operator-scale-"))
    policy = work / "operator-audit-policy.yaml"
    policy.write_text(yaml.safe_dump(audit_policy()))
    cp = LocalControlPlane(work / "cp", extra_apiserver_args=[f"--audit-policy-file={policy}"])
    operator = None
    try:
        started = time.perf_counter()
        cp.start()
        admin = cp.kubeconfig
        kubectl(admin, *prometheus_operator.apply_crds_args())
        helm = subprocess.run([tool("helm"), "install", RELEASE, str(args.chart),
                               "--namespace", SYSTEM_NS, "--create-namespace", "--kubeconfig", str(admin),
                               "--set", "replicaCount=0"], capture_output=True, text=True, timeout=300)  # fmt: skip
        if helm.returncode != 0:
            raise RuntimeError(f"helm install failed: {helm.stderr}")
        for info in KINDS:
            kubectl(admin, "wait", "--for=condition=Established", f"crd/{info.crd_name}", "--timeout=120s")
        kubectl(admin, "create", "namespace", NS)
        sys.path.insert(0, str(REPO_ROOT / "tests"))
        from controller.fake_cluster import (
            example_dependencies,  # the example Secrets, values of the right shape
        )

        secrets = example_dependencies(NS, data_source=False)
        kubectl(admin, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": secrets}))
        sa_kubeconfig = cp.service_account_kubeconfig(SYSTEM_NS, OPERATOR_SA, create=False)
        print(f"control plane and chart up in {time.perf_counter() - started:.0f} s; load average {load()}")

        env = {"GAME_ANALYTICS_WATCH_CACHE": "false" if args.no_cache else "true",
               **({"GAME_ANALYTICS_MAX_WORKERS": str(args.max_workers)} if args.max_workers else {}),
               **({"GAME_ANALYTICS_TRACEMALLOC": str(args.tracemalloc.resolve())} if args.tracemalloc else {}),
               **dict(kv.split("=", 1) for kv in args.env)}
        operator = OperatorProcess(sa_kubeconfig, work / "operator.log", resync_seconds=args.resync,
                                   namespaces=[NS], env=env).start()  # fmt: skip
        print(f"operator: {', '.join(f'{k}={v}' for k, v in env.items())}")
        wanted = objects(args.rules, args.each)
        counts = Counter(o["kind"] for o in wanted)
        print(f"{len(wanted):,} objects: " + ", ".join(f"{n:,} {k}" for k, n in sorted(counts.items())), flush=True)
        started = time.perf_counter()
        for i in range(0, len(wanted), 200):  # create: one POST per object (apply would GET each first)
            batch = {"apiVersion": "v1", "kind": "List", "items": wanted[i:i + 200]}
            kubectl(admin, "create", "-f", "-", stdin=json.dumps(batch))
        created = time.perf_counter() - started
        deadline, progress = started + args.timeout, started
        while True:
            operator._process.check_alive()
            left = not_ready(admin)
            if not any(left.values()) or time.perf_counter() > deadline:
                break
            if time.perf_counter() - progress > 60:  # a line a minute: how far it got (printed if it times out)
                progress = time.perf_counter()
                print(f"    {progress - started:5.0f} s: {len(wanted) - sum(left.values()):,} of {len(wanted):,} "
                      f"Ready, RSS {peak_rss_mib(operator.pid):,.0f} MiB, load {load()}", flush=True)
            time.sleep(1.0)
        took = time.perf_counter() - started
        if any(left.values()):
            figure(f"Ready after the --timeout of {args.timeout:.0f} s (creates took {created:.0f} s)",
                   f"{len(wanted) - sum(left.values()):,} of {len(wanted):,}; not yet: "
                   + ", ".join(f"{k} {n}" for k, n in left.items() if n) + f" (load {load()})")
            figure("operator peak RSS (VmHWM) so far", f"{peak_rss_mib(operator.pid):,.0f} MiB")
            return
        figure(f"all {len(wanted):,} Ready (from the first create; creates took {created:.0f} s)",
               f"{took:,.1f} s (load {load()})")
        figure("operator peak RSS (VmHWM) after all Ready", f"{peak_rss_mib(operator.pid):,.0f} MiB")
        trace_report(operator, args.tracemalloc, "ready")
        until_ready = read_audit_events(cp.audit_log, verbs=None, user=OPERATOR_USER)
        by_verb = Counter(e["verb"] for e in until_ready)
        figure("apiserver requests until all Ready, per object",
               f"{len(until_ready) / len(wanted):,.1f} ("
               + ", ".join(f"{v} {n / len(wanted):,.1f}" for v, n in sorted(by_verb.items())) + ")")
        for kind, (n, mean) in reconcile_seconds(operator.metrics()).items():
            figure(f"  {kind}: reconciles, mean duration", f"{n:,}, {mean * 1000:,.0f} ms")

        settle = time.perf_counter()
        while (running := backtests_running(admin)) and time.perf_counter() - settle < args.timeout:
            time.sleep(1.0)  # the first backtests' results are first writes, not idle ones: wait for the queue
        figure("first backtests all written (after all Ready)",
               f"{time.perf_counter() - settle:,.1f} s" + (f"; {running:,} still Running" if running else ""))
        time.sleep(args.resync * 2)  # let in-flight reconciles and status patches settle
        before = len(read_audit_events(cp.audit_log, verbs=None, user=OPERATOR_USER))
        snapshot = statuses(admin)
        window = args.resync * args.idle_resyncs
        time.sleep(window)
        examples: dict[str, str] = {}
        changes = status_changes(snapshot, statuses(admin), examples)
        idle = read_audit_events(cp.audit_log, verbs=None, user=OPERATOR_USER)[before:]
        writes = [e for e in idle if e["verb"] in WRITE_VERBS]
        per = args.idle_resyncs
        by_verb = Counter(e["verb"] for e in idle)
        figure("operator RSS after the idle window: now (VmRSS) / peak (VmHWM)",
               f"{rss_mib(operator.pid):,.0f} / {peak_rss_mib(operator.pid):,.0f} MiB")
        trace_report(operator, args.tracemalloc, "idle")
        figure(f"idle: apiserver requests per resync ({per} x {args.resync:.0f} s)",
               f"{len(idle) / per:,.1f} ({', '.join(f'{v} {n / per:,.1f}' for v, n in sorted(by_verb.items()))})")
        written = Counter(" ".join((e["verb"], "/".join(filter(None, (e["objectRef"].get("resource"),
                                                                     e["objectRef"].get("subresource"))))))
                          for e in writes)  # fmt: skip
        figure("idle: writes per resync (goal 0)",
               f"{len(writes) / per:,.1f}" + (f" ({', '.join(f'{k} {n}' for k, n in written.items())})"
                                               if writes else ""))  # fmt: skip
        if changes:
            figure("idle: status fields changed (objects)", "; ".join(f"{k}: {n}" for k, n in changes.most_common(6)))
            for example in examples.values():
                print(f"    e.g. {example}")

        name = next(o["metadata"]["name"] for o in reversed(wanted) if o["kind"] == "AlertRule")
        started = time.perf_counter()
        kubectl(admin, "patch", "alertrule", name, "-n", NS, "--type=merge",
                "-p", json.dumps({"spec": {"severity": "warning"}}))  # fmt: skip

        def changed() -> bool:
            rule = json.loads(kubectl(admin, "get", "prometheusrule", name, "-n", NS, "-o", "json"))
            labels = rule["spec"]["groups"][0]["rules"][0]["labels"]
            current = json.loads(kubectl(admin, "get", "alertrule", name, "-n", NS, "-o", "json"))
            return labels.get("severity") == "warning" and reconciled(current)

        wait_for("spec change applied", changed, timeout=120, interval=0.2)
        figure(f"reaction to one spec change among {len(wanted):,} (PrometheusRule + Ready)",
               f"{time.perf_counter() - started:,.2f} s")
        figure("operator peak RSS (VmHWM) at the end", f"{peak_rss_mib(operator.pid):,.0f} MiB")
    finally:
        if operator is not None:
            operator.stop()
        cp.stop()
    print("goals: all Ready < 60 s, RSS < 200 MB, 0 writes per idle resync (1,000 AlertRules + 100 of each kind)")
    print(f"done; load average {load()}")


if __name__ == "__main__":
    main()
