"""``game-analytics predict --board NS/NAME HOME AWAY``: win, draw and loss probability and match quality of a
pairing from a RankingJob's current ratings.

The outcome model (:mod:`game_analytics.analytics.ratings.quality`: the ordered logit on Glicko-2 features) is
fitted on the stored matches of the board's game. The pairing's ratings are the board's newest ``rating_history``
rows (Glicko-2 jobs: rating and RD); for a job without a deviation (Elo) or a player without history, the
Glicko-2 ratings of the same fit. ``--neutral`` drops the home advantage. Exit 0, 1 (nothing to predict from: no
board, no matches, unknown player), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence

from game_analytics.console import EXIT_FAILED, EXIT_OK, EXIT_USAGE, ArgumentParser, fail, render_table

__all__ = ["build_parser", "main", "predict"]


def predict(engine: object, board: str, home: str, away: str, *, neutral: bool = False) -> dict[str, object]:
    """The prediction for ``home`` vs ``away`` on ``board`` (``namespace/name``) as a JSON-able dict.

    Raises:
        LookupError: unknown board, no usable matches, or a player who never played.
    """
    from game_analytics.analytics.ratings.prediction import predict_pairing
    from game_analytics.analytics.ratings.quality import match_model_quality
    from game_analytics.storage.queries.ratings import board_games, game_matches, latest_ratings

    with engine.connect() as conn:  # type: ignore[attr-defined]
        game = dict(board_games(conn)).get(board)
        if game is None or game == "unknown":
            raise LookupError(f"no leaderboard {board!r} with stored matches")
        try:
            quality = match_model_quality(game_matches(conn, game))
        except ValueError as exc:
            raise LookupError(f"{board}: {exc}") from exc
        stored = latest_ratings(conn, board, [home, away])
    index = {p: i for i, p in enumerate(quality.players)}
    sides = []
    for player in (home, away):
        rating_rd = stored.get(player)
        if rating_rd is not None and rating_rd[1] is not None:
            sides.append((*rating_rd, "rating_history"))
        elif player in index:
            i = index[player]
            sides.append((float(quality.ratings.rating[i]), float(quality.ratings.rd[i]), "glicko2 fit"))
        else:
            raise LookupError(f"{player!r} has no match in {game}")
    (r_h, rd_h, src_h), (r_a, rd_a, src_a) = sides
    proba, match_q = predict_pairing(quality.model, r_h, rd_h, r_a, rd_a, home=0.0 if neutral else 1.0)
    return {
        "board": board, "game": game, "home": home, "away": away, "neutral": neutral,
        "home_rating": r_h, "home_rd": rd_h, "away_rating": r_a, "away_rd": rd_a, "ratings_from": [src_h, src_a],
        "p_home_win": float(proba[0, 2]), "p_draw": float(proba[0, 1]), "p_away_win": float(proba[0, 0]),
        "match_quality": float(match_q[0]),
        "model": {"log_loss": quality.log_loss, "brier": quality.brier, "baseline_log_loss": quality.baseline_log_loss,
                  "baseline_brier": quality.baseline_brier, "held_out_matches": quality.n_test},
    }  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """``predict --board NS/NAME HOME AWAY [--neutral] [--dsn DSN] [--format table|json]``."""
    p = ArgumentParser(prog="game-analytics predict", description="Win/draw/loss probability of a pairing.")
    p.add_argument("home", help="player id of the first (home) side")
    p.add_argument("away", help="player id of the second (away) side")
    p.add_argument("--board", required=True, help="the RankingJob's board, namespace/name")
    p.add_argument("--neutral", action="store_true", help="neutral ground: no home advantage")
    p.add_argument("--dsn", default=os.environ.get("GAME_ANALYTICS_DSN"), help="PostgreSQL URL (env GAME_ANALYTICS_DSN)")
    p.add_argument("--output", "--format", dest="format", choices=["table", "json"], default="table",
                   help="table (default) or json")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``game-analytics predict``; returns the exit code."""
    args = build_parser().parse_args(argv)
    if not args.dsn:
        return fail("game-analytics predict", "no database: pass --dsn or set GAME_ANALYTICS_DSN", EXIT_USAGE)
    from sqlalchemy.exc import SQLAlchemyError

    from game_analytics.storage.engine import make_engine

    engine = make_engine(args.dsn)
    try:
        result = predict(engine, args.board, args.home, args.away, neutral=args.neutral)
    except (LookupError, SQLAlchemyError) as exc:
        return fail("game-analytics predict", str(exc), EXIT_FAILED)
    finally:
        engine.dispose()
    if args.format == "json":
        print(json.dumps(result, indent=2))
    else:
        keys = ("home", "away", "home_rating", "away_rating", "p_home_win", "p_draw", "p_away_win", "match_quality")
        rows = [{"field": k, "value": f"{result[k]:.4f}" if isinstance(result[k], float) else result[k]} for k in keys]
        print(render_table(rows, ["field", "value"]))
    return EXIT_OK
