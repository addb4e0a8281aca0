"""Skip a resync whose inputs are unchanged: what a reconcile read, as versions, checked before the next resync.

A resync (the drift-repair timer, every ``GAME_ANALYTICS_RESYNC_SECONDS``) ran the whole reconcile of every object:
render every child, decode it from the read cache, compare. At 1,500 objects and a 15 s resync that is 100
reconciles/s, more than the reconcile threads give on 2 cores, so a spec change waited in the queue behind
resyncs (docs/scaling.md, "The operator at scale"). A reconcile whose result depends only on the objects it read
gives the same result while none of them changed, so:

* each reconcile runs against a :class:`Recorder`, which passes every call to the :class:`~.k8s.Cluster` and notes
  the objects read (by name, by label selector, every name of a kind) and the children ensured;
  with the version read;
* after a reconcile that changed nothing (no child applied or pruned, no Event, no audit record, no status field
  to write) those are kept (:class:`Held`), and the next resync of the object is skipped when its own
  ``resourceVersion`` and :func:`extra` (what else the kind's result depends on: the AlertRule backtest's window)
  are unchanged, the read cache holds the same version of everything it read (:func:`current`: nothing decoded; a
  Secret, which is not watched, by its memo or a GET), and the last full reconcile is less than
  :data:`MAX_SKIP_SECONDS` old (a bound on anything not tracked).

Never skipped: objects of kinds whose reconcile asks live servers (RedisFailover probes its Sentinels,
MongoShardedCluster its bootstrap), reads the cache cannot vouch for (no cache, a store whose list failed, a name
missing from a store that holds only labelled objects), an AlertRule whose backtest is still running, and every
create, update and resume. ``GAME_ANALYTICS_RESYNC_SKIP=false`` turns the skip off.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .common.render import LABEL_OWNER_KIND, LABEL_OWNER_NAME
from .k8s import Cluster, _labels

#: off with ``false`` (every resync runs the whole reconcile, as before)
ENABLED = os.environ.get("GAME_ANALYTICS_RESYNC_SKIP", "true").lower() != "false"
#: kinds whose reconcile depends only on API objects (and, for AlertRule, the backtest: see :func:`extra`)
SKIPPABLE = frozenset({"AlertRule", "GameDataSource", "RankingJob", "ScheduledReport"})
#: a full reconcile at least this often, whatever the fingerprint says (a failed backtest's retry, an API group
#: that disappeared, anything else not tracked)
MAX_SKIP_SECONDS = 300.0

#: ("get", apiVersion, kind, namespace, name), ("list", apiVersion, kind, namespace, selector) or
#: ("names", apiVersion, kind, namespace)
Key = tuple[str, ...]
#: a read the cache cannot vouch for (no store, or a name missing from a store of labelled objects only)
UNKNOWN = object()


def _rv(obj: dict | None) -> str | None:
    return ((obj or {}).get("metadata") or {}).get("resourceVersion")


def _held_rv(obj: dict | None) -> int | None | bool:
    """An object's version as the store holds it (an int; False: no such object)."""
    from .cache import _rv as store_rv

    return False if obj is None else store_rv(obj)


def current(cluster: Cluster, key: Key) -> Any:
    """The version of what ``key`` reads, as the read cache holds it now (nothing decoded; a Secret, which is not
    watched, by its memo or a GET, as a reconcile reads it), or :data:`UNKNOWN`."""
    what, api_version, kind, namespace, *rest = key
    if what == "get" and kind == "Secret":
        return _rv(cluster.get(api_version, kind, namespace, rest[0]))
    store = cluster.store(api_version, kind, namespace)
    if store is None:
        return UNKNOWN
    if what == "get":
        version = store.version(rest[0])
        return UNKNOWN if version is False and store.required_label else version
    if what == "list":
        selector = _labels(rest[0])
        return store.versions(selector) if store.covers(selector) else UNKNOWN
    return hash(tuple(store.names()))


