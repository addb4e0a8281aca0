"""A standalone ``alertmanager.yml`` for AlertRules, for clusters without prometheus-operator.

With prometheus-operator, each AlertRule gets its own ``AlertmanagerConfig`` (see :mod:`game_analytics.controller.alertrule.render`).
Without it, :func:`render` builds one Alertmanager configuration file (format of Alertmanager's
``config/config.go``) from all AlertRules:

* **Routing** goes by team, then severity, then rule: ``root -> team=<team> -> severity=<severity> ->
  rule=<namespace>/<name> -> one route per channel`` (``continue: true``, so every channel of the rule is notified).
  An alert with a team and severity but no rule route of its own (a raw PromQL rule's extra alerts, the stack's
  own alerts of ``alert_rules/``) goes to ``team/<team>/<severity>``: every distinct channel of that team's rules of
  that severity. Alerts of unknown teams go to ``default``, which notifies ``default_channels`` (none: dropped).
* **Inhibition**: while a critical alert fires, warnings with the same ``alertname``, ``rule`` and ``team`` are muted.
* **Secrets** never appear in the file: each Secret key is read from a file that the Alertmanager pod mounts from
  the Secret at ``/etc/alertmanager/secrets/<secret>/<key>`` (:func:`secret_file`, :func:`mounted_secrets`), using
  the ``*_file`` fields of Alertmanager's receivers. Alertmanager 0.25 (Debian 12) has ``api_url_file`` (Slack),
  ``routing_key_file`` (PagerDuty) and ``auth_password_file`` (email) but no file field for Discord's webhook URL
  or a webhook's URL; those arrived in 0.26 (``webhook_url_file``, ``url_file``). For 0.25 the caller must pass
  ``resolve_secret`` to inline those two, and then must store the rendered file itself in a Secret.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from game_analytics.api.alertrule import AlertRuleSpec, Channel
from game_analytics.api.common import SecretKeyRef
from game_analytics.monitoring import promql

SECRETS_DIR = "/etc/alertmanager/secrets"
DEFAULT_RECEIVER = "default"
#: the oldest Alertmanager with file fields for every channel type
FILE_FIELDS_EVERYWHERE = (0, 26)

SecretResolver = Callable[[str, str], str]


class UnsupportedSecretField(ValueError):
    """The target Alertmanager version cannot read this channel's secret from a file and no resolver was given."""


@dataclass(frozen=True)
class RuleRouting:
    """What routing needs of one AlertRule: its identity and spec.

    Attributes:
        namespace: the AlertRule's namespace.
        name: the AlertRule's name.
        spec: the validated spec (team, severity, channels, suspend).
    """

    namespace: str
    name: str
    spec: AlertRuleSpec

    @property
    def rule(self) -> str:
        """The ``rule`` label value of this rule's alerts."""
        return promql.rule_id(self.namespace, self.name)


@dataclass(frozen=True)
class Options:
    """Rendering options.

    Attributes:
        version: target Alertmanager version as ``(major, minor)``; decides which ``*_file`` fields exist.
        resolve_secret: ``(secret name, key) -> value``, used only for secrets the version cannot read from a file.
        secrets_dir: where the Alertmanager pod mounts Secrets (one directory per Secret).
        default_channels: channels of the fallback receiver (alerts that match no rule route).
        group_by: labels notifications are grouped by.
        group_wait, group_interval, repeat_interval: Alertmanager durations of the root route.
    """

    version: tuple[int, int] = (0, 25)
    resolve_secret: SecretResolver | None = None
    secrets_dir: str = SECRETS_DIR
    default_channels: Sequence[Channel] = field(default_factory=tuple)
    group_by: Sequence[str] = ("alertname", "rule", "team", "game")
    group_wait: str = "30s"
    group_interval: str = "5m"
    repeat_interval: str = "4h"


def secret_file(ref: SecretKeyRef, secrets_dir: str = SECRETS_DIR) -> str:
    """Path at which the Alertmanager pod sees Secret key ``ref`` (mount each Secret at ``<secrets_dir>/<name>``)."""
    return f"{secrets_dir}/{ref.name}/{ref.key}"


def _secret_refs(channel: Channel) -> list[SecretKeyRef]:
    kind = channel.type()
    if kind == "slack":
        return [channel.slack.api_url_secret_ref]
    if kind == "discord":
        return [channel.discord.webhook_url_secret_ref]
    if kind == "pagerduty":
        return [channel.pagerduty.routing_key_secret_ref]
    if kind == "email":
        return [channel.email.auth_password_secret_ref] if channel.email.auth_password_secret_ref else []
    return [channel.webhook.url_secret_ref]


def mounted_secrets(rules: Iterable[RuleRouting], options: Options = Options()) -> dict[str, set[str]]:
    """Secret name -> keys the rendered file reads from ``options.secrets_dir`` (what the pod must mount)."""
    inlined = options.version < FILE_FIELDS_EVERYWHERE
    out: dict[str, set[str]] = {}
    channels = [c for r in rules if not r.spec.suspend for c in r.spec.channels] + list(options.default_channels)
    for channel in channels:
        if inlined and channel.type() in ("discord", "webhook"):
            continue
        for ref in _secret_refs(channel):
            out.setdefault(ref.name, set()).add(ref.key)
    return out


def _url_field(ref: SecretKeyRef, file_key: str, inline_key: str, kind: str, options: Options) -> dict[str, str]:
    if options.version >= FILE_FIELDS_EVERYWHERE:
        return {file_key: secret_file(ref, options.secrets_dir)}
    if options.resolve_secret is None:
        raise UnsupportedSecretField(
            f"Alertmanager {options.version[0]}.{options.version[1]} cannot read a {kind} URL from a file "
            f"({file_key} needs 0.26); pass resolve_secret to inline Secret {ref.name}/{ref.key}, or target 0.26+")
    return {inline_key: options.resolve_secret(ref.name, ref.key)}


