"""BG/NBD: the published CDNOW fit, closed forms against simulation, parameter recovery."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from game_analytics.analytics.churn import bgnbd


@pytest.fixture(scope="module")
def cdnow_fit(cdnow_summary: pd.DataFrame) -> bgnbd.BGNBDParams:
    return bgnbd.fit(cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"])


def test_reproduces_fader_hardie_lee_2005_cdnow_fit(
    cdnow_summary: pd.DataFrame, cdnow_fit: bgnbd.BGNBDParams
) -> None:
    assert len(cdnow_summary) == 2357
    assert cdnow_fit.r == pytest.approx(0.243, abs=0.005)
    assert cdnow_fit.alpha == pytest.approx(4.414, abs=0.005)
    assert cdnow_fit.a == pytest.approx(0.793, abs=0.005)
    assert cdnow_fit.b == pytest.approx(2.426, abs=0.005)
    assert cdnow_fit.log_likelihood == pytest.approx(-9582.4, abs=0.1)


def test_conditional_expectation_published_example(cdnow_fit: bgnbd.BGNBDParams) -> None:
    # Fader, Hardie & Lee: a customer with x=2, t_x=30.43, T=38.86 weeks buys 1.226 times in the next 39 weeks.
    assert bgnbd.conditional_expected_purchases(cdnow_fit, 39, 2, 30.43, 38.86) == pytest.approx(
        1.226, abs=0.001
    )


def test_likelihood_is_maximal_at_fit(cdnow_summary: pd.DataFrame, cdnow_fit: bgnbd.BGNBDParams) -> None:
    x, t_x, T = cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"]
    best = bgnbd.log_likelihood(cdnow_fit.r, cdnow_fit.alpha, cdnow_fit.a, cdnow_fit.b, x, t_x, T).sum()
    assert best == pytest.approx(cdnow_fit.log_likelihood)
    for name in ("r", "alpha", "a", "b"):
        params = {k: getattr(cdnow_fit, k) for k in ("r", "alpha", "a", "b")}
        params[name] *= 1.05
        assert bgnbd.log_likelihood(**params, x=x, t_x=t_x, T=T).sum() < best


def test_p_alive_properties() -> None:
    p = bgnbd.BGNBDParams(r=0.5, alpha=5.0, a=0.8, b=2.5)
    assert bgnbd.probability_alive(p, 0, 0.0, 30.0) == 1.0
    recent, stale = bgnbd.probability_alive(p, [3, 3], [29.0, 5.0], [30.0, 30.0])
    assert 0 < stale < recent < 1
    assert bgnbd.probability_alive(p, 3, 30.0, 30.0) == pytest.approx(1 / (1 + 0.8 / 4.5))


def test_closed_forms_match_simulation() -> None:
    params = bgnbd.BGNBDParams(r=0.8, alpha=6.0, a=0.9, b=2.2)
    rng = np.random.default_rng(42)
    n = 100_000
    x, _, _ = bgnbd.simulate(params, np.full(n, 20.0), rng)
    mean = x.mean()
    se = x.std() / np.sqrt(n)
    assert abs(mean - float(bgnbd.expected_purchases(params, 20.0))) < 4 * se


def test_fit_recovers_simulated_parameters() -> None:
    truth = bgnbd.BGNBDParams(r=0.6, alpha=4.0, a=1.5, b=3.0)
    rng = np.random.default_rng(7)
    T = rng.uniform(20, 40, 20_000)
    x, t_x, T = bgnbd.simulate(truth, T, rng)
    fit = bgnbd.fit(x, t_x, T)
    assert fit.r == pytest.approx(truth.r, rel=0.1)
    assert fit.alpha == pytest.approx(truth.alpha, rel=0.15)
    assert fit.a == pytest.approx(truth.a, rel=0.3)
    assert fit.b == pytest.approx(truth.b, rel=0.3)


def test_rejects_invalid_data() -> None:
    with pytest.raises(ValueError):
        bgnbd.fit([1], [5.0], [3.0])
    with pytest.raises(ValueError):
        bgnbd.expected_purchases(bgnbd.BGNBDParams(1.0, 1.0, 1.0, 1.0), 5.0)


def test_repeated_rows_fit_as_weights(cdnow_summary: pd.DataFrame) -> None:
    """The fit runs on the distinct rows: the data repeated (in another order) fit as the data with weights 3, and
    the reported log-likelihood is that of every row."""
    x, t_x, T = (cdnow_summary[c].to_numpy() for c in ("frequency", "recency", "T"))
    order = np.random.default_rng(2).permutation(3 * len(x))
    repeated = bgnbd.fit(np.tile(x, 3)[order], np.tile(t_x, 3)[order], np.tile(T, 3)[order])
    weighted = bgnbd.fit(x, t_x, T, weights=np.full(len(x), 3.0))
    for name in ("r", "alpha", "a", "b", "log_likelihood"):
        assert getattr(repeated, name) == pytest.approx(getattr(weighted, name), rel=1e-6), name
    full = bgnbd.log_likelihood(repeated.r, repeated.alpha, repeated.a, repeated.b, np.tile(x, 3), np.tile(t_x, 3),
                                np.tile(T, 3)).sum()  # fmt: skip
    assert repeated.log_likelihood == pytest.approx(full)
