"""Tests of the MongoShardedCluster package: rendering and the bootstrap planner."""
