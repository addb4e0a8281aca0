"""The RedisFailover scripts are real shell files: packaged with the wheel, loaded into the ConfigMap as they are,
and clean under shellcheck (POSIX sh, the dialect of the Redis image's /bin/sh)."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from importlib import resources
from pathlib import Path, PurePosixPath

import pytest

from game_analytics.api.redisfailover import RedisFailoverSpec
from game_analytics.controller.common.render import Owner
from game_analytics.controller.redisfailover import render

SCRIPTS_DIR = Path(str(resources.files("game_analytics.controller.redisfailover").joinpath("scripts")))
PACKAGE_ROOT = Path(str(resources.files("game_analytics")))
PYPROJECT = tomllib.loads((Path(__file__).parents[3] / "pyproject.toml").read_text())
OWNER = Owner("gameanalytics.io/v1alpha1", "RedisFailover", "lb", "games", "uid-7", 3)

#: Findings accepted per script, each for a stated reason. The scripts' bytes feed the pods' config-hash, so a
#: lint-only edit (even an inline ``# shellcheck disable`` comment) would restart every Redis pod on upgrade.
ACCEPTED = {
    # SENTINEL_HOST is not a misspelling: the pod's env sets it (render.redis_statefulset / sentinel_statefulset).
    "redis-init.sh": ["SC2153"],
    # ... and here too; `echo $REDIS_HOSTS` is unquoted on purpose: word splitting drops the list's leading blank.
    "sentinel-init.sh": ["SC2153", "SC2086"],
    "redis-prestop.sh": ["SC2153"],
}


def test_every_script_is_a_file_and_goes_into_the_config_map_unchanged() -> None:
    files = sorted(p.name for p in SCRIPTS_DIR.glob("*.sh"))
    assert files == sorted(render.SCRIPTS)
    data = render.config_data(OWNER, RedisFailoverSpec())
    for name in files:
        text = (SCRIPTS_DIR / name).read_text()
        assert text.startswith("#!/bin/sh\n") and data[name] == text == render.script(name)


def test_the_scripts_are_package_data() -> None:
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["game_analytics"]
    for path in SCRIPTS_DIR.glob("*.sh"):
        relative = PurePosixPath(path.relative_to(PACKAGE_ROOT).as_posix())
        assert any(relative.match(p) for p in patterns), f"{relative} is not shipped by any of {patterns}"


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (hack/install-debs.sh)")
@pytest.mark.parametrize("name", sorted(render.SCRIPTS))
def test_shellcheck_is_clean(name: str) -> None:
    excluded = ACCEPTED.get(name, [])
    args = ["shellcheck", "--shell=sh", "--severity=style", *([f"--exclude={','.join(excluded)}"] * bool(excluded))]
    result = subprocess.run([*args, str(SCRIPTS_DIR / name)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
