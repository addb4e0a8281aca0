"""``game-analytics operator [KOPF RUN OPTIONS]`` (also ``python -m game_analytics.controller``): start the operator.

This is what the Helm chart, the image and the local harness run. It is ``kopf run -m
game_analytics.controller.handlers`` through Kopf's own command line (:mod:`kopf.cli`), so every ``kopf run`` option
and ``KOPF_*`` variable works unchanged: ``--standalone`` or ``--peering=NAME``, ``--namespace=NS`` (repeatable) or
``--all-namespaces``, ``--liveness=http://HOST:PORT/healthz``, ``--verbose``/``--debug``, ``--log-format``.
The handlers' own settings come from ``GAME_ANALYTICS_*`` variables (see :mod:`game_analytics.controller.handlers`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

#: the module whose import registers every handler with Kopf
HANDLERS = "game_analytics.controller.handlers"


def argv(options: Sequence[str]) -> list[str]:
    """The ``kopf`` arguments for ``options`` (the ones given after ``python -m game_analytics.controller``)."""
    return ["run", "-m", HANDLERS, *options]


def main(options: Sequence[str] | None = None) -> int:
    """Run the operator until SIGTERM/SIGINT; returns the exit code (click's ``SystemExit`` code, 0 normally).

    Raises nothing itself: Kopf's usage errors (for example ``--namespace`` together with ``--all-namespaces``) end
    in exit code 2 with click's message on stderr.
    """
    from kopf.cli import main as kopf_main

    try:
        kopf_main.main(args=argv(sys.argv[1:] if options is None else options),
                       prog_name="game-analytics operator")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
