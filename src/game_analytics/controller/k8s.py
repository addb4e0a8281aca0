"""A small client for what the operator does to children: read, compare, server-side apply, prune.

It talks REST through the official ``kubernetes`` client's :class:`ApiClient` (which handles kubeconfig, in-cluster
tokens and TLS) with a static table of the resources the operator touches, so it needs no discovery round-trips.
Writes happen only when the live object differs from the desired one: an idle resync costs reads, never writes.
"""

from __future__ import annotations

import http.client
import json
import logging
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.utils.quantity import parse_quantity

from ..api import GROUP, KINDS, VERSION
from .common.render import LABEL_OWNER_KIND, LABEL_OWNER_NAME, Manifest

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
    ("apps/v1", "Deployment"): "deployments",
    ("apps/v1", "StatefulSet"): "statefulsets",
    ("batch/v1", "CronJob"): "cronjobs",
    ("batch/v1", "Job"): "jobs",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("rbac.authorization.k8s.io/v1", "Role"): "roles",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rolebindings",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrules",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitors",
    ("monitoring.coreos.com/v1alpha1", "AlertmanagerConfig"): "alertmanagerconfigs",
    **{(f"{GROUP}/{VERSION}", k.kind): k.plural for k in KINDS},
}


APPLY_PATCH = "application/apply-patch+yaml"


