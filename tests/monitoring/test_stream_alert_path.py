"""The streaming path end to end with real processes: an event XADDed to the Redis stream is evaluated by the
detection worker as it arrives and posted to a real Alertmanager's v2 API, which pages the webhook; the page
resolves when the condition clears; a silence created through Alertmanager's API suppresses it.

The streaming worker posts to an Alertmanager of its own (same routing as the operator renders) so that its pages
are told apart from the Prometheus path's (see :mod:`devtools.alert_path`). The latency bound is a sanity bound;
``benchmarks/bench_alert_latency.py`` reports the figures.
"""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import UTC, datetime, timedelta

from devtools.alert_path import AlertPath, PathError
from devtools.waiting import wait_for
from game_analytics.controller.alertrule import render as alertrule

SANITY_SECONDS = 15.0


def _silence(url: str, rule: str) -> str:
    now = datetime.now(UTC)
    body = {"matchers": [{"name": "rule", "value": rule, "isRegex": False, "isEqual": True}],
            "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat(),
            "createdBy": "test", "comment": "maintenance"}
    request = urllib.request.Request(f"{url}/api/v2/silences", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)["silenceID"]


def _alerts(url: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=5) as response:
        return json.load(response)


def test_stream_event_pages_resolves_and_is_silenced(tmp_path, db_dsn, redis_url):
    # the Prometheus path's worker runs passes rarely here: every page this test sees is the streaming path's
    path = AlertPath(tmp_path, db_dsn, redis_url, interval=600, streaming=True)
    try:
        path.start()
        path.load_history()
        expected = alertrule.alert(path.owner, path.spec)

        player, at, sent = path.inject_jump()
        firing = path.wait_page("firing", sent, streaming=True)
        latency = firing.received_at - sent
        print(f"\nstreaming event-to-page {latency:.2f} s")
        assert 0 < latency < SANITY_SECONDS
        # exactly the labels of the generated PrometheusRule's alert (+ alertname), so routes and silences match
        assert firing.labels == {**expected["labels"], "alertname": expected["alert"]}
        assert firing.annotations.keys() == expected["annotations"].keys()
        assert firing.annotations["runbook_url"] == path.spec.runbook_url
        assert firing.annotations["summary"] == (f"all games: 1 subjects flagged by suddenWealthChange "
                                                 f"(AlertRule {path.rule})")
        # the streaming path knows the subject behind each top case (Prometheus' pages list the cases only)
        assert f"Top cases: #1 {player} (intervention " in firing.annotations["description"]
        assert not [p for p in path.pages() if not p.streaming]  # the Prometheus path has not paged

        cleared = path.advance(at)
        resolved = path.wait_page("resolved", cleared, streaming=True)
        print(f"streaming clear-to-resolved {resolved.received_at - cleared:.2f} s")
        assert resolved.labels == firing.labels and resolved.received_at - cleared < SANITY_SECONDS

        # a silence on the rule, created through Alertmanager's API: the next jump is suppressed, not paged
        silence = _silence(path.stream_alertmanager.url, path.rule)
        _, _, sent = path.inject_jump(skip=1)

        def suppressed() -> dict | None:
            return next((a for a in _alerts(path.stream_alertmanager.url)
                         if a["labels"].get("rule") == path.rule and a["status"]["state"] == "suppressed"), None)
        alert = wait_for("the silenced alert in Alertmanager", suppressed, 30, interval=0.1, alive=path.alive,
                         error=PathError)
        assert alert["status"]["silencedBy"] == [silence]
        seen = time.time()
        # group_wait 0 s and group_interval 1 s: a page would have gone out within 2 s of the alert arriving
        wait_for("Alertmanager to pass its group interval", lambda: time.time() - seen > 3, 10, interval=0.2)
        assert not [p for p in path.pages() if p.streaming and p.status == "firing" and p.received_at >= sent]
    finally:
        path.stop()
