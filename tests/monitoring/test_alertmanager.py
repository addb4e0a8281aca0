"""The standalone alertmanager.yml rendered from AlertRules, checked by the real amtool (Alertmanager 0.25)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from devtools import alertmanager as am
from game_analytics.api.alertrule import AlertRuleSpec, Channel

from .tools import REPO, run

EXAMPLES = sorted((REPO / "examples").glob("alertrule-*.yaml"))


def fake_secret(name: str, key: str) -> str:
    return f"https://hooks.example.com/{name}/{key}"


def example_rules(namespace: str = "ga") -> list[am.RuleRouting]:
    out = []
    for path in EXAMPLES:
        doc = yaml.safe_load(path.read_text())
        out.append(am.RuleRouting(namespace, doc["metadata"]["name"], AlertRuleSpec.model_validate(doc["spec"])))
    return out


CHANNELS = {
    "slack": {"slack": {"channel": "#ops", "apiURLSecretRef": {"name": "s", "key": "slack"}}},
    "discord": {"discord": {"webhookURLSecretRef": {"name": "s", "key": "discord"}}},
    "pagerduty": {"pagerduty": {"routingKeySecretRef": {"name": "s", "key": "pd"}}},
    "email": {"email": {"to": "a@example.com", "from": "b@example.com", "smarthost": "smtp.example.com:587",
                        "authUsername": "b", "authPasswordSecretRef": {"name": "smtp", "key": "password"}}},
    "webhook": {"webhook": {"urlSecretRef": {"name": "s", "key": "hook"}}},
}


def one_rule_per_channel_type() -> list[am.RuleRouting]:
    rules = []
    for kind, channel in CHANNELS.items():
        spec = AlertRuleSpec.model_validate({
            "category": "system", "detector": {"ingestLag": {"maxLagSeconds": 60}}, "team": f"team-{kind}",
            "severity": "critical", "runbookURL": "https://runbooks.example.com/x",
            "channels": [{"name": f"{kind}-channel", **channel}]})
        rules.append(am.RuleRouting("ops", f"{kind}-rule", spec))
    return rules


def write(config: str, tmp_path: Path) -> Path:
    path = tmp_path / "alertmanager.yml"
    path.write_text(config)
    return path


def check_config(amtool: str, path: Path) -> None:
    result = run([amtool, "check-config", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def routes(amtool: str, path: Path, *labels: str) -> list[str]:
    """The receivers Alertmanager's router picks for an alert with ``labels`` (``amtool config routes test``)."""
    result = run([amtool, "config", "routes", "test", f"--config.file={path}", *labels])
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().split(",")


def test_examples_render_a_config_amtool_accepts(amtool, tmp_path):
    path = write(am.render_yaml(example_rules(), am.Options(resolve_secret=fake_secret)), tmp_path)
    check_config(amtool, path)
    config = yaml.safe_load(path.read_text())
    names = [r["name"] for r in config["receivers"]]
    assert len(names) == len(set(names))
    assert am.DEFAULT_RECEIVER in names


def test_one_rule_per_channel_type_renders_a_config_amtool_accepts(amtool, tmp_path):
    rules = one_rule_per_channel_type()
    config = am.render(rules, am.Options(resolve_secret=fake_secret))
    path = write(yaml.safe_dump(config), tmp_path)
    check_config(amtool, path)
    by_name = {r["name"]: r for r in config["receivers"]}
    for kind in CHANNELS:
        (receiver,) = [r for n, r in by_name.items() if n == f"ops/{kind}-rule/{kind}-channel"]
        assert f"{kind}_configs" in receiver


def test_secrets_are_read_from_mounted_files(tmp_path):
    config = am.render(one_rule_per_channel_type(), am.Options(resolve_secret=fake_secret))
    flat = yaml.safe_dump(config)
    assert "api_url_file: /etc/alertmanager/secrets/s/slack" in flat
    assert "routing_key_file: /etc/alertmanager/secrets/s/pd" in flat
    assert "auth_password_file: /etc/alertmanager/secrets/smtp/password" in flat
    # 0.25 has no file field for these two: inlined through the resolver
    assert "webhook_url: https://hooks.example.com/s/discord" in flat
    assert "url: https://hooks.example.com/s/hook" in flat
    mounts = am.mounted_secrets(one_rule_per_channel_type())
    assert mounts == {"s": {"slack", "pd"}, "smtp": {"password"}}


