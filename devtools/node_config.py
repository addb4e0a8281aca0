"""Pure configuration of the node tier (:mod:`devtools.node`): containerd, CNI, kubelet, kube-proxy.

Every function returns text or a dict and touches nothing. Facts they encode (see ``shared/NODE.md``):

- oom_score_adj cannot be lowered on these machines, so containerd's CRI runs with ``restrict_oom_score_adj``;
- the pod sandbox image is local (:data:`devtools.images.PAUSE_IMAGE`), nothing is ever pulled;
- the CNI plugins are Debian's (``/usr/lib/cni``), the network is a bridge the harness creates, host-local IPAM
  keeps its state in the node's work folder, and pods get routes only to their subnet and to Service IPs (no
  default route: no packet of a pod can leave the machine);
- cgroups are v1: the kubelet's ``cgroupRoot`` sits under the harness's own memory cgroup, driver cgroupfs.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["NodeNetwork", "cni_conflist", "containerd_config", "kube_proxy_config", "kubelet_config"]


@dataclass(frozen=True)
class NodeNetwork:
    """The node's addresses: ``bridge`` (interface name), ``cidr`` (pod subnet, e.g. ``10.233.0.0/24``; the
    bridge and node IP is its first host) and ``service_cidr`` (the apiserver's Service range)."""

    bridge: str
    cidr: str
    service_cidr: str

    @property
    def node_ip(self) -> str:
        """The bridge's address: the node IP, the pods' gateway, the address the apiserver and kubelet serve on."""
        return str(next(ipaddress.ip_network(self.cidr).hosts()))

    @property
    def prefix_len(self) -> int:
        return ipaddress.ip_network(self.cidr).prefixlen


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def _toml(tables: dict[str, dict[str, Any]], top: dict[str, Any]) -> str:
    lines = [f"{k} = {_toml_value(v)}" for k, v in top.items()]
    for name, table in tables.items():
        lines += ["", f"[{name}]"] + [f"  {k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def containerd_config(base: Path, *, sandbox_image: str, cni_conf_dir: Path, runc: str = "/usr/sbin/runc",
                      cni_bin_dir: str = "/usr/lib/cni") -> str:
    """containerd 1.6 config (version 2) with every path under ``base``: root, state, sockets, runc's state.

    CRI: ``sandbox_image`` local, ``restrict_oom_score_adj``, pod netns mounted under the state folder, cgroupfs
    (``SystemdCgroup = false``), overlayfs, the CNI plugins in ``cni_bin_dir`` with the conflist in
    ``cni_conf_dir``. Snapshotters and plugins the node does not use are disabled.
    """
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return _toml(
        {
            "grpc": {"address": str(base / "containerd.sock")},
            "ttrpc": {"address": str(base / "containerd.sock.ttrpc")},
            "debug": {"level": "info"},
            "metrics": {"address": ""},
            cri: {
                "sandbox_image": sandbox_image,
                "restrict_oom_score_adj": True,
                "netns_mounts_under_state_dir": True,
                "disable_apparmor": True,
                "enable_selinux": False,
                "max_container_log_line_size": 16384,
            },
            f"{cri}.containerd": {"snapshotter": "overlayfs", "default_runtime_name": "runc",
                                  "discard_unpacked_layers": False},
            f"{cri}.containerd.runtimes.runc": {"runtime_type": "io.containerd.runc.v2"},
            f"{cri}.containerd.runtimes.runc.options": {"BinaryName": runc, "Root": str(base / "runc"),
                                                        "SystemdCgroup": False},
            f"{cri}.cni": {"bin_dir": cni_bin_dir, "conf_dir": str(cni_conf_dir), "max_conf_num": 1},
            f"{cri}.registry": {"config_path": ""},
            'plugins."io.containerd.internal.v1.opt"': {"path": str(base / "opt")},
        },
        {
            "version": 2,
            "root": str(base / "root"),
            "state": str(base / "state"),
            "oom_score": 0,
            "disabled_plugins": [
                "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
                "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing",
            ],
        },
    )


def cni_conflist(net: NodeNetwork, ipam_dir: Path, name: str = "ga-node") -> dict[str, Any]:
    """bridge + host-local (+ portmap) on the harness's bridge. Routes: the pod subnet (on link) and the Service
    range via the bridge; no default route and no masquerading, so pod traffic stays on this machine."""
    return {
        "cniVersion": "0.4.0",
        "name": name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": net.bridge,
                "isGateway": True,
                "isDefaultGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(ipam_dir),
                    "ranges": [[{"subnet": net.cidr, "gateway": net.node_ip}]],
                    "routes": [{"dst": net.service_cidr}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(*, node_ip: str, port: int, healthz_port: int, cgroup_root: str, client_ca: Path,
                   tls_cert: Path, tls_key: Path, runtime_socket: Path, resolv_conf: Path,
                   cluster_dns: list[str] | None = None) -> dict[str, Any]:
    """KubeletConfiguration (v1beta1): serving on ``node_ip:port`` with x509 (``client_ca``) + webhook authn and
    webhook authz, healthz on loopback, cgroupfs under ``cgroup_root`` with per-QoS cgroups and no node
    allocatable enforcement, cgroup v1 allowed, image GC and eviction thresholds out of the way of a shared disk."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node_ip,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(client_ca)},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(tls_cert),
        "tlsPrivateKeyFile": str(tls_key),
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "containerRuntimeEndpoint": f"unix://{runtime_socket}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup_root,
        "cgroupsPerQOS": True,
        "enforceNodeAllocatable": [],
        "failCgroupV1": False,
        "failSwapOn": False,
        "resolvConf": str(resolv_conf),
        "clusterDomain": "cluster.local",
        "clusterDNS": cluster_dns or [],
        "serializeImagePulls": False,
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                         "nodefs.inodesFree": "1%"},
        "maxPods": 110,
        "registerNode": True,
        "localStorageCapacityIsolation": True,
        "shutdownGracePeriod": "0s",
        "logging": {"format": "text"},
    }


def kube_proxy_config(*, kubeconfig: Path, cluster_cidr: str, node_ip: str, healthz_port: int,
                      metrics_port: int, hostname: str, mode: str = "iptables") -> dict[str, Any]:
    """KubeProxyConfiguration (v1alpha1) in ``mode`` (``iptables`` or ``nftables``): NodePorts only on the node
    IP, none on localhost (no route_localnet), conntrack sysctls left alone, health and metrics on loopback."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": mode,
        "clusterCIDR": cluster_cidr,
        "hostnameOverride": hostname,
        "bindAddress": node_ip,
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        "nodePortAddresses": [f"{node_ip}/32"],
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }
