"""Shared command-line handling of the benchmarks: ``--quick`` shrinks every size so CI can run them all.

``make bench ARGS=--quick`` passes ``--quick`` to every ``bench_*.py``; each benchmark names its small sizes once,
here, through :func:`parse`.  A size given explicitly on the command line wins over the quick default.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None, quick: dict[str, Any]) -> argparse.Namespace:
    """Add ``--quick`` to ``parser`` and parse ``argv``.

    ``quick`` maps argument destinations (``"players"``) to the value used with ``--quick``; it replaces an argument
    only where it was left at its default.  Raises ``KeyError`` when ``quick`` names an argument the parser lacks, so
    a renamed option cannot silently leave a quick run at full size.
    """
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, for CI (make bench ARGS=--quick): " +
                             ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in quick.items()))
    args = parser.parse_args(argv)
    for dest, value in quick.items():
        default = parser.get_default(dest)
        if dest not in vars(args):
            raise KeyError(f"--quick names an unknown argument {dest!r}")
        if args.quick and getattr(args, dest) == default:
            setattr(args, dest, value)
    return args
