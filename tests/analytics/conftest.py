"""Real data sets for the analytics tests, loaded through the project loaders (cached under .cache/data)."""

from __future__ import annotations

import pandas as pd
import pytest

from game_analytics.data.datasets import fetch_all, load_bundesliga, load_cdnow_master, load_cdnow_summary


@pytest.fixture(scope="session")
def _data_cache() -> None:
    fetch_all()  # idempotent: no network when the cache is complete


@pytest.fixture(scope="session")
def bundesliga(_data_cache: None) -> pd.DataFrame:
    return load_bundesliga()


@pytest.fixture(scope="session")
def cdnow_master(_data_cache: None) -> pd.DataFrame:
    return load_cdnow_master()


@pytest.fixture(scope="session")
def cdnow_summary(_data_cache: None) -> pd.DataFrame:
    return load_cdnow_summary()
