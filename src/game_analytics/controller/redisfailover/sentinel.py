"""Observe a Redis Sentinel set, turn the observation into status conditions, and drive controlled failovers.

Three layers:

* :func:`probe` (I/O): asks every Sentinel, independently, ``SENTINEL MASTER``, ``get-master-addr-by-name``,
  ``REPLICAS``, ``SENTINELS`` and ``CKQUORUM`` and records the answers (or the error) in a :class:`SentinelView`.
  Asking each Sentinel separately, not through a Service, is what makes disagreement (split brain) visible.
* :func:`conditions` (pure): a :class:`SentinelView` and the spec -> the ``MasterElected``, ``SentinelQuorum``,
  ``ReplicasInSync`` and ``SplitBrain`` conditions (metav1.Condition dicts).
* :func:`failover` (I/O) and :func:`plan_rolling_restart` (pure): restart Redis pods replicas-first and move the
  master away with ``SENTINEL FAILOVER`` before restarting it.

Sentinel semantics follow the Redis Sentinel documentation (https://redis.io/docs/latest/operate/oss_and_stack/
management/sentinel/): ``s_down``/``o_down`` flags, quorum versus majority, ``CKQUORUM``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ...api.common import ConditionStatus
from ...api.redisfailover import RedisFailoverSpec
from ..common.conditions import condition

COND_MASTER_ELECTED = "MasterElected"
COND_SENTINEL_QUORUM = "SentinelQuorum"
COND_REPLICAS_IN_SYNC = "ReplicasInSync"
COND_SPLIT_BRAIN = "SplitBrain"
CONDITION_TYPES = (COND_MASTER_ELECTED, COND_SENTINEL_QUORUM, COND_REPLICAS_IN_SYNC, COND_SPLIT_BRAIN)

#: Sentinel flags meaning "this instance is not usable right now".
_DOWN_FLAGS = frozenset({"s_down", "o_down", "disconnected"})

Address = tuple[str, int]


def format_address(host: str, port: int | str) -> str:
    """``("h", 6379)`` -> ``"h:6379"``."""
    return f"{host}:{port}"


@dataclass(frozen=True)
class ReplicaState:
    """One replica as a Sentinel sees it (an entry of ``SENTINEL REPLICAS``).

    Attributes:
        address: ``host:port`` the replica announced.
        flags: Sentinel flags, e.g. ``("slave",)`` or ``("s_down", "slave", "disconnected")``.
        role_reported: the role the instance itself reported in its last ``INFO`` (``slave`` or ``master``).
        master_link_status: ``ok`` when the replica's replication link is up, else ``err``.
        master: ``host:port`` the replica replicates from, None if unknown.
    """

    address: str
    flags: tuple[str, ...] = ("slave",)
    role_reported: str = "slave"
    master_link_status: str = "ok"
    master: str | None = None

    @property
    def down(self) -> bool:
        return bool(_DOWN_FLAGS.intersection(self.flags))


@dataclass(frozen=True)
class SentinelReport:
    """What one Sentinel answered (or why it did not).

    Attributes:
        address: ``host:port`` of the Sentinel asked.
        error: why it could not be asked (connection refused, timeout ...); None when it answered.
        monitoring: False when it answered but does not monitor the master name (``No such master``).
        master: ``host:port`` from ``SENTINEL get-master-addr-by-name``.
        master_flags: flags of the master entry, e.g. ``("master",)`` or ``("master", "s_down", "o_down")``.
        known_sentinels: Sentinels it knows for this master, itself included (``num-other-sentinels + 1``).
        quorum: the quorum it is configured with.
        ckquorum_ok: whether ``SENTINEL CKQUORUM`` said a failover could be authorised.
        ckquorum: the ``CKQUORUM`` reply or error text.
        replicas: its ``SENTINEL REPLICAS`` entries.
    """

    address: str
    error: str | None = None
    monitoring: bool = True
    master: str | None = None
    master_flags: tuple[str, ...] = ()
    known_sentinels: int | None = None
    quorum: int | None = None
    ckquorum_ok: bool | None = None
    ckquorum: str = ""
    replicas: tuple[ReplicaState, ...] = ()

    @property
    def reachable(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class SentinelView:
    """The answers of every Sentinel asked in one :func:`probe`."""

    master_name: str
    reports: tuple[SentinelReport, ...] = field(default_factory=tuple)

    @property
    def reachable(self) -> list[SentinelReport]:
        """Reports of the Sentinels that answered."""
        return [r for r in self.reports if r.reachable]

    def masters(self) -> Counter[str]:
        """Master address -> number of reachable Sentinels reporting it."""
        return Counter(r.master for r in self.reachable if r.master)

    @property
    def agreed_master(self) -> str | None:
        """The master address when every reachable Sentinel that knows one names the same; else None."""
        masters = self.masters()
        return next(iter(masters)) if len(masters) == 1 else None


# ---------------------------------------------------------------------------------------------------------------
# Probing (I/O)


def _flags(value: Any) -> tuple[str, ...]:
    return tuple(sorted(f for f in str(value or "").split(",") if f))


def _replica(entry: Mapping[str, Any]) -> ReplicaState:
    master = None
    if entry.get("master-host") and entry.get("master-port") not in (None, ""):
        master = format_address(entry["master-host"], entry["master-port"])
    return ReplicaState(
        address=format_address(entry["ip"], entry["port"]),
        flags=_flags(entry.get("flags")),
        role_reported=str(entry.get("role-reported", "")),
        master_link_status=str(entry.get("master-link-status", "")),
        master=master,
    )


def _client(address: Address, password: str | None, timeout: float) -> redis.Redis:
    # No retries: a dead Sentinel must cost one timeout, not redis-py's default backoff series.
    return redis.Redis(host=address[0], port=address[1], password=password, socket_timeout=timeout,
                       socket_connect_timeout=timeout, decode_responses=True, retry=Retry(NoBackoff(), 0))


def probe_one(address: Address, master_name: str, *, password: str | None = None,
              timeout: float = 2.0) -> SentinelReport:
    """Ask one Sentinel about ``master_name``; never raises for server or network errors (they are recorded)."""
    where = format_address(*address)
    client = _client(address, password, timeout)
    try:
        try:
            master = client.sentinel_master(master_name)
        except redis.ResponseError as exc:
            if "no such master" in str(exc).lower():
                return SentinelReport(where, monitoring=False)
            raise
        addr = client.sentinel_get_master_addr_by_name(master_name)
        replicas = client.sentinel_slaves(master_name)
        sentinels = client.sentinel_sentinels(master_name)
        try:
            # The raw reply: redis-py's parsed sentinel_ckquorum() reports False for a healthy "OK ..." reply.
            ck = str(client.execute_command("SENTINEL", "CKQUORUM", master_name))
            ck_ok = ck.startswith("OK")
        except redis.ResponseError as exc:
            ck, ck_ok = str(exc), False
        return SentinelReport(
            where,
            master=format_address(*addr) if addr else None,
            master_flags=_flags(master.get("flags")),
            known_sentinels=len(sentinels) + 1,
            quorum=int(master["quorum"]) if master.get("quorum") is not None else None,
            ckquorum_ok=ck_ok,
            ckquorum=ck,
            replicas=tuple(sorted((_replica(r) for r in replicas), key=lambda r: r.address)),
        )
    except (redis.RedisError, OSError) as exc:
        return SentinelReport(where, error=f"{type(exc).__name__}: {exc}")
    finally:
        client.close()


def probe(sentinel_addrs: Iterable[Address], master_name: str, password: str | None = None,
          timeout: float = 2.0) -> SentinelView:
    """Ask every Sentinel in ``sentinel_addrs`` (``(host, port)`` pairs) about ``master_name``.

    Args:
        sentinel_addrs: each Sentinel pod's address (for a RedisFailover:
            :func:`game_analytics.controller.redisfailover.names.sentinel_pod_addresses`), not the load-balanced Service.
        password: the Sentinels' own password (``spec.sentinel.authSecretRef``), sent with ``AUTH`` to each
            Sentinel; None for Sentinels without one. Never the Redis data password.
        timeout: connect and read timeout per Sentinel, seconds. The Sentinels are asked at once (a thread
            each), so the worst case is about ``5 * timeout`` (five commands), not that times the Sentinels: an
            unreachable set no longer holds a reconcile thread for every Sentinel in turn.

    Returns:
        A :class:`SentinelView`; unreachable Sentinels are recorded with their error, nothing is raised.
    """
    addrs = list(sentinel_addrs)
    if len(addrs) <= 1:
        return SentinelView(master_name, tuple(probe_one(a, master_name, password=password, timeout=timeout)
                                               for a in addrs))
    with ThreadPoolExecutor(max_workers=len(addrs), thread_name_prefix="sentinel-probe") as pool:
        reports = pool.map(lambda a: probe_one(a, master_name, password=password, timeout=timeout), addrs)
        return SentinelView(master_name, tuple(reports))


# ---------------------------------------------------------------------------------------------------------------
# Conditions (pure)


def _master_elected(view: SentinelView, spec: RedisFailoverSpec) -> tuple[ConditionStatus, str, str]:
    reachable = view.reachable
    masters = view.masters()
    if not masters:
        monitoring = sum(r.monitoring for r in reachable)
        if monitoring == 0:
            return (ConditionStatus.FALSE, "NotMonitored",
                    f"no reachable Sentinel monitors master group {view.master_name!r}")
        return ConditionStatus.FALSE, "NoMaster", f"Sentinels monitor {view.master_name!r} but report no master address"
    if len(masters) > 1:
        return ConditionStatus.FALSE, "SentinelsDisagree", "Sentinels report different masters: " + _describe(masters)
    master = next(iter(masters))
    agreeing = [r for r in reachable if r.master == master]
    flags = set().union(*(r.master_flags for r in agreeing))
    if "o_down" in flags:
        return ConditionStatus.FALSE, "MasterDown", f"master {master} is objectively down; a failover should follow"
    if "failover_in_progress" in flags:
        return ConditionStatus.FALSE, "FailoverInProgress", f"failover away from {master} in progress"
    sdown = sum("s_down" in r.master_flags for r in agreeing)
    if sdown:
        return (ConditionStatus.FALSE, "MasterUnreachable",
                f"{sdown}/{len(agreeing)} Sentinels cannot reach master {master} (subjectively down)")
    return (ConditionStatus.TRUE, "MasterElected",
            f"{len(agreeing)}/{len(view.reports)} Sentinels report master {master}")


def _describe(masters: Counter[str]) -> str:
    return ", ".join(f"{m} ({n} Sentinel{'s' if n != 1 else ''})" for m, n in sorted(masters.items()))


def _sentinel_quorum(view: SentinelView, spec: RedisFailoverSpec) -> tuple[ConditionStatus, str, str]:
    reachable = view.reachable
    total, quorum = spec.sentinel.replicas, spec.sentinel.quorum
    n = len(reachable)
    if n < quorum:
        return (ConditionStatus.FALSE, "NotEnoughSentinels",
                f"{n}/{total} Sentinels reachable, quorum is {quorum}: no failover can be agreed")
    monitoring = [r for r in reachable if r.monitoring]
    if not monitoring:
        return ConditionStatus.FALSE, "NotMonitored", f"no reachable Sentinel monitors {view.master_name!r}"
    failing = [r for r in monitoring if not r.ckquorum_ok]
    if failing:
        return (ConditionStatus.FALSE, "QuorumUnreachable",
                "; ".join(f"{r.address}: {r.ckquorum}" for r in failing))
    message = f"{n}/{total} Sentinels reachable, quorum {quorum}, CKQUORUM OK on all"
    known = max((r.known_sentinels or 0) for r in monitoring)
    if known > total:
        message += f"; Sentinels know {known} peers for {total} pods (stale entries: SENTINEL RESET, see runbook)"
    return ConditionStatus.TRUE, "QuorumReachable", message


def _replicas_in_sync(view: SentinelView, spec: RedisFailoverSpec) -> tuple[ConditionStatus, str, str]:
    master = view.agreed_master
    if master is None:
        return ConditionStatus.UNKNOWN, "NoAgreedMaster", "replication cannot be judged without an agreed master"
    wanted = spec.redis.replicas - 1
    if wanted == 0:
        return ConditionStatus.TRUE, "NoReplicasWanted", "spec.redis.replicas is 1"
    # The agreeing Sentinel that sees the most healthy replicas has the freshest INFO (refreshed every 10 s).
    best: list[ReplicaState] = []
    best_all: tuple[ReplicaState, ...] = ()
    for report in view.reachable:
        if report.master != master:
            continue
        healthy = [r for r in report.replicas
                   if not r.down and r.master_link_status == "ok" and r.master == master
                   and r.role_reported == "slave"]
        if len(healthy) > len(best) or not best_all:
            best, best_all = healthy, report.replicas
    if len(best) >= wanted:
        return ConditionStatus.TRUE, "ReplicasInSync", f"{len(best)}/{wanted} replicas linked to master {master}"
    lagging = [f"{r.address} ({_why(r, master)})" for r in best_all if r not in best and not r.down]
    down = [r.address for r in best_all if r.down]
    parts = [f"{len(best)}/{wanted} replicas linked to master {master}"]
    if lagging:
        parts.append("not in sync: " + ", ".join(lagging))
    if down:
        parts.append("down (may be stale entries of replaced pods): " + ", ".join(down))
    return ConditionStatus.FALSE, "ReplicasOutOfSync", "; ".join(parts)


def _why(replica: ReplicaState, master: str) -> str:
    if replica.role_reported != "slave":
        return f"reports role {replica.role_reported}"
    if replica.master != master:
        return f"replicates from {replica.master}"
    return f"link {replica.master_link_status or 'unknown'}"


def _split_brain(view: SentinelView, spec: RedisFailoverSpec) -> tuple[ConditionStatus, str, str]:
    masters = view.masters()
    if len(masters) > 1:
        return ConditionStatus.TRUE, "SentinelsDisagree", "Sentinels report different masters: " + _describe(masters)
    master = view.agreed_master
    if master is None:
        return ConditionStatus.UNKNOWN, "NoAgreedMaster", "no Sentinel reports a master"
    rogue = sorted({r.address for rep in view.reachable if rep.master == master
                    for r in rep.replicas if not r.down and r.role_reported == "master"})
    if rogue:
        return (ConditionStatus.TRUE, "MultipleMasters",
                f"Sentinels elected {master} but {', '.join(rogue)} also report role master")
    return ConditionStatus.FALSE, "SingleMaster", f"all reachable Sentinels agree on master {master}"


def conditions(view: SentinelView, spec: RedisFailoverSpec, generation: int | None) -> list[dict[str, Any]]:
    """The four Sentinel conditions as metav1.Condition dicts (camelCase keys, no ``lastTransitionTime``).

    Order: ``MasterElected``, ``SentinelQuorum``, ``ReplicasInSync``, ``SplitBrain``. ``SplitBrain`` is the only
    one whose healthy status is False. When no Sentinel answered, every condition is ``Unknown`` with reason
    ``SentinelsUnreachable``: the operator cannot tell a dead Sentinel set from a network problem between it and
    the Sentinels. The caller sets ``lastTransitionTime`` (it knows the previous status).
    """
    if not view.reachable:
        errors = "; ".join(f"{r.address}: {r.error}" for r in view.reports) or "no Sentinel addresses"
        message = f"0/{len(view.reports)} Sentinels answered ({errors})"
        return [condition(t, ConditionStatus.UNKNOWN, "SentinelsUnreachable", message, generation)
                for t in CONDITION_TYPES]
    out = []
    for type_, fn in ((COND_MASTER_ELECTED, _master_elected), (COND_SENTINEL_QUORUM, _sentinel_quorum),
                      (COND_REPLICAS_IN_SYNC, _replicas_in_sync), (COND_SPLIT_BRAIN, _split_brain)):
        status, reason, message = fn(view, spec)
        out.append(condition(type_, status, reason, message, generation))
    return out


def healthy(conds: Sequence[Mapping[str, Any]]) -> bool:
    """True when master elected, quorum reachable, replicas in sync and no split brain."""
    by_type = {c["type"]: c["status"] for c in conds}
    return (all(by_type.get(t) == "True" for t in (COND_MASTER_ELECTED, COND_SENTINEL_QUORUM, COND_REPLICAS_IN_SYNC))
            and by_type.get(COND_SPLIT_BRAIN) == "False")


# ---------------------------------------------------------------------------------------------------------------
# Controlled failover (I/O) and rolling restarts (pure)


class FailoverError(RuntimeError):
    """A controlled failover could not be started or did not complete in time."""


@dataclass(frozen=True)
class FailoverResult:
    """Outcome of :func:`failover`: the master before and after, and how long the switch took (seconds)."""

    old_master: str
    new_master: str
    seconds: float


def failover(sentinel_addrs: Sequence[Address], master_name: str, password: str | None = None,
             timeout: float = 30.0, poll_interval: float = 0.1) -> FailoverResult:
    """Ask a Sentinel for ``SENTINEL FAILOVER`` and wait until it reports a different master.

    Used before restarting the master pod, so that the restart costs a short, controlled switch instead of
    ``down-after-milliseconds`` of refused writes. The first Sentinel that answers is used; a failover already in
    progress (``INPROG``) is waited for rather than treated as an error.

    Raises:
        FailoverError: no Sentinel answered, the Sentinel refused (e.g. ``NOGOODSLAVE``: no replica fit for
            promotion), or the master did not change within ``timeout`` seconds.
    """
    errors = []
    for host, port in sentinel_addrs:
        client = _client((host, port), password, 5.0)
        try:
            addr = client.sentinel_get_master_addr_by_name(master_name)
            if not addr:
                raise FailoverError(f"{host}:{port} knows no master for {master_name!r}")
            old = format_address(*addr)
            start = time.monotonic()
            try:
                client.execute_command("SENTINEL", "FAILOVER", master_name)
            except redis.ResponseError as exc:
                if "INPROG" not in str(exc):
                    raise FailoverError(f"{host}:{port} refused SENTINEL FAILOVER: {exc}") from exc
            while time.monotonic() - start < timeout:
                addr = client.sentinel_get_master_addr_by_name(master_name)
                if addr and format_address(*addr) != old:
                    return FailoverResult(old, format_address(*addr), time.monotonic() - start)
                time.sleep(poll_interval)
            raise FailoverError(f"master of {master_name!r} still {old} after {timeout:g} s")
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            errors.append(f"{host}:{port}: {exc}")
        finally:
            client.close()
    raise FailoverError("no Sentinel answered: " + "; ".join(errors))


@dataclass(frozen=True)
class RestartStep:
    """One step of a rolling restart: ``failover`` away from ``pod`` (the master), or ``restart`` (delete) it."""

    action: Literal["restart", "failover"]
    pod: str


def pod_ordinal(pod: str) -> int:
    """``lb-redis-12`` -> 12. Raises ValueError for a name without a trailing ordinal."""
    return int(pod.rsplit("-", 1)[1])


def plan_rolling_restart(pod_revisions: Mapping[str, str], update_revision: str,
                         master_pod: str | None) -> list[RestartStep]:
    """Order the restarts that bring every Redis pod to ``update_revision``.

    Args:
        pod_revisions: pod name -> its ``controller-revision-hash`` label.
        update_revision: the StatefulSet's ``status.updateRevision``.
        master_pod: the pod the Sentinels agree is master (see
            :func:`game_analytics.controller.redisfailover.names.pod_name_from_host`), None when there is no agreed master.

    Returns:
        Outdated replicas, highest ordinal first; then, if the master is outdated, ``failover`` and ``restart`` of
        the master. Empty when nothing is outdated, or when there is no agreed master (restarting blindly could
        remove the only copy of the data; the conditions already report the problem).

    The caller executes only the first step, waits until the set is :func:`healthy` again (the restarted pod is
    back and in sync), and plans again: after a failover the old master is an outdated replica.
    """
    outdated = [p for p, rev in pod_revisions.items() if rev != update_revision]
    if not outdated or master_pod is None:
        return []
    steps = [RestartStep("restart", p) for p in sorted((p for p in outdated if p != master_pod),
                                                       key=pod_ordinal, reverse=True)]
    if master_pod in outdated:
        steps += [RestartStep("failover", master_pod), RestartStep("restart", master_pod)]
    return steps
