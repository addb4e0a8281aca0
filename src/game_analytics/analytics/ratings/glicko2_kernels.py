"""The Glicko-2 period loop as scalar kernels compiled with numba (the fast path of :mod:`.glicko2`).

Source: Mark E. Glickman, "Example of the Glicko-2 system" (2013), the same steps as :mod:`.glicko2`.

Real leagues have many tiny periods (a Bundesliga round is 9 matches), where the numpy version spends its time in
per-call overhead. The same steps, written as scalar loops and compiled with numba, run the whole period loop in one
call. The arithmetic and the order of summation follow the numpy version, so both agree to rounding
(tests/analytics/test_glicko2_compiled.py compares them). Without numba, or with ``GAME_ANALYTICS_GLICKO2_NUMPY=1``,
the numpy version runs.

numba is imported, and the kernels compiled (or loaded from numba's cache), on the first call of
:func:`compiled_period_loop`, not at import: importing numba and loading the cached machine code costs about
0.5 s, more than the numpy loop needs for a few thousand periods (see :func:`.glicko2._use_compiled`).
"""

from __future__ import annotations

import functools
import importlib.util
import math
from collections.abc import Callable
from typing import Any

import numpy as np


def _volatility_scalar(delta, phi, v, sigma, tau, epsilon, max_iterations):  # pragma: no cover - compiled
    a = math.log(sigma * sigma)
    d2 = delta * delta
    phi2_v = phi * phi + v
    tau2 = tau * tau

    def f(x):
        ex = math.exp(x)
        denom = phi2_v + ex
        return ex * (d2 - phi2_v - ex) / (2.0 * denom * denom) - (x - a) / tau2

    if d2 > phi2_v:
        big_b = math.log(d2 - phi2_v)
    else:
        k = 1.0
        for _ in range(max_iterations * 10):
            if f(a - k * tau) >= 0:
                break
            k += 1.0
        big_b = a - k * tau
    big_a = a
    f_a = f(big_a)
    f_b = f(big_b)
    for _ in range(max_iterations):
        if not abs(big_b - big_a) > epsilon:
            break
        c = big_a + (big_a - big_b) * f_a / (f_b - f_a)
        f_c = f(c)
        if f_c * f_b <= 0:
            big_a = big_b
            f_a = f_b
        else:
            f_a = f_a / 2.0
        big_b = c
        f_b = f_c
    return math.exp(big_a / 2.0)


def period_loop(mu, phi, sigma, a, b, s, order, bounds, tau, epsilon, max_iterations, max_phi,
                 pre, post, want_pre, want_post):  # pragma: no cover - compiled  # fmt: skip
    """Steps 3-7 for every period; ``order[bounds[k]:bounds[k+1]]`` are period k's matches. Updates in place."""
    n = mu.shape[0]
    n_periods = bounds.shape[0] - 1
    last = np.full(n, -1, np.int64)
    local = np.full(n, -1, np.int64)
    players = np.empty(n, np.int64)
    mu_p = np.empty(n)
    phi_p = np.empty(n)
    sig_p = np.empty(n)
    v_inv = np.empty(n)
    score_sum = np.empty(n)
    inv_pi2 = 3.0 / (math.pi * math.pi)
    for k in range(n_periods):
        lo, hi = bounds[k], bounds[k + 1]
        count = 0
        for side in range(2):
            for j in range(lo, hi):
                i = order[j]
                pl = a[i] if side == 0 else b[i]
                if local[pl] < 0:
                    local[pl] = count
                    players[count] = pl
                    idle = k - 1 - last[pl]
                    mu_p[count] = mu[pl]
                    sig_p[count] = sigma[pl]
                    phi_p[count] = min(math.sqrt(phi[pl] ** 2 + idle * sigma[pl] * sigma[pl]), max_phi)
                    v_inv[count] = 0.0
                    score_sum[count] = 0.0
                    count += 1
        for side in range(2):
            for j in range(lo, hi):
                i = order[j]
                me = local[a[i]] if side == 0 else local[b[i]]
                opp = local[b[i]] if side == 0 else local[a[i]]
                score = s[i] if side == 0 else 1.0 - s[i]
                g = 1.0 / math.sqrt(1.0 + inv_pi2 * phi_p[opp] * phi_p[opp])
                e = 1.0 / (1.0 + math.exp(-g * (mu_p[me] - mu_p[opp])))
                v_inv[me] += g * g * e * (1.0 - e)
                score_sum[me] += g * (score - e)
                if want_pre:
                    pre[0, i, side] = mu_p[me]
                    pre[1, i, side] = phi_p[me]
                    pre[2, i, side] = sig_p[me]
        for q in range(count):
            pl = players[q]
            if v_inv[q] > 0:
                v = 1.0 / v_inv[q]
                new_sig = _volatility_scalar(
                    v * score_sum[q], phi_p[q], v, sig_p[q], tau, epsilon, max_iterations
                )
                phi_star = math.hypot(phi_p[q], new_sig)
                new_phi = 1.0 / math.sqrt(1.0 / (phi_star * phi_star) + 1.0 / v)
                mu[pl] = mu_p[q] + new_phi * new_phi * score_sum[q]
                phi[pl] = min(new_phi, max_phi)
                sigma[pl] = new_sig
            else:
                mu[pl] = mu_p[q]
                phi[pl] = min(math.hypot(phi_p[q], sig_p[q]), max_phi)
                sigma[pl] = sig_p[q]
            last[pl] = k
            local[pl] = -1
        if want_post:
            for j in range(lo, hi):
                i = order[j]
                post[0, i, 0] = mu[a[i]]
                post[1, i, 0] = phi[a[i]]
                post[2, i, 0] = sigma[a[i]]
                post[0, i, 1] = mu[b[i]]
                post[1, i, 1] = phi[b[i]]
                post[2, i, 1] = sigma[b[i]]
    for pl in range(n):
        idle = n_periods - 1 - last[pl]
        phi[pl] = min(math.sqrt(phi[pl] * phi[pl] + idle * sigma[pl] * sigma[pl]), max_phi)


def _compile(function):
    """``function`` compiled by numba, its machine code cached on disk where numba finds a writable place.

    With a read-only install and no writable ``$HOME`` (the product image: ``readOnlyRootFilesystem``, a non-root
    user) numba's ``cache=True`` raises "no locator available" at decoration time; the code is then compiled per
    process instead (about a second, once). ``NUMBA_CACHE_DIR`` pointed at a writable volume keeps the cache.
    """
    import numba

    try:
        return numba.njit(cache=True, error_model="numpy")(function)
    except RuntimeError:
        return numba.njit(cache=False, error_model="numpy")(function)


def available() -> bool:
    """Whether numba is installed (checked without importing it)."""
    return importlib.util.find_spec("numba") is not None


def loaded() -> bool:
    """Whether :func:`compiled_period_loop` has already run in this process (the compile cost is paid)."""
    return compiled_period_loop.cache_info().currsize > 0


@functools.lru_cache(maxsize=1)
def compiled_period_loop() -> Callable[..., Any]:
    """:func:`period_loop` compiled by numba (imports numba and compiles on the first call; needs numba)."""
    global _volatility_scalar
    # period_loop calls the module global _volatility_scalar: numba resolves it at compile time
    _volatility_scalar = _compile(_volatility_scalar)
    return _compile(period_loop)
