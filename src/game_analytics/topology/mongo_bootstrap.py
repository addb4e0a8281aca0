"""Bootstrap of a sharded MongoDB: decisions (pure :func:`plan`) separated from execution (thin pymongo code).

Order (each stage needs the previous one):

1. the config-server replica set is initiated (``replSetInitiate`` with ``configsvr: true``);
2. every shard replica set is initiated;
3. all replica sets have a primary and mongos answers;
4. every shard is registered (``addShard``);
5. the admin user exists (``createUser`` through mongos, stored on the config servers).

Everything is idempotent: the plan is recomputed from a fresh observation after each round, so a bootstrap that
crashed halfway, or two bootstraps racing, converge. A racing ``replSetInitiate`` answered with
``AlreadyInitialized`` and a racing ``createUser`` answered with ``DuplicateKey`` count as success
(:func:`outcome`).

Authentication before any user exists: the localhost exception does not help a remote bootstrap, so the executor
authenticates as the internal ``__system`` user whose password is the keyfile's content (whitespace removed), as
cluster members do among themselves. It switches to the admin user once that exists.

Sources: MongoDB manual, "Deploy a Self-Managed Sharded Cluster", ``replSetInitiate``, ``replSetReconfig``
(one voting member added per reconfig since 4.4), ``addShard``, ``listShards``, ``usersInfo``; error codes from
``src/mongo/base/error_codes.yml``.

NOT run against a live mongod (there is none in CI): :func:`plan`, :func:`outcome` and the observation parsers are
unit-tested over recorded replies; the executor (:func:`observe`, :func:`execute`, :func:`run`) is not.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..api.mongoshardedcluster import MongoShardedClusterSpec, ReplicaSetStatus

MONGO_PORT = 27017

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
# Names and desired topology


def config_server_name(cluster: str) -> str:
    """Config-server StatefulSet and replica set name: ``<cluster>-cfg``."""
    return f"{cluster}-cfg"


def shard_name(cluster: str, index: int) -> str:
    """Shard StatefulSet and replica set name: ``<cluster>-shard-<i>``."""
    return f"{cluster}-shard-{index}"


def headless_name(statefulset: str) -> str:
    return f"{statefulset}-headless"


def mongos_name(cluster: str) -> str:
    return f"{cluster}-mongos"


def member_host(statefulset: str, namespace: str, ordinal: int) -> str:
    """``<sts>-<i>.<sts>-headless.<ns>.svc:27017``: the stable name a member is known by in its replica set."""
    return f"{statefulset}-{ordinal}.{headless_name(statefulset)}.{namespace}.svc:{MONGO_PORT}"


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

    @property
    def replica_sets(self) -> tuple[ReplicaSetSpec, ...]:
        return (self.config, *self.shards)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> DesiredCluster:
        """Inverse of :meth:`to_json`. Raises ValueError/KeyError/TypeError on malformed input."""
        raw = json.loads(text)

        def rs(d: Mapping[str, Any]) -> ReplicaSetSpec:
            return ReplicaSetSpec(d["name"], tuple(d["members"]), bool(d.get("configsvr", False)))

        return cls(rs(raw["config"]), tuple(rs(s) for s in raw["shards"]), raw["mongos"])


def desired(cluster: str, namespace: str, spec: MongoShardedClusterSpec) -> DesiredCluster:
    """The desired topology of a MongoShardedCluster named ``cluster`` in ``namespace``."""
    cfg = config_server_name(cluster)
    config = ReplicaSetSpec(cfg, tuple(member_host(cfg, namespace, i) for i in range(spec.config_server.replicas)),
                            configsvr=True)
    shards = []
    for s in range(spec.shards.count):
        name = shard_name(cluster, s)
        shards.append(ReplicaSetSpec(name, tuple(member_host(name, namespace, i)
                                                 for i in range(spec.shards.replicas_per_shard))))
    return DesiredCluster(config, tuple(shards), f"{mongos_name(cluster)}.{namespace}.svc:{MONGO_PORT}")


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
    """

    name: str
    reachable: bool = True
    initialized: bool = False
    primary: str | None = None
    members: tuple[str, ...] = ()
    error: str | None = None

    @classmethod
    def from_reply(cls, name: str, reply: Mapping[str, Any] | None = None, *, error_code: int | None = None,
                   error: str | None = None) -> ReplicaSetObservation:
        """Parse a ``replSetGetStatus`` reply, or the error it raised (``error_code``, e.g. 94), or a network
        failure (``error`` without code)."""
        if reply is not None and reply.get("ok", 1):
            members = reply.get("members", [])
            primary = next((m["name"] for m in members if m.get("stateStr") == "PRIMARY" or m.get("state") == 1), None)
            return cls(name, True, True, primary, tuple(m["name"] for m in members))
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
    """

    replica_sets: Mapping[str, ReplicaSetObservation] = field(default_factory=dict)
    mongos_reachable: bool = False
    shards_listed: tuple[str, ...] | None = None
    admin_user_exists: bool | None = None

    @classmethod
    def from_replies(cls, rs_status: Mapping[str, ReplicaSetObservation], *, mongos_ping: bool = False,
                     list_shards: Mapping[str, Any] | None = None,
                     users_info: Mapping[str, Any] | None = None) -> ClusterState:
        """Assemble from parsed replica-set observations and raw ``listShards`` / ``usersInfo`` replies."""
        listed = tuple(s["_id"] for s in list_shards["shards"]) if list_shards is not None else None
        exists = bool(users_info.get("users")) if users_info is not None else None
        return cls(dict(rs_status), mongos_ping, listed, exists)


# ---------------------------------------------------------------------------------------------------------------
# Decisions (pure)

Action = Literal["initiate", "add_member", "wait", "add_shard", "create_admin_user"]


@dataclass(frozen=True)
class Step:
    """One bootstrap action.

    ``target`` is a replica set name (``initiate``, ``add_member``, ``add_shard``), ``mongos`` or ``admin``;
    ``argument`` is the member ``host:port`` for ``add_member`` and the seed list for ``add_shard``.
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
    accepts a single voting-member change per reconfig).
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
    if step.action == "initiate" and error_code == ALREADY_INITIALIZED:
        return "done"
    if step.action == "create_admin_user" and error_code in (DUPLICATE_KEY, USER_ALREADY_EXISTS):
        return "done"
    if error_code in (NODE_NOT_FOUND, HOST_UNREACHABLE, NOT_WRITABLE_PRIMARY):
        return "retry"
    return "failed"


