"""Every status field a CRD declares is written by its kind's planner, through the kind's ``*Status`` model.

Each kind is reconciled over a representative fake cluster state (the children's own status filled in as the
kube-controller-manager and kubelet would), and the keys of the written status, nested ones included, are
compared with the CRD's status schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from game_analytics.api import KINDS_BY_NAME
from game_analytics.controller.common.render import Owner
from game_analytics.controller.rankingjob import names as ranking_names
from game_analytics.controller.rankingjob.plan import last_reported
from game_analytics.workers.ranking import RunSummary, write_status

from .fake_cluster import FakeCluster
from .test_reconcile import _healthy_view, body, run

CRDS = Path(__file__).resolve().parents[2] / "crds"

#: Status fields no planner writes, each with the reason. Empty: every declared field is observed.
NOT_WRITTEN: dict[str, dict[str, str]] = {}


def schema_fields(schema: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted paths of every property under ``schema`` (``replicaSets[].name`` for array items)."""
    out: set[str] = set()
    for name, prop in (schema.get("properties") or {}).items():
        out.add(prefix + name)
        if prop.get("type") == "array":
            out |= schema_fields(prop.get("items") or {}, f"{prefix}{name}[].")
        elif prop.get("type") == "object":
            out |= schema_fields(prop, f"{prefix}{name}.")
    return out


def written_fields(value: Any, prefix: str = "") -> set[str]:
    """Dotted paths of every key present in a written status (the same notation as :func:`schema_fields`)."""
    out: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            out.add(prefix + key)
            if isinstance(item, list):
                for element in item:
                    out |= written_fields(element, f"{prefix}{key}[].")
            else:
                out |= written_fields(item, f"{prefix}{key}.")
    return out


def crd_status_fields(kind: str) -> set[str]:
    crd = yaml.safe_load((CRDS / f"{KINDS_BY_NAME[kind].crd_name}.yaml").read_text())
    return schema_fields(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"])


def _labels(kind: str, name: str, component: str) -> dict[str, str]:
    return {"gameanalytics.io/owner-kind": kind, "gameanalytics.io/owner-name": name,
            "app.kubernetes.io/component": component}


def _finished_job(kind: str, owner: str, component: str, outcome: str, created: str) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {
        "name": f"{owner}-{component}-{created[11:13]}", "namespace": "games",
        "labels": _labels(kind, owner, component), "creationTimestamp": created},
        "status": {"conditions": [{"type": outcome, "status": "True"}]}}


