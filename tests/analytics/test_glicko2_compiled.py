"""The compiled (numba) Glicko-2 period loop agrees with the numpy implementation."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from game_analytics.analytics.ratings import glicko2, glicko2_kernels
from game_analytics.analytics.ratings.glicko2 import Glicko2Config, Glicko2Ratings, rate_period, rate_periods

assert glicko2_kernels.available(), "numba is a declared dependency"


def _random_league(seed: int, n: int = 40, m: int = 3000, periods: int = 150):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n, m)
    b = (a + rng.integers(1, n, m)) % n
    s = rng.choice([0.0, 0.5, 1.0], m)
    label = np.sort(rng.integers(0, periods, m))[rng.permutation(m)]  # unsorted labels, uneven periods
    start = Glicko2Ratings(rating=rng.normal(1500, 200, n), rd=rng.uniform(30, 350, n),
                           volatility=rng.uniform(0.04, 0.09, n))  # fmt: skip
    return start, label, a, b, s


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compiled_equals_numpy(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    start, label, a, b, s = _random_league(seed)
    config = Glicko2Config(tau=0.4, max_rd=300.0)
    monkeypatch.setenv("GAME_ANALYTICS_GLICKO2_NUMPY", "0")
    fast = rate_periods(start, label, a, b, s, config, return_pre_match=True, return_post_match=True)
    monkeypatch.setenv("GAME_ANALYTICS_GLICKO2_NUMPY", "1")
    slow = rate_periods(start, label, a, b, s, config, return_pre_match=True, return_post_match=True)
    for x, y in zip(fast, slow, strict=True):
        for field in ("rating", "rd", "volatility"):
            np.testing.assert_allclose(getattr(x, field), getattr(y, field), rtol=1e-9, atol=1e-9)
    assert (fast[0].rd <= 300.0 + 1e-9).all()


def test_compiled_single_period_and_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    start, _, a, b, s = _random_league(5, m=200)
    monkeypatch.setenv("GAME_ANALYTICS_GLICKO2_NUMPY", "0")
    fast = rate_period(start, a, b, s)
    empty = rate_periods(start, [], [], [], [])
    monkeypatch.setenv("GAME_ANALYTICS_GLICKO2_NUMPY", "1")
    np.testing.assert_allclose(fast.rating, rate_period(start, a, b, s).rating, rtol=1e-9)
    np.testing.assert_allclose(fast.rd, rate_period(start, a, b, s).rd, rtol=1e-9)
    np.testing.assert_allclose(empty.rd, rate_periods(start, [], [], [], []).rd)
    np.testing.assert_allclose(empty.rd, start.rd)



def test_compiled_loop_chosen_by_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    """Auto mode: numpy below COMPILED_MIN_PERIODS in a fresh process, compiled once loaded; the env var forces."""
    code = ("import sys; from game_analytics.analytics.ratings import glicko2 as g, glicko2_kernels as k; "
            "small = g._use_compiled(10); big = g._use_compiled(g.COMPILED_MIN_PERIODS); "
            "print(small, big, 'numba' in sys.modules); k.compiled_period_loop(); print(g._use_compiled(10))")
    env = {k: v for k, v in os.environ.items() if k != "GAME_ANALYTICS_GLICKO2_NUMPY"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "True", "False", "True"]
    monkeypatch.setenv("GAME_ANALYTICS_GLICKO2_NUMPY", "1")
    assert not glicko2._use_compiled(10**6)
    monkeypatch.setenv("GAME_ANALYTICS_GLICKO2_NUMPY", "0")
    assert glicko2._use_compiled(1)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to run the check as another user (CI runs as root)")
def test_imports_where_numba_cannot_cache() -> None:
    """As in the image: a non-root user who can write neither the package folder nor a ``$HOME``.

    numba's ``cache=True`` then raises "no locator available" at import; the module must still import and rate.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "HOME")}
    env.update(HOME="/nonexistent", PYTHONDONTWRITEBYTECODE="1")
    code = ("from game_analytics.analytics.ratings import glicko2 as g; import numpy as np; "
            "r = g.rate_periods(g.Glicko2Ratings.initial(2), np.array([0]), np.array([0]), np.array([1]), "
            "np.array([1.0])); print(round(float(r.rating[0]), 2))")
    done = subprocess.run(["setpriv", "--reuid", "10001", "--regid", "10001", "--clear-groups",
                           sys.executable, "-c", code], env=env, cwd="/", capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.split()[-1]) > 1500
