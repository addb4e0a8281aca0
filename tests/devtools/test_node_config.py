"""The node tier's pure configuration (devtools.node_config): the facts of shared/NODE.md, kept."""

from __future__ import annotations

from pathlib import Path

from devtools import node_config as cfg

NET = cfg.NodeNetwork("ga-node0", "10.233.0.0/24", "10.96.0.0/16")


def test_network_addresses() -> None:
    assert NET.node_ip == "10.233.0.1"
    assert NET.prefix_len == 24


def test_containerd_config_is_private_and_restricted(tmp_path: Path) -> None:
    text = cfg.containerd_config(tmp_path, sandbox_image="localhost/p:1", cni_conf_dir=tmp_path / "net.d")
    assert "restrict_oom_score_adj = true" in text
    assert 'sandbox_image = "localhost/p:1"' in text
    assert "netns_mounts_under_state_dir = true" in text
    assert "SystemdCgroup = false" in text
    assert 'bin_dir = "/usr/lib/cni"' in text
    for key in ("root", "state"):
        assert f'{key} = "{tmp_path / key}"' in text
    assert f'address = "{tmp_path / "containerd.sock"}"' in text


def test_cni_has_no_default_route_and_no_masquerade(tmp_path: Path) -> None:
    conf = cfg.cni_conflist(NET, tmp_path)
    bridge = conf["plugins"][0]
    assert bridge["bridge"] == "ga-node0"
    assert bridge["ipMasq"] is False and bridge["isDefaultGateway"] is False
    assert bridge["ipam"]["routes"] == [{"dst": "10.96.0.0/16"}]
    assert bridge["ipam"]["dataDir"] == str(tmp_path)


def test_kubelet_config_cgroups_and_auth(tmp_path: Path) -> None:
    conf = cfg.kubelet_config(node_ip="10.233.0.1", port=1, healthz_port=2, cgroup_root="/a/b/node",
                              client_ca=tmp_path / "ca", tls_cert=tmp_path / "c", tls_key=tmp_path / "k",
                              runtime_socket=tmp_path / "s", resolv_conf=tmp_path / "r")
    assert (conf["cgroupDriver"], conf["cgroupRoot"], conf["cgroupsPerQOS"]) == ("cgroupfs", "/a/b/node", True)
    assert conf["enforceNodeAllocatable"] == [] and conf["failCgroupV1"] is False
    assert conf["authentication"]["anonymous"]["enabled"] is False
    assert conf["authorization"]["mode"] == "Webhook"
    assert conf["address"] == "10.233.0.1" and conf["readOnlyPort"] == 0
    assert conf["containerRuntimeEndpoint"] == f"unix://{tmp_path / 's'}"


def test_kube_proxy_leaves_localhost_and_sysctls(tmp_path: Path) -> None:
    conf = cfg.kube_proxy_config(kubeconfig=tmp_path / "k", cluster_cidr=NET.cidr, node_ip=NET.node_ip,
                                 healthz_port=1, metrics_port=2, hostname="n")
    assert conf["iptables"]["localhostNodePorts"] is False
    assert conf["conntrack"]["maxPerCore"] == 0
    assert conf["nodePortAddresses"] == ["10.233.0.1/32"]
