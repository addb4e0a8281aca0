"""The MongoDB bootstrap worker: runs inside the bootstrap Job (``game-analytics mongo bootstrap --cluster <name>``).

It observes the cluster with pymongo, asks the pure planner
(:func:`game_analytics.controller.mongoshardedcluster.bootstrap.plan`) for the next steps, executes them, and repeats
until the plan is empty; see that module for the order of the stages and why racing bootstraps converge.

Authentication before any user exists: the localhost exception does not help a remote bootstrap, so the executor
authenticates as the internal ``__system`` user whose password is the keyfile's content (whitespace removed), as
cluster members do among themselves. It switches to the admin user once that exists.

NOT run against a live mongod (there is none in CI): :func:`observe`, :func:`execute` and :func:`run` are untested
beyond the environment handling; the decisions they carry out are unit-tested in the planner.
"""

from __future__ import annotations

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
    """What happened to one step: ``outcome`` done/retry/failed and the server's message in ``detail``."""

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