def integration(channel: Channel, options: Options = Options()) -> tuple[str, dict[str, Any]]:
    """``(receiver field, config)`` for one channel, e.g. ``("slack_configs", {"api_url_file": ...})``.

    Raises:
        UnsupportedSecretField: for Discord and webhook channels on Alertmanager < 0.26 without a resolver.
    """
    kind = channel.type()
    if kind == "slack":
        return "slack_configs", {"api_url_file": secret_file(channel.slack.api_url_secret_ref, options.secrets_dir),
                                 "channel": channel.slack.channel, "send_resolved": True}
    if kind == "discord":
        ref = channel.discord.webhook_url_secret_ref
        return "discord_configs", {**_url_field(ref, "webhook_url_file", "webhook_url", kind, options),
                                   "send_resolved": True}
    if kind == "pagerduty":
        ref = channel.pagerduty.routing_key_secret_ref
        return "pagerduty_configs", {"routing_key_file": secret_file(ref, options.secrets_dir), "send_resolved": True}
    if kind == "email":
        e = channel.email
        cfg: dict[str, Any] = {"to": e.to, "from": e.from_, "smarthost": e.smarthost, "require_tls": e.require_tls,
                               "send_resolved": True}
        if e.auth_username:
            cfg["auth_username"] = e.auth_username
        if e.auth_password_secret_ref:
            cfg["auth_password_file"] = secret_file(e.auth_password_secret_ref, options.secrets_dir)
        return "email_configs", cfg
    ref = channel.webhook.url_secret_ref
    return "webhook_configs", {**_url_field(ref, "url_file", "url", kind, options), "send_resolved": True}


def receiver_name(rule: RuleRouting, channel: Channel) -> str:
    """Globally unique receiver name of one channel of one rule: ``<namespace>/<rule>/<channel>``."""
    return f"{rule.rule}/{channel.name}"


def _receiver(name: str, channels: Iterable[Channel], options: Options) -> dict[str, Any]:
    receiver: dict[str, Any] = {"name": name}
    for channel in channels:
        key, cfg = integration(channel, options)
        receiver.setdefault(key, []).append(cfg)
    return receiver


def team_receiver_name(team: str, severity: str) -> str:
    """Receiver of a team's alerts of one severity that match no rule route: ``team/<team>/<severity>``."""
    return f"team/{team}/{severity}"


def _distinct(channels: Iterable[Channel]) -> list[Channel]:
    """Channels with the same target (type and settings, whatever their name) kept once, in order."""
    seen: set[str] = set()
    out = []
    for channel in channels:
        key = yaml.safe_dump({k: v for k, v in channel.to_api().items() if k != "name"}, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(channel)
    return out


def _eq(label: str, value: str) -> str:
    return f'{label}="{value}"'


def render(rules: Iterable[RuleRouting], options: Options = Options()) -> dict[str, Any]:
    """The Alertmanager configuration (as a dict) routing the alerts of ``rules`` (suspended rules are left out).

    Raises:
        UnsupportedSecretField: see :func:`integration`.
        ValueError: if two rules share a namespace and name.
    """
    active = sorted((r for r in rules if not r.spec.suspend), key=lambda r: (r.spec.team, r.spec.severity.value, r.rule))
    if len({r.rule for r in active}) != len(active):
        raise ValueError("two AlertRules with the same namespace and name")
    receivers = [_receiver(DEFAULT_RECEIVER, options.default_channels, options)]
    teams: dict[str, dict[str, list[RuleRouting]]] = {}
    for rule in active:
        if rule.spec.channels:  # a rule without channels falls through to the default receiver
            teams.setdefault(rule.spec.team, {}).setdefault(rule.spec.severity.value, []).append(rule)
    team_routes = []
    for team, severities in teams.items():
        severity_routes = []
        for severity, team_rules in severities.items():
            # Alerts of this team and severity that name no rule of their own (raw PromQL, the stack's alerts)
            # reach every distinct channel the team's rules of this severity use.
            fallback = team_receiver_name(team, severity)
            receivers.append(_receiver(fallback, _distinct(c for r in team_rules for c in r.spec.channels), options))
            rule_routes = []
            for rule in team_rules:
                channel_routes = []
                for channel in rule.spec.channels:
                    name = receiver_name(rule, channel)
                    receivers.append(_receiver(name, [channel], options))
                    channel_routes.append({"receiver": name, "continue": True})
                rule_routes.append({"receiver": fallback, "matchers": [_eq("rule", rule.rule)], "routes": channel_routes})
            severity_routes.append({"receiver": fallback, "matchers": [_eq("severity", severity)], "routes": rule_routes})
        team_routes.append({"receiver": DEFAULT_RECEIVER, "matchers": [_eq("team", team)], "routes": severity_routes})
    return {
        "route": {
            "receiver": DEFAULT_RECEIVER,
            "group_by": list(options.group_by),
            "group_wait": options.group_wait,
            "group_interval": options.group_interval,
            "repeat_interval": options.repeat_interval,
            "routes": team_routes,
        },
        "inhibit_rules": [{
            "source_matchers": [_eq("severity", "critical")],
            "target_matchers": [_eq("severity", "warning")],
            "equal": ["alertname", "rule", "team"],
        }],
        "receivers": receivers,
    }


def render_yaml(rules: Iterable[RuleRouting], options: Options = Options()) -> str:
    """:func:`render` as YAML text, ready to be written to ``alertmanager.yml``."""
    header = "# Generated by devtools.alertmanager: do not edit; re-render from the AlertRules.\n"
    return header + yaml.safe_dump(render(rules, options), sort_keys=False, default_flow_style=False)
