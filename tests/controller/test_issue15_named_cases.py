"""The issue-15 cases that only the fuzzer covered as a class (docs/hardening.md, "Issue 15's defects"): an empty
``window``, a bad port in the probe-address annotation, and Normal Events despite Kopf's ``posting.level``."""

from __future__ import annotations

import logging

import kopf
import pytest

from game_analytics.api import KINDS_BY_NAME
from game_analytics.config import Images
from game_analytics.controller import handlers
from game_analytics.controller.redisfailover.plan import PROBE_ADDRESSES_ANNOTATION

from . import crd_fuzz
from .fake_cluster import FakeCluster
from .test_reconcile import body, ready, run


def test_an_empty_window_is_refused_at_apply_naming_it() -> None:
    rule = body("alertrule-wealth-jump.yaml")
    rule["spec"]["detector"]["suddenWealthChange"]["window"] = ""
    admitted, refusals = crd_fuzz.admit(rule)
    assert admitted is None and any("'window': ''" in r for r in refusals), refusals  # minLength 1 in the CRD
    run("AlertRule", rule, FakeCluster())  # stored under an older CRD: the operator names it
    cond = ready(rule)
    assert (cond["status"], cond["reason"]) == ("False", "InvalidSpec"), cond
    assert "spec.detector.suddenWealthChange.window" in cond["message"], cond["message"]


@pytest.mark.parametrize("addresses", ["sentinel-0:http", "sentinel-0:", "sentinel-0", "a:26379,b:99999999999"])
def test_a_bad_port_in_the_probe_annotation_is_invalid_spec_naming_it(addresses) -> None:
    failover = body("redisfailover.yaml")
    failover["metadata"].setdefault("annotations", {})[PROBE_ADDRESSES_ANNOTATION] = addresses
    run("RedisFailover", failover, FakeCluster(), Images(probe_address_annotation=True))  # never raises
    cond = ready(failover)
    assert (cond["status"], cond["reason"]) == ("False", "InvalidSpec"), cond
    assert PROBE_ADDRESSES_ANNOTATION in cond["message"], cond["message"]


def test_normal_events_are_posted_although_kopf_posts_only_warnings(monkeypatch) -> None:
    """Kopf posts only Warnings (``posting.level``); the reconcile's own Normal Events (applied, failover,
    restart) are created directly. The audit trail's Normal Event does not count: it is posted elsewhere."""
    settings = kopf.OperatorSettings()
    monkeypatch.setattr(handlers, "METRICS_PORT", 0)
    handlers.configure(settings=settings, logger=logging.getLogger("test"))
    assert settings.posting.level == logging.WARNING

    class Recording(FakeCluster):
        def __init__(self):
            super().__init__()
            self.events: list[dict] = []

        def create(self, manifest):
            if manifest["kind"] == "Event":
                self.events.append(manifest)
            return super().create(manifest)

    cluster = Recording()
    monkeypatch.setitem(handlers._state, "cluster", cluster)
    monkeypatch.setitem(handlers._state, "images", Images())
    patch: dict = {}
    handlers._handler(KINDS_BY_NAME["AlertRule"])(body=body("alertrule-inflation.yaml"), patch=patch,
                                                  logger=logging.getLogger("test"))
    applied = [e for e in cluster.events if (e["type"], e["reason"]) == ("Normal", "Applied")]
    assert len(applied) == 1, [(e["type"], e["reason"]) for e in cluster.events]
    assert applied[0]["involvedObject"]["name"] == "currency-inflation"
    assert "PrometheusRule/currency-inflation" in applied[0]["message"], applied[0]["message"]
