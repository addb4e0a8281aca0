"""An in-memory stand-in for the API server's REST interface, for fast reconcile tests.

It implements just what :class:`game_analytics.controller.k8s.Cluster` sends (GET, list by label selector,
server-side apply as create-or-replace, DELETE, API group probes) and counts writes.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path

import yaml
from kubernetes.client.exceptions import ApiException

from game_analytics.controller.k8s import Cluster

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAMESPACE = "games"
#: every Secret key the examples reference, with a value of the right shape (URLs where a URL is expected)
EXAMPLE_SECRETS: dict[str, dict[str, str]] = {
    "alerting-secrets": {"pager-webhook-url": "https://pager.example.com/hook",
                         "discord-webhook-url": "https://discord.example.com/api/webhooks/1/x",
                         "smtp-password": "s3cret", "pagerduty-routing-key": "R0UT1NG",
                         "slack-webhook-url": "https://hooks.slack.example.com/services/T/B/X"},
    "analytics-postgres": {"dsn": "postgresql+psycopg://u:p@db:5432/analytics"},
    "leaderboards-redis": {"password": "hunter2"},
    "leaderboards-sentinel": {"password": "sentinel-hunter2"},
    "telemetry-mongo-keyfile": {"keyfile": "a" * 64},
    "telemetry-mongo-admin": {"username": "admin", "password": "pw"},
    "reporting-secrets": {"slack-webhook-url": "https://hooks.slack.example.com/services/T/B/Y",
                          "smtp-password": "s3cret"},
}


def secret(name: str, values: dict[str, str], namespace: str = NAMESPACE) -> dict:
    """A v1 Secret manifest holding ``values`` (base64-encoded into ``data``)."""
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}}


def example_dependencies(namespace: str = NAMESPACE, *, secrets: bool = True, data_source: bool = True) -> list[dict]:
    """What the examples expect to exist besides themselves: (with ``secrets``) their Secrets and (with
    ``data_source``) the GameDataSource ``default`` of examples/gamedatasource.yaml."""
    objs = [secret(name, values, namespace) for name, values in EXAMPLE_SECRETS.items()] if secrets else []
    if data_source:
        gds = yaml.safe_load((EXAMPLES / "gamedatasource.yaml").read_text())
        gds["metadata"]["namespace"] = namespace
        objs.append(gds)
    return objs


class FakeCluster(Cluster):
    """The example Secrets (and, with ``data_source``, the GameDataSource ``default``) exist from the start;
    ``writes`` records every write (pre-existing objects are not writes)."""

    def __init__(self, served_groups=("monitoring.coreos.com/v1", "monitoring.coreos.com/v1alpha1"), *,
                 secrets: bool = True, data_source: bool = True):
        self.objects: dict[str, dict] = {}
        self.writes: list[tuple[str, str]] = []
        self.served_groups = set(served_groups)
        self.fail_next: ApiException | None = None
        self._served = {}
        for obj in example_dependencies(secrets=secrets, data_source=data_source):
            self.add(obj)
        self.preexisting = set(self.objects)

    def created(self) -> dict[str, dict]:
        """The objects that were not there from the start."""
        return {p: o for p, o in self.objects.items() if p not in self.preexisting}

    def add(self, obj: dict) -> None:
        from game_analytics.controller.k8s import path

        meta = obj["metadata"]
        self.objects[path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])] = copy.deepcopy(obj)

    def request(self, method, url, *, body=None, query=None, content_type="application/json"):
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        query = dict(query or [])
        if url.count("/") <= 3 and url.startswith("/apis/"):  # /apis/<group>/<version>: an API group probe
            if url.removeprefix("/apis/") in self.served_groups:
                return {"kind": "APIResourceList"}
            raise ApiException(status=404, reason="Not Found")
        if method == "GET" and url in self.objects:
            return copy.deepcopy(self.objects[url])
        if method == "GET" and "labelSelector" in query:
            wanted = dict(kv.split("=", 1) for kv in query["labelSelector"].split(",") if kv)
            items = [o for p, o in self.objects.items() if p.rsplit("/", 1)[0] == url
                     and wanted.items() <= o["metadata"].get("labels", {}).items()]
            return {"items": copy.deepcopy(items)}
        if method == "GET":
            raise ApiException(status=404, reason="Not Found")
        if method == "PATCH" and content_type == "application/merge-patch+json":
            stored = self.objects[url]
            stored["metadata"].setdefault("labels", {}).update(body["metadata"]["labels"])
            self.writes.append(("merge", url))
            return copy.deepcopy(stored)
        if method == "PATCH":
            assert content_type == "application/apply-patch+yaml" and query["fieldManager"]
            stored = copy.deepcopy(body)
            stored["metadata"]["resourceVersion"] = str(len(self.writes) + 1)
            self.objects[url] = stored
            self.writes.append(("apply", url))
            return stored
        if method == "DELETE":
            self.objects.pop(url, None)
            self.writes.append(("delete", url))
            return None
        raise AssertionError(f"unexpected {method} {url}")


def api_error(status: int, message: str = "boom") -> ApiException:
    exc = ApiException(status=status, reason="Error")
    exc.body = json.dumps({"message": message})
    return exc
