"""Run the operator as a local process (``game-analytics operator``), as the e2e tier and ``make demo`` do.

The process gets its own kubeconfig (in tests: the chart ServiceAccount's, so that the chart's RBAC is what is
exercised), a liveness endpoint on a free loopback port, and a log file. It is stopped by PID.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from .processes import LoggedProcess
from .waiting import free_port


class OperatorProcess:
    """``game-analytics operator`` (what the chart runs) in a subprocess.

    Args:
        kubeconfig: credentials the operator uses.
        log_path: file receiving stdout and stderr (appended, so restarts keep history).
        resync_seconds: drift-repair interval (short in tests).
        namespaces: namespaces to watch; all when empty.
        peering: a Kopf peering name (several replicas, one active), or None for ``--standalone``.
    """

    def __init__(self, kubeconfig: Path, log_path: Path, *, resync_seconds: float = 60,
                 namespaces: list[str] | None = None, env: dict[str, str] | None = None,
                 peering: str | None = None):
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.resync_seconds = resync_seconds
        self.namespaces = namespaces or []
        self.extra_env = env or {}
        self.peering = peering
        self.proc: subprocess.Popen | None = None
        self.health_port = 0
        self.metrics_port = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = 60) -> OperatorProcess:
        """Start and wait until Kopf's liveness endpoint answers. Raises RuntimeError with the log tail."""
        self.health_port, self.metrics_port = free_port(), free_port()
        scope = [f"--namespace={ns}" for ns in self.namespaces] or ["--all-namespaces"]
        peering = [f"--peering={self.peering}"] if self.peering else ["--standalone"]
        argv = [sys.executable, "-m", "game_analytics.cli", "operator", *peering, *scope,
                f"--liveness=http://127.0.0.1:{self.health_port}/healthz"]
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig),
               "GAME_ANALYTICS_RESYNC_SECONDS": str(self.resync_seconds),
               "GAME_ANALYTICS_METRICS_PORT": str(self.metrics_port),
               # outside the cluster the Sentinels' pod DNS names do not resolve: probe the annotated addresses
               "GAME_ANALYTICS_PROBE_ADDRESS_ANNOTATION": "true", **self.extra_env}
        self._process = LoggedProcess("operator", argv, env, self.log_path)
        self.proc = self._process.proc
        self._process.wait_until_ready(f"http://127.0.0.1:{self.health_port}/healthz", timeout)
        return self

    def kill(self) -> None:
        """SIGKILL by PID: no cleanup, as when a node dies or the OOM killer strikes."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, grace: float = 15) -> None:
        """SIGTERM by PID, then SIGKILL after ``grace`` seconds."""
        if self.proc:
            self._process.stop(grace)

    def log_tail(self, lines: int = 40) -> str:
        return self._process.log_tail(lines) if self.proc else ""

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            return resp.read().decode()
