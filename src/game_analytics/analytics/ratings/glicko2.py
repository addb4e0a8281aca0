"""Glicko-2 rating system, vectorised over whole rating periods with numpy.

Source: Mark E. Glickman, "Example of the Glicko-2 system" (Boston University, 2013),
http://www.glicko.net/glicko/glicko2.pdf . The step numbers in the comments refer to that paper.

All players of one rating period are updated at once: a period is given as arrays of match
endpoints ``player_a``/``player_b`` (integer indices into the rating arrays) and ``score_a``
(1 = a won, 0.5 = draw, 0 = a lost). Every match counts for both players and uses the ratings
as they were at the start of the period, exactly as the paper prescribes. The volatility
root-finding (step 5, the Illinois variant of regula falsi) runs for all players of the
period simultaneously on masked arrays.

Players who did not play in a period only have their deviation increased,
``phi' = sqrt(phi^2 + sigma^2)`` (paper, step 6 for non-competing players), capped at
:attr:`Glicko2Config.max_rd`. Over many periods this growth is applied lazily (when a player
next plays, or at the end), so one period costs O(its matches), not O(all players).

Two implementations of the period loop give the same numbers (to rounding): a numpy one
(:func:`_run_periods`, arrays per period) and, when numba is installed, a compiled scalar loop
(:func:`.glicko2_kernels.period_loop`) that runs all periods in one call. For the
Bundesliga with one period per round (1,564 periods of 9 matches) the compiled loop is about
40x faster than the numpy one (0.003 s against 0.14 s), but importing numba and loading the compiled code costs
about 0.5 s once per process. The compiled loop is therefore used when it is already loaded in the process or
when a call has at least :data:`COMPILED_MIN_PERIODS` periods (the numpy loop costs about 0.1 ms per period);
``GAME_ANALYTICS_GLICKO2_NUMPY=1`` forces numpy and ``GAME_ANALYTICS_GLICKO2_NUMPY=0`` the compiled loop.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import glicko2_kernels

#: Factor between the Glicko rating scale and the internal Glicko-2 scale (paper, step 2).
GLICKO2_SCALE = 400.0 / math.log(10.0)  # 173.7178...

_PI2 = math.pi**2


@dataclass(frozen=True)
class Glicko2Config:
    """Parameters of the Glicko-2 system.

    Attributes:
        tau: system constant constraining volatility change (paper suggests 0.3 to 1.2).
        initial_rating: rating of a new player (Glicko scale).
        initial_rd: rating deviation of a new player (Glicko scale).
        initial_volatility: volatility of a new player.
        max_rd: upper bound for any rating deviation (the RD of an unknown player).
        epsilon: convergence tolerance of the volatility iteration (on ``ln(sigma^2)``).
        max_iterations: safety bound on the volatility iteration.
    """

    tau: float = 0.5
    initial_rating: float = 1500.0
    initial_rd: float = 350.0
    initial_volatility: float = 0.06
    max_rd: float = 350.0
    epsilon: float = 1e-6
    max_iterations: int = 100

    def __post_init__(self) -> None:
        if self.tau <= 0 or self.initial_rd <= 0 or self.initial_volatility <= 0 or self.max_rd <= 0:
            raise ValueError("tau, initial_rd, initial_volatility and max_rd must be positive")
        if self.epsilon <= 0 or self.max_iterations < 1:
            raise ValueError("epsilon must be positive and max_iterations >= 1")


@dataclass(frozen=True)
class Glicko2Ratings:
    """Ratings of ``n`` players on the Glicko scale.

    Attributes:
        rating: float array, shape (n,), e.g. 1500.
        rd: float array, shape (n,), rating deviation.
        volatility: float array, shape (n,).
    """

    rating: NDArray[np.float64]
    rd: NDArray[np.float64]
    volatility: NDArray[np.float64]

    def __post_init__(self) -> None:
        shapes = {np.shape(self.rating), np.shape(self.rd), np.shape(self.volatility)}
        if len(shapes) != 1 or np.ndim(self.rating) != 1:
            raise ValueError(f"rating, rd and volatility must be 1-D arrays of equal length, got {shapes}")

    @classmethod
    def initial(cls, n_players: int, config: Glicko2Config | None = None) -> Glicko2Ratings:
        """Ratings of ``n_players`` new players with the configured initial values."""
        config = config or Glicko2Config()
        return cls(
            rating=np.full(n_players, config.initial_rating, dtype=np.float64),
            rd=np.full(n_players, config.initial_rd, dtype=np.float64),
            volatility=np.full(n_players, config.initial_volatility, dtype=np.float64),
        )

    def __len__(self) -> int:
        return int(self.rating.shape[0])


@dataclass(frozen=True)
class PreMatchRatings:
    """Per-match ratings at the start of each match's period.

    Attributes:
        rating, rd, volatility: float arrays, shape (m, 2); column 0 is ``player_a``, 1 is ``player_b``.
    """

    rating: NDArray[np.float64]
    rd: NDArray[np.float64]
    volatility: NDArray[np.float64]


def _g(phi: NDArray[np.float64]) -> NDArray[np.float64]:
    return 1.0 / np.sqrt(1.0 + 3.0 * phi * phi / _PI2)


def glicko2_expected(
    rating_a: ArrayLike, rd_a: ArrayLike, rating_b: ArrayLike, rd_b: ArrayLike
) -> NDArray[np.float64]:
    """Probability-like expected score of ``a`` against ``b`` accounting for both deviations.

    Uses ``E = 1 / (1 + exp(-g(sqrt(phi_a^2 + phi_b^2)) * (mu_a - mu_b)))`` on the Glicko-2 scale
    (Glickman's expected-outcome formula for a pairing, where both players' uncertainty widens
    the prediction towards 0.5). Arguments broadcast; ratings and RDs are on the Glicko scale.

    Returns:
        float array in (0, 1) of the broadcast shape.
    """
    mu_d = (np.asarray(rating_a, dtype=np.float64) - np.asarray(rating_b, dtype=np.float64)) / GLICKO2_SCALE
    phi = np.hypot(np.asarray(rd_a, dtype=np.float64), np.asarray(rd_b, dtype=np.float64)) / GLICKO2_SCALE
    return 1.0 / (1.0 + np.exp(-_g(phi) * mu_d))


def _as_matches(
    n_players: int, player_a: ArrayLike, player_b: ArrayLike, score_a: ArrayLike
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]:
    a = np.asarray(player_a, dtype=np.intp)
    b = np.asarray(player_b, dtype=np.intp)
    s = np.asarray(score_a, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or a.shape != s.shape:
        raise ValueError("player_a, player_b and score_a must be 1-D arrays of equal length")
    if a.size:
        lo = min(a.min(), b.min())
        hi = max(a.max(), b.max())
        if lo < 0 or hi >= n_players:
            raise ValueError(f"player index out of range [0, {n_players})")
        if np.any(a == b):
            raise ValueError("a player cannot play against themselves")
        if np.any((s < 0) | (s > 1)) or not np.all(np.isfinite(s)):
            raise ValueError("scores must be within [0, 1]")
    return a, b, s


def _new_volatility(
    delta: NDArray[np.float64],
    phi: NDArray[np.float64],
    v: NDArray[np.float64],
    sigma: NDArray[np.float64],
    tau: float,
    epsilon: float,
    max_iterations: int,
) -> NDArray[np.float64]:
    """Step 5 of the paper for many players at once (Illinois algorithm), returns sigma'.

    All arrays have shape (p,). Converged entries are frozen with masks rather than compressed
    out, which keeps the per-iteration overhead low for the many small periods of real leagues.
    """
    a = np.log(sigma * sigma)
    d2 = delta * delta
    phi2_v = phi * phi + v
    tau2 = tau * tau

    def f(x: NDArray[np.float64]) -> NDArray[np.float64]:
        ex = np.exp(x)
        denom = phi2_v + ex
        return ex * (d2 - phi2_v - ex) / (2.0 * denom * denom) - (x - a) / tau2

    above = d2 > phi2_v
    # Below: step down in multiples of tau until f becomes non-negative (f decreases in x).
    k = np.ones_like(a)
    for _ in range(max_iterations * 10):
        step = ~above & (f(a - k * tau) < 0)
        if not step.any():
            break
        k += step
    big_a = a.copy()
    big_b = np.where(above, np.log(np.where(above, d2 - phi2_v, 1.0)), a - k * tau)

    f_a = f(big_a)
    f_b = f(big_b)
    active = np.abs(big_b - big_a) > epsilon
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(max_iterations):
            if not active.any():
                break
            c = big_a + (big_a - big_b) * f_a / (f_b - f_a)
            c = np.where(active, c, big_b)
            f_c = f(c)
            swap = f_c * f_b <= 0
            new_a = np.where(swap, big_b, big_a)
            new_fa = np.where(swap, f_b, f_a / 2.0)
            big_a = np.where(active, new_a, big_a)
            f_a = np.where(active, new_fa, f_a)
            big_b = np.where(active, c, big_b)
            f_b = np.where(active, f_c, f_b)
            active &= np.abs(big_b - big_a) > epsilon
    return np.exp(big_a / 2.0)


def _update_players(
    mu: NDArray[np.float64],
    phi: NDArray[np.float64],
    sigma: NDArray[np.float64],
    a: NDArray[np.intp],
    b: NDArray[np.intp],
    s: NDArray[np.float64],
    config: Glicko2Config,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Steps 3-7 on the Glicko-2 scale for the k players of one period (local indices 0..k-1).

    ``mu``, ``phi``, ``sigma`` have shape (k,) and hold the start-of-period values; ``a``, ``b``, ``s``
    are the period's matches in local indices. Returns new (mu, phi, sigma), RD not yet capped.
    """
    k = mu.shape[0]
    # Each match seen from both sides: (player, opponent, score).
    me = np.concatenate([a, b])
    opp = np.concatenate([b, a])
    score = np.concatenate([s, 1.0 - s])

    g_opp = _g(phi[opp])
    e = 1.0 / (1.0 + np.exp(-g_opp * (mu[me] - mu[opp])))
    v_inv = np.bincount(me, weights=g_opp * g_opp * e * (1.0 - e), minlength=k)  # step 3
    score_sum = np.bincount(me, weights=g_opp * (score - e), minlength=k)  # step 4 (without v)

    # A player whose v_inv underflowed to 0 (absurd rating gaps) is treated as idle.
    new_mu = mu.copy()
    new_phi = np.hypot(phi, sigma)
    new_sigma = sigma.copy()
    p = np.flatnonzero(v_inv > 0)
    if p.size:
        v = 1.0 / v_inv[p]
        delta = v * score_sum[p]
        sig_p = _new_volatility(delta, phi[p], v, sigma[p], config.tau, config.epsilon, config.max_iterations)
        phi_star = np.hypot(phi[p], sig_p)  # step 6
        phi_p = 1.0 / np.sqrt(1.0 / (phi_star * phi_star) + 1.0 / v)  # step 7
        new_mu[p] = mu[p] + phi_p * phi_p * score_sum[p]
        new_phi[p] = phi_p
        new_sigma[p] = sig_p
    return new_mu, new_phi, new_sigma


