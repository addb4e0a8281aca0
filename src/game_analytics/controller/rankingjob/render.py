"""RankingJob -> a CronJob running the ranking worker (and one for season resets), plus its ConfigMap."""

from __future__ import annotations

import json

from ...api.rankingjob import RankingJobSpec
from ..common.cronjob import CONFIG_DIR, data_source_env, worker_cronjob
from ..common.render import DataSource, Manifest, Owner, config_map
from .names import (
    COMPONENT,
    RANKING_CONFIG_KEY,
    SEASON_RESET_COMPONENT,
    STATUS_FILE,
    config_map_name,
    cronjob_name,
    season_reset_cronjob_name,
)

__all__ = ["RANKING_CONFIG_KEY", "ranking_document", "render"]


def ranking_document(owner: Owner, spec: RankingJobSpec) -> dict:
    """The job description the ranking worker reads: algorithm with all parameters resolved, leagues, sizes."""
    doc = {"name": owner.name, "namespace": owner.namespace, **spec.to_api()}
    doc[spec.algorithm.value] = spec.algorithm_params().to_api()
    return doc


def render(owner: Owner, spec: RankingJobSpec, *, image: str, data_source: DataSource) -> list[Manifest]:
    """The ranking ConfigMap, the rating CronJob and, with ``seasonReset``, the season-reset CronJob."""
    cm_name = config_map_name(owner.name)
    env, env_from = data_source_env(data_source)
    config_path = f"{CONFIG_DIR}/{RANKING_CONFIG_KEY}"
    children = [
        config_map(owner, cm_name, COMPONENT, {RANKING_CONFIG_KEY: json.dumps(ranking_document(owner, spec),
                                                                              sort_keys=True, indent=2)}),
        worker_cronjob(owner, name=cronjob_name(owner.name), component=COMPONENT, schedule=spec.schedule,
                       time_zone=spec.time_zone, suspend=spec.suspend,
                       args=["worker", "ranking", "--config", config_path, "--status-file", STATUS_FILE],
                       image=image, env=env,
                       env_from=env_from, config_map=cm_name),
    ]
    if spec.season_reset:
        children.append(worker_cronjob(
            owner, name=season_reset_cronjob_name(owner.name), component=SEASON_RESET_COMPONENT,
            schedule=spec.season_reset.schedule, time_zone=spec.season_reset.time_zone, suspend=spec.suspend,
            args=["worker", "ranking", "--config", config_path, "--season-reset", "--status-file", STATUS_FILE],
            image=image, env=env,
            env_from=env_from, config_map=cm_name,
        ))
    return children
