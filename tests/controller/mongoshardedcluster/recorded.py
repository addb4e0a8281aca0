"""The observation a bootstrap Job reported in a recorded run, and the pod that carries it.

``recorded_observation.json`` is the termination message the bootstrap executor wrote at the end of its run over
the wire (``tests/topology/test_mongo_bootstrap_wire.py``, which also checks this file is what it writes) for the
example cluster ``examples/mongoshardedcluster.yaml`` in namespace ``games``.
"""

from __future__ import annotations

from pathlib import Path

RECORDED_MESSAGE = (Path(__file__).parent / "recorded_observation.json").read_text().strip()


def bootstrap_pod(owner: str, job_name: str, message: str = RECORDED_MESSAGE, *, phase: str = "Succeeded",
                  finished: str = "2026-11-23T05:02:00Z", namespace: str = "games") -> dict:
    """A finished pod of the bootstrap Job ``job_name`` whose container left ``message`` as its termination
    message, labelled as the Job controller labels its pods."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": f"{job_name}-x7k2p", "namespace": namespace,
        "labels": {"gameanalytics.io/owner-kind": "MongoShardedCluster", "gameanalytics.io/owner-name": owner,
                   "app.kubernetes.io/component": "mongo-bootstrap", "batch.kubernetes.io/job-name": job_name,
                   "job-name": job_name}},
        "status": {"phase": phase, "containerStatuses": [{"name": "bootstrap", "state": {"terminated": {
            "exitCode": 0 if phase == "Succeeded" else 1, "finishedAt": finished, "message": message}}}]}}
