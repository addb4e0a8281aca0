"""Win/draw/loss model: unit checks and the held-out Bundesliga evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from game_analytics.analytics.ratings.prediction import (
    OrderedLogit,
    evaluate_holdout,
    fit_ordered_logit,
    glicko2_match_features,
    match_quality,
    multiclass_brier,
    multiclass_log_loss,
    outcome_class,
    predict_pairing,
)


def test_outcome_class() -> None:
    np.testing.assert_array_equal(outcome_class([0, 1, 2], [1, 1, 0]), [0, 1, 2])


def test_probabilities_sum_to_one_and_are_symmetric_on_neutral_ground() -> None:
    model = OrderedLogit(beta=1.2, gamma=0.4, cut=0.6)
    p = model.predict_proba(np.linspace(-3, 3, 13))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert np.all(p > 0)
    neutral = model.predict_proba(np.array([0.7, -0.7]), home=0.0)
    np.testing.assert_allclose(neutral[0], neutral[1][::-1])
    assert np.all(np.diff(p[:, 2]) > 0)  # home win more likely as the home side gets stronger


def test_fit_recovers_simulated_parameters() -> None:
    rng = np.random.default_rng(11)
    truth = OrderedLogit(beta=0.9, gamma=0.35, cut=0.55)
    x = rng.normal(0, 1, 20000)
    p = truth.predict_proba(x)
    y = (rng.random(x.size)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    fit = fit_ordered_logit(x, y)
    assert fit.beta == pytest.approx(truth.beta, abs=0.05)
    assert fit.gamma == pytest.approx(truth.gamma, abs=0.05)
    assert fit.cut == pytest.approx(truth.cut, abs=0.05)


def test_metrics_and_quality_by_hand() -> None:
    p = np.array([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]])
    y = np.array([2, 1])
    assert multiclass_log_loss(y, p) == pytest.approx(-(np.log(0.5) + np.log(0.2)) / 2)
    assert multiclass_brier(y, p) == pytest.approx(((0.04 + 0.09 + 0.25) + (0.36 + 0.64 + 0.04)) / 2)
    assert match_quality([1 / 3, 1 / 3, 1 / 3]) == pytest.approx(1.0)
    assert match_quality([0.0, 0.0, 1.0]) < 1e-6
    assert match_quality([0.3, 0.3, 0.4]) > match_quality([0.1, 0.2, 0.7])


def test_bundesliga_holdout_beats_home_advantage_baseline(bundesliga: pd.DataFrame) -> None:
    """Train 1963-1999, test 2000-2008 (seasons held out); one Glicko-2 period per round."""
    features, teams, _ = glicko2_match_features(bundesliga)
    assert len(teams) == 52
    report = evaluate_holdout(features, (1963, 1999), (2000, 2008))
    assert report.n_train + report.n_test == len(bundesliga)
    assert report.baseline[2] > report.baseline[0]  # home wins more frequent than away wins
    assert report.model.gamma > 0  # fitted home advantage
    assert report.model.beta > 0
    assert report.log_loss < report.baseline_log_loss
    assert report.brier < report.baseline_brier


def test_predict_pairing_orders_by_rating_gap() -> None:
    model = OrderedLogit(beta=1.0, gamma=0.3, cut=0.6)
    proba, quality = predict_pairing(
        model, [1500, 1900, 1500], [50, 50, 50], [1500, 1500, 1500], [50, 50, 350], home=0.0
    )
    np.testing.assert_allclose(proba[0], proba[0][::-1])  # equal players on neutral ground
    assert proba[1, 2] > proba[0, 2]
    assert quality[0] > quality[1]  # an even pairing is a better match
    assert quality[2] > quality[1]
