"""An in-memory stand-in for the API server's REST interface, for fast reconcile tests.

It implements just what :class:`game_analytics.controller.k8s.Cluster` sends (GET, list by label selector,
server-side apply as create-or-replace, DELETE, API group probes) and counts writes.
"""

from __future__ import annotations

import copy
import json

from kubernetes.client.exceptions import ApiException

from game_analytics.controller.k8s import Cluster


class FakeCluster(Cluster):
    def __init__(self, served_groups=("monitoring.coreos.com/v1", "monitoring.coreos.com/v1alpha1")):
        self.objects: dict[str, dict] = {}
        self.writes: list[tuple[str, str]] = []
        self.served_groups = set(served_groups)
        self.fail_next: ApiException | None = None
        self._served = {}

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
            wanted = dict(kv.split("=", 1) for kv in query["labelSelector"].split(","))
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
