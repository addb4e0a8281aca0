"""``make demo``: the whole stack on real data on one machine, end to end, with progress at each step.

By default on a real node (:mod:`devtools.demo_node`): the chart's operator from ``helm install`` runs as a pod, and
the workers and jobs are the pods it creates. Where a node cannot start (no root, tools missing, no cgroup access),
the demo says why in one line and runs the process mode (:mod:`devtools.demo_processes`: the operator and the
workers as local processes); ``--processes`` forces that mode. Both replay the real data through the event stream,
rate the Bundesliga, deliver a report by webhook and email, and page on an injected sudden wealth jump (the shared
steps are in :mod:`devtools.demo_steps`). Then everything is stopped (``--keep`` leaves it running; ``--down``
cleans up after a killed demo).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from . import REPO_ROOT
from .demo_steps import DemoBase, DemoError, console, local_overlay

__all__ = ["DemoError", "choose_mode", "down", "local_overlay", "main"]


def _running_demo(workdir: Path) -> dict[str, int]:
    state = workdir / "state.json"
    if not state.exists():
        return {}
    pids = json.loads(state.read_text()).get("pids", {})
    alive = {}
    for name, pid in pids.items():
        try:
            os.kill(pid, 0)
            alive[name] = pid
        except ProcessLookupError:
            pass
    return alive


def down(workdir: Path) -> int:
    """Stop, by the PIDs it recorded, whatever a demo that was killed left running; clean up its node (mounts,
    network namespaces, bridge, containers, cgroups) from the node's own state."""
    for name, pid in _running_demo(workdir).items():
        try:
            os.kill(pid, signal.SIGTERM)
            console.print(f"stopped {name} (pid {pid})")
        except ProcessLookupError:
            pass
    node_dir = workdir / "cluster" / "node"
    if (node_dir / "state.json").exists():
        from .node_host import cleanup

        for line in cleanup(node_dir):
            console.print(line)
    (workdir / "state.json").unlink(missing_ok=True)
    return 0


def choose_mode(processes: bool) -> tuple[str, str]:
    """``("processes", "")`` when forced, else ``("node", "")``, or ``("processes", reason)`` when a quick check
    already shows that no node can start here (not root). The full check runs as the node demo's first step."""
    if processes:
        return "processes", ""
    if os.geteuid() != 0:
        return "processes", "the node needs root (containerd, runc, cgroups, bridges)"
    return "node", ""


def _fresh(workdir: Path) -> None:
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / "logs").mkdir(parents=True)


def _new_demo(mode: str, workdir: Path) -> DemoBase:
    if mode == "node":
        from .demo_node import NodeDemo

        return NodeDemo(workdir)
    from .demo_processes import ProcessDemo

    return ProcessDemo(workdir)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; 0 when every step passed, 1 on a failure (with the reason), 130 on Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m devtools.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--processes", action="store_true",
                        help="run the operator and the workers as local processes (no node)")
    parser.add_argument("--keep", action="store_true",
                        help="leave everything running for exploring, until Ctrl-C")
    parser.add_argument("--down", action="store_true", help="stop what a crashed demo left running")
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / "var" / "demo", help="where state and logs go")
    parser.add_argument("--timeout", type=float, default=900, help="overall time limit in seconds")
    args = parser.parse_args(argv)
    if args.down:
        return down(args.workdir)
    if running := _running_demo(args.workdir):
        console.print(f"[red]A demo is already running ({', '.join(f'{k} pid {v}' for k, v in running.items())}).[/] "
                      "Stop it (Ctrl-C where it runs), or clean up after a killed one with `make demo ARGS=--down`.")
        return 1
    started = time.monotonic()
    mode, reason = choose_mode(args.processes)
    if reason:
        console.print(f"[yellow]node: cannot start here: {reason}; running the process mode instead[/]")
    _fresh(args.workdir)
    demo = _new_demo(mode, args.workdir)
    console.print(f"[bold]make demo: {'on a node (pods)' if mode == 'node' else 'processes (no node)'}[/]")

    def out_of_time(*_: object) -> None:
        raise DemoError(f"the demo exceeded its time limit of {args.timeout:.0f}s (--timeout)")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(int(args.timeout))
    try:
        try:
            demo.run()
        except Exception as exc:
            from .demo_node import NodeUnavailable

            if not isinstance(exc, NodeUnavailable):
                raise
            console.print(f"[yellow]node: cannot start here: {exc}; running the process mode instead[/]")
            demo.stack.close()
            _fresh(args.workdir)
            demo = _new_demo("processes", args.workdir)
            demo.run()
        signal.alarm(0)
        console.print(f"[bold green]Demo finished in {time.monotonic() - started:.0f}s[/] "
                      f"({'node' if demo.mode == 'node' else 'processes'}).")
        if args.keep:
            console.print("Everything is still running for you to explore. Press Ctrl-C to stop it.")
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass
        return 0
    except Exception as exc:  # every failure ends in a clear message and a full clean-up
        what = "" if isinstance(exc, DemoError) else f"{type(exc).__name__}: "
        console.print(f"[bold red]Demo failed:[/] {what}{exc}")
        if demo.mode == "node" and getattr(demo, "kubeconfig", None):
            try:
                demo.pods_summary()  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001 - the cluster may be gone
                pass
        console.print(f"Logs: {demo.logs}")
        return 1
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted.[/]")
        return 130
    finally:
        signal.alarm(0)
        console.print("Stopping everything the demo started ...")
        demo.stack.close()


if __name__ == "__main__":
    sys.exit(main())
