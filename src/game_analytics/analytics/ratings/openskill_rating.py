"""OpenSkill (Weng-Lin Bayesian ratings) for batches of head-to-head matches with draws.

Source: Ruby C. Weng and Chih-Jen Lin, "A Bayesian Approximation Method for Online Ranking",
JMLR 12 (2011); computed with the ``openskill`` library (default model: Plackett-Luce).

:class:`OpenSkillRater` keeps the state of ``n`` players as library rating objects indexed by
integer player index and exposes numpy views (``mu``, ``sigma``, ``ordinal``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from openskill.models import PlackettLuce


class OpenSkillRater:
    """Sequential OpenSkill rating of ``n_players`` players.

    Args:
        n_players: number of players (indices ``0..n_players-1``).
        model: an ``openskill.models`` model instance; default ``PlackettLuce()``.
    """

    def __init__(self, n_players: int, model: Any | None = None) -> None:
        if n_players < 0:
            raise ValueError("n_players must be >= 0")
        self.model = model if model is not None else PlackettLuce()
        self._ratings = [self.model.rating() for _ in range(n_players)]

    def __len__(self) -> int:
        return len(self._ratings)

    @property
    def mu(self) -> NDArray[np.float64]:
        """Mean skill per player, shape (n,)."""
        return np.fromiter((r.mu for r in self._ratings), dtype=np.float64, count=len(self._ratings))

    @property
    def sigma(self) -> NDArray[np.float64]:
        """Skill uncertainty per player, shape (n,)."""
        return np.fromiter((r.sigma for r in self._ratings), dtype=np.float64, count=len(self._ratings))

    @property
    def ordinal(self) -> NDArray[np.float64]:
        """Conservative skill ``mu - 3 sigma`` per player, shape (n,)."""
        return self.mu - 3.0 * self.sigma

    def rate_matches(self, player_a: ArrayLike, player_b: ArrayLike, score_a: ArrayLike) -> None:
        """Apply matches in order (each match updates both players before the next one).

        Args:
            player_a, player_b: int arrays, shape (m,), player indices.
            score_a: float array, shape (m,): 1 = a won, 0.5 = draw, 0 = b won.

        Raises:
            ValueError: on mismatched shapes, bad indices, self-play or other score values.
        """
        a = np.asarray(player_a, dtype=np.intp)
        b = np.asarray(player_b, dtype=np.intp)
        s = np.asarray(score_a, dtype=np.float64)
        if a.ndim != 1 or a.shape != b.shape or a.shape != s.shape:
            raise ValueError("player_a, player_b and score_a must be 1-D arrays of equal length")
        if a.size and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= len(self)):
            raise ValueError(f"player index out of range [0, {len(self)})")
        if np.any(a == b):
            raise ValueError("a player cannot play against themselves")
        if not np.all(np.isin(s, (0.0, 0.5, 1.0))):
            raise ValueError("scores must be 0, 0.5 or 1")
        # Ranks: lower is better; equal ranks are a draw.
        ranks = {1.0: [0, 1], 0.5: [0, 0], 0.0: [1, 0]}
        rs = self._ratings
        rate = self.model.rate
        for i, j, sc in zip(a.tolist(), b.tolist(), s.tolist(), strict=True):
            (ri,), (rj,) = rate([[rs[i]], [rs[j]]], ranks=ranks[sc])
            rs[i], rs[j] = ri, rj

    def predict(
        self, player_a: ArrayLike, player_b: ArrayLike
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Win probability of ``a`` over ``b`` and draw probability for each pairing.

        Returns:
            ``(p_win_a, p_draw)``, float arrays of shape (m,), from the model's ``predict_win``
            (which splits the non-draw mass between the two sides) and ``predict_draw``.
        """
        a = np.atleast_1d(np.asarray(player_a, dtype=np.intp))
        b = np.atleast_1d(np.asarray(player_b, dtype=np.intp))
        win = np.empty(a.size)
        draw = np.empty(a.size)
        for n, (i, j) in enumerate(zip(a.tolist(), b.tolist(), strict=True)):
            teams = [[self._ratings[i]], [self._ratings[j]]]
            win[n] = self.model.predict_win(teams)[0]
            draw[n] = self.model.predict_draw(teams)
        return win, draw
