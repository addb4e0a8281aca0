"""Pinned dependencies (issue 20, docs/dependencies.md): the lock pins every declared distribution within its bounds,
`make venv` installs exactly the lock, and the Grafana SDK is pinned to the Grafana version docs/ state."""

from __future__ import annotations

import json
import re
import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def norm(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock() -> dict[str, str]:
    """``requirements.lock`` as {normalised name: pinned version}; every line is ``name==version``."""
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, pinned = line.partition("==")
            assert sep and pinned.strip(), f"not an exact pin: {line!r}"
            pins[norm(name)] = pinned.strip()
    return pins


def test_the_lock_pins_every_declared_dependency_within_its_bounds_and_is_what_is_installed() -> None:
    pins = lock()
    declared = PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"]["dev"]
    for text in declared:
        requirement = Requirement(text)
        name = norm(requirement.name)
        assert name in pins, f"{requirement.name} is declared but not in requirements.lock (run make lock)"
        assert requirement.specifier.contains(Version(pins[name]), prereleases=True), (text, pins[name])
        assert Version(version(requirement.name)) == Version(pins[name]), f"installed {requirement.name} is not the lock's"


def test_make_venv_and_ci_install_the_lock_and_make_lock_refreshes_it() -> None:
    makefile = (ROOT / "Makefile").read_text()
    venv = makefile.split("$(VENV)/.installed:", 1)[1].split("\n\n", 1)[0]
    assert "requirements.lock" in venv.splitlines()[0]  # a changed lock re-installs
    assert "pip install --quiet -r requirements.lock" in venv and "--no-deps -e ." in venv
    assert re.search(r"^test: venv ", makefile, re.M) and "make test" in (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^lock: ", makefile, re.M) and "pip freeze" in makefile.split("\nlock:", 1)[1].split("\n\n")[0]
    assert "make lock" in (ROOT / "docs" / "dependencies.md").read_text()


def test_the_grafana_sdk_is_pinned_to_the_grafana_version_the_docs_state() -> None:
    """One SDK build per Grafana version, each under its own epoch: the pin, the installed build, the version stated
    in docs/dependencies.md and the generated dashboards' schemaVersion agree."""
    (pin,) = [d for d in PYPROJECT["project"]["dependencies"] if norm(Requirement(d).name) == "grafana-foundation-sdk"]
    pinned = Version(str(Requirement(pin).specifier).removeprefix("=="))
    assert str(Requirement(pin).specifier).startswith("==") and pinned.epoch > 0, pin
    assert Version(version("grafana-foundation-sdk")) == pinned
    docs = (ROOT / "docs" / "dependencies.md").read_text()
    stated = re.search(r"target \*\*Grafana (\d+\.\d+)\*\* \(dashboard `schemaVersion` (\d+)\)", docs)
    assert stated, "docs/dependencies.md must state the Grafana version the dashboards target"
    assert f"{pinned.major}.{pinned.minor}" == stated.group(1)
    schema_versions = {json.loads(p.read_text())["schemaVersion"] for p in (ROOT / "grafana_dashboards").glob("*.json")}
    assert schema_versions == {int(stated.group(2))}
