"""Shared pieces of the e2e tier: kubectl, polling, and the installed chart with a running operator.

The fixtures are session-scoped (one helm install and one operator process per session) and exported to the tests
through conftest.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools import prometheus_operator
from devtools.operator_process import OperatorProcess
from devtools.waiting import wait_for
from game_analytics.api import KINDS

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".cache" / "bin"
EXAMPLES = ROOT / "examples"
RELEASE, SYSTEM_NS, GAMES_NS = "ga", "game-analytics-system", "games"
OPERATOR_SA = "ga-game-analytics"
RESYNC = 3.0


def tool(name: str) -> str:
    found = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if not found:
        pytest.fail(f"{name} not found: run `make tools`", pytrace=False)
    return found


class Kubectl:
    def __init__(self, kubeconfig: Path):
        self.kubeconfig = kubeconfig

    def run(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([tool("kubectl"), f"--kubeconfig={self.kubeconfig}", *args], input=input,
                                capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def json(self, *args: str) -> dict:
        return json.loads(self.run(*args, "-o", "json").stdout)

    def get(self, kind: str, name: str, ns: str = GAMES_NS) -> dict | None:
        result = self.run("get", kind, name, "-n", ns, "-o", "json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None


def install_prometheus_operator_crds(kubectl: Kubectl) -> None:
    """The CRDs of the pinned prometheus-operator release (``make prometheus-operator``), once Established."""
    try:
        args = prometheus_operator.apply_crds_args()
    except prometheus_operator.PrometheusOperatorNotBuilt as exc:
        pytest.fail(str(exc), pytrace=False)
    kubectl.run(*args)
    crds = [f"crd/{kind}.monitoring.coreos.com"
            for kind in ("prometheusrules", "servicemonitors", "alertmanagerconfigs", "prometheuses", "alertmanagers")]
    # right after creation a CRD may have no status yet, which `kubectl wait` reports as an error: poll
    wait_for("prometheus-operator CRDs Established", lambda: kubectl.run(
        "wait", "--for=condition=Established", "--timeout=10s", *crds, check=False).returncode == 0, 60)


def ready_condition(obj: dict | None) -> dict | None:
    for c in (obj or {}).get("status", {}).get("conditions", []):
        if c["type"] == "Ready":
            return c
    return None


def is_ready(obj: dict | None) -> bool:
    c = ready_condition(obj)
    return bool(c and c["status"] == "True" and c.get("observedGeneration") == obj["metadata"]["generation"])


#: Ready reasons meaning "children applied, waiting for a live server": a MongoShardedCluster is Ready only once
#: bootstrapped, which needs a running mongod (there is none here), so until then it is Ready=False, Bootstrapping.
WAITING_FOR_SERVERS = {"MongoShardedCluster": "Bootstrapping"}


def is_reconciled(obj: dict | None) -> bool:
    """Ready, or not Ready only for the reason :data:`WAITING_FOR_SERVERS` names for its kind (current generation)."""
    c = ready_condition(obj)
    if not c or c.get("observedGeneration") != obj["metadata"]["generation"]:
        return False
    return c["status"] == "True" or (c["status"] == "False" and c["reason"] == WAITING_FOR_SERVERS.get(obj["kind"]))


@pytest.fixture(scope="session")
def kubectl(control_plane) -> Kubectl:
    return Kubectl(control_plane.kubeconfig)


def create_example_secrets(kubectl: Kubectl, namespace: str = GAMES_NS) -> None:
    """The Secrets the examples name (values of the right shape): without them the operator reports
    ``SecretNotFound`` instead of Ready."""
    from controller.fake_cluster import example_dependencies  # noqa: I001 - tests/ is on sys.path (rootdir imports)

    secrets = example_dependencies(namespace, data_source=False)
    kubectl.run("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": secrets}))


@pytest.fixture(scope="session")
def installed(control_plane, kubectl) -> Path:
    """The chart installed with helm, plus prometheus-operator's real CRDs; returns the SA kubeconfig."""
    install_prometheus_operator_crds(kubectl)
    helm = subprocess.run([tool("helm"), "install", RELEASE, str(ROOT / "charts" / "game-analytics"), "--namespace",
                           SYSTEM_NS, "--create-namespace", "--kubeconfig", str(control_plane.kubeconfig),
                           "--set", "replicaCount=0"], capture_output=True, text=True, timeout=120)
    assert helm.returncode == 0, f"helm install failed:\n{helm.stderr}"
    for info in KINDS:
        kubectl.run("wait", "--for=condition=Established", f"crd/{info.crd_name}", "--timeout=60s")
    kubectl.run("create", "namespace", GAMES_NS, check=False)
    create_example_secrets(kubectl)
    return control_plane.service_account_kubeconfig(SYSTEM_NS, OPERATOR_SA, create=False)


@pytest.fixture(scope="session")
def operator(installed, tmp_path_factory) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    proc = OperatorProcess(installed, log, resync_seconds=RESYNC).start()
    yield proc
    proc.stop()
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, f"the operator logged a traceback:\n{proc.log_tail(80)}"


