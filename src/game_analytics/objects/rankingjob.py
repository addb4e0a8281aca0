"""RankingJob -> a CronJob running the ranking worker (and one for season resets), plus its ConfigMap."""

from __future__ import annotations

import json

from ..api.gamedatasource import GameDataSourceSpec
from ..api.rankingjob import RankingJobSpec
from .common import Manifest, Owner, config_map
from .cronjob import CONFIG_DIR, data_source_env, worker_cronjob

RANKING_CONFIG_KEY = "ranking.json"


def ranking_document(owner: Owner, spec: RankingJobSpec) -> dict:
    """The job description the ranking worker reads: algorithm with all parameters resolved, leagues, sizes."""
    doc = {"name": owner.name, "namespace": owner.namespace, **spec.to_api()}
    doc[spec.algorithm.value] = spec.algorithm_params().to_api()
    return doc


def render(owner: Owner, spec: RankingJobSpec, *, image: str, data_source: GameDataSourceSpec) -> list[Manifest]:
    """The ranking ConfigMap, the rating CronJob and, with ``seasonReset``, the season-reset CronJob."""
    cm_name = f"{owner.name}-ranking"
    env, env_from = data_source_env(spec.data_source_ref.name, data_source)
    config_path = f"{CONFIG_DIR}/{RANKING_CONFIG_KEY}"
    children = [
        config_map(owner, cm_name, "ranking", {RANKING_CONFIG_KEY: json.dumps(ranking_document(owner, spec),
                                                                              sort_keys=True, indent=2)}),
        worker_cronjob(owner, name=f"{owner.name}-ranking", component="ranking", schedule=spec.schedule,
                       time_zone=spec.time_zone, suspend=spec.suspend,
                       args=["worker", "ranking", "--config", config_path], image=image, env=env,
                       env_from=env_from, config_map=cm_name),
    ]
    if spec.season_reset:
        children.append(worker_cronjob(
            owner, name=f"{owner.name}-season-reset", component="season-reset",
            schedule=spec.season_reset.schedule, time_zone=spec.season_reset.time_zone, suspend=spec.suspend,
            args=["worker", "ranking", "--config", config_path, "--season-reset"], image=image, env=env,
            env_from=env_from, config_map=cm_name,
        ))
    return children
