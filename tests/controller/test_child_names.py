"""Child names: within the Kubernetes limits for every allowed name, and never shared between two owners.

Defects (issue 15): a RankingJob name at the allowed maximum with ``seasonReset`` gave a CronJob name over 52
characters (a half-done apply); GameDataSource ``leaderboards-redis`` and RedisFailover ``leaderboards`` both
generated ServiceMonitor ``leaderboards-redis`` and overwrote each other forever.
"""

from __future__ import annotations

import re

import pytest

from game_analytics.api import KINDS
from game_analytics.api.crdgen import max_name_length
from game_analytics.config import Images

from .fake_cluster import FakeCluster
from .test_reconcile import body, ready, run

EXAMPLE_OF = {"AlertRule": "alertrule-wealth-jump.yaml", "ScheduledReport": "scheduledreport.yaml",
              "RankingJob": "rankingjob.yaml", "RedisFailover": "redisfailover.yaml",
              "MongoShardedCluster": "mongoshardedcluster.yaml", "GameDataSource": "gamedatasource.yaml"}
#: kind -> longest name: a CronJob's Jobs get an 11-character suffix, a StatefulSet's pods a
#: ``controller-revision-hash`` label of ``<name>-<10 characters>`` (a label value: at most 63)
LIMITS = {"CronJob": 52, "StatefulSet": 52, "Service": 63}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def longest_name(kind: str) -> str:
    return "a-" + "x" * (max_name_length(kind) - 2)


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_every_kind_at_its_longest_name_renders_valid_children(kind):
    name = longest_name(kind)
    assert len(name) == max_name_length(kind) and DNS_LABEL.match(name)
    cluster, obj = FakeCluster(), body(EXAMPLE_OF[kind], name=name)
    cluster.add(body("redisfailover.yaml"))
    if kind == "RankingJob":
        obj["spec"]["seasonReset"] = {"schedule": "0 0 1 * *"}
    run(kind, obj, cluster, Images(probe_address_annotation=True))
    assert ready(obj)["reason"] not in ("InvalidSpec", "ApplyRejected", "ChildConflict"), ready(obj)
    children = [o for o in cluster.created().values()
                if (o["metadata"].get("labels") or {}).get("gameanalytics.io/owner-name") == name]
    assert children
    problems = []
    for child in children:
        child_name, child_kind = child["metadata"]["name"], child["kind"]
        if len(child_name) > LIMITS.get(child_kind, 63) or not DNS_LABEL.match(child_name):
            problems.append(f"{child_kind}/{child_name} ({len(child_name)} characters)")
        for key, value in (child["metadata"].get("labels") or {}).items():
            if len(str(value)) > 63:
                problems.append(f"{child_kind}/{child_name} label {key}={value}")
    assert not problems, "\n".join(problems)


def test_a_child_owned_by_another_object_is_reported_not_overwritten():
    cluster = FakeCluster()
    failover = body("redisfailover.yaml")  # RedisFailover leaderboards -> ServiceMonitor leaderboards-redis
    cluster.add(failover)
    images = Images(probe_address_annotation=True)
    run("RedisFailover", failover, cluster, images)
    monitor_path = next(p for p in cluster.objects if p.endswith("/servicemonitors/leaderboards-redis"))
    before = dict(cluster.objects[monitor_path])
    source = body("gamedatasource.yaml", name="leaderboards-redis")  # its ServiceMonitor: leaderboards-redis
    writes = len(cluster.writes)
    run("GameDataSource", source, cluster, images)
    cond = ready(source)
    assert (cond["status"], cond["reason"]) == ("False", "ChildConflict")
    assert cond["message"] == ("metadata.name: the generated ServiceMonitor/leaderboards-redis already exists and "
                               "belongs to RedisFailover leaderboards; rename this object (or that one)")
    assert cluster.objects[monitor_path] == before and len(cluster.writes) == writes, "nothing is written"
    again = run("RedisFailover", failover, cluster, images)
    assert ready(failover)["status"] == "True" and again.applied.applied == [], "the owner keeps its child, no fight"
