"""--coverage on the reference backend, end to end: the smoke scenario never
asks for one track by id, so that route shows unreached; it sends play_normal
and play_enhanced only, so the dispatch's seek and pause handlers show
unreached and the play handler reached; a synthetic test-suite coverage
file that omits Session.play shows it as an untested live path."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.model import load_findings
from reports import coverage as rc

from .helpers import run_cli, run_json

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cov_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("coverage") / "run"
    r = run_cli("--scenario", "smoke", "--duration", "12", "--coverage", "--out", str(out))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return out


def test_routes_and_handlers_reached_or_not(cov_run):
    m = json.loads((cov_run / "metrics.json").read_text())
    # setup checks health, scans and lists; nothing in smoke asks for one track by id
    routes = {r["path"]: r["reached"] for r in rc.compare(cov_run, None)["routes"] if r["own"]}
    # (the settings, presets and file routes are the lifecycle checks' test bed: smoke never calls them)
    assert routes == {"/api/health": True, "/api/library/scan": True, "/api/library/tracks": True,
                      "/api/library/tracks/{track_id}": False, "/ws": True,
                      "/api/settings": False, "/api/presets": False, "/api/library/tracks/{track_id}/file": False,
                      "/api/library/file": False}, routes
    # route table entries, one per method: settings and presets each have a GET and a write
    assert m["coverage_routes_total"] == 10 and m["coverage_routes_reached"] == 3
    assert 0 < m["coverage_lines_pct"] < 100
    handlers = {h["type"]: h["reached"] for h in rc.compare(cov_run, None)["ws_handlers"]}
    assert handlers["play_normal"] and handlers["play_enhanced"]
    assert not handlers["seek"] and not handlers["pause"]
    assert m["coverage_ws_handlers_reached"] == 2
    assert (cov_run / "coverage.md").is_file() and "Runtime coverage" in (cov_run / "report.md").read_text()
    assert run_json(cov_run)["options"]["coverage"] is True


def test_a_suite_without_session_play_shows_it_untested_and_live(cov_run, tmp_path):
    rep = json.loads((cov_run / "agent" / "coverage.json").read_text())
    play = [f for f in rc._functions(_session_path(cov_run)) if f[2] == "Session.play"]
    assert play, "Session.play not found in the reference's session.py"
    first, last, _ = play[0]
    files = {}
    for path, f in rep["files"].items():
        lines = [n for n in f["executed_lines"] if not (path.endswith("session.py") and first <= n <= last)]
        files[path] = {"executed_lines": lines}
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"files": files}))
    assert rc.main([str(cov_run), "--against", str(suite)]) == 0
    found = load_findings((cov_run / "coverage_findings.json").read_text())[0]
    live = [f for f in found if f.kind == "untested_live_path"]
    assert [(f.location.file, f.location.function) for f in live] == [("session.py", "Session.play")]
    assert first <= live[0].location.line_start <= live[0].location.line_end <= last


def _session_path(run_dir: Path) -> Path:
    roots = json.loads((run_dir / "agent" / "coverage_routes.json").read_text())["code_roots"]
    return Path(roots[0]) / "session.py"


def test_what_the_load_ran_survives_the_crash_restart_check(tmp_path):
    """crash_restart SIGKILLs the target and starts another: the load's lines
    (the enhanced render, which only smoke's enhanced stream reaches; the check
    itself plays normal) must still be in the run's coverage, checkpointed by
    the agent before the kill, and merged with the restarted process's."""
    out = tmp_path / "run"
    r = run_cli("--scenario", "smoke", "--duration", "12", "--coverage", "--checks", "crash_restart", "--out", str(out))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    restart = run_json(out)["checks"]["crash_restart"]
    assert restart["outcome"] == "done" and restart["restarted_pid"] != restart["killed_pid"]
    ack = json.loads((out / "agent" / "coverage_checkpoint.json").read_text())
    assert ack["pid"] == restart["killed_pid"] and ack["checkpoints"] == 1 and "error" not in ack
    rep = json.loads((out / "agent" / "coverage.json").read_text())
    mastering = next(p for p in rep["files"] if p.endswith("reference/mastering.py"))
    render = [f for f in rc._functions(Path(mastering)) if f[2] == "render"][0]
    body = set(range(render[0] + 3, render[1] + 1))
    assert body & set(rep["files"][mastering]["executed_lines"]), "the load's enhanced render was lost with the kill"
    # each process that saved keeps coverage's own data file (the killed one could not)
    assert (out / "agent" / f"coverage.dat.{restart['restarted_pid']}").is_file()
