"""The `release` scenario runs briefly and cleanly, as every scenario must
(tests/e2e/test_scenarios.py; its own file so the longest run is not queued
behind the others on one worker). Every check of the scenario runs but the
backpressure check: it holds readers for 2 x 6 s (24 s of this run's 88 s),
and test_scenarios.py's slow-client run already runs it on the clean
reference and must pass."""
from __future__ import annotations

import pytest

from scenarios.catalogue import SCENARIOS

from .test_scenarios import check_scenario_runs_briefly

pytestmark = pytest.mark.slow


def test_release_scenario_runs_briefly(tmp_path):
    assert "backpressure" in SCENARIOS["slow-client"].checks
    checks = [c for c in SCENARIOS["release"].checks if c != "backpressure"]
    check_scenario_runs_briefly(tmp_path, "release", "--checks", ",".join(checks))
