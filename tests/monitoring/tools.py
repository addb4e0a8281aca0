"""Helpers shared by the monitoring tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a tool, capturing its output (never raises on a non-zero exit: tests assert on ``returncode``)."""
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
