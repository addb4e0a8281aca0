"""The operator's one client of the API server: read, compare, server-side apply, prune, post Events.

It talks to the API server through lightkube's public, typed :class:`lightkube.Client` (kubeconfig, in-cluster
tokens, TLS): built-in kinds as lightkube's typed resources, the operator's own and prometheus-operator's kinds as
lightkube generic resources, from a static table (:data:`PLURALS`), so that it needs no discovery round-trips. The
rest of the operator sees plain dicts. Writes happen only when the live object differs from the desired one, with
quantities compared as the API server stores them (:func:`drifted`): an idle resync costs reads, never writes.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from lightkube import ApiError, Client, KubeConfig
from lightkube.core.resource_registry import resource_registry
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import Status
from lightkube.types import CascadeType, PatchType

from ..api import GROUP, KINDS, VERSION
from .cache import SecretMemo, Store
from .common.render import LABEL_OWNER_KIND, LABEL_OWNER_NAME, Manifest, parse_quantity

FIELD_MANAGER = "game-analytics-operator"
#: API groups a cluster may not serve; children of these kinds are skipped (and reported) when it does not.
OPTIONAL_GROUPS = ("monitoring.coreos.com/",)
log = logging.getLogger(__name__)

#: (apiVersion, kind) -> plural, for every resource the operator reads or writes (all namespaced).
PLURALS: dict[tuple[str, str], str] = {
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Secret"): "secrets",
    ("v1", "Service"): "services",
    ("v1", "ServiceAccount"): "serviceaccounts",
    ("v1", "Pod"): "pods",
    ("v1", "Event"): "events",
    ("apps/v1", "Deployment"): "deployments",
    ("apps/v1", "StatefulSet"): "statefulsets",
    ("batch/v1", "CronJob"): "cronjobs",
    ("batch/v1", "Job"): "jobs",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicies",
    ("rbac.authorization.k8s.io/v1", "Role"): "roles",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rolebindings",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrules",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitors",
    ("monitoring.coreos.com/v1alpha1", "AlertmanagerConfig"): "alertmanagerconfigs",
    **{(f"{GROUP}/{VERSION}", k.kind): k.plural for k in KINDS},
}


#: lightkube's generic-resource registry is not thread-safe: two handler threads registering the same kind at once
#: raised "Another class for resource ... is already registered" (and the handler retried a minute later)
_REGISTRY_LOCK = threading.Lock()


def resource(api_version: str, kind: str) -> type:
    """The lightkube resource class of ``(api_version, kind)`` (a key of :data:`PLURALS`): lightkube's typed one for
    a built-in kind, a generic namespaced resource for the operator's and prometheus-operator's kinds.

    Raises:
        KeyError: a kind the operator never touches.
    """
    plural = PLURALS[(api_version, kind)]
    group, _, version = api_version.rpartition("/")
    if group == GROUP or api_version.startswith(OPTIONAL_GROUPS):
        with _REGISTRY_LOCK:  # returns the registered class when repeated
            return create_namespaced_resource(group, version, kind, plural)
    return resource_registry.load(api_version, kind)


def path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    """The REST path of a namespaced resource collection, or of one object when ``name`` is given."""
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    out = f"{base}/namespaces/{namespace}/{PLURALS[(api_version, kind)]}"
    return f"{out}/{name}" if name else out


#: Keys whose value (or, for maps such as ``requests``, every value) is a resource.Quantity, which the API server
#: stores in canonical form: ``"0.5"`` comes back as ``"500m"``, ``"1024Mi"`` as ``"1Gi"``.
QUANTITY_KEYS = frozenset({"requests", "limits", "hard", "storage", "sizeLimit", "capacity"})


def _same_quantity(desired: Any, live: Any) -> bool | None:
    """Whether two quantities are equal as numbers (``"0.5"`` and ``"500m"``, ``1`` and ``"1"``, ``"1G"`` and
    ``"1000M"``); None when either is not a quantity."""
    try:
        return parse_quantity(str(desired)) == parse_quantity(str(live))
    except (ValueError, TypeError, ArithmeticError):
        return None


def drifted(desired: Any, live: Any, *, quantity: bool = False) -> bool:
    """True when ``live`` does not contain ``desired``: every key and list item the operator sets must match.

    Fields the API server or other controllers add (defaults, status, annotations of others) are ignored, so that
    a freshly applied object compares equal to its desired form and a resync writes nothing. Values under
    :data:`QUANTITY_KEYS` are compared as quantities, the way the API server normalises them.
    """
    if isinstance(desired, dict):
        return not isinstance(live, dict) or any(
            drifted(v, live.get(k), quantity=quantity or k in QUANTITY_KEYS) for k, v in desired.items())
    if isinstance(desired, list):
        return (not isinstance(live, list) or len(desired) != len(live)
                or any(drifted(d, v) for d, v in zip(desired, live, strict=True)))
    if quantity and desired is not None and live is not None and not isinstance(desired, bool):
        same = _same_quantity(desired, live)
        if same is not None:
            return not same
    if isinstance(desired, bool) or isinstance(live, bool):
        return desired is not live
    if isinstance(desired, (int, float)) and isinstance(live, (int, float)):
        return float(desired) != float(live)
    return desired != live


@dataclass
class ApplyResult:
    """What an :meth:`Cluster.ensure` call changed."""

    applied: list[str] = field(default_factory=list)  # "Kind/name" created or updated
    pruned: list[str] = field(default_factory=list)  # "Kind/name" deleted because no longer desired
    unavailable: list[str] = field(default_factory=list)  # apiVersions the cluster does not serve

    @property
    def changed(self) -> bool:
        return bool(self.applied or self.pruned)


class ChildConflict(Exception):
    """A desired child exists already and another object is its controller: it is left alone, never overwritten.
    ``reason`` (``ChildConflict``) and ``message`` as :class:`~.common.plan.DependencyError` has them."""

    reason = "ChildConflict"

    def __init__(self, child: str, other: str):
        self.message = (f"metadata.name: the generated {child} already exists and belongs to {other}; "
                        "rename this object (or that one)")
        super().__init__(self.message)


def controller_uid(obj: dict) -> tuple[str, str] | None:
    """``(uid, "Kind name")`` of the object's controller owner reference, or None."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid", ""), f"{ref.get('kind')} {ref.get('name')}"
    return None