class Recorder:
    """A :class:`~.k8s.Cluster` for one reconcile: every call goes to ``cluster``; what is read is noted with the
    version read (for what :meth:`~.k8s.Cluster.ensure` and :meth:`~.k8s.Cluster.label_pods` read inside, the
    version held just before the call: one that changes meanwhile makes the next resync run, never skip)."""

    def __init__(self, cluster: Cluster):
        self._cluster = cluster
        self.read: dict[Key, Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cluster, name)

    def _note(self, key: Key, version: Any) -> None:
        self.read.setdefault(key, version)

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict | None:
        obj = self._cluster.get(api_version, kind, namespace, name)
        key = ("get", api_version, kind, namespace, name)
        if kind == "Secret":
            self._note(key, _rv(obj))
        else:
            store = self._cluster.store(api_version, kind, namespace)
            unknown = store is None or (obj is None and store.required_label)
            self._note(key, UNKNOWN if unknown else _held_rv(obj))
        return obj

    def list(self, api_version: str, kind: str, namespace: str, label_selector: str) -> list[dict]:
        items = self._cluster.list(api_version, kind, namespace, label_selector)
        versions = hash(tuple(sorted((o["metadata"]["name"], _held_rv(o)) for o in items)))
        self._note(("list", api_version, kind, namespace, label_selector), versions)
        return items

    def names(self, api_version: str, kind: str, namespace: str) -> list[str]:
        names = self._cluster.names(api_version, kind, namespace)
        self._note(("names", api_version, kind, namespace), hash(tuple(sorted(names))))
        return names

    def ensure(self, owner_kind: str, owner_name: str, namespace: str, desired: list, child_types: list) -> Any:
        selector = f"{LABEL_OWNER_KIND}={owner_kind},{LABEL_OWNER_NAME}={owner_name}"
        keys = [("get", m["apiVersion"], m["kind"], namespace, m["metadata"]["name"]) for m in desired]
        keys += [("list", v, k, namespace, selector) for v, k in child_types]
        before = {key: current(self._cluster, key) for key in keys}
        result = self._cluster.ensure(owner_kind, owner_name, namespace, desired, child_types)
        unavailable = set(result.unavailable)  # types the cluster does not serve: nothing to read
        for key, version in before.items():
            if key[1] not in unavailable:
                self._note(key, version)
        return result

    def label_pods(self, namespace: str, wanted: dict[str, dict[str, str]]) -> list[str]:
        for pod in wanted:
            key = ("get", "v1", "Pod", namespace, pod)
            self._note(key, current(self._cluster, key))
        return self._cluster.label_pods(namespace, wanted)


def extra(kind: str, images: Any, now: datetime | None = None) -> Any:
    """What else than the objects read a kind's reconcile result depends on: an AlertRule's backtest window (a
    new one starts each ``bucket``), when the operator backtests."""
    settings = getattr(images, "backtest", None)
    if kind != "AlertRule" or settings is None:
        return None
    from .alertrule.backtests import window

    return window(now or datetime.now(UTC), settings)[1]


def changed_nothing(outcome: Any, records: list, status_patch: dict) -> bool:
    """Whether a reconcile wrote nothing and has nothing pending (an AlertRule backtest still ``Running``)."""
    if outcome.events or records or status_patch or (outcome.applied is not None and outcome.applied.changed):
        return False
    return not any(c.get("type") == "Backtested" and c.get("reason") == "Running"
                   for c in outcome.status.get("conditions") or [])


@dataclass(frozen=True)
class Held:
    """What an object's last reconcile that changed nothing read, with the versions it read."""

    version: str | None  # the object's own resourceVersion
    extra: Any
    read: tuple[tuple[Key, Any], ...]
    at: float  # monotonic time of that reconcile

    def unchanged(self, cluster: Cluster, body: Any, extra_now: Any) -> bool:
        """Whether a resync of ``body`` now would read exactly what that reconcile read."""
        if time.monotonic() - self.at >= MAX_SKIP_SECONDS or _rv(body) != self.version or extra_now != self.extra:
            return False
        return all(current(cluster, key) == version for key, version in self.read)


def held(body: Any, recorder: Recorder, extra_now: Any) -> Held | None:
    """The :class:`Held` of a reconcile that changed nothing (None when one of its reads cannot be vouched for)."""
    if any(version is UNKNOWN for version in recorder.read.values()):
        return None
    return Held(_rv(body), extra_now, tuple(recorder.read.items()), time.monotonic())
