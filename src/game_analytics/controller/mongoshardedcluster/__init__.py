"""MongoShardedCluster: child names (:mod:`.names`), pure rendering (:mod:`.render`), the pure bootstrap planner
(:mod:`.bootstrap`; its executor is :mod:`game_analytics.workers.mongo_bootstrap`) and planning (:mod:`.plan`)."""