#: The bounded ``reason`` of an API server call that failed below HTTP (:class:`ApiUnavailable`).
NETWORK_REASONS = ("ConnectionRefused", "ConnectionReset", "Timeout", "TLS", "DNS", "Network")


class ApiUnavailable(ApiError):
    """The API server could not be reached, or the connection failed before an HTTP answer: ``status.code`` 0,
    ``status.reason`` one of :data:`NETWORK_REASONS` and ``status.message`` the underlying error's text. A
    :class:`lightkube.ApiError`, so that everything handling the API server's errors handles these too."""

    def __init__(self, reason: str, detail: str):
        super().__init__(status=Status(code=0, reason=reason, message=detail, status="Failure"))


def api_error(code: int, reason: str, message: str, response: httpx2.Response | None = None) -> ApiError:
    """A :class:`lightkube.ApiError` with HTTP status ``code``, as lightkube raises for a JSON ``Status`` answer
    (used for answers without one, such as a plain-text ``404 page not found``)."""
    exc = ApiError(status=Status(code=code, reason=reason, message=message, status="Failure"))
    exc.response = response
    return exc


def status_code(exc: BaseException) -> int:
    """The HTTP status of a failed API server call: 0 for a connection failure or any other error."""
    status = getattr(exc, "status", None)
    return int(getattr(status, "code", None) or 0) if isinstance(exc, ApiError) else 0


