"""The probe-address annotation works only behind the operator flag (issue 15, "Secret exfiltration"): before, whoever
could edit a RedisFailover could send the operator's Sentinel probe (and ``SENTINEL FAILOVER``) to any host."""

from __future__ import annotations

import pytest

from game_analytics.config import Images
from game_analytics.controller.redisfailover import sentinel

from .fake_cluster import FakeCluster
from .test_reconcile import body, run


@pytest.mark.parametrize("flag", [False, True])
def test_the_annotation_is_ignored_unless_the_flag_is_on(flag, monkeypatch):
    probed: list[list[tuple[str, int]]] = []

    def probe(addrs, master_name, password=None, timeout=2.0):
        probed.append(list(addrs))
        return sentinel.SentinelView(master_name, tuple(
            sentinel.SentinelReport(sentinel.format_address(*a), error="unreachable (test)") for a in addrs))

    monkeypatch.setattr(sentinel, "probe", probe)
    failover = body("redisfailover.yaml")
    failover["metadata"]["annotations"] = {"gameanalytics.io/probe-addresses": "attacker.example.com:26379"}
    run("RedisFailover", failover, FakeCluster(), Images(probe_address_annotation=flag))
    (addresses,) = probed
    if flag:
        assert addresses == [("attacker.example.com", 26379)]
    else:
        assert addresses and all(h.endswith(".games.svc") and h != "attacker.example.com" for h, _ in addresses), \
            addresses
