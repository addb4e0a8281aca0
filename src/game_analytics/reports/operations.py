"""Report builders over the operations tables: rankings (leaderboards, rating history, matches) and security
(detections, interventions, the audit log).  Filters are the query layer's (games/regions through the players'
events, :func:`game_analytics.storage.queries.player_clause`).
"""

from __future__ import annotations

import pandas as pd

from ..alerting import measured
from ..api.scheduledreport import ReportType
from ..audit import AuditLog
from ..storage.queries import Filters, fetch_frame, player_clause
from .context import UNIT_LABEL, BuildContext, bucket_series, number
from .match_quality import add_match_quality
from .model import ChartSpec, Figure, Report, Table, bucket_unit

__all__ = ["build_rankings", "build_security"]


# ------------------------------------------------------------------------------------------- rankings


def build_rankings(ctx: BuildContext) -> Report:
    """Rankings: the newest season of every leaderboard (top N, league sizes) and the biggest rating movers
    between the two newest rating periods of every (job, algorithm), as computed before the period's end."""
    report = ctx.new_report(ReportType.RANKINGS, "Rankings")
    lf, lp = player_clause(Filters.of(ctx.filters), "l.player_id")
    hf, hp = player_clause(Filters.of(ctx.filters), "h.player_id")
    mf, mp = "", {}
    if ctx.filters.games:
        mf, mp = " AND m.game = ANY(CAST(:f_games AS text[]))", {"f_games": list(ctx.filters.games)}
    p = ctx.params(**{**lp, **hp, **mp})  # the same filter values under the same names
    with ctx.connect() as conn:
        board = fetch_frame(conn, f"""
            WITH latest AS (
                SELECT DISTINCT ON (board) board, season FROM leaderboard_entries
                WHERE computed_at < :end ORDER BY board, computed_at DESC, season DESC),
            rows AS (
                SELECT l.board, l.season, l.rank, l.player_id, l.rating, l.percentile, l.league,
                       row_number() OVER (PARTITION BY l.board ORDER BY l.rank, l.player_id) AS n
                FROM leaderboard_entries l JOIN latest USING (board, season)
                WHERE l.computed_at < :end{lf})
            SELECT board, season, rank, player_id, rating, percentile, league FROM rows
            WHERE n <= :top_n ORDER BY board, rank, player_id""", p)
        leagues = fetch_frame(conn, f"""
            WITH latest AS (
                SELECT DISTINCT ON (board) board, season FROM leaderboard_entries
                WHERE computed_at < :end ORDER BY board, computed_at DESC, season DESC)
            SELECT l.board, l.season, coalesce(l.league, '(none)') AS league, count(*) AS players,
                   min(l.rating) AS min_rating, max(l.rating) AS max_rating
            FROM leaderboard_entries l JOIN latest USING (board, season)
            WHERE l.computed_at < :end{lf}
            GROUP BY 1, 2, 3 ORDER BY 1, min(l.rating)""", p)
        movers = fetch_frame(conn, f"""
            WITH h AS (
                SELECT DISTINCT ON (h.player_id, h.algorithm, coalesce(h.job, ''), h.period)
                       h.player_id, h.algorithm, coalesce(h.job, '') AS job, h.period, h.rating
                FROM rating_history h WHERE h.computed_at < :end{hf}
                ORDER BY h.player_id, h.algorithm, coalesce(h.job, ''), h.period, h.computed_at DESC, h.id DESC),
            periods AS (
                SELECT job, algorithm, period, dense_rank() OVER (PARTITION BY job, algorithm ORDER BY period DESC) AS r
                FROM (SELECT DISTINCT job, algorithm, period FROM h) x)
            SELECT cur.job, cur.algorithm, cur.player_id, prev.period AS from_period, cur.period AS to_period,
                   prev.rating AS rating_before, cur.rating AS rating_after, cur.rating - prev.rating AS change
            FROM h cur
            JOIN periods pc ON pc.job = cur.job AND pc.algorithm = cur.algorithm AND pc.period = cur.period AND pc.r = 1
            JOIN periods pp ON pp.job = cur.job AND pp.algorithm = cur.algorithm AND pp.r = 2
            JOIN h prev ON prev.job = cur.job AND prev.algorithm = cur.algorithm AND prev.period = pp.period
                       AND prev.player_id = cur.player_id
            ORDER BY abs(cur.rating - prev.rating) DESC, cur.player_id LIMIT :top_n""", p)
        matches = fetch_frame(conn, f"""
            SELECT count(*) AS matches, count(DISTINCT m.game) AS games
            FROM matches m WHERE m.occurred_at >= :start AND m.occurred_at < :end{mf}""", p).iloc[0]
    report.figures += [
        Figure("leaderboards", "Leaderboards", int(board["board"].nunique()) if not board.empty else 0, "boards"),
        Figure("ranked_players", "Ranked players (newest seasons)", int(leagues["players"].sum()) if not leagues.empty
               else 0, "players"),
        Figure("matches", "Matches in period", int(matches["matches"]), "matches"),
    ]  # fmt: skip
    if not movers.empty:
        top = movers.iloc[0]
        report.figures.append(Figure("biggest_move", f"Biggest move ({top['player_id']})", float(top["change"]),
                                     "rating points"))  # fmt: skip
    else:
        report.notes.append("Fewer than two rating periods stored: no movers.")
    if board.empty:
        report.notes.append("No leaderboard entries computed before the period end.")
    report.notes.append(
        "Leaderboards show each board's newest season computed before the period end; movers compare each "
        "player's rating in the two newest rating periods of the same job and algorithm."
    )
    report.tables += [
        Table("leaderboard", f"Leaderboards: top {ctx.filters.top_n} per board", board),
        Table("league_sizes", "League sizes", leagues),
        Table("biggest_movers", f"Top {ctx.filters.top_n} rating movers", movers, "Change in rating points."),
    ]
    first_board = board[board["board"] == board["board"].iloc[0]] if not board.empty else board
    report.tables.append(Table("leaderboard_chart", "Top of the first leaderboard", first_board))
    report.charts += [
        ChartSpec("leaderboard", "Leaderboard (first board, newest season)", "bar", "leaderboard_chart", "player_id",
                  ("rating",), "Player", "Rating (points)", horizontal=True, zero_based=False),
        ChartSpec("league_sizes", "Players per league", "bar", "league_sizes", "league", ("players",), "League",
                  "Players"),
        ChartSpec("biggest_movers", "Biggest rating movers", "bar", "biggest_movers", "player_id", ("change",),
                  "Player", "Rating change (points)", horizontal=True),
    ]  # fmt: skip
    add_match_quality(report, ctx)
    return report


