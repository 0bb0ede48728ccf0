"""Every scenario of the catalogue runs briefly against the reference
backend, clean: it passes the default gate (exit 0: a false alarm here is a
defect of the tool), captures streams, keeps Locust's own reports, emits only
figures the metric catalogue declares, and leaves nothing running.
`release`, the longest, is in test_scenario_release.py: with the suite's
--dist loadfile a file is one worker's, and it alone is a third of this one.
concurrent-tracks and seek-storm are checked on the clean runs that
test_instrumentation.py and test_positioning_run.py make (helpers.shared_run:
one run per session, whichever worker asks first)."""
from __future__ import annotations

import json

import pytest

from analysis.metrics_catalogue import undeclared
from analysis.rundir import list_streams
from scenarios.catalogue import SCENARIOS

from .helpers import concurrent_tracks_clean, leftovers, run_cli, run_json, seek_storm_clean

pytestmark = pytest.mark.slow


def check_scenario_runs_briefly(tmp_path, name: str, *extra: str) -> None:
    out = tmp_path / name
    r = run_cli("--scenario", name, "--duration", "6", "--track-seconds", "20", "--out", str(out), *extra)
    check_scenario_run(out, r, name)


def check_scenario_run(out, r, name: str) -> None:
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    run = run_json(out)
    assert run["status"] == "ok", run.get("invalid_reason")
    assert run["verdict"] == "PASS" and not run["invalid_causes"]
    assert {k: v["status"] for k, v in run["stages"].items()} == {
        "prepare": "ok", "launch": "ok", "load": "ok", "checks": "ok", "analyse": "ok", "report": "ok"}
    assert list_streams(out), "no stream captured"
    assert (out / "load" / "locust_stats.csv").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["streams_total"] >= 1
    emitted = [k for k in metrics if k not in ("samples", "invalid_causes")] + [f"samples.{k}" for k in metrics["samples"]]
    assert undeclared(emitted) == [], "declare these in analysis/metrics_catalogue.py"
    assert metrics["users_started"] >= metrics["users_requested"]
    if "Browser" in SCENARIOS[name].users:
        assert metrics.get("rest_requests", 0) >= 1
    if "Disconnector" in SCENARIOS[name].users:
        assert metrics.get("cycles", 0) >= 1
    assert leftovers(out) == []


# runs that other files' known answers make anyway, on the clean reference:
# their assertions and these hold of the same run, so one run serves both
SHARED = {
    "concurrent-tracks": concurrent_tracks_clean,
    "seek-storm": seek_storm_clean,
}


@pytest.mark.parametrize("name", [n for n in SCENARIOS if n not in ("smoke", "release")])  # smoke has its own tests
def test_scenario_runs_briefly(tmp_path, tmp_path_factory, worker_id, name):
    if name in SHARED:
        check_scenario_run(*SHARED[name](tmp_path_factory, worker_id), name)
    else:
        check_scenario_runs_briefly(tmp_path, name)
