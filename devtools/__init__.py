"""Development tools that run only from a source checkout and are not part of the ``game-analytics`` wheel.

Process harnesses for real components on loopback (PostgreSQL, Redis with Sentinel, Prometheus, Alertmanager, an
envtest-style control plane, the operator as a local process), the alert-path helpers, and ``make demo``
(:mod:`devtools.demo`). Tests and benchmarks import them with the repository root on ``sys.path`` (pytest's
``pythonpath`` setting; the Makefile's ``PYTHONPATH`` for ``make bench``).
"""

from pathlib import Path

#: The root of the source checkout (this package lives at ``<root>/devtools``).
REPO_ROOT = Path(__file__).resolve().parent.parent
