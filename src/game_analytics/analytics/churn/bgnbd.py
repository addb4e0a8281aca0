"""BG/NBD ("beta-geometric / negative binomial distribution") model of repeat purchasing.

Source: Peter S. Fader, Bruce G. S. Hardie and Ka Lok Lee, "'Counting Your Customers' the Easy
Way: An Alternative to the Pareto/NBD Model", Marketing Science 24(2), 2005, pp. 275-284
(equations (6), (9), (10) and the note "Computing P(alive) using the BG/NBD model").

Per customer the data are ``x`` (number of repeat purchases), ``t_x`` (time of the last purchase)
and ``T`` (length of observation), all measured from the customer's first purchase in the same
time unit. While active, a customer buys as a Poisson process with rate ``lambda ~ Gamma(r, alpha)``;
after each purchase they become inactive with probability ``p ~ Beta(a, b)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1


@dataclass(frozen=True)
class BGNBDParams:
    """Fitted BG/NBD parameters (all > 0) and the maximised log-likelihood."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float = float("nan")


def _arrays(x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> tuple[NDArray[np.float64], ...]:
    xv, tv, Tv = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
    xv, tv, Tv = np.broadcast_arrays(xv, tv, Tv)
    if np.any(xv < 0) or np.any(tv < 0) or np.any(tv > Tv + 1e-9) or not np.all(np.isfinite(Tv)):
        raise ValueError("need x >= 0 and 0 <= t_x <= T (finite)")
    return xv, tv, Tv


def log_likelihood(
    r: float, alpha: float, a: float, b: float, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> NDArray[np.float64]:
    """Per-customer log-likelihood (paper, equation (6)), shape of the broadcast inputs.

    ``L = B(a, b+x)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+T)^(r+x))
    + 1[x>0] B(a+1, b+x-1)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+t_x)^(r+x))``
    """
    return _log_likelihood(r, alpha, a, b, *_arrays(x, t_x, T))


def _log_likelihood(r: float, alpha: float, a: float, b: float, xv: NDArray[np.float64], tv: NDArray[np.float64],
                    Tv: NDArray[np.float64]) -> NDArray[np.float64]:
    """:func:`log_likelihood` of checked arrays (the fit's inner loop)."""
    common = gammaln(r + xv) - gammaln(r) + r * np.log(alpha) + betaln(a, b + xv) - betaln(a, b)
    term_t = -(r + xv) * np.log(alpha + Tv)
    with np.errstate(divide="ignore", invalid="ignore"):
        # B(a+1, b+x-1) / B(a, b+x) = a / (b+x-1)
        term_tx = np.where(xv > 0, np.log(a) - np.log(b + xv - 1.0) - (r + xv) * np.log(alpha + tv), -np.inf)
    return common + np.logaddexp(term_t, term_tx)


def _distinct(x: NDArray[np.float64], t_x: NDArray[np.float64], T: NDArray[np.float64],
              w: NDArray[np.float64]) -> tuple[NDArray[np.float64], ...]:
    """The distinct ``(x, t_x, T)`` rows with their summed weights: the log-likelihood is a weighted sum over
    rows, so the fit is the same on far fewer rows (whole days and purchase counts repeat: 20,000 players of the
    exporter's benchmark have a few hundred distinct rows)."""
    rows, inverse = np.unique(np.column_stack([x.ravel(), t_x.ravel(), T.ravel()]), axis=0, return_inverse=True)
    return rows[:, 0], rows[:, 1], rows[:, 2], np.bincount(inverse.ravel(), weights=w.ravel())


def fit(x: ArrayLike, t_x: ArrayLike, T: ArrayLike, weights: ArrayLike | None = None) -> BGNBDParams:
    """Maximum-likelihood fit over log-parameters with L-BFGS-B (then Nelder-Mead polish), on the distinct
    ``(x, t_x, T)`` rows weighted by how often each occurs.

    Args:
        x, t_x, T: arrays, shape (n,), per customer (see module docstring).
        weights: optional counts per row (for aggregated data), shape (n,).

    Returns:
        :class:`BGNBDParams` with the total log-likelihood.

    Raises:
        ValueError: on invalid data or if the optimiser does not reach a finite optimum.
    """
    xv, tv, Tv = _arrays(x, t_x, T)
    w = np.ones_like(xv) if weights is None else np.asarray(weights, dtype=np.float64)
    if xv.size == 0:
        raise ValueError("no customers")
    xv, tv, Tv, w = _distinct(xv, tv, Tv, w)
    scale = 1.0 / w.sum()

    def nll(logp: NDArray[np.float64]) -> float:
        # the unbounded polish may step to parameters that overflow (inf - inf): such a point is rejected as 1e300
        with np.errstate(over="ignore", invalid="ignore"):
            r, alpha, a, b = np.exp(logp)
            val = -float((w * _log_likelihood(r, alpha, a, b, xv, tv, Tv)).sum()) * scale
        return val if np.isfinite(val) else 1e300

    x0 = np.log([1.0, max(float(np.mean(Tv)), 1e-3), 1.0, 1.0])
    res = minimize(nll, x0, method="L-BFGS-B", bounds=[(-12.0, 12.0)] * 4)
    res = minimize(nll, res.x, method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-12, "maxiter": 4000})
    if not np.isfinite(res.fun) or res.fun >= 1e300:
        raise ValueError(f"BG/NBD fit failed: {res.message}")
    r, alpha, a, b = (float(v) for v in np.exp(res.x))
    return BGNBDParams(r=r, alpha=alpha, a=a, b=b, log_likelihood=-float(res.fun) / float(scale))


def probability_alive(params: BGNBDParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> NDArray[np.float64]:
    """P(customer still active at T | x, t_x, T): ``1 / (1 + 1[x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))``.

    Customers without repeat purchases are alive with probability 1 under BG/NBD (death only
    happens right after a purchase).
    """
    xv, tv, Tv = _arrays(x, t_x, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log(a) - np.log(b + xv - 1.0) + (r + xv) * (np.log(alpha + Tv) - np.log(alpha + tv))
    return np.where(xv > 0, 1.0 / (1.0 + np.exp(np.where(xv > 0, log_ratio, 0.0))), 1.0)


def expected_purchases(params: BGNBDParams, t: ArrayLike) -> NDArray[np.float64]:
    """Expected number of purchases in (0, t] for a new customer (paper, equation (9)).

    ``E[X(t)] = (a+b-1)/(a-1) * [1 - (alpha/(alpha+t))^r * 2F1(r, b; a+b-1; t/(alpha+t))]``,
    valid for any ``a != 1`` (the ratio and the bracket change sign together when ``a < 1``).
    Raises ValueError for ``a == 1``.
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    if a == 1:
        raise ValueError("closed form of E[X(t)] is undefined for a == 1")
    tv = np.asarray(t, dtype=np.float64)
    z = tv / (alpha + tv)
    return (a + b - 1.0) / (a - 1.0) * (1.0 - (alpha / (alpha + tv)) ** r * hyp2f1(r, b, a + b - 1.0, z))


def conditional_expected_purchases(
    params: BGNBDParams, t: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> NDArray[np.float64]:
    """Expected purchases in (T, T+t] given the customer's history (paper, equation (10)).

    ``E[Y(t) | x, t_x, T] = (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x)
    * 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))] / (1 + 1[x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))``.
    Valid for ``a != 1``; raises ValueError for ``a == 1``.
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    if a == 1:
        raise ValueError("closed form of E[Y(t)] is undefined for a == 1")
    xv, tv, Tv = _arrays(x, t_x, T)
    tt = np.asarray(t, dtype=np.float64)
    z = tt / (alpha + Tv + tt)
    head = (a + b + xv - 1.0) / (a - 1.0)
    body = 1.0 - ((alpha + Tv) / (alpha + Tv + tt)) ** (r + xv) * hyp2f1(r + xv, b + xv, a + b + xv - 1.0, z)
    return head * body * probability_alive(params, xv, tv, Tv)


def simulate(
    params: BGNBDParams, T: ArrayLike, rng: np.random.Generator
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Draw ``(x, t_x, T)`` for customers observed for ``T`` (shape (n,)) from the BG/NBD process.

    Used to validate the estimator (parameter recovery) and the closed forms by Monte Carlo.
    """
    Tv = np.asarray(T, dtype=np.float64)
    n = Tv.size
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    p = rng.beta(params.a, params.b, n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    now = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        now[idx] += rng.exponential(1.0 / lam[idx])
        in_window = now[idx] <= Tv[idx]
        bought = idx[in_window]
        x[bought] += 1
        t_x[bought] = now[bought]
        alive[idx[~in_window]] = False
        alive[bought] = rng.random(bought.size) >= p[bought]
    return x, t_x, Tv
