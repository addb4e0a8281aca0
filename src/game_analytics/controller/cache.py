"""Watch-fed read cache of the objects the operator reads, so that a reconcile (and an idle resync) costs no reads.

Without it every reconcile re-read its children one by one, listed each child type for the prune, re-read its
GameDataSource and RedisFailover and listed every AlertRule of the namespace (the alert-name check): about ten
requests per object and resync, and a list of N rules per rule (N² objects decoded per resync round). Measured in
``benchmarks/bench_operator_scale.py`` (docs/scaling.md, "The operator at scale").

One :class:`Store` per ``(apiVersion, kind, namespace)``, started on first use: a LIST, then a WATCH from the
list's ``resourceVersion`` in a daemon thread; when the watch fails (connection lost, ``410 Gone`` after
compaction) the thread lists again and replaces the contents. This is the informer pattern of client-go
(https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes).

* Children and Pods are cached only when they carry the owner label (:data:`~.common.render.LABEL_OWNER_KIND`,
  an existence selector on the watch), so the cache never holds a cluster's unrelated ConfigMaps or Pods. A
  lookup the cache cannot answer (a name it does not hold: a child not created yet, or someone else's object of
  that name, which :meth:`~.k8s.Cluster.ensure` must see to report a ``ChildConflict``) falls back to a GET.
* The operator's own kinds are cached whole (Kopf watches them too; the planners read a rule's GameDataSource,
  a data source's RedisFailover and, for the alert-name check, every AlertRule).
* Secrets are not watched (the chart grants ``get`` on Secrets, not ``list``/``watch``, so that the operator never
  holds every Secret of a namespace): :class:`SecretMemo` keeps a read Secret for a few seconds instead, so the
  rules that share one Secret read it once per burst, not once per channel and rule.
* What the operator writes goes into the store at once (:meth:`Store.put` with the API server's answer), so the
  next reconcile compares against what it wrote even before the watch event arrives; an older event never
  replaces a newer object (``resourceVersion`` compared as the integers etcd gives).

``metadata.managedFields`` is dropped from cached objects: nothing compares it, and it is the larger half of a
typical child. Objects are held as compressed JSON (:class:`_Held`); every read returns a copy of its own.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from typing import NamedTuple

log = logging.getLogger(__name__)

#: Seconds a watch waits before listing again after a failure.
RETRY_SECONDS = 2.0
#: ``timeoutSeconds`` of each watch request: the API server ends it and the watch resumes from its last version.
WATCH_SECONDS = 300
#: Seconds a watch may stay silent before the client ends it and resumes from its last version: a connection that
#: died without a FIN would otherwise hold the store stale forever (and :meth:`Store.stop` waits at most this).
WATCH_READ_SECONDS = 60.0


#: Seconds before a store whose watch was refused (no ``watch`` right) lists again.
FORBIDDEN_RETRY_SECONDS = 600.0


class WatchForbidden(Exception):
    """The API server refused the watch (403): the store gives up and the reads go to the API server."""


def _rv(obj: dict) -> int | None:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or "")
    except ValueError:
        return None


def slim(obj: dict) -> dict:
    """``obj`` without ``metadata.managedFields`` (a shallow copy; ``obj`` is left as it is)."""
    meta = obj.get("metadata") or {}
    if "managedFields" not in meta:
        return obj
    return {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


def matches(labels: dict[str, str] | None, selector: dict[str, str] | None) -> bool:
    """Whether an object's ``labels`` satisfy the equality ``selector`` (``{label: value}``; None: everything)."""
    labels = labels or {}
    return all(labels.get(k) == v for k, v in (selector or {}).items())


class _Held(NamedTuple):
    """One cached object: its ``resourceVersion`` and labels, and the object itself as compressed JSON. Held as
    dicts, 1,500 owners' children (Deployments and StatefulSets with their pod templates) took the operator's
    resident set from 180 to over 400 MiB in the scale bench; as zlib'd JSON they take a tenth of that, and each
    read decodes a private copy (tens of microseconds), which no caller can change under another."""

    rv: int | None
    labels: dict[str, str]
    data: bytes

    @classmethod
    def pack(cls, obj: dict) -> _Held:
        obj = slim(obj)
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
        return cls(_rv(obj), dict((obj.get("metadata") or {}).get("labels") or {}), zlib.compress(text, 1))

    def unpack(self) -> dict:
        return json.loads(zlib.decompress(self.data))


