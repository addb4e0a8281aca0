"""High-availability topologies: observing Redis Sentinel sets and bootstrapping sharded MongoDB.

Each module separates decisions (pure functions over recorded observations, unit-tested) from I/O (thin probes
and executors that talk to the servers).
"""
