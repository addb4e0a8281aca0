"""The wheel holds only the product: no harness, no demo, no development package (issue 12, point 5).

The package list is computed the way setuptools computes it from ``pyproject.toml`` (``packages.find`` under
``src``), so this needs no network; ``pip wheel . --no-deps`` packs exactly these packages' files.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from setuptools import find_packages

from devtools import REPO_ROOT
from game_analytics.cli import DELEGATED

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
#: development-only modules that once lived in the product package
HARNESS_MODULES = ("testing", "demo", "alertmanager", "certs", "monitoring_stack",
                   "operator_process", "podsecurity", "alert_path", "waiting")


def wheel_packages() -> list[str]:
    """The packages setuptools puts in the wheel, from the ``[tool.setuptools.packages.find]`` table."""
    find = PYPROJECT["tool"]["setuptools"]["packages"]["find"]
    found: list[str] = []
    for where in find["where"]:
        found += find_packages(str(REPO_ROOT / where), include=find.get("include", ("*",)),
                               exclude=find.get("exclude", ()))
    return found


def wheel_modules() -> list[Path]:
    """Every ``.py`` file the wheel holds, relative to its ``src`` folder."""
    (where,) = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["where"]
    root = REPO_ROOT / where
    return [path.relative_to(root) for pkg in wheel_packages() for path in (root / pkg.replace(".", "/")).glob("*.py")]


def test_the_wheel_is_the_game_analytics_package_only() -> None:
    packages = wheel_packages()
    assert packages and all(p == "game_analytics" or p.startswith("game_analytics.") for p in packages), packages
    assert not any(p.startswith("devtools") for p in packages)


def test_no_harness_or_demo_ships_in_the_wheel() -> None:
    shipped = {part for path in wheel_modules() for part in (*path.parent.parts, path.stem)}
    assert not shipped & set(HARNESS_MODULES), sorted(shipped & set(HARNESS_MODULES))
    assert (REPO_ROOT / "devtools" / "demo.py").is_file(), "the demo lives in devtools/, outside src/"


def test_the_product_cli_offers_no_demo() -> None:
    assert "demo" not in DELEGATED
    out = subprocess.run([sys.executable, "-m", "game_analytics.cli", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert " demo " not in out and "demo\n" not in out


def test_the_operator_entry_point_is_kopf_run_of_the_handlers() -> None:
    from game_analytics.controller.__main__ import HANDLERS, argv

    assert argv(["--standalone", "--namespace=games", "--liveness=http://0.0.0.0:8080/healthz"]) == [
        "run", "-m", HANDLERS, "--standalone", "--namespace=games", "--liveness=http://0.0.0.0:8080/healthz"]
    out = subprocess.run([sys.executable, "-m", "game_analytics.cli", "operator", "--help"], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    assert "game-analytics operator" in out
    for option in ("--standalone", "--peering", "--namespace", "--all-namespaces", "--liveness"):
        assert option in out
    chart = (REPO_ROOT / "charts" / "game-analytics" / "templates" / "deployment.yaml").read_text()
    assert "command: [game-analytics, operator]" in chart  # the image's console script


def _imported_top_level_modules() -> set[str]:
    """Top-level modules the product's code imports (absolute imports only), from its syntax trees."""
    import ast

    (where,) = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["where"]
    found: set[str] = set()
    for module in wheel_modules():
        tree = ast.parse((REPO_ROOT / where / module).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


def test_every_imported_distribution_is_declared() -> None:
    """Each third-party module the product imports comes from a distribution named in [project] dependencies
    (a transitive dependency imported directly breaks when its parent drops it)."""
    import re
    from importlib.metadata import packages_distributions

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    declared = {norm(re.split(r"[\s<>=!~;\[]", d, maxsplit=1)[0]) for d in PYPROJECT["project"]["dependencies"]}
    providers = packages_distributions()
    third_party = {m for m in _imported_top_level_modules() if m in providers and m != "game_analytics"}
    undeclared = {m: providers[m] for m in third_party if not {norm(d) for d in providers[m]} & declared}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
