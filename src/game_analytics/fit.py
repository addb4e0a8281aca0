"""``game-analytics fit bgnbd|gammagamma FILE``: fit a customer-base model to a summary CSV and print it.

Input columns (the summary CSVs of the CDNOW data set, see ``../shared/DATA.md``):

* ``bgnbd``: ``x, t_x, T`` or ``frequency, recency, T`` (repeat transactions, time of the last one, length of
  observation, one time unit), e.g. ``cdnow_customers_summary.csv``;
* ``gammagamma``: ``x, zbar`` or ``frequency, monetary_value`` (repeat transactions and their mean value); rows with
  ``x == 0`` are left out, e.g. ``cdnow_customers_summary_with_transactions.csv`` (946 of 2,357 customers).

Output: the fitted parameters and the log-likelihood under their published names (``r, alpha, a, b`` /
``p, q, v``, ``log_likelihood``, plus ``customers``), as a table or JSON. Exit 0 fitted, 1 the fit failed,
2 bad arguments or an unreadable file.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from typing import Any

from game_analytics.console import EXIT_FAILED, EXIT_OK, EXIT_USAGE, ArgumentParser, fail, render_table

__all__ = ["fit_file", "main"]

_COLUMNS = {
    "bgnbd": (("x", "t_x", "T"), ("frequency", "recency", "T")),
    "gammagamma": (("x", "zbar"), ("frequency", "monetary_value")),
}


def fit_file(model: str, path: str) -> dict[str, Any]:
    """Fit ``model`` ("bgnbd" or "gammagamma") to the CSV at ``path``; returns the published-name dict.

    Raises:
        OSError: unreadable file. KeyError: none of the accepted column sets is present.
        ValueError: invalid data or a failed fit.
    """
    import pandas as pd

    frame = pd.read_csv(path)
    for names in _COLUMNS[model]:
        if set(names) <= set(frame.columns):
            cols = [frame[n].to_numpy(dtype=float) for n in names]
            break
    else:
        raise KeyError(f"{path}: needs columns {' or '.join(', '.join(c) for c in _COLUMNS[model])}")
    started = time.perf_counter()
    if model == "bgnbd":
        from game_analytics.analytics.churn import bgnbd

        b = bgnbd.fit(*cols)
        out: dict[str, Any] = {"r": b.r, "alpha": b.alpha, "a": b.a, "b": b.b, "log_likelihood": b.log_likelihood,
                               "customers": len(cols[0])}  # fmt: skip
    else:
        from game_analytics.analytics.churn import gammagamma

        x, zbar = cols
        keep = x > 0
        g = gammagamma.fit(x[keep], zbar[keep])
        out = {"p": g.p, "q": g.q, "v": g.v, "log_likelihood": g.log_likelihood, "customers": int(keep.sum())}
    out["seconds"] = round(time.perf_counter() - started, 3)
    return out


def build_parser() -> argparse.ArgumentParser:
    """The ``fit`` parser: ``MODEL FILE [--format table|json]``."""
    p = ArgumentParser(prog="game-analytics fit", description="Fit a BG/NBD or Gamma-Gamma model to a summary CSV.")
    p.add_argument("model", choices=sorted(_COLUMNS), help="bgnbd (transactions) or gammagamma (spend)")
    p.add_argument("file", help="summary CSV (see the module docstring for the columns)")
    p.add_argument("--output", "--format", dest="format", choices=["table", "json"], default="table",
                   help="table (default) or json")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``game-analytics fit``; returns the exit code."""
    args = build_parser().parse_args(argv)
    prog = f"game-analytics fit {args.model}"
    try:
        result = fit_file(args.model, args.file)
    except (OSError, KeyError, UnicodeDecodeError) as exc:
        return fail(prog, str(exc).strip("'\""), EXIT_USAGE)
    except ValueError as exc:
        return fail(prog, str(exc), EXIT_FAILED)
    if args.format == "json":
        print(json.dumps(result, indent=2))
    else:
        rows = [{"parameter": k, "value": f"{v:.6g}" if isinstance(v, float) else v} for k, v in result.items()]
        print(render_table(rows, ["parameter", "value"]))
    return EXIT_OK
