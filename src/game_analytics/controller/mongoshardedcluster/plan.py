"""MongoShardedCluster planning: render, and report bootstrap progress from the bootstrap Job.

The operator never talks to mongod itself: the Job's completion is the proof that every replica set was
initiated and every shard added (the bootstrap worker only exits 0 when its plan is empty).
"""

from __future__ import annotations

from typing import Any

from ...api.mongoshardedcluster import MongoShardedClusterStatus, ReplicaSetStatus
from ...config import Images
from ..common.conditions import condition
from ..common.plan import Plan
from ..common.render import Owner
from ..k8s import Cluster
from . import bootstrap, render

CHILD_TYPES = [("v1", "Service"), ("apps/v1", "StatefulSet"), ("apps/v1", "Deployment"),
               ("policy/v1", "PodDisruptionBudget"), ("batch/v1", "Job")]


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


def plan(owner: Owner, spec: Any, cluster: Cluster, images: Images, body: Any = None) -> Plan:
    """Children from :func:`.render.render`; ``replicaSets`` and the ``Bootstrapped`` condition from the Job."""
    children = render.render(owner, spec, images)
    want = bootstrap.desired(owner.name, owner.namespace, spec)
    job_name = render.bootstrap_job_name(owner.name, want)
    done, reason, message = job_state(cluster.get("batch/v1", "Job", owner.namespace, job_name))
    replica_sets = [ReplicaSetStatus(name=rs.name, initialized=bool(done), added_as_shard=bool(done) and not rs.configsvr)
                    for rs in want.replica_sets]
    return Plan(
        children, CHILD_TYPES,
        status=MongoShardedClusterStatus(replica_sets=replica_sets),
        conditions=[condition(bootstrap.COND_BOOTSTRAPPED, done, reason, message, owner.generation)],
    )
