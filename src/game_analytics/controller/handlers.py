"""Kopf handlers: the only code that reacts to cluster events. Each kind is reconciled by the same function.

Run with ``game-analytics operator`` (:mod:`game_analytics.controller.__main__`; the Helm chart does).
Environment:
    GAME_ANALYTICS_RESYNC_SECONDS   interval of the drift-repair timer (default 60)
    GAME_ANALYTICS_METRICS_PORT     port of the operator's /metrics (default 9090; 0 disables)
    GAME_ANALYTICS_AUDIT_DSN        audit table DSN (chart value audit.dsnSecret); unset: audit Events only
    GAME_ANALYTICS_WATCH_CACHE      ``false`` reads every object from the API server on each reconcile instead of
                                    from the watch-fed cache (:mod:`.cache`; default on)
    GAME_ANALYTICS_MAX_WORKERS      reconciles that run at once (Kopf's sync-handler threads; default 8)
    GAME_ANALYTICS_RESYNC_SKIP      ``false`` runs every resync in full; by default a resync whose inputs did not
                                    change since a reconcile that changed nothing is skipped (:mod:`.inputs`)
    GAME_ANALYTICS_TRACEMALLOC      a file: trace allocations and write reports there on SIGUSR1 and every
                                    ``GAME_ANALYTICS_TRACEMALLOC_SECONDS`` (:mod:`.memtrace`; default off)

Every handled reconcile is audited (:mod:`game_analytics.controller.audit`): children applied or pruned, the
disruptive step that ran, and spec changes (create, update, delete) of the spec-audited kinds. A deletion of
those is audited by a Kopf deletion handler behind the finalizer :data:`.audit.FINALIZER` (see there).
"""

from __future__ import annotations

import logging
import os
import random
import threading
from typing import Any

import kopf
from prometheus_client import start_http_server

from ..api import GROUP, KINDS, VERSION, KindInfo
from ..config import Images
from . import audit, events, inputs, memtrace
from .cache import _rv as store_rv
from .k8s import Cluster
from .reconcile import TransientError, reconcile

RESYNC_SECONDS = float(os.environ.get("GAME_ANALYTICS_RESYNC_SECONDS", "60"))
METRICS_PORT = int(os.environ.get("GAME_ANALYTICS_METRICS_PORT", "9090"))
WATCH_CACHE = os.environ.get("GAME_ANALYTICS_WATCH_CACHE", "true").lower() != "false"
MAX_WORKERS = int(os.environ.get("GAME_ANALYTICS_MAX_WORKERS", "8"))

#: how long Kopf waits for the watch to deliver the version its own patch created before it handles the object
#: again (Kopf's default is 5 s). At 1,500 objects on 2 cores the watch lagged longer: Kopf then handled the stale
#: body as if its patch were lost, ran each creation twice and re-wrote the status (docs/scaling.md).
CONSISTENCY_SECONDS = 60.0

_state: dict[str, Any] = {}
memtrace.start()  # at import, in the main thread (the SIGUSR1 handler); off unless GAME_ANALYTICS_TRACEMALLOC


