"""Smoke test of `make demo`: the whole stack on real data, end to end, as a newcomer runs it."""

import subprocess
import sys

import pytest

from devtools import REPO_ROOT

pytestmark = pytest.mark.e2e


def test_demo_runs_end_to_end(tmp_path):
    result = subprocess.run([sys.executable, "-m", "devtools.demo", "--workdir", str(tmp_path / "demo"),
                             "--timeout", "900"], capture_output=True, text=True, timeout=1000, cwd=REPO_ROOT)
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-2000:]
    assert "│ 1    │ bayern-muenchen" in out
    assert "Page received: WhaleWealthJump severity=critical" in out
    assert "Report delivered by webhook" in out and ".html" in out
    assert "Demo finished" in out and "Stopping everything" in out
    assert not (tmp_path / "demo" / "state.json").exists(), "every process the demo started is stopped"
    # a second run in a row works too (fresh work directory, nothing left behind by the first)
    again = subprocess.run([sys.executable, "-m", "devtools.demo", "--workdir", str(tmp_path / "demo"),
                            "--timeout", "900"], capture_output=True, text=True, timeout=1000, cwd=REPO_ROOT)
    assert again.returncode == 0, again.stdout[-4000:]
