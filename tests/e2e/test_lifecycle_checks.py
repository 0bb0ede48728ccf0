"""The lifecycle checks (concurrent_writes, path_traversal, stream_slots,
crash_restart, shutdown): the clean backend gives none of their findings and
exits 0 (the clean control is the release scenario's run, which runs them
among its checks: helpers.release_clean), and the backend with the five
injections, on a short smoke run with only these checks, gives exactly the
findings each injection promises; a sentinel HOME for the wrapper is left
byte-identical by both, and no process of either run survives it.
stream_slots runs before crash_restart, whose restart gives a leaking
backend its slots back for the checks after it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.model import load_findings

from .helpers import ROOT, leftovers, release_clean, run_json, sentinel_home, tree_digest

pytestmark = pytest.mark.slow
CHECKS = "concurrent_writes,path_traversal,stream_slots,crash_restart,shutdown"
INJECT = "restart-loses-settings,unsafe-concurrent-write,path-traversal,shutdown-leaks-children,slot-leak-on-cancel"
OURS = {"path_traversal", "path_input_server_error", "db_integrity_failed", "db_locked_500", "concurrent_write_500",
        "lost_acknowledged_writes", "stream_broken_by_writes", "restart_lost_state", "stale_lock_blocks_start",
        "no_restart_after_crash", "no_stream_after_restart", "shutdown_timeout", "shutdown_orphan_children",
        "shutdown_port_open", "shutdown_threads_running", "shutdown_temp_files_left", "shutdown_wal_not_checkpointed",
        "permit_leak", "stream_slots_exhausted"}
SESSION = ROOT / "instrument" / "reference" / "session.py"


def _start(out: Path, *extra: str, home: Path) -> subprocess.Popen:
    env = {**os.environ, "HOME": str(home)}  # the wrapper's own HOME: a sentinel it must not touch
    return subprocess.Popen([sys.executable, "-m", "instrument.run", "--quiet", "--scenario", "smoke", "--duration", "6",
                             "--track-seconds", "20", "--checks", CHECKS, "--out", str(out), *extra],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(p: subprocess.Popen) -> subprocess.CompletedProcess:
    try:
        out, err = p.communicate(timeout=280)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, worker_id):
    base = tmp_path_factory.mktemp("lifecycle")
    home = sentinel_home(base / "sentinel-home")
    before = tree_digest(home)
    # one after the other: the injected run holds this test's share of the machine, which
    # the test lets go while it waits for another file's run (release_clean); a share of
    # the injected run's own held across that wait deadlocked against an exclusive run
    # waiting at host_share's gate (four fixture timeouts in a full suite)
    injected = _finish(_start(base / "injected", "--inject", INJECT, home=home))
    clean_out, clean, clean_home, clean_before = release_clean(tmp_path_factory, worker_id)
    return {"base": base, "injected": injected, "home": home, "before": before,
            "clean_out": clean_out, "clean": clean, "clean_home": clean_home, "clean_before": clean_before}


def _findings(run_dir: Path):
    return load_findings((run_dir / "findings.json").read_text())[0]


def test_clean_reference_gives_none_of_these_findings_and_passes(runs):
    out, r = runs["clean_out"], runs["clean"]
    ours = [f for f in _findings(out) if f.kind in OURS]
    assert ours == [], [(f.kind, f.location.render(), f.evidence[:2]) for f in ours]
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    doc = run_json(out)
    assert doc["status"] == "ok"
    c = doc["checks"]
    assert set(CHECKS.split(",")) <= set(c)
    cr = c["crash_restart"]
    assert cr["outcome"] == "done" and cr["kill_exit_code"] == -9 and cr["stream_playing_at_kill"]
    assert cr["restarted_pid"] != cr["killed_pid"] and cr["restart_healthy_s"] > 0
    assert [i["result"] for i in cr["integrity"]] == ["ok"] and cr["stream_after"]["outcome"] == "completed"
    assert {w["route"] for w in cr["writes"]} == {"PUT /api/settings", "POST /api/presets"}
    cw = c["concurrent_writes"]
    assert {r["route"]: r["mode"] for r in cw["routes"]} == {"PUT /api/settings": "overwriting",
                                                             "POST /api/presets": "accumulating"}
    assert cw["read_back"]["POST /api/presets"]["acked"] >= 20 and cw["stream_results"]
    pt = c["path_traversal"]
    assert pt["served"] == [] and pt["probes"] >= 20 and pt["ws"]["sent"] >= 20
    assert {t["route"] for t in pt["targets"]} == {"GET /api/library/file", "GET /api/library/tracks/{track_id}/file"}
    ss = c["stream_slots"]
    assert ss["outcome"] == "done" and ss["before"]["reply"] == ss["after"]["reply"] == "binary"
    assert len(ss["cycles"]) == 24 and {x["reply"] for x in ss["cycles"]} == {"binary"}
    assert {(x["play"], x["cancel"]) for x in ss["cycles"]} == {(p, k) for p in ("play_enhanced", "play_normal")
                                                                for k in ("disconnect", "stop", "seek")}
    assert not (out / "agent" / "permits.jsonl").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["permits_leaked"] == 0 and metrics["stream_slots_fresh_refused"] == 0
    sd = c["shutdown"]
    assert sd["stream_open"] and sd["exit_code"] == 0 and sd["exit_s"] < sd["grace_s"]
    # the agent recorded the threads once the server had shut down: the pool was shut down with it
    assert sd["threads_at_exit"]["pid"] == sd["pid"] and sd["threads_at_exit"]["threads"] == []
    assert [w["wal_bytes"] for w in sd["wal"]] == [0]
    # the restarted target is the one the wrapper stopped, and nothing of the run is left
    assert doc["target"]["restarts"][0]["pid"] == cr["restarted_pid"]
    assert leftovers(out) == []


def test_each_injection_gives_its_promised_finding(runs):
    out, r = runs["base"] / "injected", runs["injected"]
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-2000:]
    got = {(f.kind, f.location.route) for f in _findings(out) if f.kind in OURS}
    assert got == {("restart_lost_state", "GET /api/settings"), ("db_locked_500", "POST /api/presets"),
                   ("lost_acknowledged_writes", "POST /api/presets"), ("path_traversal", "GET /api/library/file"),
                   ("shutdown_orphan_children", None), ("permit_leak", None)}, got
    by = {f.kind: f for f in _findings(out)}
    assert by["path_traversal"].severity == "CRITICAL" and by["lost_acknowledged_writes"].severity == "CRITICAL"
    # the settings written before kill -9 are the ones lost: every field of the write
    assert by["restart_lost_state"].figures["differences"] == 3
    assert by["lost_acknowledged_writes"].figures["lost"] >= 1
    served = {h["form"] for h in run_json(out)["checks"]["path_traversal"]["served"]}
    assert {"dotdot", "encoded", "absolute", "symlink:es-canary-link.txt"} <= served, served
    assert by["shutdown_orphan_children"].figures["processes"] == 1
    # every stream cancelled while the injection held (the load's, the checks', the cycles') kept its
    # slot, until all 10 were gone and the check's fresh stream was refused
    leak = by["permit_leak"]
    drain_line = next(i for i, line in enumerate(SESSION.read_text().splitlines(), 1) if "await drain_reraising(" in line)
    assert (leak.location.file, leak.location.line_start, leak.location.function) == \
        ("session.py", drain_line, "Session.stream")
    assert leak.severity == "HIGH" and leak.figures["capacity"] == 10
    assert leak.figures["permits_leaked"] == 10 and leak.figures["exhausted"] == 1 and leak.figures["exit_sites"] == 1
    ss = run_json(out)["checks"]["stream_slots"]
    assert ss["outcome"] == "done"
    assert ss["after"]["reply"] == "audio_stream_error" and "too many active streams" in ss["after"]["error"]
    # the last slot goes in the cycles, or already in the load's own cancels on a slower machine (CI
    # once): then the check's first fresh stream is refused and it has no cycle to run
    if ss["before"]["reply"] == "binary":
        assert ss["cycles"][-1]["reply"] == "audio_stream_error" and len(ss["cycles"]) < 24
    else:
        assert "too many active streams" in ss["before"]["error"] and ss["cycles"] == []
    # the check's refusals are the leak's symptom, not a finding of their own
    assert "stream_slots_exhausted" in {s["kind"] for s in leak.symptoms}
    assert any("Session.stream" in e and "drain_reraising" in e for e in leak.evidence), leak.evidence
    assert leftovers(out) == []  # the helper that escaped the process group was killed by the check


def test_sentinel_home_is_byte_identical_and_nothing_is_written_outside_the_run(runs):
    assert tree_digest(runs["home"]) == runs["before"]
    assert tree_digest(runs["clean_home"]) == runs["clean_before"]
    for out in (runs["clean_out"], runs["base"] / "injected"):
        canary = out / "checks" / "path_traversal" / "canary.txt"
        assert canary.exists()
        assert not list((out / "home" / "Music").glob("es-canary-link*"))  # the planted links are removed


def test_an_unknown_check_is_bad_input(tmp_path):
    r = subprocess.run([sys.executable, "-m", "instrument.run", "--scenario", "smoke", "--checks", "crash_restart,nope",
                        "--out", str(tmp_path / "x")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "unknown check 'nope'" in r.stderr
    assert not (tmp_path / "x").exists()
