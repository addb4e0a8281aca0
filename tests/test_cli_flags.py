"""The one settings model of the workers: flags, environment variables, usage errors and the docs table."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from game_analytics.settings import (
    FLAGS,
    LOG_LEVELS,
    WORKERS,
    WorkerSettings,
    env_name,
    flag_name,
    flags_table,
)
from game_analytics.workers import runtime

REPO = Path(__file__).resolve().parents[1]
#: per worker: an environment variable it reads and a value that is wrong for it
BAD_ENV = {
    "ingest": ("GAME_ANALYTICS_BATCH_SIZE", "abc"),
    "exporter": ("GAME_ANALYTICS_TTL", "soon"),
    "detection": ("GAME_ANALYTICS_REFIT_SECONDS", "hourly"),
    "ranking": ("GAME_ANALYTICS_AS_OF", "yesterday"),
    "report": ("GAME_ANALYTICS_NOW", "noon"),
}


def _main(worker: str):
    return importlib.import_module(f"game_analytics.workers.{worker}").main


def test_the_docs_table_is_the_generated_one() -> None:
    text = (REPO / "docs" / "cli.md").read_text()
    block = re.search(r"<!-- flags table: .*? -->\n(.*?)\n<!-- end of flags table -->", text, re.S)
    assert block, "docs/cli.md lost its flags table markers"
    assert block.group(1) == flags_table(), "docs/cli.md is stale: paste game_analytics.settings.flags_table()"


def test_every_flag_is_a_setting_named_like_its_variable() -> None:
    for field in FLAGS:
        assert field in WorkerSettings.model_fields
        assert env_name(field) == "GAME_ANALYTICS_" + flag_name(field)[2:].replace("-", "_").upper()
    for field in ("dsn", "log_level", "metrics_port"):
        assert FLAGS[field].workers == WORKERS, f"every worker takes {flag_name(field)}"


@pytest.mark.parametrize("worker", WORKERS)
def test_help_lists_every_flag_with_its_variable(worker: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        _main(worker)(["--help"])
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"--log-level {{{','.join(LOG_LEVELS)}}}" in out
    for field, flag in FLAGS.items():
        if worker in flag.workers:
            assert flag_name(field) in out and env_name(field) in out, field
    assert "exit codes: 0 ok, 1 the work failed, 2 usage" in out


@pytest.mark.parametrize("worker", WORKERS)
def test_a_bad_variable_is_a_one_line_usage_error(worker: str, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    name, value = BAD_ENV[worker]
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_:
        _main(worker)(["--dsn", "postgresql://x@127.0.0.1:1/none"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"game-analytics worker {worker}: error: {name}: "), err
    assert repr(value) in err and "Traceback" not in err and "validation error" not in err


@pytest.mark.parametrize("worker", WORKERS)
def test_a_bad_log_level_or_port_names_the_flag(worker: str, capsys: pytest.CaptureFixture[str]) -> None:
    for argv, named in ((["--log-level", "loud"], "--log-level"), (["--metrics-port", "http"], "--metrics-port"),
                        (["--metrics-port", "70000"], "--metrics-port")):  # fmt: skip
        with pytest.raises(SystemExit) as exit_:
            _main(worker)(["--dsn", "postgresql://x@127.0.0.1:1/none", *argv])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and named in err and "Traceback" not in err, err


def test_flag_over_variable_over_default(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = runtime.parser("detection", "test")
    monkeypatch.setenv("GAME_ANALYTICS_AS_OF", "latest")
    monkeypatch.setenv("GAME_ANALYTICS_MODEL_DIR", "/var/models")
    monkeypatch.setenv("GAME_ANALYTICS_GAMES", "cdnow, bundesliga")
    monkeypatch.setenv("GAME_ANALYTICS_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("GAME_ANALYTICS_DETECTION_INTERVAL_SECONDS", "")  # empty: unset
    _, s = runtime.start(parser, ["--dsn", "postgresql://d", "--interval", "5"], "detection")
    assert (s.as_of, s.model_dir, s.games, s.log_level) == ("latest", Path("/var/models"), ["cdnow", "bundesliga"],
                                                            "warning")  # fmt: skip
    assert s.detection_interval_seconds == 5.0 and s.refit_seconds == 3600.0 and s.port() == 9102
    _, s = runtime.start(parser, ["--dsn", "postgresql://d", "--as-of", "2026-01-02T03:04:05Z", "--model-dir",
                                  "/m", "--games", "a", "--games", "b,c", "--no-once", "--port", "0"], "detection")
    assert (s.as_of, s.model_dir, s.games, s.once, s.port()) == ("2026-01-02T03:04:05Z", Path("/m"), ["a", "b", "c"],
                                                                 False, 0)  # fmt: skip


def test_a_missing_dsn_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("GAME_ANALYTICS_DSN", raising=False)
    with pytest.raises(SystemExit) as exit_:
        _main("exporter")([])
    assert exit_.value.code == 2 and "--dsn (or GAME_ANALYTICS_DSN) is required" in capsys.readouterr().err


def test_worker_help_explains_its_arguments() -> None:
    out = subprocess.run([sys.executable, "-m", "game_analytics.cli", "worker", "--help"], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    assert "rest" not in out and "FLAGS" in out and "the worker's own flags" in out


def test_other_commands_report_a_bad_variable_in_one_line(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from game_analytics.interventions import cli as interventions
    from game_analytics.storage import migrate, partitions

    monkeypatch.setenv("GAME_ANALYTICS_PARTITION_INTERVAL", "week")
    for main, argv in ((migrate.main, []), (partitions.main, ["list"]), (interventions.main, ["list"])):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and "GAME_ANALYTICS_PARTITION_INTERVAL" in err and err.count("\n") == 1, err


def test_the_operator_renders_the_same_variable_names() -> None:
    """The GameDataSource workers' ConfigMap is read back by the same model, key for key."""
    import yaml

    from game_analytics.api.gamedatasource import GameDataSourceSpec
    from game_analytics.controller.common.render import Owner
    from game_analytics.controller.gamedatasource import render

    spec = GameDataSourceSpec.model_validate(yaml.safe_load((REPO / "examples" / "gamedatasource.yaml").read_text())
                                             ["spec"])  # fmt: skip
    owner = Owner("gameanalytics.io/v1alpha1", "GameDataSource", "default", "games", "uid-1")
    children = render.render(owner, spec, image="img:1", sentinel_master="leaderboards")
    data = next(c for c in children if c["kind"] == "ConfigMap")["data"]
    fields = {env_name(f): f for f in WorkerSettings.model_fields}
    assert set(data) <= set(fields), set(data) - set(fields)
    settings = WorkerSettings.from_env(data)
    assert settings.to_env() == data
    assert settings.redis_master == "leaderboards" and settings.port() == render.METRICS_PORT


