"""The query layer over ``events`` and the tables derived from it: every SQL the workers and reports run on them.

One filter type (:class:`Filters`: time window, games, regions, event types) and one way to turn it into bound
SQL (:func:`where`, :func:`clauses`); one definition of an *active player* (:mod:`.activity`) and of a
*session* (:mod:`.sessions`); one :func:`latest_event_time`.  The exporter, the report builders, the detectors
and the ranking worker call these modules; the pure formulas they feed live in :mod:`game_analytics.analytics`.

* :mod:`.filters` - :class:`Filters`, SQL clauses, query -> DataFrame
* :mod:`.events` - :func:`latest_event_time`
* :mod:`.activity` - active players, DAU/WAU/MAU, player counts, retention, funnels, events by type / hour
* :mod:`.sessions` - sessions
* :mod:`.economy` - spend, wealth, Gini, wealth histograms, price index, trade volume
* :mod:`.ratings` - matches, seasons and rating history of the ranking worker; leaderboards for the exporter
"""

from .events import latest_event_time
from .filters import ALL, Bind, Filters, clauses, fetch_frame, player_clause, where

__all__ = ["ALL", "Bind", "Filters", "clauses", "fetch_frame", "latest_event_time", "player_clause", "where"]