def cluster() -> Cluster:
    if "cluster" not in _state:
        _state["cluster"] = Cluster(cache=WATCH_CACHE)
    return _state["cluster"]


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, logger: logging.Logger, **_: Any) -> None:
    """Keep Kopf's bookkeeping in annotations, let Kopf post only its own warnings as Events (the operator's
    Events, Normal ones included, are posted directly: :mod:`.events`), and serve /metrics."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration")
    settings.persistence.finalizer = audit.FINALIZER
    settings.persistence.consistency_timeout = CONSISTENCY_SECONDS
    settings.posting.level = logging.WARNING
    settings.execution.max_workers = MAX_WORKERS
    if os.environ.get("GAME_ANALYTICS_PEERING_RANDOM_PRIORITY") == "true":
        # Equal priorities make every replica freeze; a random one lets exactly one become active.
        settings.peering.priority = random.randint(1, 2**15)
    _state["images"] = Images.from_env()
    if METRICS_PORT and not _state.get("metrics"):
        start_http_server(METRICS_PORT)
        _state["metrics"] = True
        logger.info("serving metrics on :%d/metrics", METRICS_PORT)


#: reconciles running now; set when the operator stops, after which none starts (see :func:`close_cluster`)
_running = threading.Condition()
_in_flight = [0]
_stopping = threading.Event()
#: how long the operator's exit waits for reconciles already running before it closes their client
STOP_WAIT_SECONDS = 20.0


@kopf.on.cleanup()
def close_cluster(logger: logging.Logger, **_: Any) -> None:
    """When the operator exits: let no reconcile start, wait (at most ``STOP_WAIT_SECONDS``) for those already
    running, then stop the read cache's watches and close the client. Kopf runs this while resync timers may
    still be executing in its thread pool: closing the client under them made each fail with "the client has
    been closed", logged as a traceback at every clean stop."""
    _stopping.set()
    with _running:
        if not _running.wait_for(lambda: _in_flight[0] == 0, timeout=STOP_WAIT_SECONDS):
            logger.warning("stopping with %d reconciles still running", _in_flight[0])
    if "cluster" in _state:
        _state["cluster"].close()


def auditor() -> audit.AuditWriter:
    if "audit" not in _state:
        _state["audit"] = audit.AuditWriter()
    return _state["audit"]


#: per object (uid): a lock that makes its reconciles run one at a time, and the newest generation reconciled
_objects: dict[str, tuple[threading.Lock, list[int]]] = {}
_objects_lock = threading.Lock()


def _serialized(body: Any) -> tuple[threading.Lock, list[int]]:
    """The object's lock and its newest reconciled generation (a one-item list). Kopf runs an object's resync timer
    apart from its change handlers: a resync that started with the previous spec could apply the previous
    children after the update handler applied the new ones (seen in the kmock tests once reads came from the
    cache and reconciles got faster), and they stayed reverted until the next resync."""
    uid = str((body.get("metadata") or {}).get("uid") or "")
    with _objects_lock:
        return _objects.setdefault(uid, (threading.Lock(), [0]))


def _handler(info: KindInfo):
    def handle(body: kopf.Body, patch: kopf.Patch, logger: logging.Logger, reason: Any = None, old: Any = None,
               new: Any = None, **_: Any) -> None:
        with _running:
            if _stopping.is_set():  # the next operator reconciles it (on resume)
                logger.debug("skipped: the operator is stopping")
                return
            _in_flight[0] += 1
        try:
            lock, newest = _serialized(body)
            with lock:
                generation = int((body.get("metadata") or {}).get("generation") or 0)
                if generation < newest[0]:  # a newer spec was reconciled meanwhile: this body is out of date
                    logger.debug("skipped: generation %d was reconciled after this %d", newest[0], generation)
                    return
                newest[0] = generation
                _reconcile(info, body, patch, logger, reason, old, new)
        finally:
            with _running:
                _in_flight[0] -= 1
                _running.notify_all()

    handle.__name__ = f"reconcile_{info.singular}"
    return handle


def _forget(type: str, body: kopf.Body, **_: Any) -> None:  # noqa: A002 - Kopf's keyword
    """Drop a deleted object's :func:`_serialized` state (else the map keeps one entry per object ever seen)."""
    if type == "DELETED":
        uid = str((body.get("metadata") or {}).get("uid") or "")
        with _objects_lock:
            _objects.pop(uid, None)
        _inputs.pop(uid, None)


#: per object (uid): the inputs of its last reconcile that changed nothing (:mod:`.inputs`)
_inputs: dict[str, inputs.Held] = {}


