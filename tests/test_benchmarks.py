"""Every benchmark takes ``--quick`` (CI runs ``make bench ARGS=--quick``), and the quick sizes are applied."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted((ROOT / "benchmarks").glob("bench_*.py"))
sys.path.insert(0, str(ROOT / "benchmarks"))
import benchargs  # noqa: E402 - the benchmarks' own helper, found on their folder like the benchmarks find it


@pytest.mark.parametrize("bench", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_offers_quick(bench: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(bench), "--help"], env=env, capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "--quick" in done.stdout and "--scale" in done.stdout


def test_quick_replaces_defaults_only() -> None:
    def parser() -> argparse.ArgumentParser:
        p = argparse.ArgumentParser()
        p.add_argument("--players", type=int, default=1_000_000)
        p.add_argument("--repeat", type=int, default=3)
        return p

    assert vars(benchargs.parse(parser(), ["--quick", "--repeat", "5"], {"players": 10, "repeat": 1})) == {
        "players": 10, "repeat": 5, "quick": True, "scale": False}
    assert benchargs.parse(parser(), [], {"players": 10}).players == 1_000_000
    with pytest.raises(KeyError):
        benchargs.parse(parser(), ["--quick"], {"player": 10})


def test_scale_runs_only_the_scale_benchmark(capsys) -> None:
    """``make bench ARGS=--scale``: a benchmark with scale sizes takes them (explicit sizes win); the others skip."""
    def parser() -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(prog="bench_x")
        p.add_argument("--events", type=int, default=100)
        p.add_argument("--days", type=int, default=7)
        return p

    args = benchargs.parse(parser(), ["--scale", "--days", "30"], {"events": 10}, scale={"events": 10**7, "days": 120})
    assert (args.events, args.days) == (10**7, 30)
    with pytest.raises(SystemExit) as exit_:
        benchargs.parse(parser(), ["--scale"], {"events": 10})
    assert exit_.value.code == 0 and "skipped with --scale" in capsys.readouterr().out
