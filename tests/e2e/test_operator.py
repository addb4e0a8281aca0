"""The operator, its CRDs and its Helm chart against a real kube-apiserver (etcd + apiserver + controller-manager).

The chart is installed with helm; the operator runs as a local process with the chart ServiceAccount's token,
so the chart's RBAC is what is tested. See docs/testing.md for the tiers.
"""

from __future__ import annotations

import json
import time

import pytest
import yaml

from devtools.waiting import wait_for

from .support import (
    EXAMPLES,
    GAMES_NS,
    OPERATOR_SA,
    RESYNC,
    SYSTEM_NS,
    WAITING_FOR_SERVERS,
    Kubectl,
    create_example_secrets,
    is_ready,
    is_reconciled,
)

pytestmark = pytest.mark.e2e


def apply_examples(kubectl: Kubectl) -> None:
    kubectl.run("apply", "-n", GAMES_NS, "-f", str(EXAMPLES))


def example_objects() -> list[dict]:
    return [d for p in sorted(EXAMPLES.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]


def children_of(kubectl: Kubectl, kind: str, name: str) -> list[dict]:
    selector = f"gameanalytics.io/owner-kind={kind},gameanalytics.io/owner-name={name}"
    kinds = "configmaps,services,serviceaccounts,deployments,statefulsets,cronjobs,jobs,poddisruptionbudgets," \
            "roles,rolebindings,prometheusrules,servicemonitors,alertmanagerconfigs"
    return kubectl.json("get", kinds, "-n", GAMES_NS, "-l", selector)["items"]


def test_crds_are_explained(installed, kubectl):
    out = kubectl.run("explain", "alertrules.spec.detector.suddenWealthChange").stdout
    assert "thresholdRatio" in out and "Ratio of new to old wealth" in out


def test_examples_reconcile_to_ready_with_owned_children(operator, kubectl):
    apply_examples(kubectl)
    for doc in example_objects():
        kind, name = doc["kind"], doc["metadata"]["name"]
        obj = wait_for(f"{kind}/{name} Ready", lambda: (o := kubectl.get(kind, name)) and is_reconciled(o) and o)
        children = children_of(kubectl, kind, name)
        assert children, f"{kind}/{name} has no children"
        for child in children:
            (ref,) = child["metadata"]["ownerReferences"]
            assert (ref["kind"], ref["name"], ref["uid"]) == (kind, name, obj["metadata"]["uid"])
    table = kubectl.run("get", "game-analytics", "-n", GAMES_NS).stdout
    for doc in example_objects():
        row = next(line for line in table.splitlines() if f"/{doc['metadata']['name']} " in line + " ")
        waiting = WAITING_FOR_SERVERS.get(doc["kind"])
        assert (" False " in row and waiting in row) if waiting else (" True " in row and "Reconciled" in row), row


def test_printer_columns_show_values(operator, kubectl):
    apply_examples(kubectl)
    wait_for("rule ready", lambda: is_ready(kubectl.get("alertrule", "whale-wealth-jump")))
    out = kubectl.run("get", "alertrule", "whale-wealth-jump", "-n", GAMES_NS).stdout.splitlines()
    header = out[0].split()
    assert header == ["NAME", "CATEGORY", "SEVERITY", "DETECTOR", "MODE", "PAGES-7D", "READY", "REASON", "AGE"]
    starts = [out[0].index(f"{h} ") if h != header[-1] else out[0].rindex(h) for h in header]
    cells = {h: out[1][a:b].strip() for h, a, b in zip(header, starts, [*starts[1:], None], strict=True)}
    assert [cells[h] for h in header[:5]] == ["whale-wealth-jump", "player", "critical", "suddenWealthChange", "Live"]
    assert (cells["READY"], cells["REASON"]) == ("True", "Reconciled")
    assert cells["PAGES-7D"] in ("", "<none>") or cells["PAGES-7D"].isdigit()  # no backtest source in this tier


def test_spec_update_changes_children(operator, kubectl):
    apply_examples(kubectl)
    wait_for("rule ready", lambda: is_ready(kubectl.get("alertrule", "currency-inflation")))
    kubectl.run("patch", "alertrule", "currency-inflation", "-n", GAMES_NS, "--type=merge",
                "-p", json.dumps({"spec": {"severity": "critical", "detector": {"currencyInflation": {"rate": 0.2}}}}))

    def updated():
        rule = kubectl.get("prometheusrule", "currency-inflation")
        alert = rule["spec"]["groups"][0]["rules"][0]
        return alert["labels"]["severity"] == "critical" and alert["expr"].endswith("> 0.2")

    wait_for("PrometheusRule updated", updated)
    wait_for("observedGeneration 2", lambda: is_ready(kubectl.get("alertrule", "currency-inflation")))


def test_drift_is_repaired(operator, kubectl):
    apply_examples(kubectl)
    wait_for("data source ready", lambda: is_ready(kubectl.get("gamedatasource", "default")))
    kubectl.run("delete", "configmap", "default-workers", "-n", GAMES_NS)
    kubectl.run("scale", "deployment", "default-exporter", "-n", GAMES_NS, "--replicas=5")
    wait_for("ConfigMap recreated", lambda: kubectl.get("configmap", "default-workers"), timeout=RESYNC * 6)
    wait_for("replicas restored",
             lambda: kubectl.get("deployment", "default-exporter")["spec"]["replicas"] == 1, timeout=RESYNC * 6)


def test_delete_garbage_collects_children(operator, kubectl):
    apply_examples(kubectl)
    wait_for("ranking ready", lambda: is_ready(kubectl.get("rankingjob", "bundesliga-glicko2")))
    assert children_of(kubectl, "RankingJob", "bundesliga-glicko2")
    kubectl.run("delete", "rankingjob", "bundesliga-glicko2", "-n", GAMES_NS, "--wait=true", "--timeout=30s")
    wait_for("children garbage-collected",
             lambda: not children_of(kubectl, "RankingJob", "bundesliga-glicko2"), timeout=60)


def test_operator_killed_mid_reconcile_leaves_no_duplicates_or_orphans(operator, kubectl, tmp_path):
    kubectl.run("create", "namespace", "burst", check=False)
    create_example_secrets(kubectl, "burst")  # and the GameDataSource the rules run on
    source = yaml.safe_load((EXAMPLES / "gamedatasource.yaml").read_text())
    source["metadata"]["namespace"] = "burst"
    kubectl.run("apply", "-f", "-", input=yaml.safe_dump(source))
    rules = []
    for i in range(25):
        doc = yaml.safe_load((EXAMPLES / "alertrule-wealth-jump.yaml").read_text())
        doc["metadata"] = {"name": f"burst-{i:02d}", "namespace": "burst"}
        rules.append(doc)
    kubectl.run("apply", "-f", "-", input=yaml.safe_dump_all(rules))
    wait_for("first children", lambda: kubectl.json("get", "prometheusrules", "-n", "burst")["items"], timeout=30,
             interval=0.05)
    operator.kill()
    operator.start()
    for doc in rules:
        wait_for(doc["metadata"]["name"], lambda: is_ready(kubectl.get("alertrule", doc["metadata"]["name"], "burst")))
    owners = {o["metadata"]["uid"] for o in kubectl.json("get", "alertrules", "-n", "burst")["items"]}
    for plural in ("prometheusrules", "alertmanagerconfigs", "configmaps"):
        items = [i for i in kubectl.json("get", plural, "-n", "burst")["items"]
                 if i["metadata"].get("labels", {}).get("gameanalytics.io/owner-kind") == "AlertRule"]
        assert len(items) == len(rules), f"{plural}: {len(items)} for {len(rules)} rules"
        assert all(i["metadata"]["ownerReferences"][0]["uid"] in owners for i in items), f"orphan {plural}"
    kubectl.run("delete", "namespace", "burst", "--wait=false")


def test_idle_resync_writes_nothing(operator, kubectl, control_plane):
    apply_examples(kubectl)
    for doc in example_objects():
        wait_for("ready", lambda: is_reconciled(kubectl.get(doc["kind"], doc["metadata"]["name"])))
    wait_for("no AlertRule backtest running", lambda: not any(  # the earlier tests' rules too (one queue)
        c["type"] == "Backtested" and c["status"] == "Unknown" for r in kubectl.json("get", "alertrules", "-n",
        GAMES_NS)["items"] for c in (r.get("status") or {}).get("conditions") or []), 180)
    time.sleep(RESYNC * 2)  # let any in-flight reconcile settle
    user = f"system:serviceaccount:{SYSTEM_NS}:{OPERATOR_SA}"

    def operator_writes():
        return [e for e in control_plane.audit_events()
                if e.get("user", {}).get("username") == user
                and e.get("objectRef", {}).get("resource") not in ("events", "leases")
                and e.get("objectRef", {}).get("namespace") == GAMES_NS]

    before, statuses = len(operator_writes()), product_statuses(kubectl)
    time.sleep(RESYNC * 4)  # four resync periods of every object
    new = operator_writes()[before:]
    after = product_statuses(kubectl)
    changed = {k: (statuses.get(k), after[k]) for k in after if statuses.get(k) != after[k]}
    assert new == [], "idle resync wrote: " + ", ".join(
        f"{e['verb']} {e['objectRef'].get('resource')}/{e['objectRef'].get('name')}" for e in new) + \
        "\nstatus before -> after:\n" + json.dumps(changed, indent=1)


def product_statuses(kubectl: Kubectl) -> dict[str, dict]:
    """``{"kind/name": status}`` of every product object in the games namespace."""
    kinds = ",".join(sorted({d["kind"].lower() for d in example_objects()}))
    return {f"{o['kind']}/{o['metadata']['name']}": o.get("status") or {}
            for o in kubectl.json("get", kinds, "-n", GAMES_NS)["items"]}


def test_operator_exports_reconcile_metrics(operator, kubectl):
    apply_examples(kubectl)
    wait_for("rule ready", lambda: is_ready(kubectl.get("alertrule", "whale-wealth-jump")))
    text = operator.metrics()
    assert 'game_analytics_operator_reconciles_total{kind="AlertRule",result="success"}' in text
    assert 'game_analytics_operator_reconcile_duration_seconds_bucket{kind="AlertRule",le="0.5"}' in text


def test_alert_rule_create_change_delete_are_audited_as_events(operator, kubectl):
    """Issue 16: every AlertRule spec change seen by the operator, and the children it applies, are audited; on the
    real apiserver they are Events with reason Audit on the AlertRule (before and after spec in audit_log when the
    chart's audit.dsnSecret is set: tests/controller/test_operator_audit.py)."""
    apply_examples(kubectl)  # its GameDataSource and Secrets
    doc = yaml.safe_load((EXAMPLES / "alertrule-wealth-jump.yaml").read_text())
    doc["metadata"] = {"name": "audited-wealth-jump", "namespace": GAMES_NS}
    kubectl.run("apply", "-f", "-", input=yaml.safe_dump(doc))
    wait_for("rule ready", lambda: is_ready(kubectl.get("alertrule", "audited-wealth-jump")))
    kubectl.run("patch", "alertrule", "audited-wealth-jump", "-n", GAMES_NS, "--type=merge",
                "-p", json.dumps({"spec": {"severity": "warning"}}))
    wait_for("observedGeneration 2", lambda: (r := kubectl.get("alertrule", "audited-wealth-jump"))
             and r["metadata"]["generation"] == 2 and is_ready(r))
    kubectl.run("delete", "alertrule", "audited-wealth-jump", "-n", GAMES_NS)

    def actions() -> list[str]:
        events = kubectl.json("get", "events", "-n", GAMES_NS, "--field-selector",
                              "reason=Audit,involvedObject.name=audited-wealth-jump")["items"]
        return [e.get("action") for e in events]

    wanted = {"operator.spec.create", "operator.children.apply", "operator.spec.update", "operator.spec.delete"}
    seen = wait_for("audit Events", lambda: wanted <= set(actions()) and actions(), timeout=60)
    update = next(e for e in kubectl.json("get", "events", "-n", GAMES_NS, "--field-selector",
                                          "reason=Audit,involvedObject.name=audited-wealth-jump")["items"]
                  if e.get("action") == "operator.spec.update")
    assert '"severity":"warning"' in update["message"], update["message"]
    assert seen.count("operator.spec.create") == 1