def encode_apply_patch(manifest: Any) -> bytes:
    """``manifest`` as the bytes of a server-side apply body: JSON (which is YAML) in UTF-8, no ASCII escapes."""
    return json.dumps(manifest, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    """The REST path of a namespaced resource collection, or of one object when ``name`` is given."""
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    out = f"{base}/namespaces/{namespace}/{PLURALS[(api_version, kind)]}"
    return f"{out}/{name}" if name else out


#: Keys whose value (or, for maps such as ``requests``, every value) is a resource.Quantity, which the API server
#: stores in canonical form: ``"0.5"`` comes back as ``"500m"``, ``"1024Mi"`` as ``"1Gi"``.
QUANTITY_KEYS = frozenset({"requests", "limits", "hard", "storage", "sizeLimit", "capacity"})


def _same_quantity(desired: Any, live: Any) -> bool | None:
    """Whether two quantities are equal as numbers; None when either is not a quantity."""
    try:
        return parse_quantity(desired) == parse_quantity(live)
    except (ValueError, TypeError):
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


class ApiUnavailable(ApiException):
    """The API server could not be reached, or the connection failed before an HTTP answer: ``status`` 0 and
    ``reason`` one of :data:`NETWORK_REASONS`; ``body`` holds the underlying error's text. An
    :class:`ApiException`, so that everything handling the API server's errors handles these too."""

    def __init__(self, reason: str, detail: str):
        super().__init__(status=0, reason=reason)
        self.body = detail


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the errors it wraps (urllib3's ``reason``, exception arguments, causes), outermost first."""
    out, todo = [], [exc]
    while todo and len(out) < 20:
        e = todo.pop(0)
        if e in out:
            continue
        out.append(e)
        todo += [x for x in (getattr(e, "reason", None), e.__cause__, e.__context__, *getattr(e, "args", ()))
                 if isinstance(x, BaseException)]
    return out


def network_reason(exc: BaseException) -> str:
    """The :data:`NETWORK_REASONS` entry of a failed connection (urllib3's and the socket's errors; the
    kubernetes client's ``ApiException(status=0)`` for TLS)."""
    chain = _chain(exc)
    text = " ".join(str(e) for e in chain)
    if any(isinstance(e, (urllib3.exceptions.SSLError, ssl.SSLError)) for e in chain) or "SSL" in text:
        return "TLS"
    if any(isinstance(e, urllib3.exceptions.NameResolutionError) for e in chain):
        return "DNS"
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "Connection refused" in text:
        return "ConnectionRefused"
    if any(isinstance(e, (urllib3.exceptions.TimeoutError, TimeoutError)) for e in chain):
        return "Timeout"
    if any(isinstance(e, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError,
                          http.client.RemoteDisconnected)) for e in chain):
        return "ConnectionReset"
    return "Network"


def error_reason(exc: BaseException) -> str:
    """The bounded ``reason`` label of a failed API server call, for the reconcile-error metric: a
    :data:`NETWORK_REASONS` entry, ``TooManyRequests`` (429), ``ServerError`` (5xx), ``Conflict`` (409),
    ``Forbidden`` (403), ``Rejected`` (400, 404, 422) or ``HTTPError`` (any other status)."""
    if isinstance(exc, ApiUnavailable):
        return str(exc.reason)
    status = getattr(exc, "status", None)
    if not isinstance(exc, ApiException) or not status:
        return network_reason(exc)
    if status == 429:
        return "TooManyRequests"
    if status >= 500:
        return "ServerError"
    return {409: "Conflict", 403: "Forbidden", 400: "Rejected", 404: "Rejected", 422: "Rejected"}.get(status,
                                                                                                    "HTTPError")


class Cluster:
    """Thin REST helper over :class:`kubernetes.client.ApiClient`.

    Every call fails with an :class:`ApiException`: the API server's HTTP errors as they come, and connection
    failures (refused, reset, timed out, TLS) as :class:`ApiUnavailable`. ``timeout`` (seconds) bounds each call.
    """

    def __init__(self, api_client: client.ApiClient | None = None, timeout: float = 30.0):
        self.api = api_client or new_api_client()
        self.timeout = timeout
        self._served: dict[str, tuple[bool, float]] = {}

    def request(self, method: str, url: str, *, body: Any = None, query: list[tuple[str, Any]] | None = None,
                content_type: str = "application/json") -> Any:
        """One REST call; returns the decoded JSON body (or None). Raises :class:`ApiException` on HTTP errors.

        An apply patch (``application/apply-patch+yaml``) is sent as UTF-8 JSON text: the client's own
        serialiser escapes non-ASCII as ``\\uXXXX``, and an emoji's surrogate-pair escapes are not valid YAML, so
        the API server refused them (``invalid Unicode character escape code``).
        """
        if content_type == APPLY_PATCH and body is not None and not isinstance(body, bytes):
            body = encode_apply_patch(body)
        method_, url_, headers, body_, _ = self.api.param_serialize(
            method, url, query_params=query or [], body=body, auth_settings=["BearerToken"],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
        )
        try:
            response = self.api.call_api(method_, url_, header_params=headers, body=body_,
                                         _request_timeout=self.timeout)
            data = response.read()
        except ApiException as exc:
            if exc.status:
                raise
            raise ApiUnavailable(network_reason(exc), str(exc.reason)) from exc  # the client's TLS errors
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ApiUnavailable(network_reason(exc), str(exc)[:500]) from exc
        if not 200 <= response.status < 300:
            raise ApiException(http_resp=response)
        return json.loads(data) if data else None

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict | None:
        try:
            return self.request("GET", path(api_version, kind, namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str, label_selector: str) -> list[dict]:
        result = self.request("GET", path(api_version, kind, namespace), query=[("labelSelector", label_selector)])
        return result.get("items", [])

    def apply(self, manifest: Manifest) -> dict:
        """Server-side apply ``manifest`` with the operator's field manager, taking ownership of its fields."""
        meta = manifest["metadata"]
        url = path(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"])
        return self.request("PATCH", url, body=manifest, content_type=APPLY_PATCH,
                            query=[("fieldManager", FIELD_MANAGER), ("force", "true")])

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        try:
            self.request("DELETE", path(api_version, kind, namespace, name),
                         body={"propagationPolicy": "Background"})
        except ApiException as exc:
            if exc.status != 404:
                raise

    def label_pods(self, namespace: str, wanted: dict[str, dict[str, str]]) -> list[str]:
        """Merge-patch labels onto existing pods where they differ; returns ``Pod/name`` of those patched."""
        patched = []
        for pod, labels in sorted(wanted.items()):
            live = self.get("v1", "Pod", namespace, pod)
            if live is None or not drifted(labels, live["metadata"].get("labels", {})):
                continue
            self.request("PATCH", path("v1", "Pod", namespace, pod), body={"metadata": {"labels": labels}},
                         content_type="application/merge-patch+json")
            patched.append(f"Pod/{pod}")
        return patched

    def serves(self, api_version: str, ttl: float = 60.0) -> bool:
        """Whether the cluster serves ``api_version``, cached for ``ttl`` s.

        Only the optional groups (prometheus-operator's, which a cluster may lack) are probed; built-in groups and
        the operator's own are always there.
        """
        if not api_version.startswith(OPTIONAL_GROUPS):
            return True
        cached = self._served.get(api_version)
        if cached and time.monotonic() - cached[1] < ttl:
            return cached[0]
        try:
            self.request("GET", f"/apis/{api_version}")
            served = True
        except ApiException as exc:
            if exc.status != 404:
                raise
            served = False
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
            if not self.serves(api_version):
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
                except ApiException as exc:
                    exc.child = child  # which child the API server refused (controller.rejections)
                    raise
                result.applied.append(child)
        wanted = {(m["apiVersion"], m["kind"], m["metadata"]["name"]) for m in desired}
        selector = f"{LABEL_OWNER_KIND}={owner_kind},{LABEL_OWNER_NAME}={owner_name}"
        for api_version, kind in child_types:
            if not self.serves(api_version):
                continue
            for live in self.list(api_version, kind, namespace, selector):
                name = live["metadata"]["name"]
                if (api_version, kind, name) not in wanted:
                    self.delete(api_version, kind, namespace, name)
                    result.pruned.append(f"{kind}/{name}")
        result.unavailable = sorted(set(result.unavailable))
        return result


def new_api_client() -> client.ApiClient:
    """An API client from the in-cluster service account, or else from the kubeconfig (``$KUBECONFIG``): the
    workers' loader (:func:`game_analytics.workers.runtime.kube_api_client`)."""
    from ..workers.runtime import kube_api_client

    return kube_api_client()