def test_alertmanager_025_without_resolver_refuses_inline_secrets():
    with pytest.raises(am.UnsupportedSecretField, match="discord"):
        am.render(one_rule_per_channel_type())


def test_alertmanager_026_reads_every_secret_from_a_file(amtool, tmp_path):
    options = am.Options(version=(0, 26))
    config = am.render(one_rule_per_channel_type(), options)
    flat = yaml.safe_dump(config)
    assert "webhook_url_file: /etc/alertmanager/secrets/s/discord" in flat
    assert "url_file: /etc/alertmanager/secrets/s/hook" in flat
    assert "hooks.example.com" not in flat
    assert am.mounted_secrets(one_rule_per_channel_type(), options) == {
        "s": {"slack", "pd", "discord", "hook"}, "smtp": {"password"}}
    # the installed 0.25 does not know these fields: this is why 0.25 needs the resolver
    result = run([amtool, "check-config", str(write(yaml.safe_dump(config), tmp_path))])
    assert result.returncode != 0
    assert "webhook_url_file" in result.stdout + result.stderr


def test_routing_by_team_then_severity_then_rule(amtool, tmp_path):
    path = write(am.render_yaml(example_rules(), am.Options(resolve_secret=fake_secret)), tmp_path)
    whale = "ga/whale-wealth-jump"
    assert routes(amtool, path, "severity=critical", "team=economy", f"rule={whale}") == [
        f"{whale}/oncall-pager", f"{whale}/economy-slack", f"{whale}/ops-webhook"]
    # a critical economy alert naming no rule reaches the economy team's critical channels
    assert routes(amtool, path, "severity=critical", "team=economy") == ["team/economy/critical"]
    assert routes(amtool, path, "severity=warning", "team=economy", "rule=ga/currency-inflation") == [
        "ga/currency-inflation/economy-discord"]
    # an unknown team, or a severity the team has no rule for, falls back to the default receiver
    assert routes(amtool, path, "severity=critical", "team=nobody") == [am.DEFAULT_RECEIVER]
    assert routes(amtool, path, "severity=info", "team=economy") == [am.DEFAULT_RECEIVER]


def test_team_receiver_merges_distinct_channels(amtool, tmp_path):
    rules = example_rules()
    config = am.render(rules, am.Options(resolve_secret=fake_secret))
    (team,) = [r for r in config["receivers"] if r["name"] == "team/economy/critical"]
    assert len(team["pagerduty_configs"]) == 1 and len(team["slack_configs"]) == 1
    # the same rule twice under other names adds receivers but no duplicate channel to the team receiver
    twin = am.RuleRouting("ga2", rules[-1].name, rules[-1].spec)
    config = am.render([*rules, twin], am.Options(resolve_secret=fake_secret))
    (team,) = [r for r in config["receivers"] if r["name"] == "team/economy/critical"]
    assert len(team["pagerduty_configs"]) == 1
    check_config(amtool, write(yaml.safe_dump(config), tmp_path))


def test_suspended_rules_and_default_channels(amtool, tmp_path):
    rules = example_rules()
    suspended = [am.RuleRouting(r.namespace, r.name, r.spec.model_copy(update={"suspend": True})) for r in rules]
    fallback = Channel.model_validate({"name": "ops", **CHANNELS["slack"]})
    config = am.render(suspended, am.Options(default_channels=[fallback]))
    assert config["route"]["routes"] == []
    assert [r["name"] for r in config["receivers"]] == [am.DEFAULT_RECEIVER]
    assert config["receivers"][0]["slack_configs"][0]["api_url_file"] == "/etc/alertmanager/secrets/s/slack"
    path = write(yaml.safe_dump(config), tmp_path)
    check_config(amtool, path)
    assert routes(amtool, path, "severity=critical", "team=economy") == [am.DEFAULT_RECEIVER]


def test_duplicate_rules_are_refused():
    rules = example_rules()
    with pytest.raises(ValueError, match="same namespace and name"):
        am.render([*rules, rules[0]], am.Options(resolve_secret=fake_secret))


def test_inhibition_mutes_warnings_of_the_same_alert_rule_and_team():
    (rule,) = am.render(example_rules(), am.Options(resolve_secret=fake_secret))["inhibit_rules"]
    assert rule["source_matchers"] == ['severity="critical"']
    assert rule["target_matchers"] == ['severity="warning"']
    assert rule["equal"] == ["alertname", "rule", "team"]