class Store:
    """The objects of one ``(apiVersion, kind, namespace)``, optionally only those with label ``required_label``.

    Args:
        lister: ``() -> (objects, resourceVersion)``: one LIST (as plain dicts).
        watcher: ``(resourceVersion) -> iterator of (event type, object dict)``: one WATCH from that version.
            It ends when the connection went silent (then the watch resumes from the last version seen) and
            raises when it failed (then the store lists again).
        required_label: the label every cached object carries (the watch's existence selector), or None.
    """

    def __init__(self, name: str, lister: Callable[[], tuple[list[dict], str | None]],
                 watcher: Callable[[str | None], Iterable[tuple[str, dict]]], required_label: str | None = None):
        self.name = name
        self.required_label = required_label
        self._lister = lister
        self._watcher = watcher
        self._objects: dict[str, _Held] = {}
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._synced = False
        self._failed_at: float | None = None
        self._retry_after = 30.0
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    # -- reading ---------------------------------------------------------------------------------------------

    def ready(self) -> bool:
        """List (once, in the calling thread) and start the watch; False when the list failed or the watch was
        refused (the caller then asks the API server itself; a new attempt is made 30 s, or for a refused watch
        :data:`FORBIDDEN_RETRY_SECONDS`, later)."""
        if self._synced:
            return True
        with self._sync_lock:
            if self._synced:
                return True
            if self._failed_at is not None and time.monotonic() - self._failed_at < self._retry_after:
                return False
            try:
                version = self._relist()
            except Exception as exc:  # noqa: BLE001 - e.g. 403 (no list right) or 404 (API not served)
                self._failed_at, self._retry_after = time.monotonic(), 30.0
                log.info("not caching %s: the list failed (%s)", self.name, exc)
                return False
            self._synced = True
            self._thread = threading.Thread(target=self._run, args=(version,), name=f"watch {self.name}",
                                            daemon=True)
            self._thread.start()
            return True

    def get(self, name: str) -> dict | None:
        """The cached object ``name`` (a copy of its own), or None when the store does not hold it."""
        with self._lock:
            held = self._objects.get(name)
        return held.unpack() if held else None

    def list(self, selector: dict[str, str] | None) -> list[dict]:
        """The cached objects matching the equality ``selector``, by name (copies of their own)."""
        with self._lock:
            chosen = [h for _, h in sorted(self._objects.items()) if matches(h.labels, selector)]
        return [h.unpack() for h in chosen]

    def names(self) -> list[str]:
        """The names of every cached object (nothing decoded)."""
        with self._lock:
            return sorted(self._objects)

    def version(self, name: str) -> int | None | bool:
        """The held ``resourceVersion`` of ``name`` (nothing decoded); False when the store does not hold it."""
        with self._lock:
            held = self._objects.get(name)
        return False if held is None else held.rv

    def versions(self, selector: dict[str, str] | None) -> int:
        """A hash of the ``(name, resourceVersion)`` of every held object matching ``selector`` (nothing decoded):
        it changes when one of them changes, appears or goes."""
        with self._lock:
            return hash(tuple((n, h.rv) for n, h in sorted(self._objects.items()) if matches(h.labels, selector)))

    def covers(self, selector: dict[str, str] | None) -> bool:
        """Whether every object ``selector`` matches is one this store holds (it selects on the required label)."""
        return self.required_label is None or self.required_label in (selector or {})

    # -- writing ---------------------------------------------------------------------------------------------

    def put(self, obj: dict) -> None:
        """Store ``obj`` unless the store holds a newer version of it (or it lacks the required label)."""
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        if not name:
            return
        if self.required_label and self.required_label not in (meta.get("labels") or {}):
            self.remove(name)
            return
        held = _Held.pack(obj)
        with self._lock:
            old = self._objects.get(name)
            if old is None or held.rv is None or old.rv is None or held.rv >= old.rv:
                self._objects[name] = held

    def remove(self, name: str, rv: int | None = None) -> None:
        """Forget ``name`` (only if the held version is not newer than ``rv``, when given)."""
        with self._lock:
            old = self._objects.get(name)
            if old is not None and (rv is None or (old.rv or 0) <= rv):
                del self._objects[name]

    def stop(self) -> None:
        self._stopped.set()

    # -- the watch -------------------------------------------------------------------------------------------

    def _relist(self) -> str | None:
        objects, version = self._lister()
        fresh = {o["metadata"]["name"]: _Held.pack(o) for o in objects}
        with self._lock:
            self._objects = fresh
        return version

    def _run(self, version: str | None) -> None:
        while not self._stopped.is_set():
            try:
                for event, obj in self._watcher(version):
                    if self._stopped.is_set():
                        return
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if event == "DELETED":
                        self.remove(obj["metadata"]["name"], _rv(obj))
                    elif event in ("ADDED", "MODIFIED"):
                        self.put(obj)
                continue  # silent for WATCH_READ_SECONDS: resume from the last version
            except WatchForbidden as exc:
                log.warning("not caching %s: %s", self.name, exc)
                with self._sync_lock:
                    self._synced, self._failed_at = False, time.monotonic()
                    self._retry_after = FORBIDDEN_RETRY_SECONDS
                    with self._lock:
                        self._objects = {}
                return
            except Exception as exc:  # noqa: BLE001 - connection lost, 410 Gone: list again
                log.info("watch of %s ended (%s); listing again", self.name, exc)
            if self._stopped.wait(RETRY_SECONDS):
                return
            try:
                version = self._relist()
            except Exception as exc:  # noqa: BLE001 - API server away: try again
                log.info("relisting %s failed (%s)", self.name, exc)


class SecretMemo:
    """Secrets read in the last ``ttl`` seconds, by ``(namespace, name)``; a missing Secret is not remembered (so
    one created to fix a ``SecretNotFound`` is seen by the next reconcile)."""

    def __init__(self, ttl: float = 10.0):
        self.ttl = ttl
        self._lock = threading.Lock()
        self._held: dict[tuple[str, str], tuple[float, dict]] = {}

    def get(self, namespace: str, name: str) -> dict | None:
        with self._lock:
            held = self._held.get((namespace, name))
        if held and time.monotonic() - held[0] < self.ttl:
            return held[1]
        return None

    def put(self, namespace: str, name: str, secret: dict | None) -> None:
        with self._lock:
            if secret is None:
                self._held.pop((namespace, name), None)
            else:
                self._held[(namespace, name)] = (time.monotonic(), secret)
