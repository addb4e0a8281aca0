"""The Prometheus -> Alertmanager -> webhook harness with the real Debian binaries."""

import time

from devtools.monitoring_stack import Alertmanager, Prometheus, WebhookReceiver


def test_an_always_firing_rule_pages_the_webhook(tmp_path):
    pager = WebhookReceiver(log_file=tmp_path / "pages.jsonl")
    am = Alertmanager(tmp_path / "am", {
        "route": {"receiver": "pager", "group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "pager", "webhook_configs": [{"url": f"{pager.url}/page", "send_resolved": True}]}],
    })
    prom = Prometheus(tmp_path / "prom", {}, [{"name": "t", "rules": [
        {"alert": "AlwaysFiring", "expr": "vector(1) > 0", "labels": {"severity": "critical"},
         "annotations": {"runbook_url": "https://r.example.com/always"}}]}], alertmanager=am.address)
    try:
        deadline = time.monotonic() + 30
        while not pager.received and time.monotonic() < deadline:
            time.sleep(0.2)
        assert pager.received, "no page arrived"
        alert = pager.received[0]["body"]["alerts"][0]
        assert alert["labels"]["alertname"] == "AlwaysFiring" and alert["labels"]["severity"] == "critical"
        assert alert["annotations"]["runbook_url"] == "https://r.example.com/always"
        assert (tmp_path / "pages.jsonl").read_text().count("AlwaysFiring") >= 1
        assert any(a["labels"]["alertname"] == "AlwaysFiring" for a in prom.alerts())
    finally:
        prom.stop()
        am.stop()
        pager.stop()
