"""RedisFailover: child names (:mod:`.names`), pure rendering (:mod:`.render`, shell in ``scripts/``), planning
(:mod:`.plan`) and the Sentinel probe, conditions and failover (:mod:`.sentinel`)."""
