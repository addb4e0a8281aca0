"""The game-analytics command line: one entry point for the operator tools, the workers and one-off runs.

Subcommands import their modules lazily so that ``game-analytics --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .workers import WORKERS as SETTINGS_WORKERS  # not .settings: pydantic-settings is slow to import


def _crds(args: argparse.Namespace) -> int:
    from .api.crdgen import main

    return main(["--output", args.output, *(["--chart", args.chart] if args.chart else [])])


def _delegate(target: str) -> Callable[[argparse.Namespace], int]:
    """A subcommand that hands its remaining arguments to ``module:function(argv)`` (default function ``main``)."""
    module, _, func = target.partition(":")

    def run(args: argparse.Namespace) -> int:
        return int(getattr(importlib.import_module(module), func or "main")(args.rest) or 0)

    return run


#: name -> (module[:function], help) for subcommands implemented elsewhere; each parses its own argv.
DELEGATED: dict[str, tuple[str, str]] = {
    "data": ("game_analytics.data.__main__", "fetch the real data sets into the cache"),
    "load": ("game_analytics.workers.load", "replay the real data sets as events (stream or bulk COPY)"),
    "rate": ("game_analytics.workers.ranking:rate_main", "rate a match CSV and print the leaderboard"),
    "predict": ("game_analytics.predict", "win/draw/loss probability and match quality of a pairing from a RankingJob"),
    "fit": ("game_analytics.fit", "fit a BG/NBD or Gamma-Gamma model to a summary CSV: fit bgnbd|gammagamma FILE"),
    "report": ("game_analytics.workers.report_cli:cli_main", "run a report once: report run --type ... --format ..."),
    "audit": ("game_analytics.audit:main", "audit trail tools: audit verify|head|search|export"),
    "interventions": ("game_analytics.interventions.cli", "work the intervention queue: list, ack, resolve, ..."),
    "migrate": ("game_analytics.storage.migrate:main", "upgrade the database schema to this version's head"),
    "partitions": ("game_analytics.storage.partitions", "time partitions of events: partitions maintain|list"),
    "mongo": ("game_analytics.workers.mongo_bootstrap:main", "sharded MongoDB tools: mongo bootstrap"),
    "render": ("game_analytics.controller.offline", "print the children the operator would create for FILE (no cluster)"),
    "alerts": ("game_analytics.alerting.cli", "AlertRule tools: alerts backtest -f FILE --from T1 --to T2"),
    "operator": ("game_analytics.controller.__main__",
                 "start the operator (kopf run options: --standalone|--peering=NAME, --all-namespaces|--namespace=NS)"),
}

#: worker name -> module whose ``main(argv)`` runs it (``game-analytics worker NAME ...``).
WORKERS = SETTINGS_WORKERS


def _worker(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"game_analytics.workers.{args.name}")
    return int(module.main(args.rest) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="game-analytics", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    crds = sub.add_parser("crds", help="write the CRDs generated from the API models")
    crds.add_argument("--output", default="crds", help="folder for the CRD YAML files (default: crds)")
    crds.add_argument("--chart", help="also write them into this Helm chart's crds/ folder")
    crds.set_defaults(func=_crds)

    worker = sub.add_parser("worker", help="run a worker: " + ", ".join(WORKERS),
                            description="Run a worker. Its flags (game-analytics worker NAME --help) are the same "
                                        "settings as its GAME_ANALYTICS_* variables (docs/cli.md).")  # fmt: skip
    worker.add_argument("name", choices=WORKERS, help="the worker to run")
    worker.add_argument("rest", nargs=argparse.REMAINDER, metavar="FLAGS",
                        help="the worker's own flags; see game-analytics worker NAME --help")
    worker.set_defaults(func=_worker)

    for name, (module, help_) in DELEGATED.items():
        p = sub.add_parser(name, help=help_, add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(func=_delegate(module))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Delegated commands parse their own flags (argparse.REMAINDER would swallow a leading --help).
    if argv and argv[0] in DELEGATED:
        return _delegate(DELEGATED[argv[0]][0])(argparse.Namespace(rest=argv[1:]))
    if len(argv) >= 2 and argv[0] == "worker" and argv[1] in WORKERS:
        return _worker(argparse.Namespace(name=argv[1], rest=argv[2:]))
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
