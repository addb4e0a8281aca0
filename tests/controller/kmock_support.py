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
* Watches subscribe to changes atomically with their initial snapshot, so no event is lost in between.
* A watch resumed from a ``resourceVersion`` this emulator gave also gets a ``DELETED`` event for each object
  deleted since (the API server replays the events after that version). Without it an object deleted while a
  client was between two watches stayed in that client's cache for good (the read cache's watches end after 1 s
  of silence in these tests).

The API discovery of built-in kinds comes from kmock's bundled resource list; our CRDs are registered from
``crds/*.yaml``, and the prometheus-operator kinds the operator writes are registered by hand.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import itertools
import threading
import uuid
from collections.abc import AsyncIterator, Mapping
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


def _watched(request: kmock.Request, resource: Any, namespace: str | None, name: str | None) -> bool:
    """Whether a watch ``request`` covers the object (cluster-wide watches see all namespaces)."""
    return (resource == request.resource and (request.namespace is None or namespace == request.namespace)
            and (request.name is None or name == request.name))


def _amend(request: kmock.Request, **fields: Any) -> None:
    """Replace fields of a recorded (frozen) kmock request in place."""
    for name, value in fields.items():
        object.__setattr__(request, name, value)


@attrs.define(kw_only=True)
class ApiServerEmulator(kmock.KubernetesEmulator):
    """kmock's Kubernetes emulator plus the API server behaviours listed in this module's docstring."""

    _write_lock: asyncio.Lock = attrs.field(factory=asyncio.Lock, init=False)
    _versions: itertools.count = attrs.field(factory=lambda: itertools.count(1), init=False)
    #: the resourceVersion each deletion was given, by object key
    _deleted_at: dict = attrs.field(factory=dict, init=False)

    async def _handle(self, request: kmock.Request) -> Any:
        if request.resource is not None and request.action == kmock.action.DELETE:
            try:
                return await super()._handle(request)
            finally:
                key = (request.resource, request.namespace, request.name)
                if key in self.objects and self.objects[key].deleted:
                    self._deleted_at[key] = next(self._versions)
        if request.resource is None or request.action not in (kmock.action.CREATE, kmock.action.UPDATE):
            return await super()._handle(request)
        async with self._write_lock:  # previews below must see the state the write is applied to
            try:
                self._complete(request)
                return await super()._handle(request)
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
                raise kmock.KubernetesError(status=422, reason="Invalid", message=str(exc)) from None

    def _complete(self, request: kmock.Request) -> None:
        """Add the metadata a real API server would set, or turn an apply of a missing object into a create.

        The request is amended in place: kmock matches its reactions against the request objects it recorded,
        by identity, so a copy would match none of them.
        """
        if request.action == kmock.action.CREATE:
            _amend(request, data=self._new_object(request.data))
            return
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            if request.headers.get("Content-Type", "").startswith(APPLY_PATCH) and isinstance(request.data, dict):
                data = copy.deepcopy(request.data)
                data.setdefault("metadata", {}).update(name=request.name, namespace=request.namespace)
                _amend(request, action=kmock.action.CREATE, data=self._new_object(data))
            return  # otherwise kmock answers 404
        current = self.objects[key].raw
        preview = dicts.patch_dict(copy.deepcopy(current), request.data or {})  # raises on failed JSON-patch tests
        meta = {"resourceVersion": str(next(self._versions))}
        if request.subresource is None and preview.get("spec") != current.get("spec"):
            meta["generation"] = int(current.get("metadata", {}).get("generation") or 0) + 1
        _amend(request, data=_set_meta(request.data or {}, **meta))

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

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[Any]:
        """kmock's watch, but subscribed to the event bus in the same critical section as the initial snapshot.

        kmock 0.8 subscribes only after it has streamed the snapshot; a write landing in between (Kopf patching
        the object it has just listed) is then never delivered on that stream, and Kopf waits forever.
        """
        yield b""  # send the headers now
        assert request.resource is not None
        bus = self._buses[request.resource]
        since = str(request.params.get("resourceVersion") or "")
        async with self._lock:  # writes publish to the bus while holding this lock
            marker = await bus.mark()
            snapshot = [{"type": "ADDED", "object": obj.raw} for (res, ns, name), obj in self.objects.items()
                        if not obj.deleted and _watched(request, res, ns, name)]
            if since.isdigit():  # kmock's lists answer version "...": only a resumed watch has a number
                snapshot += [{"type": "DELETED", "object": self.objects[key].last.raw}
                             for key, at in self._deleted_at.items()
                             if at > int(since) and self.objects[key].deleted and _watched(request, *key)]
        try:
            for event in snapshot:
                yield event
            async for event in bus.stream(since=marker):
                meta = event.get("object", {}).get("metadata", {})
                if _watched(request, request.resource, meta.get("namespace"), meta.get("name")):
                    yield event
        finally:
            await bus.unmark(marker)

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


class EmulatorThread:
    """An :class:`ApiServerEmulator` served over HTTP on 127.0.0.1 from its own thread and event loop.

    Its own loop keeps it independent of the operator's: Kopf's shutdown waits for (and then cancels) every task
    spawned in its loop, which would include the emulator's never-ending watch streams. Tests talk to it with
    :meth:`call` (run a function in the emulator's loop, e.g. to read ``objects`` consistently) and :meth:`create`.

    Usage::

        with EmulatorThread() as api:
            api.create(manifest)
            live = api.get("gameanalytics.io/v1alpha1/alertrules", "games", "name")
    """

    def __init__(self, timeout: float = 10.0):
        self.timeout = timeout
        self.emulator: ApiServerEmulator | None = None
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kmock", daemon=True)
        self._error: BaseException | None = None

    def __enter__(self) -> EmulatorThread:
        self._thread.start()
        if not self._ready.wait(self.timeout) or self._error:
            raise RuntimeError("the kmock emulator did not start") from self._error
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(self.timeout)
        if self._thread.is_alive():
            raise RuntimeError("the kmock emulator did not stop")

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            async with ApiServerEmulator() as emulator, kmock.Server(emulator) as server:
                emulator.resources.load_bundled()  # discovery of built-in kinds (v1, apps/v1, batch/v1 ...)
                emulator.register_crds()
                emulator.register_monitoring()
                self.emulator, self.url = emulator, f"http://{server.host}:{server.port}"
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            raise

    def call(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` run in the emulator's loop (awaited if it returns an awaitable); returns its result."""
        async def invoke() -> Any:
            result = fn(*args)
            return await result if asyncio.iscoroutine(result) else result

        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(invoke(), self._loop).result(self.timeout)

    def create(self, manifest: dict) -> dict:
        """POST ``manifest`` (namespaced; ``metadata.namespace`` required) as a client would; returns the stored body.

        Raises:
            AssertionError: when the emulator answers with an error status.
        """
        api_version, plural = manifest["apiVersion"], self.plural(manifest["apiVersion"], manifest["kind"])
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        url = f"{base}/namespaces/{manifest['metadata']['namespace']}/{plural}"

        async def post() -> tuple[int, Any]:
            assert self.emulator is not None
            async with self.emulator.post(url, json=manifest) as response:
                return response.status, await response.json()

        status, body = self.call(post)
        assert status in (200, 201), f"POST {url} -> {status}: {body}"
        return body

    def patch(self, resource: str, namespace: str, name: str, patch: dict) -> dict:
        """JSON-merge-patch an object over HTTP (like ``kubectl patch --type=merge``); returns the stored body."""
        group_version, _, plural = resource.rpartition("/")
        base = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        url = f"{base}/namespaces/{namespace}/{plural}/{name}"

        async def send() -> tuple[int, Any]:
            assert self.emulator is not None
            async with self.emulator.patch(url, json=patch,
                                           headers={"Content-Type": "application/merge-patch+json"}) as response:
                return response.status, await response.json()

        status, body = self.call(send)
        assert status == 200, f"PATCH {url} -> {status}: {body}"
        return body

    def plural(self, api_version: str, kind: str) -> str:
        """The plural name the emulator serves for ``kind`` in ``api_version``."""
        assert self.emulator is not None
        group, _, version = api_version.rpartition("/")
        for resource in self.emulator.resources:
            info = self.emulator.resources[resource]
            if resource.group == group and resource.version == version and info.kind == kind:
                return resource.plural
        raise KeyError(f"{api_version} {kind} is not served")

    def get(self, resource: str, namespace: str, name: str) -> dict | None:
        """A deep copy of the stored object (``resource`` as ``group/version/plural`` or ``v1/plural``), or None."""
        def read() -> dict | None:
            assert self.emulator is not None
            key = (kmock.resource(resource), namespace, name)  # kmock 0.8: `in` does not parse string keys
            if key not in self.emulator.objects or self.emulator.objects[key].deleted:
                return None
            return copy.deepcopy(self.emulator.objects[key].raw)

        return self.call(read)

    def list(self, resource: str, namespace: str) -> list[dict]:
        """Deep copies of all live objects of ``resource`` in ``namespace``."""
        def read() -> list[dict]:
            assert self.emulator is not None
            wanted = kmock.resource(resource)
            return [copy.deepcopy(obj.raw) for (res, ns, _), obj in self.emulator.objects.items()
                    if res == wanted and ns == namespace and not obj.deleted]

        return self.call(read)
