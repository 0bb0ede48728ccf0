"""The `release` scenario runs briefly and cleanly, as every scenario must
(tests/e2e/test_scenarios.py; its own file so the longest run is not queued
behind the others on one worker)."""
from __future__ import annotations

import pytest

from .test_scenarios import check_scenario_runs_briefly

pytestmark = pytest.mark.slow


def test_release_scenario_runs_briefly(tmp_path):
    check_scenario_runs_briefly(tmp_path, "release")
