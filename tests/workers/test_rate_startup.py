"""``game-analytics rate`` imports only what rating a CSV needs (issue 17's start-up goal: under 1.5 s for a
2,500-match CSV, printed by benchmarks/bench_ratings.py): no database, Redis, settings or statistics libraries,
and of the custom resources' models only RankingJob's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

#: top-level packages the rate path must not import (each costs 0.1-0.6 s of start-up)
NOT_NEEDED = ("alembic", "psycopg", "pydantic_settings", "redis", "scipy", "sklearn", "sqlalchemy", "statsmodels",
              "prometheus_client")

_PROBE = """
import contextlib, io, json, sys
from game_analytics import cli
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = cli.main(["rate", sys.argv[1], "--top", "2", "--format", sys.argv[2]])
print(json.dumps({"code": code, "out": out.getvalue(), "modules": sorted({m.split(".")[0] for m in sys.modules}),
                  "kinds": sorted(m for m in sys.modules if m.startswith("game_analytics.api."))}))
"""


def test_rate_imports_no_database_redis_or_statistics_libraries(tmp_path: Path) -> None:
    path = tmp_path / "matches.csv"
    path.write_text("home,away,home_score,away_score,date\n"
                    "a,b,2,1,2024-01-01\nb,c,0,0,2024-01-02\nc,a,1,3,2024-01-09\n")  # fmt: skip
    for fmt in ("table", "json"):
        done = subprocess.run([sys.executable, "-c", _PROBE, str(path), fmt], capture_output=True, text=True,
                              check=True, timeout=120)  # fmt: skip
        result = json.loads(done.stdout.splitlines()[-1])
        assert result["code"] == 0 and "a" in result["out"], result["out"]
        loaded = sorted(set(NOT_NEEDED) & set(result["modules"]))
        assert not loaded, f"game-analytics rate --format {fmt} imported {loaded}"
        # of the custom resources' models only RankingJob's (game_analytics.api builds the others lazily)
        assert result["kinds"] == ["game_analytics.api.common", "game_analytics.api.rankingjob"], result["kinds"]
