"""Game analytics: a Kubernetes operator and monitoring stack for game and player analytics."""

__version__ = "0.1.0"