def _run_periods(
    ratings: Glicko2Ratings,
    a: NDArray[np.intp],
    b: NDArray[np.intp],
    s: NDArray[np.float64],
    periods: list[NDArray[np.intp]],
    config: Glicko2Config,
    pre: NDArray[np.float64] | None,
    post: NDArray[np.float64] | None = None,
) -> Glicko2Ratings:
    """Apply the rating periods ``periods`` (arrays of match positions) in order.

    Idle RD growth is applied lazily: a player idle for ``j`` periods gets
    ``min(sqrt(phi^2 + j sigma^2), max)`` when next seen (or at the end), which equals ``j`` single
    capped steps because sigma does not change while idle and the cap is monotone. Work per period
    is therefore O(matches in the period), not O(players).
    """
    n = len(ratings)
    mu = (ratings.rating - 1500.0) / GLICKO2_SCALE  # step 2
    phi = ratings.rd / GLICKO2_SCALE
    sigma = ratings.volatility.copy()
    max_phi = config.max_rd / GLICKO2_SCALE
    last = np.full(n, -1, dtype=np.int64)  # last period whose update was applied
    pos = np.empty(n, dtype=np.intp)  # scratch: global -> local index
    for k, sel in enumerate(periods):
        pa, pb = a[sel], b[sel]
        me = np.concatenate([pa, pb])
        slots = np.arange(me.size)
        pos[me] = slots
        players = me[pos[me] == slots]  # one entry per distinct player
        pos[players] = np.arange(players.size)
        la, lb = pos[pa], pos[pb]
        idle = (k - 1 - last[players]).astype(np.float64)
        sig_p = sigma[players]
        phi_p = np.minimum(np.sqrt(phi[players] ** 2 + idle * sig_p * sig_p), max_phi)
        mu_p = mu[players]
        if pre is not None:
            for col, local in ((0, la), (1, lb)):
                pre[0, sel, col] = mu_p[local]
                pre[1, sel, col] = phi_p[local]
                pre[2, sel, col] = sig_p[local]
        new_mu, new_phi, new_sig = _update_players(mu_p, phi_p, sig_p, la, lb, s[sel], config)
        new_phi = np.minimum(new_phi, max_phi)
        mu[players] = new_mu
        phi[players] = new_phi
        sigma[players] = new_sig
        if post is not None:
            for col, local in ((0, la), (1, lb)):
                post[0, sel, col] = new_mu[local]
                post[1, sel, col] = new_phi[local]
                post[2, sel, col] = new_sig[local]
        last[players] = k
    idle = (len(periods) - 1 - last).astype(np.float64)
    phi = np.minimum(np.sqrt(phi * phi + idle * sigma * sigma), max_phi)
    # Step 8: back to the Glicko scale.
    return Glicko2Ratings(rating=mu * GLICKO2_SCALE + 1500.0, rd=phi * GLICKO2_SCALE, volatility=sigma)


