"""Bootstrap of a sharded MongoDB, the pure half: desired topology, parsed observations, :func:`plan`, status.

The executor that observes and runs the steps with pymongo inside the bootstrap Job is the worker
:mod:`game_analytics.workers.mongo_bootstrap`; the environment it reads (``ENV_*``) is declared here, beside the
topology it carries, so that the Job's renderer and the worker share one definition.

Order (each stage needs the previous one):

1. the config-server replica set is initiated (``replSetInitiate`` with ``configsvr: true``);
2. every shard replica set is initiated;
3. all replica sets have a primary and mongos answers;
4. every shard is registered (``addShard``);
5. the admin user exists (``createUser`` through mongos, stored on the config servers);
6. every collection of ``spec.collections`` is sharded (``enableSharding`` + ``shardCollection``) and its zones
   exist (``addShardToZone``, ``updateZoneKeyRange``); see :mod:`.sharding` (a shard key change is refused).

Everything is idempotent: the plan is recomputed from a fresh observation after each round, so a bootstrap that
crashed halfway, or two bootstraps racing, converge. A racing ``replSetInitiate`` answered with
``AlreadyInitialized`` and a racing ``createUser`` answered with ``DuplicateKey`` count as success
(:func:`outcome`).

What the executor observed last travels back to the operator as :meth:`ClusterState.to_document` in the Job's
termination message; the operator parses it (:meth:`ClusterState.from_document`) and derives :func:`status` and
:func:`conditions` from it.

Sources: MongoDB manual, "Deploy a Self-Managed Sharded Cluster", ``replSetInitiate``, ``replSetReconfig``
(one voting member added per reconfig since 4.4), ``addShard``, ``listShards``, ``usersInfo``; error codes from
``src/mongo/base/error_codes.yml``.

:func:`plan`, :func:`outcome` and the observation parsers are unit-tested over recorded replies (there is no live
mongod in CI).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ...api.mongoshardedcluster import (
    CollectionStatus,
    MemberStatus,
    MongoShardedClusterSpec,
    MongoShardedClusterStatus,
    ReplicaSetStatus,
    ShardKeyField,
    ShardStatus,
)
from ..common.conditions import condition
from . import sharding
from .names import config_server_name, member_host, mongos_host, shard_name
from .sharding import CollectionSpec, ObservedCollection

# MongoDB error codes (src/mongo/base/error_codes.yml).
HOST_UNREACHABLE = 6
ALREADY_INITIALIZED = 23
NODE_NOT_FOUND = 74
NOT_YET_INITIALIZED = 94
NOT_WRITABLE_PRIMARY = 10107
DUPLICATE_KEY = 11000
USER_ALREADY_EXISTS = 51003

COND_CONFIG_SERVER_READY = "ConfigServerReady"
COND_SHARDS_READY = "ShardsReady"
COND_SHARDS_REGISTERED = "ShardsRegistered"
COND_BOOTSTRAPPED = "Bootstrapped"


# ---------------------------------------------------------------------------------------------------------------
# Desired topology


@dataclass(frozen=True)
class ReplicaSetSpec:
    """A replica set as it should be: name, member ``host:port`` list (member ``_id`` = position), role."""

    name: str
    members: tuple[str, ...]
    configsvr: bool = False

    def initiate_document(self) -> dict[str, Any]:
        """The ``replSetInitiate`` configuration document."""
        doc: dict[str, Any] = {"_id": self.name, "members": [{"_id": i, "host": h} for i, h in enumerate(self.members)]}
        if self.configsvr:
            doc["configsvr"] = True
        return doc

    def seed_list(self) -> str:
        """``name/host1,host2,...`` as ``--configdb`` and ``addShard`` take it."""
        return f"{self.name}/{','.join(self.members)}"


@dataclass(frozen=True)
class DesiredCluster:
    """The topology the bootstrap works towards; rendered into the bootstrap Job as JSON."""

    config: ReplicaSetSpec
    shards: tuple[ReplicaSetSpec, ...]
    mongos: str
    collections: tuple[CollectionSpec, ...] = ()

    @property
    def replica_sets(self) -> tuple[ReplicaSetSpec, ...]:
        return (self.config, *self.shards)

    def to_json(self) -> str:
        """Compact, sorted JSON; ``collections`` only when there are any (so the Job digest of a cluster without
        collections is what it was before they existed)."""
        raw: dict[str, Any] = {"config": asdict(self.config), "shards": [asdict(s) for s in self.shards],
                               "mongos": self.mongos}
        if self.collections:
            raw["collections"] = [c.to_dict() for c in self.collections]
        return json.dumps(raw, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> DesiredCluster:
        """Inverse of :meth:`to_json`. Raises ValueError/KeyError/TypeError on malformed input."""
        raw = json.loads(text)

        def rs(d: Mapping[str, Any]) -> ReplicaSetSpec:
            return ReplicaSetSpec(d["name"], tuple(d["members"]), bool(d.get("configsvr", False)))

        return cls(rs(raw["config"]), tuple(rs(s) for s in raw["shards"]), raw["mongos"],
                   tuple(CollectionSpec.from_dict(c) for c in raw.get("collections", [])))


def desired(cluster: str, namespace: str, spec: MongoShardedClusterSpec) -> DesiredCluster:
    """The desired topology of a MongoShardedCluster named ``cluster`` in ``namespace``.

    Raises:
        ValueError: a zone of ``spec.collections`` is inconsistent (see :func:`.sharding.desired_collections`).
    """
    cfg = config_server_name(cluster)
    config = ReplicaSetSpec(cfg, tuple(member_host(cfg, namespace, i) for i in range(spec.config_server.replicas)),
                            configsvr=True)
    shards = []
    for s in range(spec.shards.count):
        name = shard_name(cluster, s)
        shards.append(ReplicaSetSpec(name, tuple(member_host(name, namespace, i)
                                                 for i in range(spec.shards.replicas_per_shard))))
    collections = sharding.desired_collections(spec.collections, [s.name for s in shards])
    return DesiredCluster(config, tuple(shards), mongos_host(cluster, namespace), collections)


# ---------------------------------------------------------------------------------------------------------------
# Observation (recorded from server replies; pure parsing)


@dataclass(frozen=True)
class ReplicaSetObservation:
    """One replica set as observed through its first member.

    Attributes:
        name: replica set name.
        reachable: the member answered (an uninitialised member answers, with error 94).
        initialized: ``replSetGetStatus`` succeeded.
        primary: ``host:port`` of the PRIMARY member, None while there is none.
        members: ``host:port`` of every configured member.
        error: the error text when not reachable (or an unexpected error).
        states: ``stateStr`` of each member, in the order of ``members``.
    """

    name: str
    reachable: bool = True
    initialized: bool = False
    primary: str | None = None
    members: tuple[str, ...] = ()
    error: str | None = None
    states: tuple[str, ...] = ()

    def member_states(self) -> list[tuple[str, str]]:
        """``(host, stateStr)`` per member (state ``""`` when not observed)."""
        return list(zip(self.members, self.states or ("",) * len(self.members), strict=True))

    @classmethod
    def from_reply(cls, name: str, reply: Mapping[str, Any] | None = None, *, error_code: int | None = None,
                   error: str | None = None) -> ReplicaSetObservation:
        """Parse a ``replSetGetStatus`` reply, or the error it raised (``error_code``, e.g. 94), or a network
        failure (``error`` without code)."""
        if reply is not None and reply.get("ok", 1):
            members = reply.get("members", [])
            primary = next((m["name"] for m in members if m.get("stateStr") == "PRIMARY" or m.get("state") == 1), None)
            return cls(name, True, True, primary, tuple(m["name"] for m in members),
                       states=tuple(str(m.get("stateStr", m.get("state", ""))) for m in members))
        if error_code == NOT_YET_INITIALIZED:
            return cls(name, True, False)
        if error_code is None and reply is not None:
            error_code = reply.get("code")
            error = error or reply.get("errmsg")
            if error_code == NOT_YET_INITIALIZED:
                return cls(name, True, False)
        return cls(name, False, False, error=error or f"error code {error_code}")


@dataclass(frozen=True)
class ClusterState:
    """Everything :func:`plan` decides on.

    Attributes:
        replica_sets: observation per replica set name (config server and shards).
        mongos_reachable: a mongos answered ``ping``.
        shards_listed: shard ``_id`` values from ``listShards``; None when not observed (mongos unreachable).
        admin_user_exists: from ``usersInfo`` on the ``admin`` database; None when not observed.
        collections: sharded collections by namespace (``config.collections`` + ``config.tags``); None when not
            observed.
        shard_hosts: each listed shard's seed list; shard_zones: each listed shard's zones (``tags``).
    """

    replica_sets: Mapping[str, ReplicaSetObservation] = field(default_factory=dict)
    mongos_reachable: bool = False
    shards_listed: tuple[str, ...] | None = None
    admin_user_exists: bool | None = None
    collections: Mapping[str, ObservedCollection] | None = None
    shard_hosts: Mapping[str, str] = field(default_factory=dict)
    shard_zones: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_replies(cls, rs_status: Mapping[str, ReplicaSetObservation], *, mongos_ping: bool = False,
                     list_shards: Mapping[str, Any] | None = None,
                     users_info: Mapping[str, Any] | None = None,
                     sharded: list[Mapping[str, Any]] | None = None,
                     tags: list[Mapping[str, Any]] | None = None) -> ClusterState:
        """Assemble from parsed replica-set observations and raw ``listShards`` / ``usersInfo`` replies, and the
        ``config.collections`` (``sharded``) and ``config.tags`` documents (dropped collections are skipped)."""
        shards = list(list_shards["shards"]) if list_shards is not None else None
        listed = tuple(s["_id"] for s in shards) if shards is not None else None
        exists = bool(users_info.get("users")) if users_info is not None else None
        collections = None
        if sharded is not None:
            collections = {d["_id"]: ObservedCollection.from_documents(d, tags or ())
                           for d in sharded if not d.get("dropped")}
        return cls(dict(rs_status), mongos_ping, listed, exists, collections,
                   {s["_id"]: s.get("host", "") for s in shards or ()},
                   {s["_id"]: tuple(s.get("tags", ())) for s in shards or ()})

    def to_document(self) -> dict[str, Any]:
        """The observation as JSON-able data: what the bootstrap Job writes to its termination message (a few
        hundred bytes per replica set; the kubelet keeps 4 KiB). Inverse of :meth:`from_document`."""
        def pairs(items: Any) -> list[list[Any]]:
            return [list(p) for p in items]

        return {
            "replicaSets": [{"name": o.name, "reachable": o.reachable, "initialized": o.initialized,
                             "primary": o.primary, "members": [list(m) for m in o.member_states()],
                             **({"error": o.error[:200]} if o.error else {})} for o in self.replica_sets.values()],
            "mongos": self.mongos_reachable,
            "shards": None if self.shards_listed is None else [
                {"_id": s, "host": self.shard_hosts.get(s, ""), "tags": list(self.shard_zones.get(s, ()))}
                for s in self.shards_listed],
            "adminUser": self.admin_user_exists,
            "collections": None if self.collections is None else [
                {"_id": c.namespace, "key": pairs(c.key), "unique": c.unique,
                 "zones": [[t, pairs(lo), pairs(hi)] for t, lo, hi in c.zones]} for c in self.collections.values()],
        }

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> ClusterState:
        """Parse :meth:`to_document`'s output. Raises KeyError/TypeError/ValueError on malformed input."""
        sets = {}
        for r in doc["replicaSets"]:
            members = [tuple(m) for m in r.get("members", [])]
            sets[r["name"]] = ReplicaSetObservation(r["name"], bool(r["reachable"]), bool(r["initialized"]),
                                                    r.get("primary"), tuple(m[0] for m in members), r.get("error"),
                                                    tuple(m[1] for m in members))
        shards = doc.get("shards")
        collections = None
        if doc.get("collections") is not None:
            collections = {c["_id"]: ObservedCollection(
                c["_id"], tuple(tuple(p) for p in c["key"]), bool(c.get("unique", False)),
                tuple((t, tuple(tuple(p) for p in lo), tuple(tuple(p) for p in hi)) for t, lo, hi in c["zones"]))
                for c in doc["collections"]}
        return cls(sets, bool(doc.get("mongos")), None if shards is None else tuple(s["_id"] for s in shards),
                   doc.get("adminUser"), collections, {s["_id"]: s.get("host", "") for s in shards or ()},
                   {s["_id"]: tuple(s.get("tags", ())) for s in shards or ()})


