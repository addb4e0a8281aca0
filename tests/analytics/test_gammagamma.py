"""Gamma-Gamma spend model: the published CDNOW fit, the likelihood against numerical integration, CLV identities,
and ``game-analytics fit`` on the summary CSVs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from game_analytics import cli
from game_analytics.analytics.churn import bgnbd, gammagamma
from game_analytics.data.datasets import default_cache_dir, load_cdnow_transactions_summary


@pytest.fixture(scope="module")
def spenders(_data_cache: None) -> pd.DataFrame:
    frame = load_cdnow_transactions_summary()
    assert len(frame) == 2357
    return frame[frame["x"] > 0]


@pytest.fixture(scope="module")
def gg_fit(spenders: pd.DataFrame) -> gammagamma.GammaGammaParams:
    return gammagamma.fit(spenders["x"], spenders["zbar"])


def test_reproduces_the_published_cdnow_gamma_gamma_fit(spenders: pd.DataFrame,
                                                        gg_fit: gammagamma.GammaGammaParams) -> None:  # fmt: skip
    assert len(spenders) == 946
    assert gg_fit.p == pytest.approx(6.25, abs=0.01)
    assert gg_fit.q == pytest.approx(3.74, abs=0.01)
    assert gg_fit.v == pytest.approx(15.44, abs=0.01)
    for name in ("p", "q", "v"):  # a maximum: moving any parameter by 1% lowers the likelihood
        for factor in (0.99, 1.01):
            moved = {k: getattr(gg_fit, k) * (factor if k == name else 1.0) for k in ("p", "q", "v")}
            ll = gammagamma.log_likelihood(**moved, x=spenders["x"], zbar=spenders["zbar"]).sum()
            assert ll < gg_fit.log_likelihood


def test_likelihood_matches_numerical_integration_over_nu() -> None:
    # zbar = (sum of x Gamma(p, nu) values) / x; nu ~ Gamma(q, v): integrate the density of zbar over nu.
    p, q, v = 6.25, 3.74, 15.44
    for x, zbar in [(1, 11.77), (2, 22.35), (7, 73.74), (20, 30.0)]:
        def integrand(nu: float, x: int = x, zbar: float = zbar) -> float:
            return (x * stats.gamma.pdf(x * zbar, a=p * x, scale=1 / nu)
                    * stats.gamma.pdf(nu, a=q, scale=1 / v))  # fmt: skip
        value, _ = integrate.quad(integrand, 0, np.inf, limit=200)
        assert gammagamma.log_likelihood(p, q, v, x, zbar) == pytest.approx(np.log(value), abs=1e-6)


def test_expected_spend_and_clv(spenders: pd.DataFrame, gg_fit: gammagamma.GammaGammaParams,
                                cdnow_summary: pd.DataFrame) -> None:  # fmt: skip
    spend = gammagamma.expected_spend(gg_fit, spenders["x"], spenders["zbar"])
    population = gg_fit.p * gg_fit.v / (gg_fit.q - 1)
    w = gg_fit.p * spenders["x"] / (gg_fit.p * spenders["x"] + gg_fit.q - 1)
    np.testing.assert_allclose(spend, (1 - w) * population + w * spenders["zbar"])
    assert gammagamma.expected_spend(gg_fit, 0, 0) == pytest.approx(population)
    with pytest.raises(ValueError):
        gammagamma.fit([0, 1], [0.0, 5.0])

    b = bgnbd.fit(cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"])
    frame = load_cdnow_transactions_summary()
    args = (frame["x"], frame["t_x"], frame["T"], frame["zbar"])
    undiscounted = gammagamma.clv(b, gg_fit, *args, periods=13, period_length=3.0, discount_rate=0.0)
    horizon = bgnbd.conditional_expected_purchases(b, 39.0, frame["x"], frame["t_x"], frame["T"])
    np.testing.assert_allclose(undiscounted, horizon * gammagamma.expected_spend(gg_fit, frame["x"], frame["zbar"]))
    discounted = gammagamma.clv(b, gg_fit, *args, periods=13, period_length=3.0, discount_rate=0.01)
    assert np.all(discounted < undiscounted) and np.all(discounted > undiscounted / 1.01**13)


@pytest.mark.parametrize(("model", "csv", "expected"), [
    ("bgnbd", "cdnow_customers_summary.csv", {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}),
    ("gammagamma", "cdnow_customers_summary_with_transactions.csv", {"p": 6.25, "q": 3.74, "v": 15.44}),
])  # fmt: skip
def test_fit_command_prints_the_published_names(model: str, csv: str, expected: dict[str, float], _data_cache: None,
                                                capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    assert cli.main(["fit", model, str(default_cache_dir() / csv), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key, value in expected.items():
        assert out[key] == pytest.approx(value, abs=0.01)
    assert "log_likelihood" in out
    assert cli.main(["fit", model, str(default_cache_dir() / csv)]) == 0
    assert "log_likelihood" in capsys.readouterr().out
    assert cli.main(["fit", model, "/nonexistent.csv"]) == 2


def test_the_fit_maximises_the_per_customer_likelihood_it_reports() -> None:
    """fit() sums the likelihood from sufficient statistics; its reported maximum is the sum of the per-customer
    log_likelihood at the fitted parameters, and no nearby parameters do better (200,000 synthetic spenders with
    continuous means and repeat counts 1..12)."""
    rng = np.random.default_rng(3)
    x = rng.integers(1, 13, size=200_000).astype(float)
    nu = rng.gamma(3.0, 1 / 15.0, size=x.size)
    zbar = rng.gamma(4.0 * x, 1.0 / (nu * x))  # mean of x Gamma(4, nu) values
    fitted = gammagamma.fit(x, zbar)
    total = float(gammagamma.log_likelihood(fitted.p, fitted.q, fitted.v, x, zbar).sum())
    assert fitted.log_likelihood == pytest.approx(total, rel=1e-9)
    for dp, dq, dv in ((1.01, 1, 1), (1, 1.01, 1), (1, 1, 1.01), (0.99, 0.99, 0.99)):
        assert gammagamma.log_likelihood(fitted.p * dp, fitted.q * dq, fitted.v * dv, x, zbar).sum() < total
    assert fitted.p == pytest.approx(4.0, rel=0.05) and fitted.q == pytest.approx(3.0, rel=0.1)
