"""Kind name -> its planner (each kind's ``plan.py``); the reconcile looks planners up here."""

from __future__ import annotations

from .alertrule import plan as alertrule
from .common.plan import Planner
from .gamedatasource import plan as gamedatasource
from .mongoshardedcluster import plan as mongoshardedcluster
from .rankingjob import plan as rankingjob
from .redisfailover import plan as redisfailover
from .scheduledreport import plan as scheduledreport

PLANNERS: dict[str, Planner] = {
    "AlertRule": alertrule.plan,
    "ScheduledReport": scheduledreport.plan,
    "RankingJob": rankingjob.plan,
    "GameDataSource": gamedatasource.plan,
    "RedisFailover": redisfailover.plan,
    "MongoShardedCluster": mongoshardedcluster.plan,
}

__all__ = ["PLANNERS"]