def status(observed: ClusterState, want: DesiredCluster) -> list[ReplicaSetStatus]:
    """Per replica set (config server first): initialised, and registered as a shard (always False for the
    config servers)."""
    listed = set(observed.shards_listed or ())
    out = []
    for rs in want.replica_sets:
        obs = observed.replica_sets.get(rs.name)
        out.append(ReplicaSetStatus(name=rs.name, initialized=bool(obs and obs.initialized),
                                    added_as_shard=(not rs.configsvr) and rs.name in listed))
    return out


def conditions(observed: ClusterState, want: DesiredCluster, generation: int | None) -> list[dict[str, Any]]:
    """``ConfigServerReady``, ``ShardsReady``, ``ShardsRegistered`` and ``Bootstrapped`` as condition dicts."""
    from ..api.common import Condition, ConditionStatus

    def cond(type_: str, ok: bool | None, reason: str, message: str) -> dict[str, Any]:
        st = ConditionStatus.UNKNOWN if ok is None else ConditionStatus.TRUE if ok else ConditionStatus.FALSE
        return Condition(type=type_, status=st, reason=reason, message=message,
                         observed_generation=generation).to_api()

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
    out.append(cond(COND_BOOTSTRAPPED, not pending, "Pending" if pending else "Complete",
                    "; ".join(f"{s.action} {s.target}: {s.reason}" for s in pending) or "bootstrap complete"))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Execution (I/O, pymongo; not tested against a live server)


