"""A local process with its output in a log file, stopped by PID: how the demo and the tests run workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from . import REPO_ROOT


class LoggedProcess:
    """``argv`` started in its own process group with stdout and stderr appended to ``log``.

    Args:
        name: used in error messages.
        argv: the command; ``LoggedProcess.cli(...)`` builds a ``game-analytics`` one.
        env: the complete environment of the process.
        log: the log file (appended to, so restarts keep their history; its folder is created).
    """

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path):
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                         start_new_session=True)

    @staticmethod
    def cli(*args: str) -> list[str]:
        """``python -m game_analytics.cli ARGS`` with this interpreter."""
        return [sys.executable, "-m", "game_analytics.cli", *args]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 25) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def check_alive(self) -> None:
        """Raises RuntimeError with the end of the log when the process has exited."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log}:\n{self.log_tail()}")

    def wait_until_ready(self, url: str, timeout: float = 30) -> None:
        """Poll ``url`` until it answers. Raises RuntimeError with the log tail when the process exits first or
        ``timeout`` seconds pass (the process is then stopped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(url, timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s; see {self.log}:\n{self.log_tail()}")

    def stop(self, grace: float = 15) -> None:
        """SIGTERM to the process group, SIGKILL after ``grace`` seconds."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
