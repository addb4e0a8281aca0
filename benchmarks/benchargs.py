"""Shared command-line handling of the benchmarks: ``--quick`` shrinks every size so CI can run them all.

``make bench ARGS=--quick`` passes ``--quick`` to every ``bench_*.py``; each benchmark names its small sizes once,
here, through :func:`parse`.  A size given explicitly on the command line wins over the quick default.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None, quick: dict[str, Any],
          scale: dict[str, Any] | None = None) -> argparse.Namespace:  # fmt: skip
    """Add ``--quick`` and ``--scale`` to ``parser`` and parse ``argv``.

    ``--scale`` (``make bench ARGS=--scale``) is the scale run: a benchmark passing ``scale`` (its full sizes,
    applied like ``quick``) runs at them; every other benchmark prints that it is skipped and exits 0.

    ``quick`` maps argument destinations (``"players"``) to the value used with ``--quick``; it replaces an argument
    only where it was left at its default.  Raises ``KeyError`` when ``quick`` names an argument the parser lacks, so
    a renamed option cannot silently leave a quick run at full size.
    """
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, for CI (make bench ARGS=--quick): " +
                             ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in quick.items()))
    parser.add_argument("--scale", action="store_true", help="the scale run (bench_scale.py only; others skip)")
    args = parser.parse_args(argv)
    if args.scale:
        if scale is None:
            print(f"skipped with --scale ({parser.prog}: the scale run is bench_scale.py)")
            raise SystemExit(0)
        quick = {}
        for dest, value in scale.items():
            if getattr(args, dest) == parser.get_default(dest):
                setattr(args, dest, value)
    for dest, value in quick.items():
        default = parser.get_default(dest)
        if dest not in vars(args):
            raise KeyError(f"--quick names an unknown argument {dest!r}")
        if args.quick and getattr(args, dest) == default:
            setattr(args, dest, value)
    return args
