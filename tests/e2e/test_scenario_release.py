"""The `release` scenario runs briefly and cleanly, as every scenario must
(tests/e2e/test_scenarios.py; its own file so the longest run is not queued
behind the others on one worker). Every check of the scenario runs but the
backpressure check: it holds readers for 2 x 6 s, and test_scenarios.py's
slow-client run already runs it on the clean reference and must pass. The
run is test_lifecycle_checks.py's clean control too (helpers.release_clean)."""
from __future__ import annotations

import pytest

from scenarios.catalogue import SCENARIOS

from .helpers import RELEASE_CHECKS, release_clean
from .test_scenarios import check_scenario_run

pytestmark = pytest.mark.slow


def test_release_scenario_runs_briefly(tmp_path_factory, worker_id):
    assert "backpressure" in SCENARIOS["slow-client"].checks
    assert set(RELEASE_CHECKS.split(",")) == set(SCENARIOS["release"].checks) - {"backpressure"}
    out, r, _, _ = release_clean(tmp_path_factory, worker_id)
    check_scenario_run(out, r, "release")