#: fewest periods for which a process that has not loaded the compiled loop yet loads it (about 0.5 s, the time
#: the numpy loop needs for about 5,000 periods)
COMPILED_MIN_PERIODS = 4_000


def _use_compiled(n_periods: int) -> bool:
    """The compiled loop for ``n_periods`` periods? (module docstring: environment override, then cost)."""
    choice = os.environ.get("GAME_ANALYTICS_GLICKO2_NUMPY", "")
    if choice == "1" or not glicko2_kernels.available():
        return False
    return choice == "0" or glicko2_kernels.loaded() or n_periods >= COMPILED_MIN_PERIODS


def _run_periods_compiled(
    ratings: Glicko2Ratings,
    a: NDArray[np.intp],
    b: NDArray[np.intp],
    s: NDArray[np.float64],
    order: NDArray[np.intp],
    bounds: NDArray[np.int64],
    config: Glicko2Config,
    pre: NDArray[np.float64] | None,
    post: NDArray[np.float64] | None,
) -> Glicko2Ratings:
    """:func:`_run_periods` with the compiled loop; period k is ``order[bounds[k]:bounds[k+1]]``."""
    mu = (ratings.rating - 1500.0) / GLICKO2_SCALE
    phi = ratings.rd / GLICKO2_SCALE
    sigma = np.array(ratings.volatility, dtype=np.float64)
    scratch = np.empty((3, 0, 2))
    loop = glicko2_kernels.compiled_period_loop()
    loop(mu, phi, sigma, a.astype(np.int64), b.astype(np.int64), s, order.astype(np.int64),
                 bounds.astype(np.int64), float(config.tau), float(config.epsilon), int(config.max_iterations),
                 config.max_rd / GLICKO2_SCALE, scratch if pre is None else pre, scratch if post is None else post,
                 pre is not None, post is not None)  # fmt: skip
    return Glicko2Ratings(rating=mu * GLICKO2_SCALE + 1500.0, rd=phi * GLICKO2_SCALE, volatility=sigma)