def retry_after(exc: BaseException) -> float | None:
    """Seconds the API server asked to wait (its ``Retry-After`` header, e.g. on a 429), or None."""
    from ..reports.delivery import retry_after_seconds

    response = getattr(exc, "response", None)
    return retry_after_seconds(response.headers.get("Retry-After")) if response is not None else None


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the errors it wraps (causes, contexts, exception arguments), outermost first."""
    out, todo = [], [exc]
    while todo and len(out) < 20:
        e = todo.pop(0)
        if e in out:
            continue
        out.append(e)
        todo += [x for x in (e.__cause__, e.__context__, *getattr(e, "args", ())) if isinstance(x, BaseException)]
    return out


def network_reason(exc: BaseException) -> str:
    """The :data:`NETWORK_REASONS` entry of a failed connection (httpx2's and the socket's errors)."""
    chain = _chain(exc)
    text = " ".join(str(e) for e in chain)
    if any(isinstance(e, ssl.SSLError) for e in chain) or "SSL" in text or "CERTIFICATE" in text:
        return "TLS"
    if any(isinstance(e, socket.gaierror) for e in chain) or "Name or service not known" in text:
        return "DNS"
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "Connection refused" in text:
        return "ConnectionRefused"
    if any(isinstance(e, (httpx2.TimeoutException, TimeoutError)) for e in chain):
        return "Timeout"
    if any(isinstance(e, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, httpx2.ReadError,
                          httpx2.WriteError, httpx2.RemoteProtocolError, http.client.RemoteDisconnected))
           for e in chain):
        return "ConnectionReset"
    return "Network"


def error_reason(exc: BaseException) -> str:
    """The bounded ``reason`` label of a failed API server call, for the reconcile-error metric: a
    :data:`NETWORK_REASONS` entry, ``TooManyRequests`` (429), ``ServerError`` (5xx), ``Conflict`` (409),
    ``Forbidden`` (403), ``Rejected`` (400, 404, 422) or ``HTTPError`` (any other status)."""
    if isinstance(exc, ApiUnavailable):
        return str(exc.status.reason)
    status = status_code(exc)
    if not status:
        return network_reason(exc)
    if status == 429:
        return "TooManyRequests"
    if status >= 500:
        return "ServerError"
    return {409: "Conflict", 403: "Forbidden", 400: "Rejected", 404: "Rejected", 422: "Rejected"}.get(status,
                                                                                                    "HTTPError")


@contextmanager
def _api_call() -> Iterator[None]:
    """Every failure of the calls inside as a :class:`lightkube.ApiError`: lightkube's own as they come, an HTTP
    error without a JSON ``Status`` body as one with its text, a connection failure as :class:`ApiUnavailable`."""
    try:
        yield
    except ApiError:
        raise
    except httpx2.HTTPStatusError as exc:
        response = exc.response
        raise api_error(response.status_code, response.reason_phrase or "Error", response.text[:500],
                        response) from exc
    except (httpx2.TransportError, OSError) as exc:
        raise ApiUnavailable(network_reason(exc), str(exc)[:500] or type(exc).__name__) from exc


def _as_dict(obj: Any) -> dict:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _labels(selector: str) -> dict[str, str] | None:
    """An equality label selector (``a=b,c=d``, the only kind the operator builds) as lightkube's dict."""
    return dict(kv.split("=", 1) for kv in selector.split(",") if kv) or None


