"""The node tier's image builder: the Dockerfile reader, the Dockerfile kept in lock-step with the builder, the
catalog's names against the operator's and the chart's defaults, and the cache keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from devtools import images
from devtools.dockerfile import DockerfileError, parse_dockerfile, resolve_dest
from game_analytics.config import Images

ROOT = Path(__file__).resolve().parents[2]


def test_parse_stages_steps_and_forms() -> None:
    stages = parse_dockerfile(
        "# comment\nFROM base:1 AS build\nWORKDIR /src\nCOPY a b ./\nRUN echo one \\\n    && echo two\n"
        "FROM base:1\nCOPY --from=build /out /usr/local\nENV A=1 B=\"two words\"\nENV LEGACY some value\n"
        "USER 10:10\nENTRYPOINT [\"prog\", \"arg\"]\nCMD run\n"
    )
    assert [(s.base, s.name) for s in stages] == [("base:1", "build"), ("base:1", "1")]
    build, final = stages
    assert [st.kind for st in build.steps] == ["WORKDIR", "COPY", "RUN"]
    assert build.steps[2].args == ("/bin/sh", "-c", "echo one && echo two")
    assert build.steps[2].line == 5
    copy = final.steps[0]
    assert (copy.from_stage, copy.args) == ("build", ("/out", "/usr/local"))
    assert final.steps[1].args == ("A=1", "B=two words")
    assert final.steps[2].args == ("LEGACY=some value",)
    assert final.steps[4].args == ("prog", "arg")
    assert final.steps[5].args == ("/bin/sh", "-c", "run")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("RUN x\n", "before FROM"),
        ("FROM a\nHEALTHCHECK CMD x\n", "HEALTHCHECK is not implemented"),
        ("FROM a\nCOPY --chown=1 a b\n", "--chown=1 is not implemented"),
        ("FROM a\nCOPY --from=nope a b\n", "no earlier stage"),
        ("FROM a\nENTRYPOINT [1]\n", "JSON array of strings"),
        ("", "no FROM"),
    ],
)
def test_unknown_forms_fail_loudly(text: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=message):
        parse_dockerfile(text)


def test_resolve_dest() -> None:
    assert resolve_dest("/src", "./", 2, False) == ("/src", True)
    assert resolve_dest("/src", "./src", 1, True) == ("/src/src", False)
    assert resolve_dest("/", "/usr/local", 1, True) == ("/usr/local", False)
    assert resolve_dest("/w", "file.txt", 1, False) == ("/w/file.txt", False)


def test_operator_dockerfile_is_buildable_here() -> None:
    """Lock-step: every instruction of operator/Dockerfile is one the builder runs, every base has a Debian
    stand-in, and the image keeps the Dockerfile's user and entry point."""
    stages = parse_dockerfile((ROOT / "operator" / "Dockerfile").read_text())
    for stage in stages:
        assert stage.base in images.BASES, f"no Debian stand-in for {stage.base}"
    final = stages[-1].steps
    assert ("USER", ("10001:10001",)) in [(s.kind, s.args) for s in final]
    assert any(s.kind == "ENTRYPOINT" and s.args == ("game-analytics",) for s in final)


def test_normalize_reference() -> None:
    assert images.normalize_reference("redis:7.4-alpine") == "docker.io/library/redis:7.4-alpine"
    assert images.normalize_reference("oliver006/redis_exporter:v1") == "docker.io/oliver006/redis_exporter:v1"
    assert images.normalize_reference("ghcr.io/a/b:1") == "ghcr.io/a/b:1"
    assert images.normalize_reference("localhost/x/y") == "localhost/x/y:latest"
    with pytest.raises(ValueError):
        images.normalize_reference("a@sha256:00")


def test_catalog_names_match_operator_and_chart_defaults() -> None:
    names = {r.key: r.name for r in images.catalog()}
    d = Images()
    assert names["product"] == images.normalize_reference(d.worker)
    assert names["redis"] == images.normalize_reference(d.redis)
    assert names["exporter"] == images.normalize_reference(d.redis_exporter)
    chart = yaml.safe_load((ROOT / "charts" / "game-analytics" / "Chart.yaml").read_text())
    values = yaml.safe_load((ROOT / "charts" / "game-analytics" / "values.yaml").read_text())
    assert names["product"] == f"{values['image']['repository']}:{values['image']['tag'] or chart['appVersion']}"
    assert values["image"]["pullPolicy"] in ("IfNotPresent", "Never"), "the node has no registry to pull from"


def test_cache_key_follows_inputs(tmp_path: Path) -> None:
    (tmp_path / "operator").mkdir()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.py").write_text("x = 1\n")
    (tmp_path / "operator" / "Dockerfile").write_text("FROM python:3.11-slim\nCOPY src /src\n")
    recipe = images.ImageRecipe("product", "localhost/t:1", dockerfile="operator/Dockerfile")
    first = images.cache_key(recipe, tmp_path)
    assert images.cache_key(recipe, tmp_path) == first
    (tmp_path / "src" / "__pycache__").mkdir()
    (tmp_path / "src" / "__pycache__" / "m.pyc").write_bytes(b"junk")
    assert images.cache_key(recipe, tmp_path) == first, "ignored files do not count"
    (tmp_path / "src" / "m.py").write_text("x = 2\n")
    assert images.cache_key(recipe, tmp_path) != first


def test_prune_keeps_the_most_recently_used_tarballs_of_one_image(tmp_path: Path) -> None:
    import os

    for i, key in enumerate(["aaaa", "bbbb", "cccc", "dddd"]):
        for suffix in (".tar", ".json"):
            path = tmp_path / f"localhost_t_1-{key}{suffix}"
            path.write_text(key)
            os.utime(path, (1000 + i, 1000 + i))
    other = tmp_path / "localhost_u_1-eeee.tar"
    other.write_text("another image")
    os.utime(tmp_path / "localhost_t_1-aaaa.tar", (2000, 2000))  # the oldest build, used last
    deleted = images.prune(tmp_path, "localhost_t_1", keep=3)
    assert [p.name for p in deleted] == ["localhost_t_1-bbbb.tar"]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["localhost_t_1-aaaa.json", "localhost_t_1-aaaa.tar", "localhost_t_1-cccc.json",
                    "localhost_t_1-cccc.tar", "localhost_t_1-dddd.json", "localhost_t_1-dddd.tar",
                    "localhost_u_1-eeee.tar"]