# ---------------------------------------------------------------------------------------------------------------
# Decisions (pure)

Action = Literal["initiate", "add_member", "wait", "add_shard", "create_admin_user", "enable_sharding",
                 "shard_collection", "add_shard_to_zone", "update_zone_key_range"]

#: Actions that change the cluster (everything but ``wait``).
MUTATING = frozenset({"initiate", "add_member", "add_shard", "create_admin_user", "enable_sharding",
                      "shard_collection", "add_shard_to_zone", "update_zone_key_range"})


@dataclass(frozen=True)
class Step:
    """One bootstrap action.

    ``target`` is a replica set name (``initiate``, ``add_member``, ``add_shard``), ``mongos`` or ``admin``,
    or what :class:`.sharding.ShardingStep` names; ``argument`` is the member ``host:port`` for ``add_member``,
    the seed list for ``add_shard`` and the zone for the zone steps.
    A ``wait`` step ends the plan: what follows needs a fresh observation.
    """

    action: Action
    target: str
    reason: str
    argument: str = ""


def plan(observed: ClusterState, want: DesiredCluster) -> list[Step]:
    """The next bootstrap steps, in order; empty when the cluster is fully bootstrapped.

    The plan never repeats finished work: initialised replica sets are not initiated, listed shards are not
    added, an existing admin user is not created. At most one member is added per replica set per round (MongoDB
    accepts a single voting-member change per reconfig). Collections come last, once the admin user exists;
    a collection whose shard key conflicts (:func:`.sharding.conflicts`) gets no step.
    """
    steps: list[Step] = []
    blockers: list[str] = []
    for rs in want.replica_sets:
        obs = observed.replica_sets.get(rs.name)
        if obs is None or not obs.reachable:
            blockers.append(f"{rs.name} unreachable" + (f" ({obs.error})" if obs and obs.error else ""))
            if rs.configsvr:
                return [Step("wait", rs.name, "; ".join(blockers))]
            continue
        if not obs.initialized:
            steps.append(Step("initiate", rs.name, f"{rs.name} is not initialised"))
            blockers.append(f"{rs.name} initiating")
            continue
        if obs.primary is None:
            blockers.append(f"{rs.name} has no primary yet")
            continue
        missing = [h for h in rs.members if h not in obs.members]
        if missing:
            steps.append(Step("add_member", rs.name, f"{len(missing)} member(s) missing from {rs.name}", missing[0]))
    if blockers:
        return steps + [Step("wait", "replica-sets", "; ".join(blockers))]
    if not observed.mongos_reachable:
        return steps + [Step("wait", "mongos", f"mongos {want.mongos} not reachable")]
    listed = set(observed.shards_listed or ())
    for rs in want.shards:
        if rs.name not in listed:
            steps.append(Step("add_shard", rs.name, f"{rs.name} is not in listShards", rs.seed_list()))
    if observed.admin_user_exists is None:
        return steps + [Step("wait", "admin", "admin user not observed")]
    if not observed.admin_user_exists:
        steps.append(Step("create_admin_user", "admin", "admin user does not exist"))
    if want.collections:
        if observed.collections is None:
            return steps + [Step("wait", "collections", "sharded collections not observed")]
        steps += [Step(s.action, s.target, s.reason, s.argument)  # type: ignore[arg-type]
                  for s in sharding.steps(observed.collections, observed.shard_zones, want.collections)]
    return steps