def rate_period(
    ratings: Glicko2Ratings,
    player_a: ArrayLike,
    player_b: ArrayLike,
    score_a: ArrayLike,
    config: Glicko2Config | None = None,
) -> Glicko2Ratings:
    """Update all players for one rating period.

    Args:
        ratings: ratings of ``n`` players at the start of the period.
        player_a: int array, shape (m,), index of the first player of each match.
        player_b: int array, shape (m,), index of the opponent.
        score_a: float array, shape (m,), score of ``player_a`` (1 win, 0.5 draw, 0 loss; values in
            between are accepted, as in the paper).
        config: system parameters (tau, RD cap, tolerance).

    Returns:
        New :class:`Glicko2Ratings` (inputs are not modified). Players without a match in the
        period get ``rd' = min(sqrt(rd^2 + (sigma*scale)^2), max_rd)`` and unchanged rating/volatility.

    Raises:
        ValueError: on mismatched shapes, out-of-range indices, self-play, or scores outside [0, 1].
    """
    config = config or Glicko2Config()
    a, b, s = _as_matches(len(ratings), player_a, player_b, score_a)
    if _use_compiled(1):
        bounds = np.array([0, a.size], dtype=np.int64)
        return _run_periods_compiled(ratings, a, b, s, np.arange(a.size), bounds, config, None, None)
    return _run_periods(ratings, a, b, s, [np.arange(a.size)], config, None)


