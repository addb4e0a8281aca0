"""OpenSkill batch rating through the library."""

from __future__ import annotations

import numpy as np
import pytest
from openskill.models import PlackettLuce

from game_analytics.analytics.ratings.openskill_rating import OpenSkillRater


def test_same_result_as_bare_library_including_draws() -> None:
    rng = np.random.default_rng(5)
    a = rng.integers(0, 8, 60)
    b = (a + rng.integers(1, 8, 60)) % 8
    s = rng.choice([0.0, 0.5, 1.0], 60)
    rater = OpenSkillRater(8)
    rater.rate_matches(a, b, s)

    model = PlackettLuce()
    players = [model.rating() for _ in range(8)]
    for i, j, sc in zip(a, b, s, strict=True):
        ranks = [0, 0] if sc == 0.5 else ([0, 1] if sc == 1.0 else [1, 0])
        [[players[i]], [players[j]]] = model.rate([[players[i]], [players[j]]], ranks=ranks)
    np.testing.assert_allclose(rater.mu, [p.mu for p in players])
    np.testing.assert_allclose(rater.sigma, [p.sigma for p in players])


def test_draw_keeps_equal_players_equal_and_reduces_uncertainty() -> None:
    rater = OpenSkillRater(2)
    before = rater.sigma.copy()
    rater.rate_matches([0], [1], [0.5])
    assert rater.mu[0] == pytest.approx(rater.mu[1])
    assert np.all(rater.sigma < before)


def test_stronger_player_predicted_to_win() -> None:
    rater = OpenSkillRater(3)
    rater.rate_matches([0] * 10, [1] * 10, [1.0] * 10)
    win, draw = rater.predict([0, 2], [1, 1])
    assert win[0] > 0.5 and win[1] > 0.5
    assert np.all((draw > 0) & (draw < 1))
    assert rater.ordinal[0] > rater.ordinal[1]


@pytest.mark.parametrize(("a", "b", "s"), [([0], [0], [1.0]), ([0], [3], [1.0]), ([0], [1], [0.7])])
def test_rejects_invalid(a: list[int], b: list[int], s: list[float]) -> None:
    with pytest.raises(ValueError):
        OpenSkillRater(2).rate_matches(a, b, s)
