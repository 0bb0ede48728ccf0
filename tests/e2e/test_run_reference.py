"""The whole run on the reference backend: smoke end to end, injections
visible in what a correct tool reports, and faults that must still leave a
report, exit 2, and no process behind."""
from __future__ import annotations

import sys

import pytest

from analysis.model import load_findings
from analysis.rundir import list_streams

from .helpers import fake_auralis, injection_run, leftovers, run_cli, run_json, verdict_line

pytestmark = pytest.mark.slow


def findings_of(run_dir):
    return load_findings((run_dir / "findings.json").read_text())[0]


def test_smoke_clean_passes_with_streams_and_no_audio_findings(tmp_path):
    out = tmp_path / "smoke"
    r = run_cli("--scenario", "smoke", "--duration", "15", "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert verdict_line(r).startswith("VERDICT: PASS")
    run = run_json(out)
    assert run["status"] == "ok" and run["verdict"] == "PASS"
    streams = list_streams(out)
    assert {s.summary["stream_type"] for s in streams} == {"normal", "enhanced"}
    assert all(s.summary["ended"] == "completed" for s in streams)
    audio = [f for f in findings_of(out) if f.dimension in ("Chunked Processing", "Processing Engine")]
    assert audio == [], [f.title for f in audio]
    for name in ("report.md", "findings.json", "metrics.json", "samples.jsonl", "target.log"):
        assert (out / name).exists(), name
    assert leftovers(out) == []


# repeat-overlap: one grouped CRITICAL finding, see test_one_finding_per_injection.py


def test_streams_stopped_by_an_error_fail_the_gate_with_their_cause(tmp_path_factory, worker_id):
    # the run test_one_finding_per_injection.py checks too: chunk-timeout with
    # a gap, which changes what the streams carry and not how they end
    out, r = injection_run(tmp_path_factory, worker_id, "gap+timeout")
    assert r.returncode == 1, r.stdout + r.stderr
    streams = list_streams(out)
    enhanced = [s for s in streams if s.summary["stream_type"] == "enhanced"]
    normal = [s for s in streams if s.summary["stream_type"] == "normal"]
    assert enhanced and normal
    assert all(s.summary["ended"] == "errored" for s in enhanced)
    assert all(s.summary["ended"] == "completed" for s in normal)
    errs = [f for f in findings_of(out) if f.kind == "stream_error"]
    assert len(errs) == 1 and errs[0].severity == "HIGH"
    assert errs[0].figures["streams_errored"] == len(enhanced)
    assert '"Audio processing timed out on chunk N; stream stopped"' in errs[0].description
    metrics = __import__("json").loads((out / "metrics.json").read_text())
    assert metrics["streams_failed"] == metrics["streams_errored"] == len(enhanced)
    assert "streams_failed == 0" in verdict_line(r)


def test_unknown_injection_is_one_line_exit_2(tmp_path):
    r = run_cli("--scenario", "smoke", "--inject", "nonsense", "--out", str(tmp_path / "r"))
    assert r.returncode == 2
    assert "unknown injection 'nonsense'" in r.stderr


def test_target_that_exits_at_start_shows_log_tail(tmp_path):
    root = fake_auralis(tmp_path / "Auralis", "raise SystemExit('boom: cannot open database')\n")
    out = tmp_path / "r"
    r = run_cli("--scenario", "smoke", "--target", "auralis", "--auralis-root", str(root),
                "--auralis-python", sys.executable, "--out", str(out), "--startup-timeout", "30")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "target failed to start" in r.stderr and "boom: cannot open database" in r.stderr
    assert run_json(out)["status"] == "invalid"
    assert verdict_line(r).startswith("VERDICT: INVALID")
    assert leftovers(out) == []


DIES_LATER = '''
import os, threading, time
from instrument.reference.app import app  # a working backend ...
threading.Timer(6.0, lambda: os._exit(3)).start()  # ... that dies mid-run
'''


def test_target_that_dies_mid_run_is_reported_exit_2(tmp_path):
    root = fake_auralis(tmp_path / "Auralis", DIES_LATER)
    out = tmp_path / "r"
    r = run_cli("--scenario", "concurrent-tracks", "--duration", "20", "--target", "auralis", "--auralis-root",
                str(root), "--auralis-python", sys.executable, "--out", str(out))
    assert r.returncode == 2, r.stdout + r.stderr
    run = run_json(out)
    assert "died" in run["invalid_reason"]
    assert (out / "report.md").exists() and (out / "findings.json").exists()
    assert list_streams(out), "streams captured before the death are kept"
    assert verdict_line(r).startswith("VERDICT: INVALID")
    assert leftovers(out) == []


def test_ctrl_c_reports_what_was_captured(tmp_path):
    import signal
    import subprocess
    import time

    from .helpers import ROOT

    out = tmp_path / "r"
    p = subprocess.Popen([sys.executable, "-m", "instrument.run", "--quiet", "--scenario", "concurrent-tracks",
                          "--duration", "60", "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    for _ in range(300):
        time.sleep(0.2)
        if (out / "streams").exists() and any((out / "streams").iterdir()):
            break
    time.sleep(2)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 2, stdout + stderr
    run = run_json(out)
    assert run["invalid_reason"] == "interrupted by Ctrl-C (SIGINT)"
    assert run["stages"]["load"]["status"] == "interrupted" and "checks" not in run["stages"]
    assert (out / "report.md").exists()
    assert stdout.strip().splitlines()[-1].startswith("VERDICT: INVALID")
    assert leftovers(out) == []


def test_target_stopped_mid_run_is_invalid_naming_the_hang(tmp_path):
    """SIGSTOP the target during the load: the liveness probe notices it no
    longer answers, the load ends early (a bounded wait, not the scenario's
    duration), and the run is INVALID (exit 2) with a hang finding that says
    the agent could not dump stacks from a stopped process."""
    import os
    import signal
    import subprocess
    import time

    from .helpers import ROOT

    out = tmp_path / "r"
    duration = 40
    p = subprocess.Popen([sys.executable, "-m", "instrument.run", "--quiet", "--track-seconds", "40", "--scenario",
                          "slow-client", "--duration", str(duration), "--out", str(out)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(600):
        time.sleep(0.2)
        if (out / "streams").exists() and any((out / "streams").iterdir()):
            break
    time.sleep(2)
    pid = run_json(out)["target"]["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        stdout, stderr = p.communicate(timeout=240)
    finally:
        try:
            os.kill(pid, signal.SIGCONT)  # only matters if the run failed to kill it
        except ProcessLookupError:
            pass
    assert p.returncode == 2, stdout + stderr
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("VERDICT: INVALID") and "target stopped answering" in last, last
    run = run_json(out)
    assert run["load_outcome"] == "target_hung"
    assert run["liveness"]["stopped"] is True and run["liveness"]["process_state"].startswith("T")
    assert run["timings"]["load_s"] < duration, "the load ran to its end although the target was frozen"
    [hang] = [f for f in findings_of(out) if f.kind == "target_hang"]
    assert hang.severity == "CRITICAL"
    assert any("could not dump" in e for e in hang.evidence)
    assert (out / "report.md").exists()
    assert leftovers(out) == []


BLOCKS_LOOP_LATER = '''
import time
from instrument.reference.app import app as inner

_first_ws = None


def hang_here_forever():
    time.sleep(600)  # on the event loop: nothing answers any more


async def app(scope, receive, send):
    global _first_ws
    if scope["type"] == "websocket" and _first_ws is None:
        _first_ws = time.monotonic()
    if scope["type"] == "http" and _first_ws is not None and time.monotonic() - _first_ws > 5:
        hang_here_forever()
    await inner(scope, receive, send)
'''


def test_target_whose_loop_hangs_gives_its_last_stacks(tmp_path):
    """A loop blocked for good 5 s into the load: INVALID naming the hang, and
    the hang finding quotes the stacks the agent dumped on request (the
    process still runs, unlike a SIGSTOPped one), naming the blocking function."""
    root = fake_auralis(tmp_path / "Auralis", BLOCKS_LOOP_LATER)
    out = tmp_path / "r"
    # a scenario that keeps its users for its whole duration (smoke ends when its streams do)
    r = run_cli("--scenario", "library-browse", "--users", "2", "--duration", "30", "--target", "auralis",
                "--auralis-root", str(root), "--auralis-python", sys.executable, "--out", str(out))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "target stopped answering" in verdict_line(r) and "SIGSTOP" not in verdict_line(r)
    run = run_json(out)
    assert run["load_outcome"] == "target_hung" and run["liveness"]["stopped"] is False
    [hang] = [f for f in findings_of(out) if f.kind == "target_hang"]
    stacks = "\n".join(hang.evidence)
    assert "hang_here_forever" in stacks and "main.py" in stacks, stacks
    assert leftovers(out) == []
