"""Process harnesses that run real components (PostgreSQL, Redis, ...) on loopback for tests."""
