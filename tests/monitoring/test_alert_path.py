"""End to end with real processes: a sudden wealth jump published to the Redis stream pages the webhook through
ingest, detection, Prometheus and Alertmanager, then resolves once the jump leaves the rule's window.

Everything is rendered from ``examples/alertrule-wealth-jump.yaml`` (see :mod:`devtools.alert_path`). The latency bound
here is a sanity bound only; ``benchmarks/bench_alert_latency.py`` reports the figures.
"""

from __future__ import annotations

from devtools.alert_path import run

#: sanity bound on event-to-page latency (the goal is < 5 s; see the benchmark)
SANITY_SECONDS = 15.0


def test_wealth_jump_pages_then_resolves(tmp_path, db_dsn, redis_url):
    result = run(tmp_path, db_dsn, redis_url)
    (cycle,) = result["cycles"]
    firing, resolved = cycle["firing"], cycle["resolved"]
    print(f"\nevent-to-page latency {cycle['latency']:.2f} s; clear-to-resolved {cycle['resolve_latency']:.2f} s; "
          f"{result['events']} CDNOW events, stack ready in {result['ready_seconds']:.1f} s")

    # the page: the example's identity, severity, team, rule and runbook, on both local channels
    assert firing.labels["alertname"] == "WhaleWealthJump" == result["alert"]
    assert firing.labels["severity"] == "critical"
    assert firing.labels["team"] == "economy"
    assert firing.labels["rule"] == result["rule"] == "games/whale-wealth-jump"
    assert firing.annotations["runbook_url"] == "https://runbooks.example.com/game-analytics/sudden-wealth-change"
    assert {p.path for p in result["pages"] if p.status == "firing"} == {"/ops"}  # the webhook channel
    # the Slack channel posts Slack's message format (no "alerts" list) to its URL, here the same receiver
    slack = [e["body"] for e in result["received"] if e["path"] == "/slack"]
    assert slack and "WhaleWealthJump" in str(slack[0])
    assert 0 < cycle["latency"] < SANITY_SECONDS

    # the detection behind it names the injected player, and only it
    assert result["stored"] == [(result["rule"], cycle["player"])]

    # resolved (send_resolved) once the newest event moved the window past the jump
    assert resolved.labels["rule"] == result["rule"] and resolved.received_at > firing.received_at
    assert 0 < cycle["resolve_latency"] < SANITY_SECONDS
