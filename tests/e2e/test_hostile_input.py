"""Issue 15 (admission half) on the real API server with the operator running: what used to be accepted
silently, rejected for the wrong reason, or reported about a generated child is now rejected at apply or
reported in status naming the user's field; apply carries any Unicode.

Each case names the defect it covers.
"""

from __future__ import annotations

import base64
import copy
import json

import pytest
import yaml

from devtools.waiting import wait_for

from .support import EXAMPLES, GAMES_NS, ready_condition

pytestmark = pytest.mark.e2e

#: emoji (astral plane: a surrogate pair once escaped), right-to-left script, combining marks
UNICODE = "🎮🏆 לוח המובילים ليدربورد e\u0301 n\u0303 Z\u0335\u0321a"


def example(name: str) -> dict:
    return yaml.safe_load((EXAMPLES / name).read_text())


def variant(base: str, name: str, edit=None) -> dict:
    doc = copy.deepcopy(example(base))
    doc["metadata"] = {"name": name, "namespace": GAMES_NS}
    if edit:
        edit(doc["spec"])
    return doc


def apply(kubectl, doc: dict, *extra: str, check: bool = True):
    return kubectl.run("apply", *extra, "-f", "-", input=yaml.safe_dump(doc, allow_unicode=True), check=check)


def condition(kubectl, kind: str, name: str, reason: str) -> dict:
    return wait_for(f"{kind}/{name} {reason}", lambda: (c := ready_condition(kubectl.get(kind, name)))
                    and c["reason"] == reason and c, 60)


def _critical_without_channels(spec):
    spec["channels"] = []


def _email_channel(to: str, sender: str = "alerts@example.com"):
    def edit(spec):
        spec["channels"] = [{"name": "mail", "email": {"to": to, "from": sender, "smarthost": "smtp.example.com:587"}}]
    return edit


#: (manifest, text the API server's error must contain)
REJECTED = [
    # e-mail addresses without @ (schema pattern)
    (variant("alertrule-ingest-lag.yaml", "mail-no-at", _email_channel("oncall.example.com")),
     "spec.channels[0].email.to"),
    (variant("alertrule-ingest-lag.yaml", "from-no-at", _email_channel("oncall@example.com", "alerts")),
     "spec.channels[0].email.from"),
    (variant("scheduledreport.yaml", "report-to-no-at",
             lambda s: s["delivery"]["email"].update(to=["studio-leads"])), "spec.delivery.email.to[0]"),
    # a critical AlertRule with channels: [] (CEL)
    (variant("alertrule-wealth-jump.yaml", "critical-silent", _critical_without_channels),
     "a critical rule pages on-call: it needs at least one channel"),
    # a game name with a comma (games travel comma-joined)
    (variant("gamedatasource.yaml", "comma-game", lambda s: s.update(games=["cdnow,bundesliga"])), "spec.games[0]"),
    (variant("rankingjob.yaml", "comma-match-game", lambda s: s["source"].update(game="a,b")), "spec.source.game"),
    # a RankingJob name over its limit (its season-reset CronJob would exceed 52 characters)
    (variant("rankingjob.yaml", "r" * 40), "metadata.name must be at most 39 characters"),
]


def test_bad_manifests_are_rejected_at_apply_naming_the_field(installed, kubectl):
    failures = []
    for manifest, expected in REJECTED:
        result = apply(kubectl, manifest, check=False)
        if result.returncode == 0 or expected not in result.stderr:
            failures.append(f"{manifest['metadata']['name']}: rc={result.returncode} {result.stderr.strip()}")
    assert not failures, "\n".join(failures)


def test_a_ranking_job_without_leagues_is_admitted_with_the_default_leagues(installed, kubectl):
    """Defect: a RankingJob without ``leagues`` was always rejected (no CRD default, two unguarded CEL rules)."""
    doc = variant("rankingjob.yaml", "no-leagues", lambda s: s.pop("leagues", None))
    apply(kubectl, doc)
    stored = kubectl.get("rankingjob", "no-leagues")
    assert [lg["name"] for lg in stored["spec"]["leagues"]] == ["Bronze", "Silver", "Gold", "Platinum", "Diamond"]
    kubectl.run("delete", "rankingjob", "no-leagues", "-n", GAMES_NS, "--wait=false")


def test_resizing_redis_storage_names_the_spec_field_not_the_statefulset(installed, kubectl):
    """Defect: resizing ``spec.redis.storage.size`` reported the StatefulSet's immutable spec."""
    doc = variant("redisfailover.yaml", "resize-me")
    apply(kubectl, doc)
    doc["spec"].setdefault("redis", {}).setdefault("storage", {})["size"] = "20Gi"
    result = apply(kubectl, doc, check=False)
    assert result.returncode != 0
    assert "spec.redis.storage.size" in result.stderr and "cannot be changed after creation" in result.stderr
    kubectl.run("delete", "redisfailover", "resize-me", "-n", GAMES_NS, "--wait=false")


def test_unknown_fields_are_refused_by_kubectl_and_pruned_with_validate_false(installed, kubectl):
    """Defect: ``serverity:`` (a typo) silently downgraded an alert. kubectl's default server-side field
    validation (Strict) refuses it; with ``--validate=false`` the API server prunes it (docs/hardening.md)."""
    doc = variant("alertrule-ingest-lag.yaml", "typo-rule", lambda s: s.update(serverity="critical"))
    result = apply(kubectl, doc, check=False)
    assert result.returncode != 0 and 'unknown field "spec.serverity"' in result.stderr
    apply(kubectl, doc, "--validate=false")
    assert "serverity" not in kubectl.get("alertrule", "typo-rule")["spec"]
    kubectl.run("delete", "alertrule", "typo-rule", "-n", GAMES_NS, "--wait=false")


