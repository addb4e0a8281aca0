"""Fixtures for the monitoring tests: the real promtool and amtool binaries (Debian packages, ``make debs``)."""

from __future__ import annotations

import shutil

import pytest


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `make debs` (hack/install-debs.sh)")
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of ``promtool`` (package ``prometheus``)."""
    return _binary("promtool")


@pytest.fixture(scope="session")
def amtool() -> str:
    """Path of ``amtool`` (package ``prometheus-alertmanager``)."""
    return _binary("amtool")

