"""The LIST and WATCH requests behind the read cache's stores (:mod:`.cache`), over a :class:`~.k8s.Cluster`'s
lightkube client. Objects come back as plain dicts; failures as :class:`lightkube.ApiError` (``_api_call``)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx2

from ..api import GROUP, VERSION
from . import cache as _cache
from .cache import Store
from .common.render import LABEL_OWNER_KIND
from .k8s import ApiUnavailable, Cluster, _api_call, _as_dict, api_error, resource


def client_store(cluster: Cluster, api_version: str, kind: str, namespace: str) -> Store:
    """A :class:`~.cache.Store` of ``kind`` in ``namespace`` fed by ``cluster``'s client: the operator's own kinds
    whole, every other kind only with the owner label (an existence selector)."""
    res = resource(api_version, kind)
    own = api_version == f"{GROUP}/{VERSION}"
    labels = None if own else {LABEL_OWNER_KIND: None}  # children and pods: only those with the owner label

    def lister() -> tuple[list[dict], str | None]:
        with _api_call():
            items = cluster.client.list(res, namespace=namespace, labels=labels)
            objects = [_as_dict(o) for o in items]
        try:
            return objects, items.resourceVersion
        except Exception:  # noqa: BLE001 - lightkube's NotReadyError: an answer without a version
            return objects, None

    def watcher(version: str | None) -> Iterator[tuple[str, dict]]:
        # lightkube's own watch leaves the response open when the answer is an error (a 403 without the
        # watch right held a pooled connection each time, until every call failed with PoolTimeout) and
        # reads with no timeout; this one closes it always and decodes nothing into models
        generic = cluster.client._client
        request = generic.prepare_request("list", res=res, namespace=namespace, watch=True, params={
            "timeoutSeconds": _cache.WATCH_SECONDS, "resourceVersion": version,
            "labelSelector": f"{LABEL_OWNER_KIND}" if labels else None})
        try:
            with _api_call(), generic._client.stream(
                    request.method, request.url, params=request.params,
                    timeout=httpx2.Timeout(cluster.timeout, read=_cache.WATCH_READ_SECONDS)) as response:
                if response.status_code >= 400:
                    response.read()
                    error = api_error(response.status_code, response.reason_phrase or "Error",
                                      response.text[:500], response)
                    raise _cache.WatchForbidden(str(error)) if response.status_code == 403 else error
                for line in response.iter_lines():
                    if not line:
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":  # e.g. 410 Expired: the version was compacted away
                        status = event.get("object") or {}
                        raise api_error(int(status.get("code") or 500), str(status.get("reason") or "Error"),
                                        str(status.get("message") or ""))
                    yield event["type"], event["object"]
        except ApiUnavailable as exc:
            if exc.status.reason != "Timeout":
                raise  # else: silent for WATCH_READ_SECONDS, the store resumes the watch

    return Store(f"{kind} in {namespace}", lister, watcher, None if own else LABEL_OWNER_KIND)
