"""Skill rating systems (Glicko-2, Elo, OpenSkill, TrueSkill) and outcome prediction."""

from game_analytics.analytics.ratings.decay import inactivity_rd
from game_analytics.analytics.ratings.elo import EloConfig, elo_expected, rate_elo
from game_analytics.analytics.ratings.glicko2 import (
    GLICKO2_SCALE,
    Glicko2Config,
    Glicko2Ratings,
    PreMatchRatings,
    glicko2_expected,
    rate_period,
    rate_periods,
)

__all__ = [
    "GLICKO2_SCALE",
    "EloConfig",
    "Glicko2Config",
    "Glicko2Ratings",
    "PreMatchRatings",
    "elo_expected",
    "glicko2_expected",
    "inactivity_rd",
    "rate_elo",
    "rate_period",
    "rate_periods",
]
