"""The command line of :mod:`devtools.cluster` (``python -m devtools.cluster up|down``, ``make cluster``).

``up [--dir DIR] [--detach] [--bin-dir DIR] [--node]`` starts a control plane (and with ``--node`` one real node,
:mod:`devtools.node`) and prints the ``KUBECONFIG`` export line; ``down --dir DIR`` stops a detached one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from .cluster import LocalControlPlane
from .cluster_base import ControlPlaneError, _cmdline, _pid_alive, find_binaries, stop_pid

__all__ = ["main"]

#: What ``--help`` says the command does (the first line of :mod:`devtools.cluster`'s docstring).
DESCRIPTION = "A real Kubernetes control plane on loopback, envtest style: etcd + kube-apiserver + kube-controller-manager."


def _down(work_dir: Path) -> int:
    if (work_dir / "node" / "state.json").exists():  # a node (up --node) goes first: its pods, then the node
        from devtools.node import cleanup

        for line in cleanup(work_dir / "node"):
            print(f"node: {line}", file=sys.stderr)
    pid_file = work_dir / "pids.json"
    if not pid_file.exists():
        print(f"no {pid_file}: nothing to stop", file=sys.stderr)
        return 0
    pids: dict[str, int] = json.loads(pid_file.read_text())["pids"]
    for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
        pid = pids.get(name)
        # Guard against a recycled PID: only signal a process that still runs that binary.
        if pid and _pid_alive(pid) and name in _cmdline(pid):
            print(f"stopping {name} (pid {pid})", file=sys.stderr)
            stop_pid(pid)
    pid_file.unlink()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``up [--dir DIR] [--detach] [--bin-dir DIR]`` / ``down --dir DIR``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m devtools.cluster", description=DESCRIPTION
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a control plane and print the KUBECONFIG export line")
    up.add_argument("--dir", type=Path, help="work directory (default: a temporary one, removed on exit)")
    up.add_argument("--detach", action="store_true", help="leave it running, write DIR/pids.json and exit")
    up.add_argument("--bin-dir", help="directory holding the binaries (default: see find_binaries)")
    up.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for readiness")
    up.add_argument("--node", action="store_true",
                    help="also run one real node (devtools.node: containerd, kubelet, scheduler, kube-proxy) "
                    "with the locally built images; the control plane then serves on the node's bridge IP")
    down = sub.add_parser("down", help="stop a detached control plane")
    down.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)

    if args.command == "down":
        return _down(args.dir)
    if args.detach and not args.dir:
        parser.error("--detach needs --dir")
    if args.dir and (args.dir / "pids.json").exists():
        parser.error(f"{args.dir / 'pids.json'} exists: run `down --dir {args.dir}` first")
    work_dir = args.dir.resolve() if args.dir else None
    node_cluster = None
    try:
        started = time.monotonic()
        if args.node:
            from devtools.node import NodeCluster

            node_cluster = NodeCluster(work_dir or Path(tempfile.mkdtemp(prefix="ga-node-cluster-")),
                                       binaries=find_binaries(args.bin_dir))
            node_cluster.start(timeout=args.timeout)
            assert node_cluster.control_plane is not None
            cp = node_cluster.control_plane
        else:
            cp = LocalControlPlane(work_dir, find_binaries(args.bin_dir))
            cp.start(timeout=args.timeout)
    except ControlPlaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"# control plane ready in {time.monotonic() - started:.1f}s at {cp.server}; logs in {cp.logs_dir}",
        file=sys.stderr,
    )
    if node_cluster is not None:
        phases = ", ".join(f"{k} {v:.1f}s" for k, v in node_cluster.timings.items())
        print(f"# node {node_cluster.node.name if node_cluster.node else ''} Ready ({phases})", file=sys.stderr)
    print(f"export KUBECONFIG={cp.kubeconfig}", flush=True)
    if args.detach:
        print(
            f"# detached; stop with: python -m devtools.cluster down --dir {cp.work_dir}",
            file=sys.stderr,
        )
        cp.detach()
        return 0
    stop = {"flag": False}

    def on_signal(signum: int, frame: object) -> None:
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print("# running; Ctrl-C to stop", file=sys.stderr)
    try:
        while not stop["flag"]:
            dead = [p.name for p in cp._procs if p.popen.poll() is not None]
            if dead:
                print(f"error: {', '.join(dead)} exited; see {cp.logs_dir}", file=sys.stderr)
                return 1
            time.sleep(0.5)
    finally:
        if node_cluster is not None:
            node_cluster.stop()
            if work_dir is None:
                shutil.rmtree(node_cluster.work_dir, ignore_errors=True)
        else:
            cp.stop()
    return 0
