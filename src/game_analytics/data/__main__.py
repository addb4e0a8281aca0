"""Fetch the real data sets into the cache: ``python -m game_analytics.data [--cache-dir DIR]``.

Exit status 0 when every file is present with its pinned sha256, 1 on a download or checksum error.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys

from game_analytics.data.datasets import DataIntegrityError, default_cache_dir, fetch_all


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run ``fetch_all`` and print one line per cached file; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m game_analytics.data", description=__doc__)
    parser.add_argument(
        "--cache-dir",
        default=None,
        help=f"target folder (default: $GAME_ANALYTICS_DATA_DIR or {default_cache_dir()})",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[data] %(message)s")
    try:
        paths = fetch_all(args.cache_dir)
    except (subprocess.CalledProcessError, DataIntegrityError) as exc:
        print(f"[data] error: {exc}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        print(f"[data] ok {name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
