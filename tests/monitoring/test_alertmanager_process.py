"""The rendered alertmanager.yml loaded by a real Alertmanager 0.25 process: inhibition and routing in action.

The process runs on a free loopback port with a temporary storage directory, clustering disabled, and is
stopped by PID at the end.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from devtools import alertmanager as am
from devtools.waiting import free_port, wait_for

from .test_alertmanager import example_rules, fake_secret


@pytest.fixture(scope="module")
def alertmanager_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.fail("prometheus-alertmanager is not installed: run `make debs`")
    work = tmp_path_factory.mktemp("alertmanager")
    config = work / "alertmanager.yml"
    config.write_text(am.render_yaml(example_rules(), am.Options(resolve_secret=fake_secret)))
    port = free_port()
    log = (work / "alertmanager.log").open("w")
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.path={work / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"alertmanager did not start: {Path(log.name).read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def post(url: str, *alerts: dict[str, str]) -> None:
    now = datetime.now(UTC)
    body = [{"labels": labels, "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat()}
            for labels in alerts]
    httpx.post(f"{url}/api/v2/alerts", json=body, timeout=5).raise_for_status()


def state(url: str, alertname: str) -> dict[tuple[str, str], dict]:
    """(severity, rule) -> the alert's status, for the alerts named ``alertname``."""
    alerts = httpx.get(f"{url}/api/v2/alerts", params={"filter": f'alertname="{alertname}"'}, timeout=5).json()
    return {(a["labels"]["severity"], a["labels"].get("rule", "")): a for a in alerts}


def wait_for_alerts(url: str, alertname: str, count: int) -> dict[tuple[str, str], dict]:
    """The ``count`` alerts named ``alertname`` once Alertmanager has processed them all (10 s at most)."""
    def processed() -> dict[tuple[str, str], dict] | None:
        found = state(url, alertname)
        done = len(found) == count and all(a["status"]["state"] != "unprocessed" for a in found.values())
        return found if done else None
    return wait_for(f"{count} processed {alertname} alerts", processed, 10, interval=0.2)


def test_a_critical_alert_inhibits_the_warning_of_the_same_rule_and_team(alertmanager_url):
    rule = "ga/whale-wealth-jump"
    base = {"alertname": "WhaleWealthJump", "team": "economy"}
    post(alertmanager_url,
         {**base, "rule": rule, "severity": "critical"},
         {**base, "rule": rule, "severity": "warning"},
         {**base, "rule": "ga/other", "severity": "warning"})  # another rule: not inhibited
    found = wait_for_alerts(alertmanager_url, "WhaleWealthJump", 3)
    assert found[("warning", rule)]["status"]["state"] == "suppressed"
    assert found[("warning", rule)]["status"]["inhibitedBy"]
    assert found[("critical", rule)]["status"]["state"] == "active"
    assert found[("warning", "ga/other")]["status"]["state"] == "active"


def test_alerts_are_routed_to_the_rule_channels(alertmanager_url):
    rule = "ga/currency-inflation"
    post(alertmanager_url, {"alertname": "CurrencyInflation", "team": "economy", "rule": rule, "severity": "warning"})
    (alert,) = wait_for_alerts(alertmanager_url, "CurrencyInflation", 1).values()
    assert [r["name"] for r in alert["receivers"]] == [f"{rule}/economy-discord"]