def test_the_log_level_is_a_gamedatasource_field_every_worker_reads() -> None:
    """``spec.workers.logLevel`` reaches the workers' ConfigMap as ``GAME_ANALYTICS_LOG_LEVEL``, which the
    Deployments and the RankingJob/ScheduledReport CronJobs all take (envFrom); unset, no variable (workers: info);
    a value outside ``LOG_LEVELS`` is refused, by the model and by the CRD's enum."""
    import yaml
    from pydantic import ValidationError

    from game_analytics.api.gamedatasource import GameDataSourceSpec
    from game_analytics.controller.common.render import Owner
    from game_analytics.controller.gamedatasource import render
    from game_analytics.controller.gamedatasource.names import workers_config_name

    doc = yaml.safe_load((REPO / "examples" / "gamedatasource.yaml").read_text())["spec"]
    owner = Owner("gameanalytics.io/v1alpha1", "GameDataSource", "default", "games", "uid-1")

    def config(spec: dict) -> dict[str, str]:
        children = render.render(owner, GameDataSourceSpec.model_validate(spec), image="img:1", sentinel_master="m")
        return next(c for c in children if c["kind"] == "ConfigMap")["data"]

    assert "GAME_ANALYTICS_LOG_LEVEL" not in config(doc)
    data = config({**doc, "workers": {**doc.get("workers", {}), "logLevel": "debug"}})
    assert data["GAME_ANALYTICS_LOG_LEVEL"] == "debug" and WorkerSettings.from_env(data).log_level == "debug"
    with pytest.raises(ValidationError) as err:
        GameDataSourceSpec.model_validate({**doc, "workers": {"logLevel": "verbose"}})
    assert err.value.errors()[0]["loc"] == ("workers", "logLevel")
    crd = yaml.safe_load((REPO / "crds" / "gamedatasources.gameanalytics.io.yaml").read_text())
    workers = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["workers"]
    assert workers["properties"]["logLevel"]["enum"] == list(LOG_LEVELS)
    from game_analytics.controller.common.cronjob import data_source_env
    from game_analytics.controller.common.render import DataSource

    source = DataSource(owner.name, GameDataSourceSpec.model_validate(doc))
    assert data_source_env(source)[1] == [{"configMapRef": {"name": workers_config_name(owner.name)}}]


#: a PostgreSQL URL nothing listens on (loopback port 1: refused at once)
UNREACHABLE_DSN = "postgresql+psycopg://u:p@127.0.0.1:1/analytics"


@pytest.mark.parametrize("command", [
    ["report", "history"], ["report", "run", "--type", "playerActivity", "--as-of", "latest"], ["partitions", "list"],
    ["migrate"], ["interventions", "list"], ["audit", "head"], ["audit", "search"],
])
def test_a_failed_database_is_exit_1_and_one_line_for_every_command(command: list[str], tmp_path: Path) -> None:
    """Exit codes are the same everywhere (docs/cli.md): the work failing (here: no database) is 1 and one line
    naming the command, never a traceback."""
    out = subprocess.run([sys.executable, "-m", "game_analytics.cli", *command, "--dsn", UNREACHABLE_DSN],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith(f"game-analytics {command[0]}"), out.stderr


def test_report_run_lists_its_files_with_output_and_writes_them_to_output_dir() -> None:
    """``report run`` (and its dashboard preview) print data, the written files, so ``--output`` is ``table|json`` as
    everywhere; the folder is ``--output-dir`` (the report worker's flag). ``--output DIR``, the older spelling, still
    names the folder."""
    from pathlib import Path as P

    from game_analytics.console import UsageError, output_and_folder
    from game_analytics.reports.dashboard.preview import _parser as preview_parser
    from game_analytics.workers.report_cli import _cli_parser

    base = ["run", "--type", "retention"]
    for argv, expected in [([], ("table", P("/tmp/reports"))), (["--output", "json"], ("json", P("/tmp/reports"))),
                           (["--output", "json", "--output-dir", "/data/r"], ("json", P("/data/r"))),
                           (["--output-dir", "/data/r"], ("table", P("/data/r"))),
                           (["--output", "/data/old"], ("table", P("/data/old")))]:
        assert output_and_folder(_cli_parser().parse_args(base + argv), "/tmp/reports") == expected, argv
        preview = preview_parser().parse_args(["--type", "dashboard", "--dashboard", "activity", "--prometheus",
                                               "http://127.0.0.1:9", *argv])  # fmt: skip
        assert output_and_folder(preview, "/tmp/reports") == expected, argv
    with pytest.raises(UsageError, match="--output-dir"):
        output_and_folder(_cli_parser().parse_args(base + ["--output", "/a", "--output-dir", "/b"]), "/tmp/reports")
