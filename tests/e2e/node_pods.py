"""Helper pods of the node tier (tests/e2e/test_node.py): a webhook receiver and a leaderboard writer, both from the
product image (its Python and the product's own Redis client), PodSecurity ``restricted`` with a read-only root."""

from __future__ import annotations

import json
from typing import Any

PRODUCT_IMAGE = "ghcr.io/game-analytics/game-analytics:0.1.0"

RECEIVER = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        print("POST", self.path, len(body), body[:200], flush=True)
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
http.server.HTTPServer(("0.0.0.0", 8080), H).serve_forever()
"""

#: ZADDs a new member every 10 ms through ``game_analytics.redis_client.connect`` (the Sentinel Service and both
#: passwords, as every worker reaches Redis) and prints one JSON line per acknowledged write (wall clock: the pod
#: and the test share the machine's clock) and per error the client raised after its own retries.
WRITER = """
import json, sys, time
from game_analytics.redis_client import connect
from game_analytics.settings import WorkerSettings
client = connect(WorkerSettings(), socket_timeout=2)
i = 0
while True:
    try:
        client.zadd(sys.argv[1], {f"p{i}": float(i)})
        print(json.dumps({"ack": i, "t": time.time()}), flush=True)
        i += 1
    except Exception as exc:
        print(json.dumps({"error": type(exc).__name__, "detail": str(exc)[:200], "t": time.time()}), flush=True)
    time.sleep(0.01)
"""


def _restricted_pod(name: str, labels: dict[str, str], container: dict[str, Any]) -> dict[str, Any]:
    container = {"image": PRODUCT_IMAGE, "imagePullPolicy": "Never", **container,
                 "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                     "capabilities": {"drop": ["ALL"]}}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                         "seccompProfile": {"type": "RuntimeDefault"}},
                     "restartPolicy": "Never", "containers": [container]}}


def receiver_manifests() -> list[dict[str, Any]]:
    """A webhook receiver pod (prints ``POST <path> ...`` per request) and its Service ``report-receiver:8080``."""
    labels = {"app": "report-receiver"}
    pod = _restricted_pod("report-receiver", labels, {
        "name": "receiver", "command": ["python", "-c", RECEIVER], "ports": [{"containerPort": 8080, "name": "http"}],
        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 2}})
    pod["spec"]["restartPolicy"] = "Always"
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "report-receiver"},
           "spec": {"selector": labels, "ports": [{"port": 8080, "targetPort": "http", "name": "http"}]}}
    return [pod, svc]


def writer_pod(worker_container: dict[str, Any], key: str, name: str = "leaderboard-writer") -> dict[str, Any]:
    """A pod that writes leaderboard entries to ``key`` with the environment (``env``, ``envFrom``) of
    ``worker_container`` (a GameDataSource worker's container, as the operator rendered it)."""
    return _restricted_pod(name, {"app": name}, {
        "name": "writer", "command": ["python", "-c", WRITER, key],
        "env": worker_container.get("env", []), "envFrom": worker_container.get("envFrom", [])})


def writer_log(text: str) -> tuple[list[tuple[int, float]], list[dict[str, Any]]]:
    """``(acks, errors)`` from :data:`WRITER`'s output: ``(member index, wall time)`` per acknowledged write, and
    the error lines. Lines that are not its JSON (none expected) are ignored."""
    acks, errors = [], []
    for line in text.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if "ack" in item:
            acks.append((item["ack"], item["t"]))
        elif "error" in item:
            errors.append(item)
    return acks, errors
