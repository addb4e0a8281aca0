"""Tests of game_analytics.data: fetching, the published facts of the real data sets, and event views.

The real files are fetched once per session into the default cache (what `make data` fills); when they are
already there this costs no network.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import shutil
import tarfile
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from game_analytics.data import (
    DataIntegrityError,
    DataNotFoundError,
    customer_player_id,
    datasets,
    default_cache_dir,
    fetch_all,
    load_bundesliga,
    load_cdnow_master,
    load_cdnow_sample,
    load_cdnow_summary,
    match_events,
    purchase_events,
    team_player_id,
)
from game_analytics.data.datasets import CDNOW_CALIBRATION_END, DataFile, SourcePackage, extract_nested


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    paths = fetch_all()
    return next(iter(paths.values())).parent


@pytest.fixture(scope="session")
def bundesliga(cache_dir: Path) -> pd.DataFrame:
    return load_bundesliga(cache_dir)


@pytest.fixture(scope="session")
def cdnow_master(cache_dir: Path) -> pd.DataFrame:
    return load_cdnow_master(cache_dir)


@pytest.fixture(scope="session")
def cdnow_sample(cache_dir: Path) -> pd.DataFrame:
    return load_cdnow_sample(cache_dir)


# ----------------------------------------------------------------------------------------- fetching


def test_default_cache_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GAME_ANALYTICS_DATA_DIR", str(tmp_path / "elsewhere"))
    assert default_cache_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("GAME_ANALYTICS_DATA_DIR")
    assert default_cache_dir().parts[-2:] == (".cache", "data")


def test_fetch_all_skips_complete_cache(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_download(*args: object) -> Path:
        raise AssertionError("fetch_all downloaded although the cache is complete")

    monkeypatch.setattr(datasets, "_pip_download", no_download)
    before = {p.name: p.stat().st_mtime_ns for p in cache_dir.iterdir() if p.name in datasets.DATA_FILES}
    paths = fetch_all(cache_dir)
    assert set(paths) == set(datasets.DATA_FILES)
    assert {name: p.stat().st_mtime_ns for name, p in paths.items()} == before


def test_fetch_all_repairs_a_damaged_file_from_its_package_only(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in datasets.DATA_FILES:
        shutil.copy(cache_dir / name, tmp_path / name)
    summary = tmp_path / "cdnow_customers_summary.csv"
    summary.write_text(summary.read_text().replace("30.43", "30.44", 1))

    downloaded: list[str] = []
    real_download = datasets._pip_download

    def recording_download(source: SourcePackage, dest: Path) -> Path:
        downloaded.append(source.requirement)
        return real_download(source, dest)

    monkeypatch.setattr(datasets, "_pip_download", recording_download)
    fetch_all(tmp_path)  # real pip download of the 0.6 MB Lifetimes wheel
    assert downloaded == ["Lifetimes==0.11.3"]
    digest = hashlib.sha256(summary.read_bytes()).hexdigest()
    assert digest == datasets.DATA_FILES["cdnow_customers_summary.csv"].sha256
    assert not list(tmp_path.glob("*.partial"))


def _fake_package(tmp_path: Path, content: bytes, file_sha256: str) -> dict[str, DataFile]:
    wheel = tmp_path / "fake-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("fake/data/table.csv", content)
    source = SourcePackage("fake==1.0", wheel.name, hashlib.sha256(wheel.read_bytes()).hexdigest())
    return {"table.csv": DataFile("table.csv", source, ("fake/data/table.csv",), file_sha256)}


def test_fetch_all_writes_verified_members(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    content = b"a,b\n1,2\n"
    monkeypatch.setattr(
        datasets, "DATA_FILES", _fake_package(tmp_path, content, hashlib.sha256(content).hexdigest())
    )
    monkeypatch.setattr(datasets, "_pip_download", lambda source, dest: tmp_path / source.filename)
    paths = fetch_all(tmp_path / "cache")
    assert paths["table.csv"].read_bytes() == content


def test_fetch_all_rejects_a_member_with_wrong_checksum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datasets, "DATA_FILES", _fake_package(tmp_path, b"a,b\n1,2\n", "0" * 64))
    monkeypatch.setattr(datasets, "_pip_download", lambda source, dest: tmp_path / source.filename)
    with pytest.raises(DataIntegrityError, match="table.csv"):
        fetch_all(tmp_path / "cache")
    assert not (tmp_path / "cache" / "table.csv").exists()


def test_extract_nested_reads_through_a_tar_inside_a_zip(tmp_path: Path) -> None:
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tf:
        info = tarfile.TarInfo("deep/file.txt")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"hello"))
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w") as zf:
        zf.writestr("pkg/resources.tar.gz", inner.getvalue())
    data = extract_nested(outer.getvalue(), "x.whl", ("pkg/resources.tar.gz", "deep/file.txt"))
    assert data == b"hello"
    with pytest.raises(KeyError):
        extract_nested(outer.getvalue(), "x.whl", ("pkg/missing.tar.gz",))


@pytest.mark.parametrize(
    "loader", [load_bundesliga, load_cdnow_master, load_cdnow_sample, load_cdnow_summary]
)
def test_loaders_tell_to_run_make_data_when_files_are_missing(loader, tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="make data"):
        loader(tmp_path)
    with pytest.raises(FileNotFoundError):  # DataNotFoundError is a FileNotFoundError
        loader(tmp_path)


# --------------------------------------------------------------------------------------- Bundesliga


def test_bundesliga_published_facts(bundesliga: pd.DataFrame) -> None:
    df = bundesliga
    assert list(df.columns) == ["HomeTeam", "AwayTeam", "HomeGoals", "AwayGoals", "Round", "Year", "Date"]
    assert len(df) == 14_018
    assert len(set(df["HomeTeam"]) | set(df["AwayTeam"])) == 52
    assert df["Year"].nunique() == 46
    assert (df["Year"].min(), df["Year"].max()) == (1963, 2008)
    for column in ["HomeGoals", "AwayGoals", "Round", "Year"]:
        assert df[column].dtype == "int64", column
    assert pd.api.types.is_string_dtype(df["HomeTeam"]) and pd.api.types.is_string_dtype(df["AwayTeam"])
    assert pd.api.types.is_datetime64_dtype(df["Date"])
    assert (df["HomeGoals"] >= 0).all() and (df["AwayGoals"] >= 0).all()


def test_bundesliga_dates_are_days_within_their_season(bundesliga: pd.DataFrame) -> None:
    dates = bundesliga["Date"]
    assert (dates.dropna() == dates.dropna().dt.normalize()).all()  # clock times dropped
    missing = bundesliga[dates.isna()]
    assert set(zip(missing["Year"], missing["Round"], missing["HomeTeam"], strict=True)) == {
        (1998, 17, "Hansa Rostock"),
        (1998, 17, "Bayern Muenchen"),
    }
    season_start = pd.to_datetime(bundesliga["Year"].astype(str) + "-07-01")
    outside = bundesliga[(dates < season_start) | (dates >= season_start + pd.DateOffset(years=1))]
    # One known error in the source: 1986/87 round 4 is dated a year late.
    assert list(zip(outside["Year"], outside["Round"], outside["HomeTeam"], strict=True)) == [
        (1986, 4, "1. FC Kaiserslautern")
    ]


def test_bundesliga_seasons_are_double_round_robins(bundesliga: pd.DataFrame) -> None:
    for season, games in bundesliga.groupby("Year"):
        teams = set(games["HomeTeam"]) | set(games["AwayTeam"])
        n = len(teams)
        assert len(games) == n * (n - 1), season
        assert not games.duplicated(["HomeTeam", "AwayTeam"]).any(), season
        assert sorted(games["Round"].unique()) == list(range(1, 2 * (n - 1) + 1)), season


# ------------------------------------------------------------------------------------------- CDNOW


def test_cdnow_master_published_facts(cdnow_master: pd.DataFrame) -> None:
    df = cdnow_master
    assert list(df.columns) == ["customer_id", "date", "number_of_cds", "dollar_value"]
    assert len(df) == 69_659
    assert df["customer_id"].nunique() == 23_570
    assert (df["customer_id"].min(), df["customer_id"].max()) == (1, 23_570)
    assert df["customer_id"].dtype == "int64" and df["number_of_cds"].dtype == "int64"
    assert df["dollar_value"].dtype == "float64"
    assert (df["date"].min(), df["date"].max()) == (pd.Timestamp("1997-01-01"), pd.Timestamp("1998-06-30"))
    assert (df["number_of_cds"] >= 1).all() and (df["dollar_value"] >= 0).all()
    # One acquisition cohort: every customer's first purchase is in the first quarter of 1997.
    assert df.groupby("customer_id")["date"].min().max() < pd.Timestamp("1997-04-01")


def test_cdnow_sample_is_a_subset_of_the_master(
    cdnow_master: pd.DataFrame, cdnow_sample: pd.DataFrame
) -> None:
    assert len(cdnow_sample) == 6_919
    assert cdnow_sample["sample_id"].nunique() == cdnow_sample["customer_id"].nunique() == 2_357
    keys = ["customer_id", "date", "number_of_cds", "dollar_value"]
    merged = cdnow_sample.merge(cdnow_master.drop_duplicates(keys), on=keys, how="left", indicator=True)
    assert (merged["_merge"] == "both").all()
    # The sample holds every record of its customers.
    in_sample = cdnow_master[cdnow_master["customer_id"].isin(cdnow_sample["customer_id"])]
    assert len(in_sample) == len(cdnow_sample)


def test_cdnow_summary_is_the_calibration_summary_of_the_sample(
    cache_dir: Path, cdnow_sample: pd.DataFrame
) -> None:
    summary = load_cdnow_summary(cache_dir)
    assert len(summary) == 2_357
    assert list(summary.columns) == ["frequency", "recency", "T"]
    assert summary.index.name == "sample_id"
    assert summary["frequency"].dtype == "int64"

    calibration = cdnow_sample[cdnow_sample["date"] <= CDNOW_CALIBRATION_END]
    days = calibration.groupby("sample_id")["date"]
    frequency = days.nunique() - 1
    recency_weeks = (days.max() - days.min()).dt.days / 7
    t_weeks = (CDNOW_CALIBRATION_END - days.min()).dt.days / 7
    assert (frequency.reindex(summary.index) == summary["frequency"]).all()
    assert (recency_weeks.reindex(summary.index) - summary["recency"]).abs().max() < 0.006
    assert (t_weeks.reindex(summary.index) - summary["T"]).abs().max() < 0.006


# ------------------------------------------------------------------------------------------ events


def test_team_player_ids_are_slugs_unique_per_team(bundesliga: pd.DataFrame) -> None:
    assert team_player_id("1. FC Koeln") == "1-fc-koeln"
    assert team_player_id("Blau-Weiss 90 Berlin") == "blau-weiss-90-berlin"
    teams = set(bundesliga["HomeTeam"]) | set(bundesliga["AwayTeam"])
    assert len({team_player_id(t) for t in teams}) == len(teams)
    with pytest.raises(ValueError):
        team_player_id(" . ")


def _check_common_keys(event: dict) -> None:
    assert set(event) == {"event_id", "event_type", "occurred_at", "player_id", "game", "region", "payload"}
    occurred = event["occurred_at"]
    assert isinstance(occurred, dt.datetime) and occurred.utcoffset() == dt.timedelta(0)


def test_match_events(bundesliga: pd.DataFrame) -> None:
    events = match_events(bundesliga)
    assert len(events) == 14_018
    assert len({e["event_id"] for e in events}) == 14_018
    assert {e["player_id"] for e in events} | {e["payload"]["away_player_id"] for e in events} == {
        team_player_id(t) for t in set(bundesliga["HomeTeam"]) | set(bundesliga["AwayTeam"])
    }
    for event in events[:3] + events[-3:]:
        _check_common_keys(event)
        assert (event["event_type"], event["game"], event["region"]) == ("match_result", "bundesliga", "DE")
    assert sum(e["payload"]["home_score"] for e in events) == bundesliga["HomeGoals"].sum()
    assert sum(e["payload"]["away_score"] for e in events) == bundesliga["AwayGoals"].sum()
    outcomes = pd.Series([e["payload"]["outcome"] for e in events]).value_counts()
    assert outcomes["home_win"] == (bundesliga["HomeGoals"] > bundesliga["AwayGoals"]).sum()
    assert outcomes["draw"] == (bundesliga["HomeGoals"] == bundesliga["AwayGoals"]).sum()

    imputed = [e for e in events if e["payload"]["date_imputed"]]
    assert len(imputed) == 2
    assert {e["occurred_at"] for e in imputed} == {dt.datetime(1998, 12, 12, tzinfo=dt.UTC)}
    dated = bundesliga["Date"].notna().to_numpy()
    assert all(
        e["occurred_at"].date() == day.date()
        for e, day, ok in zip(events, bundesliga["Date"], dated, strict=True)
        if ok
    )


def test_match_event_ids_depend_only_on_the_match(bundesliga: pd.DataFrame) -> None:
    full = match_events(bundesliga)
    subset = bundesliga.iloc[100:110].iloc[::-1]
    again = match_events(subset)
    assert [e["event_id"] for e in again] == [e["event_id"] for e in full[100:110]][::-1]


def test_match_events_refuse_a_round_without_any_date() -> None:
    frame = pd.DataFrame(
        {"HomeTeam": ["A"], "AwayTeam": ["B"], "HomeGoals": [1], "AwayGoals": [0], "Round": [1], "Year": [2000],
         "Date": [pd.NaT]}
    )  # fmt: skip
    with pytest.raises(ValueError, match="season 2000 round 1"):
        match_events(frame)


def test_purchase_events(cdnow_master: pd.DataFrame) -> None:
    events = purchase_events(cdnow_master)
    assert len(events) == 69_659
    assert len({e["event_id"] for e in events}) == 69_659
    assert len({e["player_id"] for e in events}) == 23_570
    assert events[0]["player_id"] == customer_player_id(1) == "cdnow-00001"
    for event in events[:3] + events[-3:]:
        _check_common_keys(event)
        assert (event["event_type"], event["game"], event["region"]) == ("purchase", "cdnow", "US")
        assert event["payload"]["currency"] == "USD"
    assert sum(e["payload"]["quantity"] for e in events) == cdnow_master["number_of_cds"].sum()
    assert sum(e["payload"]["amount"] for e in events) == pytest.approx(cdnow_master["dollar_value"].sum())
    assert [e["occurred_at"].date() for e in events[:50]] == [d.date() for d in cdnow_master["date"][:50]]


def test_purchase_event_ids_are_stable_and_distinguish_same_day_records() -> None:
    frame = pd.DataFrame(
        {
            "customer_id": [2, 2, 3],
            "date": pd.to_datetime(["1997-01-12", "1997-01-12", "1997-01-12"]),
            "number_of_cds": [1, 5, 1],
            "dollar_value": [12.0, 77.0, 9.5],
        }
    )
    ids = [e["event_id"] for e in purchase_events(frame)]
    assert len(set(ids)) == 3
    assert [e["event_id"] for e in purchase_events(frame)] == ids  # deterministic
    # Removing another customer's record does not change the ids of the rest.
    assert [e["event_id"] for e in purchase_events(frame.iloc[:2])] == ids[:2]
