"""The backtest of a PromQL-evaluated AlertRule against the real Prometheus: a known ingest-lag history is backfilled
into its TSDB with ``promtool tsdb create-blocks-from openmetrics``, and ``query_range`` replays the rule."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from devtools.monitoring_stack import Prometheus, _binary
from game_analytics.alerting import cli as alerts_cli
from game_analytics.alerting.backtest import Sample, backtest_alerts
from game_analytics.alerting.routing import DEFAULT_ROUTE

H, M = timedelta(hours=1), timedelta(minutes=1)
END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - H
START = END - 10 * H
#: (stream, from, to) of lag 120 s (the rule's maxLagSeconds is 60; the lag is 5 s otherwise)
SPIKES = [("events", START + H, START + H + 10 * M),  # 10 minutes
          ("events", START + 3 * H, START + 8 * H),  # 5 hours
          ("events-1", START + 4 * H, START + 4 * H + 30 * M)]  # inside the 5 hours, another stream: same group


def openmetrics() -> str:
    lines = ["# TYPE game_analytics_ingest_lag_seconds gauge"]
    for stream in ("events", "events-1"):
        t = START - 10 * M
        while t <= END:
            lag = 120 if any(s == stream and a <= t < b for s, a, b in SPIKES) else 5
            lines.append(f'game_analytics_ingest_lag_seconds{{namespace="games",stream="{stream}"}} {lag} '
                         f"{int(t.timestamp())}")
            t += timedelta(seconds=30)
    return "\n".join(lines) + "\n# EOF\n"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    work = tmp_path_factory.mktemp("prom-backtest")
    source = work / "history.om"
    source.write_text(openmetrics())
    subprocess.run([_binary("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(source), str(work / "data")],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    server = Prometheus(work, {}, [])
    yield server
    server.stop()


def rule_file(tmp_path: Path, for_: str) -> Path:
    path = tmp_path / f"lag-{for_}.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "gameanalytics.io/v1alpha1", "kind": "AlertRule",
                                    "metadata": {"name": "lag", "namespace": "games"},
                                    "spec": {"category": "system", "detector": {"ingestLag": {"maxLagSeconds": 60}},
                                             "for": for_, "runbookURL": "https://x.example/r"}}))  # fmt: skip
    return path


def run(capsys: pytest.CaptureFixture[str], path: Path, url: str, *extra: str) -> dict:
    code = alerts_cli.main(["backtest", "-f", str(path), "--from", START.isoformat(), "--to", END.isoformat(),
                            "--step", "1m", "--prometheus", url, "--output", "json", *extra])  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    return out


def test_known_history_gives_the_known_page_count(prometheus: Prometheus, tmp_path: Path, capsys) -> None:
    base = run(capsys, rule_file(tmp_path, "0s"), prometheus.url)
    assert base["backtested"] is True and base["evaluated_steps"] == 10 * 60 + 1
    # the 10-minute spike pages once; the 5-hour one (with the other stream's spike in the same group) at +10 s
    # and again after repeat_interval 4h
    assert base["pages"] == 3 and base["incidents"] == 2
    first = [i["first_page"] for i in base["timeline"]]
    assert first == [(START + H + timedelta(seconds=10)).isoformat(),
                     (START + 3 * H + timedelta(seconds=10)).isoformat()]  # fmt: skip
    assert base["timeline"][1]["subjects"] == ["stream=events", "stream=events-1"]
    assert base["timeline"][1]["resolved_at"] == (START + 8 * H).isoformat()
    # for: 15m - the 10-minute spike never fires
    assert run(capsys, rule_file(tmp_path, "15m"), prometheus.url)["pages"] == 2
    # repeat_interval 1h: the 5-hour spike pages at +10 s, 1h, 2h, 3h and 4h
    assert run(capsys, rule_file(tmp_path, "0s"), prometheus.url, "--repeat-interval", "1h")["pages"] == 6


def test_html_output_has_the_chart_and_the_figures(prometheus: Prometheus, tmp_path: Path, capsys) -> None:
    code = alerts_cli.main(["backtest", "-f", str(rule_file(tmp_path, "0s")), "--from", START.isoformat(), "--to",
                            END.isoformat(), "--prometheus", prometheus.url, "--output", "html"])  # fmt: skip
    page = capsys.readouterr().out
    assert code == 0 and '<dd id="pages">3</dd>' in page and "data:image/png;base64," in page
    assert "stream=events-1" in page and "busiest hour of week" in page


def test_unreachable_prometheus_and_missing_flag_exit_1(tmp_path: Path, capsys) -> None:
    path = rule_file(tmp_path, "0s")
    assert alerts_cli.main(["backtest", "-f", str(path), "--from", "2d", "--to", "1d", "--prometheus",
                            "http://127.0.0.1:1", "--output", "json"]) == 1  # fmt: skip
    assert json.loads(capsys.readouterr().out)["backtested"] is False
    assert alerts_cli.main(["backtest", "-f", str(path), "--from", "2d", "--to", "1d", "--dsn",
                            "postgresql+psycopg://nobody@127.0.0.1:1/none"]) == 1  # fmt: skip
    assert "--prometheus" in capsys.readouterr().out


def test_alerts_are_grouped_by_the_route() -> None:
    t0 = datetime(2020, 1, 6, tzinfo=UTC)
    times = [t0 + i * M for i in range(10)]

    def alert(name: str, game: str, on: range) -> tuple[dict[str, str], list[Sample]]:
        return {"game": game}, [Sample(t, frozenset({name}) if i in on else frozenset()) for i, t in enumerate(times)]

    alerts = {"a": alert("a", "g1", range(1, 5)), "b": alert("b", "g1", range(3, 7)), "c": alert("c", "g2", range(2, 3))}
    result = backtest_alerts(alerts, rule="games/r", detector="currencyInflation", start=t0, end=times[-1], step=M,
                             for_=M, route=DEFAULT_ROUTE)  # fmt: skip
    # g1: a fires at 2 (for 1m), b at 4, the group fires 2..7; g2: c is true one step only (never fires)
    assert [(i.firing_at, i.resolved_at, sorted(i.subjects)) for i in result.incidents] == [
        (times[2], times[7], ["a", "b"])]
    assert result.incidents[0].pending_at == times[1] and len(result.page_times) == 1