class Cluster:
    """The operator's cluster access over a :class:`lightkube.Client`, objects in and out as plain dicts.

    ``client`` defaults to one configured from the in-cluster service account, else ``$KUBECONFIG`` or
    ``~/.kube/config`` (lightkube's order), created on first use; ``timeout`` (seconds) bounds each call. Every
    call fails with a :class:`lightkube.ApiError`: the API server's HTTP errors as they come, connection failures
    (refused, reset, timed out, TLS, DNS) as :class:`ApiUnavailable` (``status.code`` 0).

    With ``cache`` (what the operator runs with), reads are served from watch-fed stores (:mod:`.cache`): every kind
    of :data:`PLURALS` but Secrets (remembered ``secret_ttl`` seconds instead) and Events; what the cache cannot
    answer is asked of the API server.
    """

    def __init__(self, client: Client | None = None, timeout: float = 30.0, *, cache: bool = False,
                 secret_ttl: float = 10.0):
        self._client = client
        self.timeout = timeout
        self._served: dict[str, tuple[bool, float]] = {}
        self.cache = cache
        self._stores: dict[tuple[str, str, str], Store] = {}
        self._stores_lock = threading.Lock()
        self._secrets = SecretMemo(secret_ttl) if cache else None

    @classmethod
    def from_kubeconfig(cls, path: str | Path, timeout: float = 30.0, *, cache: bool = False) -> Cluster:
        """A Cluster authenticated by the kubeconfig file at ``path`` (its current context)."""
        return cls(Client(KubeConfig.from_file(path), timeout=httpx2.Timeout(timeout), field_manager=FIELD_MANAGER),
                   timeout, cache=cache)

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(timeout=httpx2.Timeout(self.timeout), field_manager=FIELD_MANAGER)
        return self._client

    def close(self) -> None:
        """Stop the cache's watches and close the connections (the client is created anew on next use)."""
        with self._stores_lock:
            stores, self._stores = list(self._stores.values()), {}
        for store in stores:
            store.stop()
        if self._client is not None:
            self._client.close()

    def store(self, api_version: str, kind: str, namespace: str) -> Store | None:
        """The synced watch-fed store of the kind in ``namespace`` (started on first use), or None: no ``cache``,
        a kind that is not cached (Secrets, Events), or its list failed (then the caller reads directly)."""
        if not getattr(self, "cache", False) or kind in ("Secret", "Event"):  # subclasses may skip __init__
            return None
        key = (api_version, kind, namespace)
        with self._stores_lock:
            store = self._stores.get(key)
            if store is None:
                store = self._stores[key] = self._new_store(api_version, kind, namespace)
        return store if store.ready() else None

    def _new_store(self, api_version: str, kind: str, namespace: str) -> Store:
        from .watches import client_store  # it uses this module's request helpers

        return client_store(self, api_version, kind, namespace)

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict | None:
        """The object, or None when it does not exist (from the cache when it holds it)."""
        store = self.store(api_version, kind, namespace)
        if store is not None and (cached := store.get(name)) is not None:
            return cached
        if self._secrets is not None and kind == "Secret" and (cached := self._secrets.get(namespace, name)):
            return cached
        try:
            with _api_call():
                live = _as_dict(self.client.get(resource(api_version, kind), name, namespace=namespace))
        except ApiError as exc:
            if status_code(exc) == 404:
                if self._secrets is not None and kind == "Secret":
                    self._secrets.put(namespace, name, None)
                return None
            raise
        if store is not None:
            store.put(live)
        elif self._secrets is not None and kind == "Secret":
            self._secrets.put(namespace, name, live)
        return live

    def list(self, api_version: str, kind: str, namespace: str, label_selector: str) -> list[dict]:
        """The objects in ``namespace`` matching ``label_selector`` (``a=b,c=d``; empty: all)."""
        store = self.store(api_version, kind, namespace)
        if store is not None and store.covers(_labels(label_selector)):
            return store.list(_labels(label_selector))
        with _api_call():
            return [_as_dict(o) for o in self.client.list(resource(api_version, kind), namespace=namespace,
                                                          labels=_labels(label_selector))]

    def names(self, api_version: str, kind: str, namespace: str) -> list[str]:
        """The names of every object of the kind in ``namespace`` (from the cache without decoding one)."""
        store = self.store(api_version, kind, namespace)
        if store is not None:
            return store.names()
        return [o["metadata"]["name"] for o in self.list(api_version, kind, namespace, "")]

    def _remember(self, obj: dict) -> dict:
        """Put what the API server answered to a write into the kind's store (when cached); returns ``obj``."""
        meta = obj.get("metadata") or {}
        if self.cache and obj.get("apiVersion") and obj.get("kind") and meta.get("namespace"):
            with self._stores_lock:
                store = self._stores.get((obj["apiVersion"], obj["kind"], meta["namespace"]))
            if store is not None:
                store.put(obj)
        return obj

    def apply(self, manifest: Manifest) -> dict:
        """Server-side apply ``manifest`` with the operator's field manager, taking ownership of its fields
        (``force``). The body is sent as UTF-8 JSON, never ASCII-escaped: an emoji's surrogate-pair escapes are not
        valid YAML, and the API server refused them (``invalid Unicode character escape code``)."""
        meta = manifest["metadata"]
        with _api_call():
            return self._remember(_as_dict(self.client.patch(
                resource(manifest["apiVersion"], manifest["kind"]), meta["name"], manifest,
                namespace=meta["namespace"], patch_type=PatchType.APPLY, field_manager=FIELD_MANAGER, force=True)))

    def create(self, manifest: Manifest) -> dict:
        """Create ``manifest`` (e.g. an Event with ``metadata.generateName``) in its namespace."""
        res = resource(manifest["apiVersion"], manifest["kind"])
        with _api_call():
            return _as_dict(self.client.create(res.from_dict(manifest), namespace=manifest["metadata"]["namespace"]))

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Delete the object, its dependents in the background; an object already gone is no error."""
        try:
            with _api_call():
                self.client.delete(resource(api_version, kind), name, namespace=namespace,
                                   cascade=CascadeType.BACKGROUND)
        except ApiError as exc:
            if status_code(exc) != 404:
                raise
        with self._stores_lock:
            store = self._stores.get((api_version, kind, namespace))
        if store is not None:
            store.remove(name)

    def merge_labels(self, namespace: str, pod: str, labels: dict[str, str]) -> None:
        """Merge-patch ``labels`` onto the Pod ``pod``."""
        with _api_call():
            patched = self.client.patch(resource("v1", "Pod"), pod, {"metadata": {"labels": labels}},
                                        namespace=namespace, patch_type=PatchType.MERGE)
        self._remember(_as_dict(patched))

    def label_pods(self, namespace: str, wanted: dict[str, dict[str, str]]) -> list[str]:
        """Merge-patch labels onto existing pods where they differ; returns ``Pod/name`` of those patched."""
        patched = []
        for pod, labels in sorted(wanted.items()):
            live = self.get("v1", "Pod", namespace, pod)
            if live is None or not drifted(labels, live["metadata"].get("labels", {})):
                continue
            self.merge_labels(namespace, pod, labels)
            patched.append(f"Pod/{pod}")
        return patched

    def probe(self, api_version: str, namespace: str) -> bool:
        """Whether the API server serves ``api_version``: a one-item list of its first kind in ``namespace``
        (the operator may list every kind it writes), False on 404."""
        kind = next(k for v, k in PLURALS if v == api_version)
        try:
            with _api_call():
                next(iter(self.client.list(resource(api_version, kind), namespace=namespace, chunk_size=1)), None)
            return True
        except ApiError as exc:
            if status_code(exc) != 404:
                raise
            return False

    def serves(self, api_version: str, namespace: str = "default", ttl: float = 60.0) -> bool:
        """Whether the cluster serves ``api_version``, cached for ``ttl`` s.

        Only the optional groups (prometheus-operator's, which a cluster may lack) are probed; built-in groups and
        the operator's own are always there.
        """
        if not api_version.startswith(OPTIONAL_GROUPS):
            return True
        cached = self._served.get(api_version)
        if cached and time.monotonic() - cached[1] < ttl:
            return cached[0]
        served = self.probe(api_version, namespace)
        self._served[api_version] = (served, time.monotonic())
        return served

    def ensure(self, owner_kind: str, owner_name: str, namespace: str, desired: list[Manifest],
               child_types: list[tuple[str, str]]) -> ApplyResult:
        """Make the owner's children exactly ``desired``: apply what drifted, delete what is no longer desired.

        ``child_types`` lists every (apiVersion, kind) this owner kind can ever produce, so that children dropped
        from ``desired`` (say, the AlertmanagerConfig after the last channel is removed) are found and pruned.
        Types whose API the cluster does not serve are skipped and listed in ``ApplyResult.unavailable``.

        Raises:
            ChildConflict: a desired child exists with another controller owner (two objects would otherwise
                overwrite each other's child forever); nothing is applied or pruned then.
        """
        result = ApplyResult()
        observed = []
        for manifest in desired:  # read all first: a conflict anywhere means nothing is written
            api_version, kind, name = manifest["apiVersion"], manifest["kind"], manifest["metadata"]["name"]
            if not self.serves(api_version, namespace):
                result.unavailable.append(api_version)
                continue
            live = self.get(api_version, kind, namespace, name)
            theirs, mine = controller_uid(live or {}), controller_uid(manifest)
            if theirs and mine and theirs[0] != mine[0]:
                raise ChildConflict(f"{kind}/{name}", theirs[1])
            observed.append((manifest, live))
        for manifest, live in observed:
            if live is None or drifted(manifest, live):
                child = f"{manifest['kind']}/{manifest['metadata']['name']}"
                try:
                    self.apply(manifest)
                except ApiError as exc:
                    exc.child = child  # which child the API server refused (controller.rejections)
                    raise
                result.applied.append(child)
        wanted = {(m["apiVersion"], m["kind"], m["metadata"]["name"]) for m in desired}
        selector = f"{LABEL_OWNER_KIND}={owner_kind},{LABEL_OWNER_NAME}={owner_name}"
        for api_version, kind in child_types:
            if not self.serves(api_version, namespace):
                continue
            for live in self.list(api_version, kind, namespace, selector):
                name = live["metadata"]["name"]
                if (api_version, kind, name) not in wanted:
                    self.delete(api_version, kind, namespace, name)
                    result.pruned.append(f"{kind}/{name}")
        result.unavailable = sorted(set(result.unavailable))
        return result