def test_unicode_in_free_text_fields_is_applied(operator, kubectl):
    """Defect: an emoji in any text field made every apply fail (``invalid Unicode character escape code``)."""
    kubectl.run("apply", "-n", GAMES_NS, "-f", str(EXAMPLES / "gamedatasource.yaml"))
    rule = variant("alertrule-inflation.yaml", "unicode-rule", lambda s: s.update(
        annotations={"summary": UNICODE, "description": f"{UNICODE} {{{{ $value }}}}"},
        labels={"squad": UNICODE}))
    rule["metadata"]["annotations"] = {"note": UNICODE}
    apply(kubectl, rule)
    cond = wait_for("unicode-rule Ready", lambda: (c := ready_condition(kubectl.get("alertrule", "unicode-rule")))
                    and c["status"] == "True" and c, 60)
    assert cond["reason"] == "Reconciled"
    prom = kubectl.get("prometheusrule", "unicode-rule")
    alert = prom["spec"]["groups"][0]["rules"][0]
    assert alert["annotations"]["summary"] == UNICODE and alert["labels"]["squad"] == UNICODE
    report = variant("scheduledreport.yaml", "unicode-report",
                     lambda s: s["filters"].update(games=[UNICODE.split()[0], "e\u0301t\u00e9"]))
    apply(kubectl, report)
    wait_for("unicode-report Ready", lambda: (c := ready_condition(kubectl.get("scheduledreport", "unicode-report")))
             and c["status"] == "True", 60)
    config = kubectl.get("configmap", "unicode-report-report")
    assert json.loads(config["data"]["report.json"])["filters"]["games"][0] == UNICODE.split()[0]


def _secret(name: str, values: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": GAMES_NS},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}}


def test_silently_accepted_input_is_now_reported_naming_the_field(operator, kubectl):
    kubectl.run("apply", "-n", GAMES_NS, "-f", str(EXAMPLES / "gamedatasource.yaml"))
    # Secrets that do not exist -> SecretNotFound, then Ready once the Secret appears (the resync timer)
    def missing(spec):
        spec["channels"][0]["webhook"]["urlSecretRef"] = {"name": "late-secret", "key": "url"}
    apply(kubectl, variant("alertrule-anomaly.yaml", "late-secret-rule", missing))
    cond = condition(kubectl, "alertrule", "late-secret-rule", "SecretNotFound")
    assert cond["message"].startswith("spec.channels[0].webhook.urlSecretRef: Secret games/late-secret")
    apply(kubectl, _secret("late-secret", {"url": "https://hooks.example.com/x"}))
    condition(kubectl, "alertrule", "late-secret-rule", "Reconciled")
    # a webhook Secret whose value is not a URL
    apply(kubectl, _secret("not-a-url", {"url": "hooks.example.com/x"}))
    def not_url(spec):
        spec["channels"][0]["webhook"]["urlSecretRef"] = {"name": "not-a-url", "key": "url"}
    apply(kubectl, variant("alertrule-anomaly.yaml", "not-url-rule", not_url))
    cond = condition(kubectl, "alertrule", "not-url-rule", "SecretValueInvalid")
    assert cond["message"].startswith("spec.channels[0].webhook.urlSecretRef: ")
    # an AlertRule whose GameDataSource does not exist
    apply(kubectl, variant("alertrule-anomaly.yaml", "orphan-rule", lambda s: s.update(dataSourceRef={"name": "nope"})))
    assert condition(kubectl, "alertrule", "orphan-rule", "DataSourceNotFound")["message"].startswith(
        "spec.dataSourceRef.name")
    # two AlertRules with the same alert name (spend-1 and spend1 are both alert Spend1)
    apply(kubectl, variant("alertrule-inflation.yaml", "spend-1"))
    condition(kubectl, "alertrule", "spend-1", "Reconciled")
    apply(kubectl, variant("alertrule-inflation.yaml", "spend1"))
    cond = condition(kubectl, "alertrule", "spend1", "DuplicateAlertName")
    assert cond["message"].startswith("metadata.name: the alert name Spend1 is already used by AlertRule games/spend-1")
    assert ready_condition(kubectl.get("alertrule", "spend-1"))["status"] == "True"


def test_two_kinds_never_fight_over_one_child(operator, kubectl):
    """Defect: GameDataSource ``leaderboards-redis`` and RedisFailover ``leaderboards`` both generated
    ServiceMonitor ``leaderboards-redis``; generation went from 3 to 10 in 35 s."""
    kubectl.run("apply", "-n", GAMES_NS, "-f", str(EXAMPLES / "redisfailover.yaml"))
    wait_for("the RedisFailover's ServiceMonitor", lambda: kubectl.get("servicemonitor", "leaderboards-redis"), 60)
    apply(kubectl, variant("gamedatasource.yaml", "leaderboards-redis"))
    cond = condition(kubectl, "gamedatasource", "leaderboards-redis", "ChildConflict")
    assert "ServiceMonitor/leaderboards-redis" in cond["message"] and "RedisFailover leaderboards" in cond["message"]
    before = kubectl.get("servicemonitor", "leaderboards-redis")["metadata"]
    import time

    time.sleep(10)  # several resyncs
    after = kubectl.get("servicemonitor", "leaderboards-redis")["metadata"]
    assert after["generation"] == before["generation"], "the ServiceMonitor is not rewritten"
    assert after["ownerReferences"][0]["kind"] == "RedisFailover"
