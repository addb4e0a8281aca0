"""MongoShardedCluster planning: render, and report what the bootstrap Job observed.

The operator never talks to mongod itself. The bootstrap worker writes its last observation of the cluster
(:meth:`.bootstrap.ClusterState.to_document`: replica-set members and their states, registered shards and their
zones, sharded collections) as JSON to its termination message; the kubelet copies it into the pod's
``status.containerStatuses[].state.terminated.message``. :func:`last_observation` reads it from the newest finished
pod of the current bootstrap Job, and :func:`plan` derives ``status.replicaSets[]``, ``shards[]``,
``collections[]`` and the conditions ``ConfigServerReady``, ``ShardsReady``, ``ShardsRegistered`` and
``Bootstrapped`` from it with the pure :func:`.bootstrap.status` / :func:`.bootstrap.conditions`.

While no pod has reported (the Job is still running, or its pods were removed), the status fields are not written
and keep their last value, and ``Bootstrapped`` follows the Job: the worker exits 0 only when its plan is empty.
``Ready`` is False (reason ``Bootstrapping``, or ``ShardKeyConflict``) until the cluster is bootstrapped.

A shard key change is refused: when the last observed status (``status.collections``) or the Job's observation
holds a collection sharded on another key, the spec is rejected with the field named
(``spec.collections[1].shardKey: ...``) and no child is changed, so no new bootstrap Job is created for it.
"""

from __future__ import annotations

import json
from typing import Any

from ... import validation
from ...api.mongoshardedcluster import MongoShardedClusterStatus
from ...config import Images
from ..common.conditions import condition
from ..common.plan import Plan, owned_selector, termination_messages
from ..common.render import Owner
from ..k8s import Cluster
from . import bootstrap, render, sharding
from .names import BOOTSTRAP_COMPONENT

CHILD_TYPES = [("v1", "Service"), ("apps/v1", "StatefulSet"), ("apps/v1", "Deployment"),
               ("policy/v1", "PodDisruptionBudget"), ("batch/v1", "Job"),
               ("monitoring.coreos.com/v1", "ServiceMonitor")]

#: Labels the Job controller puts on its pods (the first since Kubernetes 1.27, the second for older clusters).
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")


def job_state(job: dict | None) -> tuple[bool | None, str, str]:
    """(succeeded?, reason, message) of a Job: True done, False failed, None still pending or running."""
    if job is None:
        return None, "BootstrapPending", "the bootstrap Job does not exist yet"
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Complete" and cond.get("status") == "True":
            return True, "Complete", f"Job {job['metadata']['name']} completed"
        if cond.get("type") == "Failed" and cond.get("status") == "True":
            return False, "BootstrapFailed", f"Job {job['metadata']['name']} failed: {cond.get('message', '')}"
    return None, "BootstrapPending", f"Job {job['metadata']['name']} has not completed yet"


def last_observation(cluster: Cluster, owner: Owner, job_name: str) -> bootstrap.ClusterState | None:
    """The observation in the termination message of the newest finished pod of Job ``job_name`` (succeeded or
    failed: a failed round reports what it saw too). None when no pod has left a parsable one."""
    pods = [pod for pod in cluster.list("v1", "Pod", owner.namespace, owned_selector(owner, BOOTSTRAP_COMPONENT))
            if job_name in (((pod.get("metadata") or {}).get("labels") or {}).get(k) for k in JOB_NAME_LABELS)]
    for message in termination_messages(pods, "bootstrap"):
        try:
            return bootstrap.ClusterState.from_document(json.loads(message))
        except (ValueError, KeyError, TypeError):
            continue
    return None


def _refuse_key_changes(want: bootstrap.DesiredCluster, body: Any,
                        observed: bootstrap.ClusterState | None) -> None:
    """Raise SpecError when a collection is known to be sharded on another key than the spec asks for."""
    known: dict[str, sharding.ObservedCollection] = {}
    for c in ((body or {}).get("status") or {}).get("collections") or []:
        key = tuple((k["field"], "hashed" if k.get("type") == "hashed" else 1) for k in c.get("shardKey") or [])
        known[c["namespace"]] = sharding.ObservedCollection(c["namespace"], key, bool(c.get("unique", False)))
    if observed is not None and observed.collections:
        known.update(observed.collections)
    refused = sharding.conflicts(known, want.collections)
    if refused:
        raise _spec_error(refused[0])


def _spec_error(text: str) -> validation.SpecError:
    """``"spec.x: message"`` (as :mod:`.sharding` words its errors) as a SpecError naming ``spec.x``."""
    field, _, message = text.partition(": ")
    return validation.SpecError(field, message)


def plan(owner: Owner, spec: Any, cluster: Cluster, images: Images, body: Any = None) -> Plan:
    """Children from :func:`.render.render`; status and conditions from the bootstrap Job's observation.

    Raises:
        SpecError: a zone is inconsistent with the shard key or the shard count, or a collection is already
            sharded on another key (the message names the field).
    """
    try:
        want = bootstrap.desired(owner.name, owner.namespace, spec)
    except ValueError as exc:
        raise _spec_error(str(exc)) from None
    job_name = render.bootstrap_job_name(owner.name, want)
    observed = last_observation(cluster, owner, job_name)
    _refuse_key_changes(want, body, observed)
    children = render.render(owner, spec, images, want)  # the topology computed once, above
    done, reason, message = job_state(cluster.get("batch/v1", "Job", owner.namespace, job_name))
    if observed is None:
        conditions = [condition(bootstrap.COND_BOOTSTRAPPED, done, reason, message, owner.generation)]
        status = MongoShardedClusterStatus()
    else:
        conditions = bootstrap.conditions(observed, want, owner.generation)
        status = bootstrap.status(observed, want)
        if done is False:  # the Job gave up: say so, with what it saw last
            conditions = [c for c in conditions if c["type"] != bootstrap.COND_BOOTSTRAPPED]
            conditions.append(condition(bootstrap.COND_BOOTSTRAPPED, False, reason, message, owner.generation))
    boot = next(c for c in conditions if c["type"] == bootstrap.COND_BOOTSTRAPPED)
    not_ready = None if boot["status"] == "True" else (
        "ShardKeyConflict" if boot["reason"] == "ShardKeyConflict" else "Bootstrapping", boot["message"])
    return Plan(children, CHILD_TYPES, status=status, conditions=conditions, not_ready=not_ready)
