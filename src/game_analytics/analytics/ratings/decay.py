"""Inactivity growth of the rating deviation (RD decay of certainty).

Source: Mark E. Glickman, "The Glicko system" (Boston University, 1995), step 1:
``RD' = min(sqrt(RD^2 + c^2 * t), RD_max)`` where ``t`` is the number of rating periods (or any
time unit) since the player's last game and ``c`` controls how fast certainty is lost.
Glickman suggests choosing ``c`` so that a typical player's RD returns to ``RD_max`` (350) after a
chosen time, see :func:`c_for_return_time`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def inactivity_rd(rd: ArrayLike, elapsed: ArrayLike, c: float, rd_max: float = 350.0) -> NDArray[np.float64]:
    """Rating deviation after ``elapsed`` idle time units.

    Args:
        rd: array of current rating deviations (Glicko scale), any shape.
        elapsed: idle time in periods (broadcastable against ``rd``); must be >= 0.
        c: RD growth per sqrt(time unit); must be >= 0.
        rd_max: cap (the RD of an unrated player).

    Returns:
        float array of the broadcast shape.

    Raises:
        ValueError: if ``c`` or any ``elapsed`` is negative.
    """
    if c < 0:
        raise ValueError("c must be >= 0")
    t = np.asarray(elapsed, dtype=np.float64)
    if np.any(t < 0):
        raise ValueError("elapsed must be >= 0")
    r = np.asarray(rd, dtype=np.float64)
    return np.minimum(np.sqrt(r * r + c * c * t), rd_max)


def c_for_return_time(periods: float, typical_rd: float = 50.0, rd_max: float = 350.0) -> float:
    """The ``c`` for which a player at ``typical_rd`` is back at ``rd_max`` after ``periods`` idle periods."""
    if periods <= 0 or not 0 < typical_rd < rd_max:
        raise ValueError("periods must be > 0 and 0 < typical_rd < rd_max")
    return float(np.sqrt((rd_max**2 - typical_rd**2) / periods))