def freshest(info: KindInfo, body: Any) -> Any:
    """Kopf's ``body``, or the read cache's copy of the same object when the cache holds a newer version of it.

    At 1,500 objects Kopf's watch ran behind the operator's own status writes, so a resync got a body older than
    the status already written; the status patch, computed against that body, wrote older conditions back
    (``lastTransitionTime`` going backwards: 1,037 writes per idle resync, docs/scaling.md) and every write made
    the next body stale again. The cache's watch only stores what it reads, so it lags far less.
    """
    meta = body.get("metadata") or {}
    name, namespace = meta.get("name"), meta.get("namespace")
    store = cluster().store(f"{GROUP}/{VERSION}", info.kind, namespace) if name and namespace else None
    mine, held = store_rv(body), store.version(name) if store is not None else None
    if mine is None or held is None or held is False or held <= mine:  # False: the store does not hold it
        return body
    cached = store.get(name)
    return cached if cached is not None and (cached.get("metadata") or {}).get("uid") == meta.get("uid") else body


def _reconcile(info: KindInfo, body: kopf.Body, patch: kopf.Patch, logger: logging.Logger, reason: Any, old: Any,
               new: Any) -> None:
    body = freshest(info, body)  # without the cache there is no store: Kopf's body
    images = _state.get("images") or Images.from_env()
    uid = str((body.get("metadata") or {}).get("uid") or "")
    skippable = inputs.ENABLED and WATCH_CACHE and info.kind in inputs.SKIPPABLE and uid
    held = _inputs.pop(uid, None) if skippable else None
    extra = inputs.extra(info.kind, images) if skippable else None
    if reason is None and held is not None and held.unchanged(cluster(), body, extra):  # a resync: Kopf's timers
        _inputs[uid] = held  # pass no reason
        logger.debug("resync skipped: nothing it reads changed")
        return
    recorder = inputs.Recorder(cluster()) if skippable else cluster()
    try:
        outcome = reconcile(info, body, recorder, images)
    except TransientError as exc:
        raise kopf.TemporaryError(str(exc), delay=exc.delay) from exc
    for type_, event_reason, message in outcome.events:  # posted directly: posting.level would drop Normal ones
        events.post(cluster(), events.manifest(body, type_, event_reason, message))
        logger.log(logging.WARNING if type_ == "Warning" else logging.INFO, "%s: %s", event_reason, message)
    records = audit.outcome_records(info.kind, body, outcome, reason, old, new)
    auditor().write(cluster(), body, records)
    changed = outcome.status_patch(body.get("status"))
    if changed:
        patch.setdefault("status", {}).update(changed)
    if skippable and inputs.changed_nothing(outcome, records, changed):
        if (now_held := inputs.held(body, recorder, extra)) is not None:
            _inputs[uid] = now_held


def register(info: KindInfo) -> None:
    """Reconcile ``info``'s objects on create, spec update, operator restart, and every resync interval."""
    handle = _handler(info)
    resource = (GROUP, VERSION, info.plural)
    kopf.on.resume(*resource, id=f"{info.singular}-resume")(handle)
    kopf.on.create(*resource, id=f"{info.singular}-create")(handle)
    kopf.on.update(*resource, field="spec", id=f"{info.singular}-update")(handle)
    kopf.timer(*resource, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS, id=f"{info.singular}-resync")(handle)
    kopf.on.event(*resource, id=f"{info.singular}-forget")(_forget)
    if info.kind in audit.SPEC_AUDITED_KINDS:
        def deleted(body: kopf.Body, **_: Any) -> None:  # only on a deletion (not on every watch event)
            record = audit.spec_record(info.kind, body, body.get("spec"), None, "delete")
            auditor().write(cluster(), body, [record] if record else [])  # never raises: the finalizer goes

        deleted.__name__ = f"audit_{info.singular}_deleted"
        # not optional: Kopf puts audit.FINALIZER on every object of the kind and removes it after the handler
        kopf.on.delete(*resource, id=f"{info.singular}-audit-delete")(deleted)


for _info in KINDS:
    register(_info)