def rate_periods(
    ratings: Glicko2Ratings,
    period: ArrayLike,
    player_a: ArrayLike,
    player_b: ArrayLike,
    score_a: ArrayLike,
    config: Glicko2Config | None = None,
    *,
    return_pre_match: bool = False,
    return_post_match: bool = False,
) -> (
    Glicko2Ratings
    | tuple[Glicko2Ratings, PreMatchRatings]
    | tuple[Glicko2Ratings, PreMatchRatings, PreMatchRatings]
):
    """Run :func:`rate_period` over consecutive rating periods.

    Each distinct value of ``period`` (any sortable labels, e.g. ``year * 100 + round``) is one
    rating period; periods are processed in ascending order. Gaps between labels are not counted
    as idle periods (label 10 followed by label 30 is two consecutive periods); for wall-clock
    decay use :func:`game_analytics.analytics.ratings.decay.inactivity_rd`.

    Args:
        ratings: starting ratings of ``n`` players.
        period: array, shape (m,), period label of each match.
        player_a, player_b, score_a: as for :func:`rate_period`, shape (m,).
        config: system parameters.
        return_pre_match: also return, per match, both players' ratings at the start of the
            match's period (useful as leakage-free prediction features).
        return_post_match: also return, per match, both players' ratings at the end of the
            match's period (a player's rating history, one value per period played).

    Returns:
        Final ratings, or ``(final, pre)`` where ``pre`` is a :class:`PreMatchRatings` in the
        input match order, or ``(final, pre, post)`` with ``return_post_match`` (``pre`` is then
        None unless ``return_pre_match`` is also set).
    """
    config = config or Glicko2Config()
    labels = np.asarray(period)
    a, b, s = _as_matches(len(ratings), player_a, player_b, score_a)
    if labels.shape != a.shape:
        raise ValueError("period must have the same shape as the match arrays")
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    cuts = np.flatnonzero(sorted_labels[1:] != sorted_labels[:-1]) + 1
    pre = np.empty((3, a.size, 2)) if return_pre_match else None
    post = np.empty((3, a.size, 2)) if return_post_match else None
    if _use_compiled(cuts.size + 1):
        bounds = np.concatenate([[0], cuts, [a.size]]).astype(np.int64) if a.size else np.zeros(1, np.int64)
        final = _run_periods_compiled(ratings, a, b, s, order, bounds, config, pre, post)
    else:
        periods = np.split(order, cuts) if a.size else []
        final = _run_periods(ratings, a, b, s, periods, config, pre, post)
    if pre is None and post is None:
        return final
    outputs: list[PreMatchRatings | None] = []
    for arr in (pre, post):
        if arr is None:
            outputs.append(None)
            continue
        arr[0] = arr[0] * GLICKO2_SCALE + 1500.0
        arr[1] *= GLICKO2_SCALE
        outputs.append(PreMatchRatings(rating=arr[0], rd=arr[1], volatility=arr[2]))
    if post is None:
        return final, outputs[0]  # type: ignore[return-value]
    return final, outputs[0], outputs[1]  # type: ignore[return-value]
