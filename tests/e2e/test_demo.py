"""Smoke test of `make demo`: the whole stack on real data, end to end, as a newcomer runs it.

The default run is on the node (the operator and the workers as pods); ``--processes`` guards the process mode
(the fallback where no node can start) with one more run.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from devtools import REPO_ROOT

#: The demo's own time limit (``--timeout``), and this test's: the demo's, plus room for its clean-up. pytest's
#: default (600 s, pyproject.toml) is shorter than a node demo that rebuilds the product image on a loaded machine,
#: and a test killed there would leave the demo's node (bridge, containerd, cgroups) to fail the node tier after it.
DEMO_TIMEOUT = 900
TEST_TIMEOUT = DEMO_TIMEOUT + 150
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(TEST_TIMEOUT)]


def _demo(workdir: Path, *args: str) -> str:
    left = True
    try:
        result = subprocess.run([sys.executable, "-m", "devtools.demo", "--workdir", str(workdir), "--timeout",
                                 str(DEMO_TIMEOUT), *args], capture_output=True, text=True, timeout=DEMO_TIMEOUT + 100,
                                cwd=REPO_ROOT)
        left = (workdir / "state.json").exists()  # the demo removes it once it stopped everything
    finally:  # whatever a demo that did not finish (or did not stop everything) left
        if (workdir / "state.json").exists():
            subprocess.run([sys.executable, "-m", "devtools.demo", "--workdir", str(workdir), "--down"],
                           capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-2000:]
    assert "│ 1    │ bayern-muenchen" in out
    assert "Page received: WhaleWealthJump severity=critical" in out
    assert "Report delivered by webhook" in out
    assert "Demo finished" in out and "Stopping everything" in out
    assert not left, "every process the demo started is stopped"
    return out


@pytest.fixture
def short_workdir():
    """A work folder with a short path: the kubelet's and containerd's unix sockets live under it, and a socket path
    holds at most 107 bytes (pytest's tmp_path, ``/tmp/pytest-of-root/pytest-N/test_demo_runs_on_the_node_end0``,
    leaves no room: containerd and the kubelet exited at once, and the demo fell back to processes)."""
    path = Path(tempfile.mkdtemp(prefix="ga-demo-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_demo_runs_on_the_node_end_to_end(short_workdir):
    out = _demo(short_workdir / "demo")
    assert "make demo: on a node (pods)" in out and "cannot start here" not in out, out[-4000:]
    line = next(x for x in out.splitlines() if x.startswith("pods: "))
    done, total = line.split()[1].split("/")
    assert done == total and int(total) >= 13, line
    assert "NAMESPACE" in out and "Completed" in out, out[-3000:]
    assert not Path("/sys/class/net/ga-node0").exists(), "the node's bridge was left"


def test_demo_process_mode(tmp_path):
    out = _demo(tmp_path / "demo", "--processes")
    assert "make demo: processes (no node)" in out and ".html" in out
