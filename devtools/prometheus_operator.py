"""The real prometheus-operator (built by hack/prometheus-operator/build.sh) as a local process, its real CRDs, and
a Prometheus and an Alertmanager CR configured as kube-prometheus-stack configures them by default.

Without a node the operator's StatefulSets run no pods, but the operator still does the part this project depends
on: it selects PrometheusRules, ServiceMonitors and AlertmanagerConfigs and writes what it generated from them into
the cluster, the rule files ConfigMaps ``prometheus-<name>-rulefiles-<n>`` and the Alertmanager configuration
Secret ``alertmanager-<name>-generated``. :func:`rule_groups` and :func:`generated_alertmanager_config` read those
back, so that the real Prometheus and Alertmanager (``devtools.monitoring_stack``) can run what the operator
generated.
"""

from __future__ import annotations

import base64
import gzip
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from . import REPO_ROOT
from .processes import LoggedProcess
from .waiting import free_port

BUILD_SCRIPT = REPO_ROOT / "hack" / "prometheus-operator" / "build.sh"
CRD_DIR = Path(os.environ.get("PROMETHEUS_OPERATOR_CRD_DIR", REPO_ROOT / ".cache" / "prometheus-operator" / "crds"))
BIN_DIR = REPO_ROOT / ".cache" / "bin"

#: kube-prometheus-stack's names when installed as ``helm install kube-prometheus-stack ...`` into ``monitoring``
RELEASE = "kube-prometheus-stack"
MONITORING_NS = "monitoring"
PROMETHEUS = f"{RELEASE}-prometheus"
ALERTMANAGER = f"{RELEASE}-alertmanager"


class PrometheusOperatorNotBuilt(RuntimeError):
    """The binary or the CRDs are missing; the message says how to build them."""


def crd_files(crd_dir: Path = CRD_DIR) -> list[Path]:
    """The real CRD files of the pinned prometheus-operator release (``monitoring.coreos.com_*.yaml``).

    Raises PrometheusOperatorNotBuilt when ``make prometheus-operator`` has not copied them yet.
    """
    files = sorted(crd_dir.glob("monitoring.coreos.com_*.yaml"))
    if not files:
        raise PrometheusOperatorNotBuilt(f"no prometheus-operator CRDs in {crd_dir}: run `make prometheus-operator` "
                                         f"(bash {BUILD_SCRIPT.relative_to(REPO_ROOT)})")
    return files


def apply_crds_args(crd_dir: Path = CRD_DIR) -> list[str]:
    """``kubectl`` arguments that install the CRDs and wait for nothing.

    Server-side apply: the Prometheus and Alertmanager CRDs are larger than the 256 KiB that client-side apply's
    ``last-applied-configuration`` annotation may hold.
    """
    args = ["apply", "--server-side", "--force-conflicts"]
    for path in crd_files(crd_dir):
        args += ["-f", str(path)]
    return args


def binary(name: str = "prometheus-operator") -> str:
    """Path of a built binary (``prometheus-operator`` or ``prometheus-config-reloader``)."""
    found = shutil.which(name, path=f"{BIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}")
    if not found:
        raise PrometheusOperatorNotBuilt(f"{name} not found: run `make prometheus-operator`")
    return found


class PrometheusOperatorProcess:
    """The operator binary run out of cluster with ``kubeconfig`` (``KUBECONFIG``), stopped by PID.

    Args:
        kubeconfig: credentials (cluster admin in the tests: the chart of kube-prometheus-stack grants about that).
        log_path: file receiving its output (appended).
        namespaces: ``--namespaces`` (all when empty).
    """

    def __init__(self, kubeconfig: Path, log_path: Path, *, namespaces: list[str] | None = None):
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.namespaces = namespaces or []
        self.port = 0
        self._process: LoggedProcess | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout: float = 60) -> PrometheusOperatorProcess:
        """Start and wait until ``/healthz`` answers. Raises RuntimeError with the log tail."""
        self.port = free_port()
        argv = [binary(), f"--web.listen-address=127.0.0.1:{self.port}", "--log-level=info",
                # images are only written into StatefulSets that no kubelet runs here
                "--prometheus-config-reloader=quay.io/prometheus-operator/prometheus-config-reloader:v0.85.0"]
        if self.namespaces:
            argv.append(f"--namespaces={','.join(self.namespaces)}")
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        self._process = LoggedProcess("prometheus-operator", argv, env, self.log_path)
        self._process.wait_until_ready(f"http://127.0.0.1:{self.port}/healthz", timeout)
        return self

    def check_alive(self) -> None:
        if self._process:
            self._process.check_alive()

    def log_tail(self, lines: int = 40) -> str:
        return self._process.log_tail(lines) if self._process else ""

    def stop(self) -> None:
        if self._process:
            self._process.stop()