def ranking_pod(owner: str, component: str, message: str, finished: str, phase: str = "Succeeded") -> dict:
    """A finished ranking worker pod whose container left ``message`` as its termination message."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": f"{owner}-{component}-{finished[11:13]}", "namespace": "games",
        "labels": _labels("RankingJob", owner, component)},
        "status": {"phase": phase, "containerStatuses": [{"name": component, "state": {"terminated": {
            "exitCode": 0, "finishedAt": finished, "message": message}}}]}}


def _status_message(tmp_path: Path, season: int, players: int) -> str:
    """What the ranking worker writes with ``--status-file`` (the real function, not a copy of its format)."""
    path = tmp_path / f"status-{season}-{players}"
    write_status(path, RunSummary(board="games/x", algorithm="glicko2", season=season, matches=10,
                                  players=players, history_rows=0, seconds=0.1, top=[]))
    return path.read_text()


def reconciled_status(kind: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """Reconcile one object of ``kind`` over a representative cluster state (twice: children first, then their
    status); returns the status as written."""
    cluster = FakeCluster()
    cluster.add(body("gamedatasource.yaml"))
    cluster.add(body("redisfailover.yaml"))  # the GameDataSource reaches Redis through its Sentinels
    example = {"AlertRule": "alertrule-wealth-jump.yaml", "ScheduledReport": "scheduledreport.yaml",
               "RankingJob": "rankingjob.yaml", "GameDataSource": "gamedatasource.yaml",
               "RedisFailover": "redisfailover.yaml", "MongoShardedCluster": "mongoshardedcluster.yaml"}[kind]
    obj = body(example)
    name = obj["metadata"]["name"]
    if kind == "RedisFailover":
        from game_analytics.controller.redisfailover import sentinel

        host = f"{name}-redis-{{}}.{name}-redis-headless.games.svc:6379"
        monkeypatch.setattr(sentinel, "probe",
                            lambda *a, **k: _healthy_view(host.format(0), [host.format(1), host.format(2)]))
    images = None
    if kind == "AlertRule":  # the backtest on (a canned result with pages), and a measured quality shipped
        images = _backtesting(monkeypatch, tmp_path)
    run(kind, obj, cluster, *(images,) * bool(images))
    for path, child in cluster.objects.items():
        if "/cronjobs/" in path:
            child["status"] = {"lastScheduleTime": "2026-11-23T05:00:00Z", "lastSuccessfulTime": "2026-11-23T05:02:00Z"}
        if "/jobs/" in path:
            child["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
        if "/deployments/" in path:
            child["status"] = {"availableReplicas": child["spec"].get("replicas", 1)}
    if kind in ("ScheduledReport", "RankingJob"):
        component = {"ScheduledReport": "report", "RankingJob": "ranking"}[kind]
        cluster.add(_finished_job(kind, name, component, "Complete", "2026-11-23T05:00:00Z"))
    if kind == "RankingJob":
        cluster.add(ranking_pod(name, "ranking", _status_message(tmp_path, 2, 18), "2026-11-23T05:02:00Z"))
    if kind == "MongoShardedCluster":  # the bootstrap Job's pod reports what it observed (a recorded run)
        from .mongoshardedcluster.recorded import bootstrap_pod

        job = next(o for p, o in cluster.objects.items() if "/jobs/" in p)
        cluster.add(bootstrap_pod(name, job["metadata"]["name"]))
    run(kind, obj, cluster, *(images,) * bool(images))
    return obj["status"]


def _backtesting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Images with the AlertRule backtest on (its run canned: 3 pages) and a quality file naming every type."""
    from game_analytics.alerting import measured
    from game_analytics.alerting.quality import Quality
    from game_analytics.api.alertrule import DETECTOR_TYPES
    from game_analytics.config import BacktestSettings, Images
    from game_analytics.controller.alertrule import backtests

    from .test_alertrule_backtest import fake_result

    settings = BacktestSettings()
    instance = backtests.Backtester(settings, run=fake_result)
    monkeypatch.setattr(backtests, "backtester", lambda _: instance)
    path = tmp_path / "quality.yaml"
    measured.write([Quality(d, {}, 1, 1, 1, 1) for d in DETECTOR_TYPES], "test", path)
    monkeypatch.setattr(measured, "QUALITY_FILE", path)
    return Images(backtest=settings)


@pytest.mark.parametrize("kind", sorted(KINDS_BY_NAME))
def test_every_declared_status_field_is_written(kind: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    declared = crd_status_fields(kind)
    written = written_fields(reconciled_status(kind, monkeypatch, tmp_path))
    exempt = set(NOT_WRITTEN.get(kind, {}))
    assert not written - declared, f"{kind} writes status fields its CRD does not declare: {written - declared}"
    assert declared - exempt <= written, f"{kind} never writes {sorted(declared - exempt - written)}"


def test_ranking_job_reports_the_newest_succeeded_run(tmp_path: Path) -> None:
    cluster, job = FakeCluster(), body("rankingjob.yaml")
    owner = Owner.from_body(job)
    name = owner.name
    assert last_reported(cluster, owner) is None
    cluster.add(ranking_pod(name, ranking_names.COMPONENT, _status_message(tmp_path, 1, 10), "2026-11-23T05:02:00Z"))
    cluster.add(ranking_pod(name, ranking_names.SEASON_RESET_COMPONENT, _status_message(tmp_path, 2, 12),
                            "2026-11-24T00:01:00Z"))
    cluster.add(ranking_pod(name, ranking_names.COMPONENT, _status_message(tmp_path, 9, 99), "2026-11-25T05:02:00Z",
                            phase="Failed"))
    cluster.add(ranking_pod(name, ranking_names.COMPONENT, "Error: not a status", "2026-11-26T05:02:00Z"))
    reported = last_reported(cluster, owner)
    assert reported is not None and (reported.season, reported.players_rated) == (2, 12)


def test_the_worker_writes_only_status_fields(tmp_path: Path) -> None:
    assert json.loads(_status_message(tmp_path, 3, 18)) == {"season": 3, "playersRated": 18}


def test_ranking_cronjobs_point_the_worker_at_the_termination_message(monkeypatch, tmp_path: Path) -> None:
    cluster, job = FakeCluster(), body("rankingjob.yaml")
    cluster.add(body("gamedatasource.yaml"))
    cluster.add(body("redisfailover.yaml"))
    run("RankingJob", job, cluster)
    crons = [o for p, o in cluster.objects.items() if "/cronjobs/" in p]
    assert crons
    for cron in crons:
        (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        assert container["args"][-2:] == ["--status-file", ranking_names.STATUS_FILE]
        assert container.get("terminationMessagePath", ranking_names.STATUS_FILE) == ranking_names.STATUS_FILE
