"""The AlertmanagerConfig children of AlertRules against prometheus-operator's ``monitoring.coreos.com/v1alpha1`` API.

amtool cannot read an AlertmanagerConfig, and the CRD is not available offline, so this is a hand-written, strict
(unknown fields rejected) model of the subset of the v1alpha1 types the renderer uses, written from the Go types in
prometheus-operator's ``pkg/apis/monitoring/v1alpha1/alertmanager_config_types.go``. Child routes are free JSON in
the CRD (``[]apiextensionsv1.JSON``) but the operator decodes them as ``Route`` with unknown fields disallowed, so
they are checked as Routes here too.
"""

from __future__ import annotations

from typing import Literal

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from game_analytics.api.alertrule import AlertRuleSpec
from game_analytics.controller.alertrule import render as alertrule
from game_analytics.controller.common.render import Owner

from .test_alertmanager import CHANNELS, EXAMPLES

DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SecretKeySelector(Strict):
    name: str = Field(min_length=1)
    key: str = Field(min_length=1)
    optional: bool | None = None


class Matcher(Strict):
    name: str = Field(min_length=1)
    value: str | None = None
    matchType: Literal["=", "!=", "=~", "!~"] | None = None


class Route(Strict):
    receiver: str | None = None
    groupBy: list[str] | None = None
    groupWait: str | None = Field(default=None, pattern=DURATION)
    groupInterval: str | None = Field(default=None, pattern=DURATION)
    repeatInterval: str | None = Field(default=None, pattern=DURATION)
    matchers: list[Matcher] | None = None
    # `continue` is a Python keyword
    continue_: bool | None = Field(default=None, alias="continue")
    routes: list[Route] | None = None


class SlackConfig(Strict):
    sendResolved: bool | None = None
    apiURL: SecretKeySelector | None = None
    channel: str | None = None


class DiscordConfig(Strict):
    sendResolved: bool | None = None
    apiURL: SecretKeySelector


class PagerDutyConfig(Strict):
    sendResolved: bool | None = None
    routingKey: SecretKeySelector | None = None
    serviceKey: SecretKeySelector | None = None


class EmailConfig(Strict):
    sendResolved: bool | None = None
    to: str | None = None
    from_: str | None = Field(default=None, alias="from")
    smarthost: str | None = None
    authUsername: str | None = None
    authPassword: SecretKeySelector | None = None
    requireTLS: bool | None = None


class WebhookConfig(Strict):
    sendResolved: bool | None = None
    url: str | None = None
    urlSecret: SecretKeySelector | None = None


class Receiver(Strict):
    name: str = Field(min_length=1)
    slackConfigs: list[SlackConfig] | None = None
    discordConfigs: list[DiscordConfig] | None = None
    pagerdutyConfigs: list[PagerDutyConfig] | None = None
    emailConfigs: list[EmailConfig] | None = None
    webhookConfigs: list[WebhookConfig] | None = None


class InhibitRule(Strict):
    sourceMatch: list[Matcher] | None = None
    targetMatch: list[Matcher] | None = None
    equal: list[str] | None = None


class AlertmanagerConfigSpec(Strict):
    route: Route | None = None
    receivers: list[Receiver] | None = None
    inhibitRules: list[InhibitRule] | None = None


class ObjectMeta(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    namespace: str


class AlertmanagerConfig(Strict):
    apiVersion: Literal["monitoring.coreos.com/v1alpha1"]
    kind: Literal["AlertmanagerConfig"]
    metadata: ObjectMeta
    spec: AlertmanagerConfigSpec


def validate(manifest: dict) -> AlertmanagerConfig:
    """Parse a rendered AlertmanagerConfig; raises ValidationError on unknown or mistyped fields."""
    amc = AlertmanagerConfig.model_validate(manifest)
    receivers = [r.name for r in amc.spec.receivers or []]
    assert len(receivers) == len(set(receivers)), "receiver names must be unique (listMapKey=name)"

    def walk(route: Route) -> None:
        assert route.receiver is None or route.receiver in receivers, f"unknown receiver {route.receiver}"
        for child in route.routes or []:
            walk(child)

    if amc.spec.route:
        walk(amc.spec.route)
    for receiver in amc.spec.receivers or []:
        configs = [c for c in (receiver.slackConfigs, receiver.discordConfigs, receiver.pagerdutyConfigs,
                               receiver.emailConfigs, receiver.webhookConfigs) if c]
        assert len(configs) == 1, f"receiver {receiver.name}: exactly one integration expected"
    return amc


def render_amc(name: str, spec: dict) -> dict:
    owner = Owner("gameanalytics.io/v1alpha1", "AlertRule", name, "ga", "uid-1", 1)
    children = alertrule.render(owner, AlertRuleSpec.model_validate(spec))
    (amc,) = [c for c in children if c["kind"] == "AlertmanagerConfig"]
    return amc


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_alertmanager_configs_match_the_v1alpha1_api(example):
    doc = yaml.safe_load(example.read_text())
    amc = validate(render_amc(doc["metadata"]["name"], doc["spec"]))
    assert len(amc.spec.receivers) == len(doc["spec"]["channels"])


@pytest.mark.parametrize("kind", sorted(CHANNELS))
def test_every_channel_type_matches_the_v1alpha1_api(kind):
    spec = {"category": "system", "detector": {"ingestLag": {"maxLagSeconds": 60}},
            "runbookURL": "https://runbooks.example.com/x", "channels": [{"name": f"{kind}-channel", **CHANNELS[kind]}]}
    amc = validate(render_amc(f"{kind}-rule", spec))
    (receiver,) = amc.spec.receivers
    assert getattr(receiver, {"pagerduty": "pagerdutyConfigs"}.get(kind, f"{kind}Configs"))


def test_the_schema_rejects_fields_the_api_does_not_have():
    doc = yaml.safe_load(EXAMPLES[0].read_text())
    amc = render_amc(doc["metadata"]["name"], doc["spec"])
    amc["spec"]["receivers"][0]["webhookConfigs"][0]["urlFile"] = "/x"  # an Alertmanager field, not a CRD one
    with pytest.raises(ValidationError):
        validate(amc)
    amc = render_amc(doc["metadata"]["name"], doc["spec"])
    amc["spec"]["route"]["groupWait"] = "10 seconds"
    with pytest.raises(ValidationError):
        validate(amc)