Outcome = Literal["done", "retry", "failed"]


def outcome(step: Step, error_code: int | None) -> Outcome:
    """How to treat a step's result: ``error_code`` None means the command succeeded.

    A racing bootstrap's work counts as done (``AlreadyInitialized`` for initiate, ``DuplicateKey``/
    ``UserAlreadyExists`` for the user); members not up yet (``NodeNotFound``, ``HostUnreachable``) and
    ``NotWritablePrimary`` mean retry in the next round; anything else fails the bootstrap round.
    """
    if error_code is None:
        return "done"
    if step.action in ("initiate", "enable_sharding", "shard_collection") and error_code == ALREADY_INITIALIZED:
        return "done"  # a racing bootstrap did it; a different key shows up as a conflict in the next observation
    if step.action == "create_admin_user" and error_code in (DUPLICATE_KEY, USER_ALREADY_EXISTS):
        return "done"
    if error_code in (NODE_NOT_FOUND, HOST_UNREACHABLE, NOT_WRITABLE_PRIMARY):
        return "retry"
    return "failed"


def status(observed: ClusterState, want: DesiredCluster) -> MongoShardedClusterStatus:
    """The status as observed: per replica set (config server first) initialised, registered as a shard (always
    False for the config servers), primary and members with their states; the shards ``listShards`` reports;
    the sharded collections of ``spec.collections`` as ``config.collections`` holds them."""
    listed = set(observed.shards_listed or ())
    sets = []
    for rs in want.replica_sets:
        obs = observed.replica_sets.get(rs.name)
        members = [MemberStatus(host=h, state=s) for h, s in obs.member_states()] if obs else []
        sets.append(ReplicaSetStatus(name=rs.name, initialized=bool(obs and obs.initialized),
                                     added_as_shard=(not rs.configsvr) and rs.name in listed,
                                     primary=obs.primary if obs else None, members=members))
    shards = [ShardStatus(name=s, host=observed.shard_hosts.get(s, ""), zones=list(observed.shard_zones.get(s, ())))
              for s in observed.shards_listed or ()]
    wanted = {c.namespace for c in want.collections}
    collections = [
        CollectionStatus(namespace=c.namespace, unique=c.unique, zones=sorted({t for t, _, _ in c.zones}),
                         shard_key=[ShardKeyField(field=f, type="hashed" if v == "hashed" else "ranged")
                                    for f, v in c.key])
        for c in (observed.collections or {}).values() if c.namespace in wanted]
    return MongoShardedClusterStatus(replica_sets=sets, shards=shards, collections=collections)


