"""Bad manifests: each is rejected by the API server naming the field, or reported in status; the operator survives."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from devtools.waiting import wait_for

from .support import EXAMPLES, GAMES_NS, ready_condition

pytestmark = pytest.mark.e2e


def example(name: str) -> dict:
    return yaml.safe_load((EXAMPLES / name).read_text())


def variant(base: str, name: str, edit) -> dict:
    doc = copy.deepcopy(example(base))
    doc["metadata"] = {"name": name, "namespace": GAMES_NS}
    edit(doc["spec"])
    return doc


def set_(path: str, value):
    def edit(spec):
        *parents, leaf = path.split(".")
        node = spec
        for p in parents:
            node = node[p]
        if value is DELETE:
            del node[leaf]
        else:
            node[leaf] = value
    return edit


DELETE = object()

#: (manifest, text the API server's error must contain)
REJECTED = [
    (variant("alertrule-inflation.yaml", "bad-category", set_("category", "cosmic")), "spec.category"),
    (variant("alertrule-inflation.yaml", "bad-type", set_("detector.currencyInflation.rate", "fast")),
     "spec.detector.currencyInflation.rate"),
    (variant("alertrule-inflation.yaml", "bad-range", set_("detector.currencyInflation.rate", -1)),
     "spec.detector.currencyInflation.rate"),
    (variant("alertrule-inflation.yaml", "two-detectors",
             set_("detector", {"currencyInflation": {"rate": 0.1}, "ingestLag": {"maxLagSeconds": 5}})),
     "exactly one detector must be set"),
    (variant("alertrule-inflation.yaml", "wrong-category", set_("category", "player")),
     "the detector does not belong to spec.category"),
    (variant("alertrule-inflation.yaml", "bad-duration", set_("for", "soon")), "spec.for"),
    (variant("alertrule-inflation.yaml", "no-runbook", set_("runbookURL", DELETE)), "runbookURL"),
    (variant("alertrule-wealth-jump.yaml", "dup-channels",
             lambda s: s["channels"].append(copy.deepcopy(s["channels"][0]))), "channel names must be unique"),
    (variant("alertrule-wealth-jump.yaml", "two-channel-types",
             lambda s: s["channels"][0].update(webhook={"urlSecretRef": {"name": "a", "key": "b"}})),
     "exactly one channel type must be set"),
    (variant("redisfailover.yaml", "even-sentinels", set_("sentinel.replicas", 4)), "sentinel replicas must be odd"),
    (variant("redisfailover.yaml", "big-quorum", set_("sentinel.quorum", 5)),
     "quorum must not exceed the number of sentinels"),
    (variant("mongoshardedcluster.yaml", "even-shard-rs", set_("shards.replicasPerShard", 2)),
     "odd member count"),
    (variant("mongoshardedcluster.yaml", "unique-hashed",
             lambda s: s["collections"][0].update(unique=True)), "a unique shard key cannot be hashed"),
    (variant("mongoshardedcluster.yaml", "two-hashed",
             lambda s: s["collections"][0]["shardKey"].append({"field": "region", "type": "hashed"})),
     "a shard key has at most one hashed field"),
    (variant("mongoshardedcluster.yaml", "bad-key-type",
             lambda s: s["collections"][0]["shardKey"][0].update(type="geo")), "spec.collections[0].shardKey[0].type"),
    (variant("scheduledreport.yaml", "bad-format", set_("formats", ["docx", "html"])), "spec.formats"),
    (variant("scheduledreport.yaml", "repeated-report", set_("reports", ["retention", "retention"])),
     "report types must not repeat"),
    (variant("scheduledreport.yaml", "no-schedule", set_("schedule", DELETE)), "spec.schedule"),
    (variant("scheduledreport.yaml", "bad-cron", set_("schedule", "61 25 * * *")), "spec.schedule"),
    (variant("rankingjob.yaml", "bad-algorithm", set_("algorithm", "microsoft-trueskill")), "spec.algorithm"),
    (variant("rankingjob.yaml", "elo-params-on-glicko", set_("elo", {"kFactor": 32})),
     "elo parameters need algorithm elo"),
    (variant("rankingjob.yaml", "tau-too-big", set_("glicko2.tau", 5)), "spec.glicko2.tau"),
    (variant("gamedatasource.yaml", "two-redis",
             set_("redis", {"urlSecretRef": {"name": "r", "key": "url"}, "sentinel": {"redisFailoverRef": {"name": "x"}}})),
     "set exactly one of urlSecretRef or sentinel"),
    # moved from the operator into CEL (issue 15 leftovers): retention, zone shards, zone keys
    (variant("gamedatasource.yaml", "zero-retention", set_("retention", "0d")),
     'spec.retention: Invalid value: "string": must be positive'),
    (variant("gamedatasource.yaml", "long-retention", set_("retention", "999y52w1d1ms")),
     'spec.retention: Invalid value: "string": must be at most 1000y'),
    (variant("gamedatasource.yaml", "huge-retention", set_("retention", "99999999999999999999999y")),
     'spec.retention: Invalid value: "string": must be at most 1000y'),  # refused by the rule, no int64 overflow
    (variant("mongoshardedcluster.yaml", "zone-shard-2-of-2",
             lambda s: s["collections"][1]["zones"][1].update(shards=[2])),
     'spec.collections: Invalid value: "object": zone shards must be below shards.count'),
    (variant("mongoshardedcluster.yaml", "zone-key-not-in-shard-key",
             lambda s: s["collections"][1]["zones"][0]["min"].update(country="fr")),
     'spec.collections[1].zones: Invalid value: "object": zone min and max keys must be fields of the shard key'),
    (dict(variant("gamedatasource.yaml", "x", lambda s: None),
          metadata={"name": "a-name-that-is-far-too-long-for-derived-children", "namespace": GAMES_NS}),
     "metadata.name must be at most 40 characters"),
]

#: (manifest, kind, field the Ready condition's message must name): valid for the schema, wrong in substance.
REPORTED = [
    (variant("alertrule-ingest-lag.yaml", "unparseable-promql",
             set_("detector", {"promql": {"expr": "sum(rate(errors_total[5m])"}})), "alertrule",
     "spec.detector.promql.expr"),
    (variant("scheduledreport.yaml", "backwards-cron", set_("schedule", "0 5-1 * * *")), "scheduledreport",
     "spec.schedule"),
    (variant("rankingjob.yaml", "bad-zone", set_("timeZone", "Mars/Olympus_Mons")), "rankingjob", "spec.timeZone"),
    (variant("scheduledreport.yaml", "missing-source", set_("dataSourceRef", {"name": "nope"})), "scheduledreport",
     "spec.dataSourceRef.name"),
]


def test_schema_and_cel_reject_bad_manifests_naming_the_field(installed, kubectl):
    failures = []
    for manifest, expected in REJECTED:
        result = kubectl.run("apply", "-f", "-", input=yaml.safe_dump(manifest), check=False)
        if result.returncode == 0 or expected not in result.stderr:
            failures.append(f"{manifest['metadata']['name']}: rc={result.returncode} {result.stderr.strip()}")
    assert not failures, "\n".join(failures)
    assert len(REJECTED) + len(REPORTED) >= 15


#: (manifest) at the limits of the rules above: admitted (server-side dry run)
ADMITTED_AT_THE_LIMIT = [
    variant("gamedatasource.yaml", "retention-1000y", set_("retention", "1000y")),
    variant("gamedatasource.yaml", "retention-in-ms", set_("retention", "31536000000000ms")),
    variant("gamedatasource.yaml", "retention-summed", set_("retention", "999y52w1d")),  # 1000y exactly
    variant("gamedatasource.yaml", "retention-leading-zeros", set_("retention", "0000000000000000000999y52w")),
    variant("mongoshardedcluster.yaml", "zone-on-every-shard",
            lambda s: (s["shards"].update(count=3), s["collections"][1]["zones"][1].update(shards=[0, 1, 2]),
                       s["collections"][1]["zones"][0].update(max={"region": "eu", "player_id": "$maxKey"}))),
]


def test_values_at_the_limits_of_the_rules_are_admitted(installed, kubectl):
    failures = []
    for manifest in ADMITTED_AT_THE_LIMIT:
        result = kubectl.run("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(manifest), check=False)
        if result.returncode != 0:
            failures.append(f"{manifest['metadata']['name']}: {result.stderr.strip()}")
    assert not failures, "\n".join(failures)


def test_semantic_errors_are_reported_in_status_and_operator_stays_up(operator, kubectl):
    kubectl.run("apply", "-n", GAMES_NS, "-f", str(EXAMPLES / "gamedatasource.yaml"))
    for manifest, _kind, _field in REPORTED:
        kubectl.run("apply", "-f", "-", input=yaml.safe_dump(manifest))
    for manifest, kind, field in REPORTED:
        name = manifest["metadata"]["name"]
        cond = wait_for(f"{kind}/{name} reports {field}",
                        lambda: (c := ready_condition(kubectl.get(kind, name))) and c["status"] == "False" and c)
        assert cond["message"].startswith(field), cond
    assert operator.proc.poll() is None, "the operator died on bad input"
    # the operator still reconciles valid objects afterwards
    kubectl.run("apply", "-n", GAMES_NS, "-f", str(EXAMPLES / "alertrule-anomaly.yaml"))
    wait_for("valid rule ready", lambda: (c := ready_condition(kubectl.get("alertrule", "purchase-anomaly")))
             and c["status"] == "True")
    events = json.loads(kubectl.run("get", "events", "-n", GAMES_NS, "-o", "json",
                                    "--field-selector", "involvedObject.name=unparseable-promql").stdout)["items"]
    assert any(e["reason"] == "InvalidSpec" and e["type"] == "Warning" for e in events)
