"""Tests of the RedisFailover package: rendering, scripts, Sentinel conditions."""