@dataclass(frozen=True)
class Credentials:
    """Keyfile password (internal ``__system`` user) and the admin user to create."""

    keyfile_password: str
    admin_username: str
    admin_password: str

    @staticmethod
    def keyfile_password_from(text: str) -> str:
        """MongoDB ignores whitespace in a keyfile; the password is the remaining characters."""
        return "".join(text.split())


Connect = Callable[..., Any]


def _client(hosts: Sequence[str] | str, username: str, password: str, auth_source: str, *,
            direct: bool) -> Any:
    import pymongo

    return pymongo.MongoClient(list(hosts) if not isinstance(hosts, str) else hosts, username=username,
                               password=password, authSource=auth_source, directConnection=direct,
                               serverSelectionTimeoutMS=5000, connectTimeoutMS=5000)


def observe(want: DesiredCluster, creds: Credentials, connect: Connect = _client) -> ClusterState:
    """Ask each replica set's first member for ``replSetGetStatus`` and mongos for ``listShards``/``usersInfo``."""
    from pymongo.errors import OperationFailure, PyMongoError

    sets = {}
    for rs in want.replica_sets:
        client = connect(rs.members[0], "__system", creds.keyfile_password, "local", direct=True)
        try:
            sets[rs.name] = ReplicaSetObservation.from_reply(rs.name, client.admin.command("replSetGetStatus"))
        except OperationFailure as exc:
            sets[rs.name] = ReplicaSetObservation.from_reply(rs.name, error_code=exc.code, error=str(exc))
        except PyMongoError as exc:
            sets[rs.name] = ReplicaSetObservation(rs.name, reachable=False, error=str(exc))
        finally:
            client.close()
    ping, listed, users = False, None, None
    for username, password, source in ((creds.admin_username, creds.admin_password, "admin"),
                                       ("__system", creds.keyfile_password, "local")):
        client = connect(want.mongos, username, password, source, direct=False)
        try:
            client.admin.command("ping")
            ping = True
            listed = client.admin.command("listShards")
            users = client.admin.command("usersInfo", {"user": creds.admin_username, "db": "admin"})
            break
        except OperationFailure:
            continue  # authentication failed: the admin user does not exist yet, try the keyfile
        except PyMongoError:
            break
        finally:
            client.close()
    return ClusterState.from_replies(sets, mongos_ping=ping, list_shards=listed, users_info=users)


@dataclass(frozen=True)
class StepResult:
    step: Step
    outcome: Outcome
    detail: str = ""


def execute(steps: Sequence[Step], want: DesiredCluster, creds: Credentials,
            connect: Connect = _client) -> list[StepResult]:
    """Run ``steps`` in order until a ``wait`` or a failed step; returns what happened to each step run."""
    from pymongo.errors import OperationFailure, PyMongoError

    by_name = {rs.name: rs for rs in want.replica_sets}
    results = []
    for step in steps:
        if step.action == "wait":
            results.append(StepResult(step, "retry", step.reason))
            break
        if step.action in ("initiate", "add_member"):
            rs = by_name[step.target]
            client = connect(rs.members[0] if step.action == "initiate" else list(rs.members),
                             "__system", creds.keyfile_password, "local", direct=step.action == "initiate")
        else:
            client = connect(want.mongos, "__system", creds.keyfile_password, "local", direct=False)
        try:
            if step.action == "initiate":
                client.admin.command("replSetInitiate", by_name[step.target].initiate_document())
            elif step.action == "add_member":
                config = client.admin.command("replSetGetConfig")["config"]
                next_id = max((m["_id"] for m in config["members"]), default=-1) + 1
                config["members"].append({"_id": next_id, "host": step.argument})
                config["version"] += 1
                client.admin.command("replSetReconfig", config)
            elif step.action == "add_shard":
                client.admin.command("addShard", step.argument, name=step.target)
            elif step.action == "create_admin_user":
                client.admin.command("createUser", creds.admin_username, pwd=creds.admin_password,
                                     roles=[{"role": "root", "db": "admin"}])
            results.append(StepResult(step, "done"))
        except OperationFailure as exc:
            result = outcome(step, exc.code)
            results.append(StepResult(step, result, str(exc)))
            if result != "done":
                break
        except PyMongoError as exc:
            results.append(StepResult(step, "retry", str(exc)))
            break
        finally:
            client.close()
    return results


