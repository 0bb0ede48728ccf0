"""Opt-in tests against a real Auralis checkout: they run only when
AURALIS_ROOT and AURALIS_PYTHON are set, and are skipped otherwise (CI never
has Auralis)."""
from __future__ import annotations

import os

import pytest

AURALIS_ROOT = os.environ.get("AURALIS_ROOT")
AURALIS_PYTHON = os.environ.get("AURALIS_PYTHON")


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs a real Auralis checkout: set AURALIS_ROOT and AURALIS_PYTHON")
    for item in items:
        if "tests/auralis/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.auralis)
            if not (AURALIS_ROOT and AURALIS_PYTHON):
                item.add_marker(skip)
