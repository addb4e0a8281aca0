"""Support for the kmock handler tests: an API emulator closer to a real kube-apiserver, and the operator runner.

:class:`ApiServerEmulator` is kmock's :class:`kmock.KubernetesEmulator` plus the few API server behaviours that
kmock 0.8 leaves out and that Kopf or our :class:`game_analytics.controller.k8s.Cluster` depend on. Each one is
a documented behaviour of the real API server (see docs/testing.md, "kmock tier"):

* ``metadata.uid``, ``resourceVersion``, ``generation`` and ``creationTimestamp`` on create; a new
  ``resourceVersion`` on every write; ``generation`` + 1 when ``spec`` changes. Kopf JSON-patches with a
  ``test`` operation on ``/metadata/resourceVersion``, and our status reports ``observedGeneration``.
* ``metadata.generateName`` (Kopf posts Events with it).
* Server-side apply (``PATCH`` with ``application/apply-patch+yaml``) of a missing object creates it; of an
  existing one it is a JSON merge patch (kmock's PATCH semantics), which is enough for create-or-update but not
  field ownership: fields the manager stopped setting are not removed.
* Equality-based ``labelSelector`` on list requests (``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``).
* A failed JSON-patch ``test`` operation answers 422 (as the API server does), not 500.

The API discovery of built-in kinds comes from kmock's bundled resource list; our CRDs are registered from
``crds/*.yaml``, and the prometheus-operator kinds the operator writes are registered by hand.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import itertools
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import jsonpatch
import jsonpointer
import kmock
import yaml
from kmock._internal import dicts  # kmock's own merge/JSON-patch function, so previews match what it stores

CRDS = Path(__file__).resolve().parents[2] / "crds"

#: The prometheus-operator kinds our operator writes: (group/version/plural, kind).
MONITORING_RESOURCES = (
    ("monitoring.coreos.com/v1/prometheusrules", "PrometheusRule"),
    ("monitoring.coreos.com/v1/servicemonitors", "ServiceMonitor"),
    ("monitoring.coreos.com/v1alpha1/alertmanagerconfigs", "AlertmanagerConfig"),
)
ALL_VERBS = {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
APPLY_PATCH = "application/apply-patch+yaml"


def selector_matches(selector: str, labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy an equality-based label selector such as ``a=b,c!=d,e,!f``.

    Raises:
        kmock.KubernetesError: 400 for set-based selectors (``in``/``notin``), which are not emulated.
    """
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "(" in term or " in " in term or " notin " in term:
            raise kmock.KubernetesError(status=400, reason="BadRequest",
                                        message=f"set-based selector not emulated: {selector!r}")
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _set_meta(patch: Any, **fields: Any) -> Any:
    """``patch`` (a merge-patch dict or a JSON-patch list) extended to also set ``metadata.<field>``."""
    if isinstance(patch, list):
        return patch + [{"op": "add", "path": f"/metadata/{k}", "value": v} for k, v in fields.items()]
    out = dict(patch)
    out["metadata"] = {**(out.get("metadata") or {}), **fields}
    return out


@attrs.define(kw_only=True)
class ApiServerEmulator(kmock.KubernetesEmulator):
    """kmock's Kubernetes emulator plus the API server behaviours listed in this module's docstring."""

    _write_lock: asyncio.Lock = attrs.field(factory=asyncio.Lock, init=False)
    _versions: itertools.count = attrs.field(factory=lambda: itertools.count(1), init=False)

    async def _handle(self, request: kmock.Request) -> Any:
        if request.resource is None or request.action not in (kmock.action.CREATE, kmock.action.UPDATE):
            return await super()._handle(request)
        async with self._write_lock:  # previews below must see the state the write is applied to
            try:
                request = self._complete(request)
                return await super()._handle(request)
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
                raise kmock.KubernetesError(status=422, reason="Invalid", message=str(exc)) from None

    def _complete(self, request: kmock.Request) -> kmock.Request:
        """The request with the metadata a real API server would set, or turned into a create (apply)."""
        if request.action == kmock.action.CREATE:
            return attrs.evolve(request, data=self._new_object(request.data))
        key = (request.resource, request.namespace, request.name)
        exists = key in self.objects and not self.objects[key].deleted
        if not exists:
            if request.headers.get("Content-Type", "").startswith(APPLY_PATCH) and isinstance(request.data, dict):
                data = copy.deepcopy(request.data)
                data.setdefault("metadata", {}).update(name=request.name, namespace=request.namespace)
                return attrs.evolve(request, action=kmock.action.CREATE, data=self._new_object(data))
            return request  # kmock answers 404
        current = self.objects[key].raw
        preview = dicts.patch_dict(copy.deepcopy(current), request.data or {})  # raises on failed JSON-patch tests
        meta = {"resourceVersion": str(next(self._versions))}
        if request.subresource is None and preview.get("spec") != current.get("spec"):
            meta["generation"] = int(current.get("metadata", {}).get("generation") or 0) + 1
        return attrs.evolve(request, data=_set_meta(request.data or {}, **meta))

    def _new_object(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise kmock.KubernetesError(status=400, reason="BadRequest", message="the body must be a JSON object")
        data = copy.deepcopy(data)
        meta = data.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        meta.update(uid=str(uuid.uuid4()), resourceVersion=str(next(self._versions)), generation=1,
                    creationTimestamp=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        return data

    async def _serve_list(self, request: kmock.Request) -> Any:
        result = await super()._serve_list(request)
        selector = request.params.get("labelSelector")
        if selector:
            result["items"] = [o for o in result["items"]
                               if selector_matches(selector, o.get("metadata", {}).get("labels") or {})]
        return result

    def register_crds(self, folder: Path = CRDS) -> list[str]:
        """Serve every CRD in ``folder`` (all served versions) in API discovery; returns the ``group/version/plural``s."""
        served = []
        for path in sorted(folder.glob("*.yaml")):
            crd = yaml.safe_load(path.read_text())
            spec, names = crd["spec"], crd["spec"]["names"]
            for version in spec["versions"]:
                if not version.get("served", True):
                    continue
                key = f"{spec['group']}/{version['name']}/{names['plural']}"
                self.resources[key] = kmock.ResourceInfo(
                    kind=names["kind"], singular=names.get("singular"), namespaced=spec["scope"] == "Namespaced",
                    verbs=ALL_VERBS, shortnames=names.get("shortNames", []), categories=names.get("categories", []),
                    subresources=set(version.get("subresources") or {}))
                served.append(key)
        return served

    def register_monitoring(self) -> None:
        """Serve the prometheus-operator kinds (PrometheusRule, ServiceMonitor, AlertmanagerConfig)."""
        for key, kind in MONITORING_RESOURCES:
            self.resources[key] = kmock.ResourceInfo(kind=kind, singular=kind.lower(), namespaced=True,
                                                     verbs=ALL_VERBS)


def kubeconfig(server: str, namespace: str = "default") -> dict:
    """A kubeconfig document for ``server`` (``http://host:port``) with a dummy bearer token (kmock ignores it)."""
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "kmock",
        "clusters": [{"name": "kmock", "cluster": {"server": server}}],
        "users": [{"name": "kmock", "user": {"token": "kmock-test-token"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock", "namespace": namespace}}],
    }
