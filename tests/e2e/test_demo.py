"""Smoke test of `make demo`: the whole stack on real data, end to end, as a newcomer runs it.

The default run is on the node (the operator and the workers as pods); ``--processes`` guards the process mode
(the fallback where no node can start) with one more run.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from devtools import REPO_ROOT

pytestmark = pytest.mark.e2e


def _demo(workdir: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "devtools.demo", "--workdir", str(workdir), "--timeout", "900",
                             *args], capture_output=True, text=True, timeout=1000, cwd=REPO_ROOT)
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-2000:]
    assert "│ 1    │ bayern-muenchen" in out
    assert "Page received: WhaleWealthJump severity=critical" in out
    assert "Report delivered by webhook" in out
    assert "Demo finished" in out and "Stopping everything" in out
    assert not (workdir / "state.json").exists(), "every process the demo started is stopped"
    return out


def test_demo_runs_on_the_node_end_to_end(tmp_path):
    out = _demo(tmp_path / "demo")
    assert "make demo: on a node (pods)" in out and "cannot start here" not in out, out[-4000:]
    line = next(x for x in out.splitlines() if x.startswith("pods: "))
    done, total = line.split()[1].split("/")
    assert done == total and int(total) >= 13, line
    assert "NAMESPACE" in out and "Completed" in out, out[-3000:]
    assert not Path("/sys/class/net/ga-node0").exists(), "the node's bridge was left"


def test_demo_process_mode(tmp_path):
    out = _demo(tmp_path / "demo", "--processes")
    assert "make demo: processes (no node)" in out and ".html" in out
