"""Every scenario of the catalogue runs briefly against the reference
backend: it completes (not invalid), captures streams, keeps Locust's own
reports and leaves nothing running."""
from __future__ import annotations

import json

import pytest

from analysis.rundir import list_streams
from scenarios.catalogue import SCENARIOS

from .helpers import leftovers, run_cli, run_json

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", [n for n in SCENARIOS if n != "smoke"])  # smoke has its own tests
def test_scenario_runs_briefly(tmp_path, name):
    out = tmp_path / name
    r = run_cli("--scenario", name, "--duration", "6", "--track-seconds", "20", "--out", str(out), "--no-gate")
    assert r.returncode in (0, 1), r.stdout + r.stderr
    run = run_json(out)
    assert run["status"] == "ok", run.get("invalid_reason")
    assert list_streams(out), "no stream captured"
    assert (out / "load" / "locust_stats.csv").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["streams_total"] >= 1
    if "Browser" in SCENARIOS[name].users:
        assert metrics.get("rest_requests", 0) >= 1
    if "Disconnector" in SCENARIOS[name].users:
        assert metrics.get("cycles", 0) >= 1
    assert leftovers(out) == []