# ------------------------------------------------------------------------------------------- security


def detector_quality_table() -> Table:
    """The last measured quality of every detector type (:func:`game_analytics.alerting.measured.load`, shipped
    with the package; docs/backtest.md): precision, recall (0..1), false pages per week, plants, median delay in
    minutes. Empty when no measurement is shipped."""
    rows = [{"detector": q.detector, "precision": q.precision, "recall": q.recall,
             "false_pages_per_week": q.false_pages_per_week, "plants": q.plants, "detected": q.detected,
             "median_delay_minutes": None if q.median_delay_seconds is None else round(q.median_delay_seconds / 60, 1),
             "goal_met": q.recall >= 0.95 and q.precision >= 0.9, "measured_at": q.measured_at}
            for q in measured.load().values()]  # fmt: skip
    return Table("detector_quality", "Detector quality (last measured: precision, recall, false pages per week)",
                 pd.DataFrame(rows))


def build_security(ctx: BuildContext) -> Report:
    """Security: detections in the period, open and resolved interventions, an audit-log summary with a full
    hash-chain verification (:meth:`game_analytics.audit.AuditLog.verify`), and the last measured quality of every
    detector type (:func:`detector_quality_table`)."""
    report = ctx.new_report(ReportType.SECURITY, "Security")
    df, dp = player_clause(Filters.of(ctx.filters), "d.player_id")
    p = ctx.params(**dp)
    with ctx.connect() as conn:
        by_kind = fetch_frame(conn, f"""
            SELECT d.category, d.severity, count(*) AS detections, count(DISTINCT d.player_id) AS players
            FROM detections d WHERE d.detected_at >= :start AND d.detected_at < :end{df}
            GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2""", p)
        top = fetch_frame(conn, f"""
            SELECT d.id, d.detected_at, d.rule, d.category, d.severity, d.player_id, d.score
            FROM detections d WHERE d.detected_at >= :start AND d.detected_at < :end{df}
            ORDER BY d.score DESC, d.detected_at DESC, d.id LIMIT :top_n""", p)
        daily = fetch_frame(conn, f"""
            SELECT date_trunc(:unit, d.detected_at, 'UTC') AS bucket, count(*) AS detections
            FROM detections d WHERE d.detected_at >= :start AND d.detected_at < :end{df} GROUP BY 1 ORDER BY 1""",
                            {**p, "unit": bucket_unit(ctx.period)})  # fmt: skip
        interventions = fetch_frame(conn, f"""
            SELECT
              count(*) FILTER (WHERE i.status IN ('open', 'in_progress') AND i.created_at < :end) AS open_now,
              count(*) FILTER (WHERE i.created_at >= :start AND i.created_at < :end) AS created,
              count(*) FILTER (WHERE i.status IN ('resolved', 'dismissed')
                               AND i.resolved_at >= :start AND i.resolved_at < :end) AS resolved,
              percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM i.resolved_at - i.created_at))
                FILTER (WHERE i.resolved_at >= :start AND i.resolved_at < :end) AS median_resolve_seconds
            FROM interventions i JOIN detections d ON d.id = i.detection_id WHERE true{df}""", p).iloc[0]
        queue = fetch_frame(conn, f"""
            SELECT i.priority, i.status::text AS status, count(*) AS interventions
            FROM interventions i JOIN detections d ON d.id = i.detection_id
            WHERE i.created_at < :end AND (i.status IN ('open', 'in_progress')
                  OR (i.resolved_at >= :start AND i.resolved_at < :end)){df}
            GROUP BY 1, 2 ORDER BY 1, 2""", p)
        flagged = fetch_frame(conn, f"""
            SELECT count(DISTINCT d.player_id) AS players
            FROM detections d WHERE d.detected_at >= :start AND d.detected_at < :end{df}""", p).iloc[0]
        audit = fetch_frame(conn, """
            SELECT action, count(*) AS entries, count(DISTINCT actor) AS actors, min(at) AS first_at, max(at) AS last_at
            FROM audit_log WHERE at >= :start AND at < :end GROUP BY 1 ORDER BY 2 DESC, 1""", p)
    verify = AuditLog(ctx.engine).verify()
    median_h = number(interventions["median_resolve_seconds"])
    report.figures += [
        Figure("detections", "Detections", int(by_kind["detections"].sum()) if not by_kind.empty else 0, "detections"),
        Figure("flagged_players", "Players with a detection", int(flagged["players"]), "players"),
        Figure("interventions_open", "Open interventions (at period end)", int(interventions["open_now"]),
               "interventions"),
        Figure("interventions_created", "Interventions created", int(interventions["created"]), "interventions"),
        Figure("interventions_resolved", "Interventions resolved or dismissed", int(interventions["resolved"]),
               "interventions"),
        Figure("median_resolve_hours", "Median time to resolve", None if median_h is None else median_h / 3600, "h"),
        Figure("audit_entries", "Audit log entries", int(audit["entries"].sum()) if not audit.empty else 0, "entries"),
        Figure("audit_chain", "Audit hash chain", "intact" if verify.ok else "BROKEN", ""),
        Figure("audit_rows_verified", "Audit rows verified", verify.checked, "rows"),
    ]  # fmt: skip
    if not verify.ok:
        report.notes.append(f"AUDIT CHAIN BROKEN at seq {verify.first_bad_seq}: {verify.problem}")
    report.notes.append("The audit chain is verified over the whole log, not only this period. Audit figures are "
                        "not filtered by games/regions.")
    daily = bucket_series(daily, ctx, bucket_unit(ctx.period), ["detections"])
    unit = bucket_unit(ctx.period)
    report.tables += [
        Table("detections_by_kind", "Detections by category and severity", by_kind),
        Table("top_detections", f"Top {ctx.filters.top_n} detections by score", top),
        Table("detections_over_time", f"Detections per {unit}", daily),
        Table("intervention_queue", "Interventions open or closed in the period, by priority and status", queue),
        Table("audit_summary", "Audit log entries by action", audit),
        Table("audit_verification", "Audit chain verification",
              pd.DataFrame([{"ok": verify.ok, "rows_checked": verify.checked, "first_bad_seq": verify.first_bad_seq,
                             "problem": verify.problem}])),
        detector_quality_table(),
    ]  # fmt: skip
    sources = sorted({q.source for q in measured.load().values()})
    if sources:
        report.notes.append("Detector quality measured by " + "; ".join(sources) + " (docs/backtest.md).")
    report.charts += [
        ChartSpec("detections_over_time", f"Detections per {unit}", "line", "detections_over_time", "bucket",
                  ("detections",), UNIT_LABEL[unit], "Detections"),
        ChartSpec("audit_summary", "Audit entries by action", "bar", "audit_summary", "action", ("entries",),
                  "Action", "Entries", horizontal=True),
    ]  # fmt: skip
    return report


#: ReportType -> builder.
