"""An in-memory stand-in for the API server's REST interface, for fast reconcile tests.

It overrides the primitives of :class:`game_analytics.controller.k8s.Cluster` that reach the API server (get,
list by label selector, server-side apply as create-or-replace, create, delete, label merge patch, API group
probes) with a dict of objects by REST path, and counts writes.
"""

from __future__ import annotations

import base64
import copy
from pathlib import Path

import yaml
from lightkube import ApiError

from game_analytics.controller import k8s
from game_analytics.controller.k8s import Cluster, path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAMESPACE = "games"
#: every Secret key the examples reference, with a value of the right shape (URLs where a URL is expected)
EXAMPLE_SECRETS: dict[str, dict[str, str]] = {
    "alerting-secrets": {"pager-webhook-url": "https://pager.example.com/hook",
                         "discord-webhook-url": "https://discord.example.com/api/webhooks/1/x",
                         "smtp-password": "s3cret", "pagerduty-routing-key": "R0UT1NG",
                         "slack-webhook-url": "https://hooks.slack.example.com/services/T/B/X",
                         "crm-webhook-url": "https://crm.example.com/hooks/churn"},
    "analytics-postgres": {"dsn": "postgresql+psycopg://u:p@db:5432/analytics"},
    "analytics-postgres-owner": {"dsn": "postgresql+psycopg://owner:p@db:5432/analytics"},
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
        self.fail_next: ApiError | None = None
        self._served = {}
        for obj in example_dependencies(secrets=secrets, data_source=data_source):
            self.add(obj)
        self.preexisting = set(self.objects)

    def created(self) -> dict[str, dict]:
        """The objects that were not there from the start."""
        return {p: o for p, o in self.objects.items() if p not in self.preexisting}

    def add(self, obj: dict) -> None:
        meta = obj["metadata"]
        self.objects[path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])] = copy.deepcopy(obj)

    def _failing(self) -> None:
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc

    def get(self, api_version, kind, namespace, name):
        self._failing()
        return copy.deepcopy(self.objects.get(path(api_version, kind, namespace, name)))

    def list(self, api_version, kind, namespace, label_selector):
        self._failing()
        url, wanted = path(api_version, kind, namespace), k8s._labels(label_selector) or {}
        return [copy.deepcopy(o) for p, o in self.objects.items() if p.rsplit("/", 1)[0] == url
                and wanted.items() <= o["metadata"].get("labels", {}).items()]

    def apply(self, manifest):
        self._failing()
        meta = manifest["metadata"]
        url = path(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"])
        stored = copy.deepcopy(manifest)
        stored["metadata"]["resourceVersion"] = str(len(self.writes) + 1)
        self.objects[url] = stored
        self.writes.append(("apply", url))
        return copy.deepcopy(stored)

    def create(self, manifest):
        self._failing()
        meta = manifest["metadata"]
        url = path(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta.get("name") or "generated")
        self.writes.append(("create", url))
        return copy.deepcopy(manifest)

    def delete(self, api_version, kind, namespace, name):
        self._failing()
        url = path(api_version, kind, namespace, name)
        self.objects.pop(url, None)
        self.writes.append(("delete", url))

    def merge_labels(self, namespace, pod, labels):
        self._failing()
        url = path("v1", "Pod", namespace, pod)
        self.objects[url]["metadata"].setdefault("labels", {}).update(labels)
        self.writes.append(("merge", url))

    def probe(self, api_version, namespace):
        self._failing()
        return api_version in self.served_groups


def api_error(status: int, message: str = "boom") -> ApiError:
    """The error the API server answers with HTTP ``status`` and ``message``."""
    return k8s.api_error(status, "Error", message)