def kube_prometheus_stack(*, release: str = RELEASE, namespace: str = MONITORING_NS,
                          prometheus_version: str = "v2.42.0", alertmanager_version: str = "v0.25.0") -> list[dict]:
    """The Prometheus CR, the Alertmanager CR and the Alertmanager's base configuration Secret, as
    kube-prometheus-stack's defaults make them (release ``release`` in ``namespace``).

    What matters here: rules, ServiceMonitors, PodMonitors, Probes and ScrapeConfigs are selected by the label
    ``release: <release>`` in every namespace (``*SelectorNilUsesHelmValues: true``); AlertmanagerConfigs too, by
    the same label (``alertmanagerConfigSelector``; the chart's own default is ``{}``, every AlertmanagerConfig,
    so the label is the stricter test) in every namespace, with the matcher strategy ``OnNamespace``. The versions
    are those of the Debian binaries the tests run, so that the operator generates configuration they accept.
    """
    selector = {"matchLabels": {"release": release}}
    labels = {"app.kubernetes.io/instance": release, "release": release}
    prometheus = {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
        "metadata": {"name": PROMETHEUS if release == RELEASE else f"{release}-prometheus", "namespace": namespace,
                     "labels": labels},
        "spec": {
            "version": prometheus_version, "replicas": 1, "evaluationInterval": "30s", "scrapeInterval": "30s",
            "serviceAccountName": f"{release}-prometheus",
            "ruleSelector": selector, "ruleNamespaceSelector": {},
            "serviceMonitorSelector": selector, "serviceMonitorNamespaceSelector": {},
            "podMonitorSelector": selector, "podMonitorNamespaceSelector": {},
            "probeSelector": selector, "probeNamespaceSelector": {},
            "scrapeConfigSelector": selector, "scrapeConfigNamespaceSelector": {},
            "alerting": {"alertmanagers": [{"namespace": namespace, "name": f"{release}-alertmanager",
                                            "port": "http-web", "pathPrefix": "/", "apiVersion": "v2"}]},
        },
    }
    alertmanager_name = ALERTMANAGER if release == RELEASE else f"{release}-alertmanager"
    alertmanager = {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "Alertmanager",
        "metadata": {"name": alertmanager_name, "namespace": namespace, "labels": labels},
        "spec": {
            "version": alertmanager_version, "replicas": 1,
            "alertmanagerConfigSelector": selector, "alertmanagerConfigNamespaceSelector": {},
            "alertmanagerConfigMatcherStrategy": {"type": "OnNamespace"},
        },
    }
    # the chart's default alertmanager.config: everything to a "null" receiver, grouped by namespace
    base = {
        "global": {"resolve_timeout": "5m"},
        "route": {"group_by": ["namespace"], "group_wait": "30s", "group_interval": "5m", "repeat_interval": "12h",
                  "receiver": "null", "routes": [{"receiver": "null", "matchers": ['alertname = "Watchdog"']}]},
        "receivers": [{"name": "null"}],
        "templates": ["/etc/alertmanager/config/*.tmpl"],
    }
    secret = {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": f"alertmanager-{alertmanager_name}", "namespace": namespace, "labels": labels},
        "stringData": {"alertmanager.yaml": yaml.safe_dump(base, sort_keys=False)},
    }
    return [prometheus, alertmanager, secret]


def rule_files(config_maps: list[dict]) -> dict[str, dict]:
    """``{file name: rule file document}`` of the operator's rule files ConfigMaps (``items`` of a list)."""
    return {key: yaml.safe_load(text) for cm in config_maps for key, text in sorted((cm.get("data") or {}).items())}


def rule_groups(config_maps: list[dict]) -> list[dict]:
    """Every rule group of the rule files ConfigMaps, as Prometheus would load them."""
    return [group for doc in rule_files(config_maps).values() for group in (doc or {}).get("groups", [])]


def generated_alertmanager_config(secret: dict) -> dict:
    """The Alertmanager configuration in the operator's ``alertmanager-<name>-generated`` Secret.

    The operator stores it gzipped under ``alertmanager.yaml.gz`` (plain ``alertmanager.yaml`` in older releases).
    Raises KeyError when neither key is there yet.
    """
    data = secret.get("data") or {}
    if "alertmanager.yaml.gz" in data:
        return yaml.safe_load(gzip.decompress(base64.b64decode(data["alertmanager.yaml.gz"])))
    return yaml.safe_load(base64.b64decode(data["alertmanager.yaml"]))


def routes_of(config: dict, namespace: str) -> list[dict]:
    """The top-level routes of a generated configuration that prometheus-operator made for ``namespace``'s
    AlertmanagerConfigs (it names their receivers ``<namespace>/<config>/<receiver>``)."""
    return [r for r in (config.get("route") or {}).get("routes", [])
            if str(r.get("receiver", "")).startswith(f"{namespace}/")]


def materialise_files(config: dict, secrets: dict[str, bytes], directory: Path) -> dict:
    """Rewrite every ``*_file`` path of ``config`` that points at a mounted Secret key to a file in ``directory``.

    ``secrets`` maps the in-pod path (e.g. ``/etc/alertmanager/secrets/<secret>/<key>``) to its content. Returns
    the rewritten copy; paths that are not in ``secrets`` are left as they are.
    """
    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if isinstance(value, str) and key.endswith("_file") and value in secrets:
                    target = directory / value.lstrip("/")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(secrets[value])
                    out[key] = str(target)
                else:
                    out[key] = walk(value)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node
    return walk(config)