def conditions(observed: ClusterState, want: DesiredCluster, generation: int | None) -> list[dict[str, Any]]:
    """``ConfigServerReady``, ``ShardsReady``, ``ShardsRegistered`` and ``Bootstrapped`` as condition dicts."""

    def cond(type_: str, ok: bool | None, reason: str, message: str) -> dict[str, Any]:
        return condition(type_, ok, reason, message, generation)

    def rs_state(rs: ReplicaSetSpec) -> tuple[bool | None, str]:
        obs = observed.replica_sets.get(rs.name)
        if obs is None or not obs.reachable:
            return None, f"{rs.name} unreachable" + (f": {obs.error}" if obs and obs.error else "")
        if not obs.initialized:
            return False, f"{rs.name} not initialised"
        if obs.primary is None:
            return False, f"{rs.name} has no primary"
        missing = [h for h in rs.members if h not in obs.members]
        if missing:
            return False, f"{rs.name} lacks members {', '.join(missing)}"
        return True, f"{rs.name} primary {obs.primary}"

    cfg_ok, cfg_msg = rs_state(want.config)
    out = [cond(COND_CONFIG_SERVER_READY, cfg_ok,
                {True: "ReplicaSetReady", False: "ReplicaSetNotReady", None: "Unreachable"}[cfg_ok], cfg_msg)]
    shard_states = [rs_state(rs) for rs in want.shards]
    bad = [m for ok, m in shard_states if ok is not True]
    shards_ok: bool | None = True if not bad else (None if all(ok is None for ok, _ in shard_states
                                                               if ok is not True) else False)
    out.append(cond(COND_SHARDS_READY, shards_ok,
                    {True: "ReplicaSetsReady", False: "ReplicaSetsNotReady", None: "Unreachable"}[shards_ok],
                    "; ".join(bad) or f"{len(want.shards)} shard replica sets ready"))
    if observed.shards_listed is None:
        out.append(cond(COND_SHARDS_REGISTERED, None, "MongosUnreachable", f"mongos {want.mongos} not reachable"))
    else:
        missing = [rs.name for rs in want.shards if rs.name not in observed.shards_listed]
        out.append(cond(COND_SHARDS_REGISTERED, not missing, "ShardsMissing" if missing else "AllShardsRegistered",
                        ("not in listShards: " + ", ".join(missing)) if missing
                        else f"{len(want.shards)} shards registered"))
    pending = plan(observed, want)
    refused = sharding.conflicts(observed.collections, want.collections)
    if refused:
        out.append(cond(COND_BOOTSTRAPPED, False, "ShardKeyConflict", "; ".join(refused)))
    else:
        out.append(cond(COND_BOOTSTRAPPED, not pending, "Pending" if pending else "Complete",
                        "; ".join(f"{s.action} {s.target}: {s.reason}" for s in pending) or "bootstrap complete"))
    return out


#: Environment variables the bootstrap Job sets (see :func:`.render.bootstrap_job`).
ENV_TOPOLOGY = "GAME_ANALYTICS_MONGO_TOPOLOGY"
ENV_KEYFILE = "GAME_ANALYTICS_MONGO_KEYFILE"
ENV_ADMIN_USERNAME = "GAME_ANALYTICS_MONGO_ADMIN_USERNAME"
ENV_ADMIN_PASSWORD = "GAME_ANALYTICS_MONGO_ADMIN_PASSWORD"
ENV_HEARTBEAT = "GAME_ANALYTICS_HEARTBEAT_FILE"
