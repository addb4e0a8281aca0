"""Reading workers' termination messages back from pod status (the RankingJob and MongoShardedCluster planners)."""

from game_analytics.controller.common.plan import termination_messages


def _pod(container: str, finished_at: str | None, message: str | None) -> dict:
    state = {"terminated": {"finishedAt": finished_at, **({"message": message} if message else {})}}
    return {"status": {"containerStatuses": [{"name": container, "state": state}]}}


def test_newest_first_across_containers_and_pods():
    pods = [_pod("ranking", "2026-12-01T10:00:00Z", "old"), _pod("season-reset", "2026-12-01T12:00:00Z", "newest"),
            _pod("ranking", "2026-12-01T11:00:00Z", "middle")]
    assert termination_messages(pods, "ranking", "season-reset") == ["newest", "middle", "old"]
    assert termination_messages(pods, "ranking") == ["middle", "old"]


def test_running_containers_other_names_and_empty_messages_are_skipped():
    running = {"status": {"containerStatuses": [{"name": "bootstrap", "state": {"running": {}}}]}}
    pods = [running, _pod("bootstrap", "2026-12-01T10:00:00Z", None), _pod("exporter", "2026-12-01T10:00:00Z", "x"),
            {"status": {}}, {}]
    assert termination_messages(pods, "bootstrap") == []
