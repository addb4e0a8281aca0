"""The operator process stays small: its handlers do not import the analytics stack (pandas, scikit-learn, SciPy).

The in-operator backtest (controller/alertrule/backtests.py) imports the replay, and with it the detectors and their
models, only inside the backtest thread when a backtest runs. Importing them at start-up cost 227 MiB RSS against
99 MiB (docs/scaling.md's operator memory goal).
"""

import subprocess
import sys

HEAVY = ("pandas", "sklearn", "scipy", "statsmodels", "matplotlib")


def test_handlers_import_no_analytics_stack():
    probe = ("import sys, game_analytics.controller.handlers; "
             f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"the operator imports {out} at start-up"
