"""Names of a RankingJob's children (``<name>`` is the RankingJob's name)."""

from __future__ import annotations

#: ``app.kubernetes.io/component`` of the rating CronJob, its Jobs and the ConfigMap.
COMPONENT = "ranking"
#: Component of the season-reset CronJob.
SEASON_RESET_COMPONENT = "season-reset"
RANKING_CONFIG_KEY = "ranking.json"


def config_map_name(name: str) -> str:
    """The ranking document's ConfigMap: ``<name>-ranking``."""
    return f"{name}-{COMPONENT}"


def cronjob_name(name: str) -> str:
    """The rating CronJob: ``<name>-ranking``."""
    return f"{name}-{COMPONENT}"


def season_reset_cronjob_name(name: str) -> str:
    """The season-reset CronJob: ``<name>-season-reset``."""
    return f"{name}-{SEASON_RESET_COMPONENT}"

#: Where the ranking worker writes the status fields it computed (``--status-file``): the container's default
#: termination-message path, which the kubelet copies into the Pod's ``status.containerStatuses[].state
#: .terminated.message``, where the planner reads it back.
STATUS_FILE = "/dev/termination-log"
