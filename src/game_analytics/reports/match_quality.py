"""The rankings report's match-quality section: the win/draw/loss model on each game's most recent held-out season
(log loss, Brier, reliability diagram) against the home-advantage baseline
(:mod:`game_analytics.analytics.ratings.quality`)."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import text

from ..analytics.ratings.quality import match_model_quality
from ..storage.queries.ratings import game_matches
from .context import BuildContext
from .model import ChartSpec, Figure, Report, Table

__all__ = ["add_match_quality"]


def add_match_quality(report: Report, ctx: BuildContext) -> None:
    """Append per game the held-out model quality (table), and for the game with the most matches the reliability
    diagram (table + line chart against the diagonal) and headline figures, using matches before the period end."""
    sql = "SELECT game, count(*) AS n FROM matches WHERE occurred_at < :end"
    params: dict = {"end": ctx.period.end}
    if ctx.filters.games:
        sql += " AND game = ANY(CAST(:games AS text[]))"
        params["games"] = list(ctx.filters.games)
    rows, best = [], None
    with ctx.connect() as conn:
        games = conn.execute(text(sql + " GROUP BY 1 ORDER BY 2 DESC, 1"), params).all()
        for game, _ in games:
            try:
                q = match_model_quality(game_matches(conn, game, ctx.period.end))
            except ValueError:
                continue
            best = best or (game, q)
            rows += [
                {"game": game, "model": "ratings (ordered logit on Glicko-2)", "log_loss": q.log_loss, "brier": q.brier,
                 "held_out_matches": q.n_test, "held_out_from": q.holdout_start.date().isoformat(),
                 "mean_match_quality": q.mean_match_quality},
                {"game": game, "model": "home-advantage baseline", "log_loss": q.baseline_log_loss,
                 "brier": q.baseline_brier, "held_out_matches": q.n_test,
                 "held_out_from": q.holdout_start.date().isoformat(), "mean_match_quality": None},
            ]  # fmt: skip
    if best is None:
        report.notes.append("No game has matches both before and in its most recent 365 days: no model quality.")
        return
    game, q = best
    report.figures += [
        Figure("model_log_loss", f"Win/draw/loss log loss, held-out season ({game})", q.log_loss, "nats"),
        Figure("baseline_log_loss", f"Home-advantage baseline log loss ({game})", q.baseline_log_loss, "nats"),
        Figure("model_brier", f"Brier score, held-out season ({game})", q.brier, ""),
        Figure("baseline_brier", f"Home-advantage baseline Brier score ({game})", q.baseline_brier, ""),
    ]
    report.tables += [
        Table("match_model_quality", "Outcome model on the most recent held-out season", pd.DataFrame(rows),
              "Held out: the 365 days before the game's newest match; fitted on all earlier matches. Log loss in "
              "nats, Brier in the multi-category form (0 best, 2 worst); match quality = normalised entropy."),
        Table("reliability", f"Reliability of the predicted probabilities ({game}, held-out season)", q.reliability,
              "All three outcomes pooled, 10 probability bins.", percent_columns=("predicted", "observed")),
    ]  # fmt: skip
    report.charts.append(ChartSpec("reliability", f"Reliability diagram ({game}, held-out season)", "line",
                                   "reliability", "predicted", ("observed",), "Predicted probability",
                                   "Observed frequency", diagonal=True, percent=True))  # fmt: skip
    report.notes.append(f"Outcome model fitted on {q.n_train:,} matches, scored on {q.n_test:,} held-out ones.")
