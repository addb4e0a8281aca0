"""Host side of the node tier (:mod:`devtools.node`): availability, cgroup facts, the state file, :func:`cleanup`.

Everything the node creates on the machine is recorded in ``<node dir>/state.json`` as it is made, so that
:func:`cleanup` can remove it after a normal stop and after a killed run alike (``python -m devtools.node down``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from devtools import certs
from devtools.cluster import ControlPlaneError, stop_pid

__all__ = ["CGROUP_FS", "NODE_BINARIES", "NodeError", "State", "cleanup", "http_ok", "https_ok", "iptables_chains",
           "load_pair", "memory_cgroup", "node_available", "node_binaries", "run", "v1_hierarchies", "write_pair"]

CGROUP_FS = Path("/sys/fs/cgroup")
REPO_ROOT = Path(__file__).resolve().parent.parent
#: Binary -> the script that builds it.
NODE_BINARIES = {"kubelet": "hack/envtest/build.sh node", "kube-proxy": "hack/envtest/build.sh node",
                 "kube-scheduler": "hack/envtest/build.sh node", "coredns": "hack/coredns/build.sh"}
HOST_TOOLS = ("containerd", "ctr", "runc", "ip", "iptables", "mount", "umount", "unshare")
#: Tables whose KUBE-* chains the kubelet and kube-proxy create (filter: KUBE-FIREWALL and canaries).
IPTABLES_TABLES = ("filter", "nat", "mangle")


class NodeError(ControlPlaneError):
    """The node could not start (the message says which part and shows its log), or cannot start here."""


# --------------------------------------------------------------------------------------------
# Availability and host facts


def memory_cgroup() -> str:
    """This process's v1 memory cgroup path (``/process_api/<id>`` here; ``/`` when not nested).

    Raises :class:`NodeError` when ``/proc/self/cgroup`` has no v1 memory line (a cgroup v2 only machine).
    """
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return path
    raise NodeError("no cgroup v1 memory hierarchy in /proc/self/cgroup (this node supports cgroup v1 only)")


def v1_hierarchies(*, with_unified: bool = False) -> list[Path]:
    """Mount points of the v1 hierarchies under /sys/fs/cgroup; ``with_unified`` adds the hybrid layout's v2
    ``unified`` mount (runc makes the containers' cgroups there too, so clean-up looks there as well)."""
    return sorted(p for p in CGROUP_FS.iterdir() if p.is_dir() and not p.is_symlink()
                  and (with_unified or p.name != "unified") and (p / "cgroup.procs").exists())


def run(argv: Sequence[str], *, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise NodeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    if not quiet and proc.returncode != 0:
        print(f"[node] {' '.join(argv)}: {proc.stderr.strip()}", file=sys.stderr)
    return proc


# --------------------------------------------------------------------------------------------
# State file: everything a later `down` needs


class State:
    """``state.json`` of a node folder: a dict written through (atomically) on every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        tmp.replace(self.path)

    def add(self, key: str, item: Any) -> None:
        self.set(key, [*self.data.get(key, []), item])

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


def _pid_runs(pid: int, needle: str) -> bool:
    try:
        return needle in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False


def _cgroup_dirs(state: State) -> list[Path]:
    return [h / rel.lstrip("/") for rel in reversed(state.get("cgroups", [])) for h in v1_hierarchies(with_unified=True)
            if (h / rel.lstrip("/")).exists()]


def iptables_chains(binary: str = "iptables") -> set[str]:
    """``TABLE/CHAIN`` of every KUBE-* chain now present (for :func:`cleanup`: only chains the node added go)."""
    found = set()
    for table in IPTABLES_TABLES:
        proc = run([binary, "-t", table, "-S"], check=False, quiet=True)
        found |= {f"{table}/{line.split()[1]}" for line in proc.stdout.splitlines()
                  if line.startswith("-N KUBE-")}
    return found


def _remove_chains(binary: str, chains: set[str]) -> list[str]:
    """Delete the rules that jump to ``chains`` (``TABLE/CHAIN``), then flush and delete the chains."""
    done = []
    for table in IPTABLES_TABLES:
        mine = {c.split("/", 1)[1] for c in chains if c.startswith(table + "/")}
        if not mine:
            continue
        rules = run([binary, "-t", table, "-S"], check=False, quiet=True).stdout.splitlines()
        for rule in rules:
            words = rule.split()
            if words[:1] == ["-A"] and words[1] not in mine and "-j" in words and words[words.index("-j") + 1] in mine:
                run([binary, "-t", table, "-D", *words[1:]], check=False, quiet=True)
        for chain in mine:
            run([binary, "-t", table, "-F", chain], check=False, quiet=True)
        for chain in mine:
            if run([binary, "-t", table, "-X", chain], check=False, quiet=True).returncode == 0:
                done.append(f"removed {binary} {table}/{chain}")
    return done


def cleanup(work_dir: Path, *, grace: float = 10.0) -> list[str]:
    """Remove everything a node in ``work_dir`` left, from its ``state.json``; return what was done (lines).

    Order (``shared/NODE.md``): the node's processes by recorded PID (scheduler, proxy, kubelet, containerd),
    leftover shims of its containerd socket, processes still in its cgroups, mounts under ``work_dir``, the
    bridge, its iptables chain, ``ip_forward`` restored, kube-proxy's rules, the cgroups (depth first).
    Idempotent; a missing state file means nothing to do.
    """
    if not (work_dir / "state.json").exists():
        return []
    state = State(work_dir / "state.json")
    done: list[str] = []
    for name, pid in reversed(list(state.get("pids", {}).items())):
        if _pid_runs(pid, name):
            stop_pid(pid, grace=grace)
            done.append(f"stopped {name} (pid {pid})")
    for name, pid in reversed(list(state.get("control_plane_pids", {}).items())):
        if _pid_runs(pid, name):
            stop_pid(pid, grace=grace)
            done.append(f"stopped {name} (pid {pid})")
    state.set("control_plane_pids", {})
    sock = state.get("containerd_socket")
    if sock:
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit() and _pid_runs(int(proc.name), f"-address {sock}"):
                stop_pid(int(proc.name), grace=2)
                done.append(f"stopped shim {proc.name}")
    killed: set[str] = set()
    for top in _cgroup_dirs(state):  # processes a killed run left in the node's cgroups (containers)
        for d in [top, *(p for p in top.rglob("*") if p.is_dir())]:
            with contextlib.suppress(OSError):
                for pid in set((d / "cgroup.procs").read_text().split()) - killed:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), 9)
                        killed.add(pid)
                        done.append(f"killed pid {pid} left in {d.relative_to(top)}")
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    root = str(work_dir.resolve())
    for target in reversed(mounts):
        target = target.replace("\\040", " ")
        if target == root or target.startswith(root + "/"):
            if run(["umount", "-l", target], check=False, quiet=True).returncode == 0:
                done.append(f"unmounted {target}")
    bridge = state.get("bridge")
    if bridge and Path(f"/sys/class/net/{bridge}").exists():
        run(["ip", "link", "delete", bridge], check=False)
        done.append(f"deleted bridge {bridge}")
    if state.get("forward_chain"):
        chain = state.get("forward_chain")
        while run(["iptables", "-D", "FORWARD", "-j", chain], check=False, quiet=True).returncode == 0:
            pass
        run(["iptables", "-F", chain], check=False, quiet=True)
        if run(["iptables", "-X", chain], check=False, quiet=True).returncode == 0:
            done.append(f"removed iptables chain {chain}")
    if state.get("ip_forward") is not None:
        Path("/proc/sys/net/ipv4/ip_forward").write_text(str(state.get("ip_forward")))
        done.append(f"net.ipv4.ip_forward restored to {state.get('ip_forward')}")
        state.set("ip_forward", None)
    proxy = state.get("kube_proxy_cleanup")
    if proxy and Path(proxy[0]).exists():
        run(proxy, check=False, quiet=True)
        done.append("kube-proxy --cleanup")
        state.set("kube_proxy_cleanup", None)
    before = state.get("iptables_before")
    if before is not None:  # the kubelet's and kube-proxy's KUBE-* chains (firewall, canaries, hint)
        for binary in ("iptables", "ip6tables"):
            done += _remove_chains(binary, iptables_chains(binary) - set(before.get(binary, [])))
    for top in _cgroup_dirs(state):
        for d in sorted([p for p in top.rglob("*") if p.is_dir()] + [top], key=lambda p: -len(p.parts)):
            for _ in range(20):  # a cgroup whose last process was just killed empties a moment later
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
        done.append(f"removed cgroup {top}" if not top.exists() else f"could not remove cgroup {top}")
    for rel in reversed(state.get("cgroup_parents", [])):  # parents made in hierarchies that lacked them
        for h in v1_hierarchies():
            with contextlib.suppress(OSError):
                (h / rel.lstrip("/")).rmdir()
    state.set("pids", {})
    return done


def node_binaries(bin_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """kubelet, kube-proxy, kube-scheduler and coredns next to the control plane's binaries (``make node``).

    Raises :class:`NodeError` naming the missing binary and the script that builds it."""
    dirs = [Path(d) for d in (bin_dir, os.environ.get("ENVTEST_BIN_DIR")) if d] + [REPO_ROOT / ".cache" / "bin"]
    found = {}
    for name, script in NODE_BINARIES.items():
        hit = next((d / name for d in dirs if os.access(d / name, os.X_OK)), None)
        if hit is None:
            raise NodeError(f"{name} not found in {', '.join(map(str, dirs))}: run `bash {script}` (make node)")
        found[name] = hit
    return found


def node_available(bin_dir: str | os.PathLike[str] | None = None) -> tuple[bool, str]:
    """Whether a node can start on this machine: ``(True, "")`` or ``(False, one-line reason)``.

    Checks root, the node binaries, the host tools (containerd, runc, ip, iptables...), the CNI plugins, the
    image tools, and that a cgroup can be made under this process's memory cgroup in every v1 hierarchy.
    Cheap (no process is started beyond ``which``); it does not build anything.
    """
    if os.geteuid() != 0:
        return False, "the node needs root (containerd, runc, cgroups, bridges)"
    try:
        node_binaries(bin_dir)
    except NodeError as exc:
        return False, str(exc)
    missing = [t for t in (*HOST_TOOLS, "mmdebstrap", "umoci") if shutil.which(t) is None]
    if missing:
        return False, f"missing host tools: {', '.join(missing)} (make debs)"
    if not Path("/usr/lib/cni/bridge").exists():
        return False, "no CNI plugins in /usr/lib/cni (Debian containernetworking-plugins; make debs)"
    try:
        base = memory_cgroup()
        probe = f"{base.rstrip('/')}/ga-node-probe-{os.getpid()}"
        made = []
        try:
            for h in v1_hierarchies():
                d = h / probe.lstrip("/")
                d.mkdir(parents=True)
                made.append(d)
        finally:
            for d in reversed(made):
                with contextlib.suppress(OSError):
                    d.rmdir()
            for h in v1_hierarchies():  # parents mkdir made in hierarchies where the base did not exist
                _remove_empty_parents(h / probe.lstrip("/"), h)
    except (OSError, NodeError) as exc:
        return False, f"cannot create node cgroups under this process's memory cgroup: {exc}"
    return True, ""


def _remove_empty_parents(path: Path, stop: Path) -> None:
    for parent in path.parents:
        if parent == stop or stop not in parent.parents:
            return
        try:
            parent.rmdir()
        except OSError:
            return


def load_pair(stem: Path) -> certs.KeyPair:
    """The CA the control plane wrote as ``<stem>.crt`` / ``<stem>.key`` (PEM), to sign the node's certificates."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(stem.with_suffix(".key").read_bytes(), password=None)
    return certs.KeyPair(key=key, cert=x509.load_pem_x509_certificate(stem.with_suffix(".crt").read_bytes()))  # type: ignore[arg-type]


def write_pair(stem: Path, pair: certs.KeyPair) -> None:
    """Write ``<stem>.crt`` and ``<stem>.key`` (mode 0600)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".crt").write_bytes(pair.cert_pem)
    key = stem.with_suffix(".key")
    key.write_bytes(pair.key_pem)
    key.chmod(0o600)


def https_ok(url: str) -> bool:
    """GET ``url`` (a component's self-signed loopback endpoint, not verified); True on 200. Raises OSError."""
    import ssl
    import urllib.request

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the component's self-signed serving certificate on loopback
    with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
        return resp.status == 200


def http_ok(url: str) -> bool:
    """GET ``url``; True on 200. Raises OSError when unreachable."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.status == 200
