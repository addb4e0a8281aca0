"""The MongoDB bootstrap worker: runs inside the bootstrap Job (``game-analytics mongo bootstrap --cluster <name>``).

It observes the cluster with pymongo, asks the pure planner
(:func:`game_analytics.controller.mongoshardedcluster.bootstrap.plan`) for the next steps, executes them, and repeats
until the plan is empty; see that module for the order of the stages and why racing bootstraps converge.

Authentication before any user exists: the localhost exception does not help a remote bootstrap, so the executor
authenticates as the internal ``__system`` user whose password is the keyfile's content (whitespace removed), as
cluster members do among themselves. It switches to the admin user once that exists.

What it observed last is written as JSON (:meth:`ClusterState.to_document`) to ``--status-file``, the container's
termination message, whether the bootstrap finished or failed; the operator derives the status from it.

Tested over the MongoDB wire protocol against ``mockupdb`` servers replying as mongod and mongos document they do
(``tests/topology/test_mongo_bootstrap_wire.py``), never against a live mongod: see docs/topologies.md for what that
does not prove.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..controller.mongoshardedcluster.bootstrap import (
    ENV_ADMIN_PASSWORD,
    ENV_ADMIN_USERNAME,
    ENV_HEARTBEAT,
    ENV_KEYFILE,
    ENV_TOPOLOGY,
    ClusterState,
    DesiredCluster,
    Outcome,
    ReplicaSetObservation,
    Step,
    outcome,
    plan,
)
from ..controller.mongoshardedcluster.sharding import MAX_KEY, MIN_KEY

__all__ = ["BootstrapFailed", "Credentials", "StepResult", "execute", "main", "observe", "run",
           "run_from_environment"]


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
    """Ask each replica set's first member for ``replSetGetStatus``; mongos for ``ping``, ``listShards``,
    ``usersInfo`` and, when the topology has collections, the ``config.collections`` and ``config.tags``
    documents of their namespaces (``find``)."""
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
    ping, listed, users, sharded, tags = False, None, None, None, None
    namespaces = [c.namespace for c in want.collections]
    for username, password, source in ((creds.admin_username, creds.admin_password, "admin"),
                                       ("__system", creds.keyfile_password, "local")):
        client = connect(want.mongos, username, password, source, direct=False)
        try:
            client.admin.command("ping")
            ping = True
            listed = client.admin.command("listShards")
            users = client.admin.command("usersInfo", {"user": creds.admin_username, "db": "admin"})
            if namespaces:
                sharded = list(client.config.collections.find({"_id": {"$in": namespaces}},
                                                              {"key": 1, "unique": 1, "dropped": 1}))
                tags = list(client.config.tags.find({"ns": {"$in": namespaces}}))
            break
        except OperationFailure:
            continue  # authentication failed: the admin user does not exist yet, try the keyfile
        except PyMongoError:
            break
        finally:
            client.close()
    return ClusterState.from_replies(sets, mongos_ping=ping, list_shards=listed, users_info=users, sharded=sharded,
                                     tags=tags)


def _bson_bounds(pairs: Sequence[Sequence[Any]]) -> Any:
    """Zone bound pairs as an ordered BSON document, ``$minKey``/``$maxKey`` as MinKey/MaxKey."""
    from bson.max_key import MaxKey
    from bson.min_key import MinKey
    from bson.son import SON

    return SON([(f, MinKey() if v == MIN_KEY else MaxKey() if v == MAX_KEY else v) for f, v in pairs])


@dataclass(frozen=True)
class StepResult:
    """What happened to one step: ``outcome`` done/retry/failed and the server's message in ``detail``."""

    step: Step
    outcome: Outcome
    detail: str = ""


def execute(steps: Sequence[Step], want: DesiredCluster, creds: Credentials,
            connect: Connect = _client) -> list[StepResult]:
    """Run ``steps`` in order until a ``wait`` or a failed step; returns what happened to each step run."""
    from bson.son import SON
    from pymongo.errors import OperationFailure, PyMongoError

    by_name = {rs.name: rs for rs in want.replica_sets}
    by_ns = {c.namespace: c for c in want.collections}
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
            elif step.action == "enable_sharding":
                client.admin.command("enableSharding", step.target)
            elif step.action == "shard_collection":
                coll = by_ns[step.target]
                client.admin.command("shardCollection", step.target, key=SON(list(coll.key)), unique=coll.unique)
            elif step.action == "add_shard_to_zone":
                client.admin.command("addShardToZone", step.target, zone=step.argument)
            elif step.action == "update_zone_key_range":
                zone = next(z for z in by_ns[step.target].zones if z.name == step.argument)
                client.admin.command("updateZoneKeyRange", step.target, min=_bson_bounds(zone.min),
                                     max=_bson_bounds(zone.max), zone=zone.name)
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
        heartbeat: Path | None = None, log: Callable[[str], None] = print, connect: Connect = _client,
        status_file: Path | None = None) -> ClusterState:
    """Observe, plan and execute until the plan is empty. Touches ``heartbeat`` each round (liveness probe) and
    writes each round's observation to ``status_file`` (see :func:`write_status`).

    Raises:
        BootstrapFailed: a step failed, or ``timeout`` seconds passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        if heartbeat is not None:
            heartbeat.touch()
        state = observe(want, creds, connect)
        if status_file is not None:
            write_status(status_file, state)
        steps = plan(state, want)
        if not steps:
            log("bootstrap complete")
            return state
        for result in execute(steps, want, creds, connect):
            log(f"{result.step.action} {result.step.target}: {result.outcome} {result.detail or result.step.reason}")
            if result.outcome == "failed":
                raise BootstrapFailed(f"{result.step.action} {result.step.target}: {result.detail}")
        if time.monotonic() > deadline:
            raise BootstrapFailed(f"not bootstrapped after {timeout:g} s; pending: {steps}")
        time.sleep(interval)


#: The kubelet keeps at most 4096 bytes of a termination message.
TERMINATION_MESSAGE_LIMIT = 4096


def write_status(path: Path, state: ClusterState) -> str:
    """Write ``state.to_document()`` as compact JSON to ``path`` (the termination message); returns the text.
    Should it exceed the kubelet's 4 KiB, member lists and errors are dropped first (the rest still fits)."""
    doc = state.to_document()
    text = json.dumps(doc, separators=(",", ":"), sort_keys=True)
    if len(text.encode()) > TERMINATION_MESSAGE_LIMIT:
        for rs in doc["replicaSets"]:
            rs.pop("error", None)
            rs["members"] = []
        text = json.dumps(doc, separators=(",", ":"), sort_keys=True)
    path.write_text(text)
    return text


def run_from_environment(cluster: str, environ: Mapping[str, str] | None = None,
                         status_file: Path | None = None) -> int:
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
        run(want, creds, heartbeat=heartbeat, status_file=status_file)
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
    boot.add_argument("--status-file", type=Path, default=None,
                      help="write the last observation here as JSON (the Job sets its termination-message path)")
    args = parser.parse_args(argv)
    return run_from_environment(args.cluster, status_file=args.status_file)
