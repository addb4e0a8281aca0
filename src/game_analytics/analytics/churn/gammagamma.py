"""Gamma-Gamma model of the mean value of a customer's transactions, and the discounted CLV built on it.

Sources: Peter S. Fader, Bruce G. S. Hardie and Ka Lok Lee, "RFM and CLV: Using Iso-Value Curves for Customer
Base Analysis", Journal of Marketing Research 42(4), 2005; Peter S. Fader and Bruce G. S. Hardie, "The Gamma-Gamma
Model of Monetary Value", 2013 (equations (1)-(5)).

Per customer the data are ``x`` (number of repeat transactions, > 0) and ``zbar`` (their mean value, > 0).
Each transaction value is Gamma(p, nu); across customers ``nu ~ Gamma(q, v)``. The spend process is assumed
independent of the transaction process (BG/NBD), so a customer's value is the product of the two forecasts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import betaln, gammaln

from game_analytics.analytics.churn.bgnbd import BGNBDParams, conditional_expected_purchases

__all__ = ["GammaGammaParams", "clv", "expected_spend", "fit", "log_likelihood"]

#: the Nelder-Mead polish stops after this many likelihood evaluations (the CDNOW fit needs 180). When every
#: customer's spend rate is alike the maximum lies at q, v -> infinity along a ridge, where the likelihood is flat
#: to rounding and the simplex would wander for the whole budget (40,000 evaluations, 850 s at 300,000 spenders).
POLISH_EVALUATIONS = 1000


@dataclass(frozen=True)
class GammaGammaParams:
    """Fitted Gamma-Gamma parameters (all > 0; the papers call ``v`` gamma) and the maximised log-likelihood."""

    p: float
    q: float
    v: float
    log_likelihood: float = float("nan")


def _arrays(x: ArrayLike, zbar: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    xv, zv = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(zbar, dtype=np.float64))
    if np.any(xv <= 0) or np.any(zv <= 0) or not (np.all(np.isfinite(xv)) and np.all(np.isfinite(zv))):
        raise ValueError("need x > 0 and zbar > 0 (customers with at least one repeat transaction)")
    return xv, zv


def log_likelihood(p: float, q: float, v: float, x: ArrayLike, zbar: ArrayLike) -> NDArray[np.float64]:
    """Per-customer log-likelihood of the mean transaction value ``zbar`` over ``x`` transactions.

    ``L = G(px+q) / (G(px) G(q)) * v^q * zbar^(px-1) * x^(px) / (v + x zbar)^(px+q)``; shape of the broadcast
    inputs. Raises ValueError unless every ``x > 0`` and ``zbar > 0``.
    """
    xv, zv = _arrays(x, zbar)
    px = p * xv
    return (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v) + (px - 1.0) * np.log(zv)
            + px * np.log(xv) - (px + q) * np.log(v + xv * zv))  # fmt: skip


def fit(x: ArrayLike, zbar: ArrayLike) -> GammaGammaParams:
    """Maximum-likelihood fit over log-parameters (L-BFGS-B, then a tight Nelder-Mead polish).

    The total log-likelihood (the sum of :func:`log_likelihood`) is evaluated from sufficient statistics: the
    Gamma terms per distinct ``x`` (repeat counts are small integers, ``betaln``), the ``log zbar`` and ``log x``
    terms as sums fixed before the search, so an evaluation costs two logarithms over the customers. The polish
    is capped at :data:`POLISH_EVALUATIONS`.

    Args:
        x, zbar: shape (n,), customers with ``x > 0`` only.

    Returns:
        :class:`GammaGammaParams` with the total log-likelihood.

    Raises:
        ValueError: on invalid data or if the optimiser does not reach a finite optimum.
    """
    xv, zv = _arrays(x, zbar)
    if xv.size == 0:
        raise ValueError("no customers")
    n = float(xv.size)
    scale = 1.0 / n
    xz = xv * zv
    distinct, counts = np.unique(xv, return_counts=True)
    log_z = np.log(zv)
    fixed_p = float(np.dot(xv, log_z) + np.dot(xv, np.log(xv)))  # times p: sum of p x (log zbar + log x)
    fixed = -float(log_z.sum())  # sum of -log zbar

    def nll(logp: NDArray[np.float64]) -> float:
        p, q, v = np.exp(logp)
        # q log v - (px + q) log(v + x zbar) as -q log1p(x zbar / v) - px log(v + x zbar): no difference of two
        # terms that grow with q (on a ridge q and v run to 1e7 and more)
        total = (p * fixed_p + fixed - float(np.dot(counts, betaln(p * distinct, q)))
                 - p * float(np.dot(xv, np.log(v + xz))) - q * float(np.log1p(xz / v).sum()))  # fmt: skip
        val = -total * scale
        return val if np.isfinite(val) else 1e300

    x0 = np.log([1.0, 1.0, max(float(np.mean(zv)), 1e-3)])
    res = minimize(nll, x0, method="L-BFGS-B", bounds=[(-12.0, 12.0)] * 3)
    res = minimize(nll, res.x, method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-11, "maxfev": POLISH_EVALUATIONS})
    if not np.isfinite(res.fun) or res.fun >= 1e300:
        raise ValueError(f"Gamma-Gamma fit failed: {res.message}")
    p, q, v = (float(val) for val in np.exp(res.x))
    return GammaGammaParams(p=p, q=q, v=v, log_likelihood=-float(res.fun) / scale)


def expected_spend(params: GammaGammaParams, x: ArrayLike, zbar: ArrayLike) -> NDArray[np.float64]:
    """E[mean transaction value | x, zbar] = ``p (v + x zbar) / (p x + q - 1)`` (dollars), shape of the inputs.

    A weighted mean of the population mean ``p v / (q - 1)`` and the customer's own ``zbar``; customers with
    ``x == 0`` get the population mean. Raises ValueError if ``q <= 1`` (no finite population mean).
    """
    if params.q <= 1:
        raise ValueError("expected spend needs q > 1")
    xv = np.asarray(x, dtype=np.float64)
    zv = np.where(xv > 0, np.asarray(zbar, dtype=np.float64), 0.0)
    return params.p * (params.v + xv * zv) / (params.p * xv + params.q - 1.0)


def clv(bgnbd: BGNBDParams, gg: GammaGammaParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike, zbar: ArrayLike,
        *, periods: int = 12, period_length: float = 4.0, discount_rate: float = 0.01) -> NDArray[np.float64]:  # fmt: skip
    """Discounted customer lifetime value per customer, shape (n,), in the currency of ``zbar``.

    ``CLV = sum_{k=1..periods} (E[Y(k L)] - E[Y((k-1) L)]) * E[M] / (1 + d)^k`` with ``E[Y]`` the BG/NBD
    conditional expected transactions (time unit of ``t_x``/``T``), ``L = period_length``, ``d`` the discount
    rate per period and ``E[M]`` :func:`expected_spend`. Raises ValueError on invalid inputs or ``periods < 1``.
    """
    if periods < 1 or period_length <= 0 or discount_rate < 0:
        raise ValueError("need periods >= 1, period_length > 0, discount_rate >= 0")
    spend = expected_spend(gg, x, zbar)
    total = np.zeros_like(spend)
    before = np.zeros_like(spend)
    for k in range(1, periods + 1):
        upto = conditional_expected_purchases(bgnbd, k * period_length, x, t_x, T)
        total += (upto - before) * spend / (1.0 + discount_rate) ** k
        before = upto
    return total