class BootstrapFailed(RuntimeError):
    """A step failed for a reason retrying cannot fix, or the bootstrap did not finish in time."""


def run(want: DesiredCluster, creds: Credentials, *, timeout: float = 1500.0, interval: float = 3.0,
        heartbeat: Path | None = None, log: Callable[[str], None] = print) -> ClusterState:
    """Observe, plan and execute until the plan is empty. Touches ``heartbeat`` each round (liveness probe).

    Raises:
        BootstrapFailed: a step failed, or ``timeout`` seconds passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        if heartbeat is not None:
            heartbeat.touch()
        state = observe(want, creds)
        steps = plan(state, want)
        if not steps:
            log("bootstrap complete")
            return state
        for result in execute(steps, want, creds):
            log(f"{result.step.action} {result.step.target}: {result.outcome} {result.detail or result.step.reason}")
            if result.outcome == "failed":
                raise BootstrapFailed(f"{result.step.action} {result.step.target}: {result.detail}")
        if time.monotonic() > deadline:
            raise BootstrapFailed(f"not bootstrapped after {timeout:g} s; pending: {steps}")
        time.sleep(interval)


#: Environment variables the bootstrap Job sets (see ``objects.mongoshardedcluster.bootstrap_job``).
ENV_TOPOLOGY = "GAME_ANALYTICS_MONGO_TOPOLOGY"
ENV_KEYFILE = "GAME_ANALYTICS_MONGO_KEYFILE"
ENV_ADMIN_USERNAME = "GAME_ANALYTICS_MONGO_ADMIN_USERNAME"
ENV_ADMIN_PASSWORD = "GAME_ANALYTICS_MONGO_ADMIN_PASSWORD"
ENV_HEARTBEAT = "GAME_ANALYTICS_HEARTBEAT_FILE"


def run_from_environment(cluster: str, environ: Mapping[str, str] | None = None) -> int:
    """Entry point for ``game-analytics mongo bootstrap --cluster <name>``: read the Job's environment and
    :func:`run`. Returns a process exit code (0 done, 1 failed).

    Raises:
        KeyError: a required environment variable is missing.
    """
    env = os.environ if environ is None else environ
    want = DesiredCluster.from_json(env[ENV_TOPOLOGY])
    if not want.config.name.startswith(f"{cluster}-"):
        raise ValueError(f"topology is for {want.config.name!r}, not cluster {cluster!r}")
    creds = Credentials(Credentials.keyfile_password_from(Path(env[ENV_KEYFILE]).read_text()),
                        env[ENV_ADMIN_USERNAME], env[ENV_ADMIN_PASSWORD])
    heartbeat = Path(env[ENV_HEARTBEAT]) if env.get(ENV_HEARTBEAT) else None
    try:
        run(want, creds, heartbeat=heartbeat)
    except BootstrapFailed as exc:
        print(f"bootstrap failed: {exc}")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``game-analytics mongo bootstrap --cluster <name>`` (argv excludes ``mongo``); returns the exit code."""
    import argparse

    parser = argparse.ArgumentParser(prog="game-analytics mongo", description="sharded MongoDB tools")
    sub = parser.add_subparsers(dest="command", required=True)
    boot = sub.add_parser("bootstrap", help="initiate replica sets, add shards, create the admin user (idempotent)")
    boot.add_argument("--cluster", required=True, help="MongoShardedCluster name")
    args = parser.parse_args(argv)
    return run_from_environment(args.cluster)
