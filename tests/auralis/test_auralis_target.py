"""The real Auralis backend under the wrapper: it starts on a fresh HOME,
its library is loaded through its own scan API, streams are captured, and
what ran is recorded."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.model import load_findings
from analysis.rundir import list_streams

from .conftest import AURALIS_PYTHON, AURALIS_ROOT

ROOT = Path(__file__).resolve().parents[2]
STANDIN = ROOT.parent / "shared" / "lab"


def run_cli(out: Path, *extra: str, timeout: int = 600) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "instrument.run", "--target", "auralis", "--auralis-root", AURALIS_ROOT,
            "--auralis-python", AURALIS_PYTHON, "--out", str(out), "--quiet", "--no-gate", *extra]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("auralis") / "smoke"
    r = run_cli(out, "--scenario", "smoke", "--duration", "40")
    assert "VERDICT:" in r.stdout.strip().splitlines()[-1], r.stdout + r.stderr
    return out


def test_run_records_what_ran(smoke_run):
    run = json.loads((smoke_run / "run.json").read_text())
    t = run["target"]
    assert t["kind"] == "auralis"
    assert len(t["git_commit"]) == 40 and t["git_dirty"] in (True, False)
    assert t["python"].startswith("3.")
    assert {"uvicorn", "starlette", "numpy"} <= set(t["packages"])
    assert t["loop_impl"] and "uvloop" in str(t["loop_impl"]).lower()
    assert t["dsp_state"] in ("native", "stand-in", "absent")
    assert run["status"] == "ok", run.get("invalid_reason")


def test_user_library_untouched_and_state_inside_run_dir(smoke_run):
    # Auralis keeps its DB under $HOME/.auralis: it must be the run's fresh HOME
    assert (smoke_run / "home" / ".auralis").is_dir()


def test_streams_captured_with_geometry_from_the_stream(smoke_run):
    streams = list_streams(smoke_run)
    types = {s.summary.get("stream_type") for s in streams}
    assert {"normal", "enhanced"} <= types
    for s in streams:
        starts = [m["frame_offset"] / 44100 for m in s.chunk_metas() if m.get("frame_index") == 0]
        if s.summary["stream_type"] == "normal" and s.summary.get("ended") == "completed":
            assert starts[:3] == [0.0, 15.0, 30.0]
        if s.summary["stream_type"] == "enhanced" and s.summary.get("ended") == "completed":
            assert starts[:3] == [0.0, 15.0, 25.0]


def test_normal_path_is_clean(smoke_run):
    findings, _ = load_findings((smoke_run / "findings.json").read_text())
    audio = [f for f in findings if f.dimension == "Chunked Processing" and "normal" in (f.key or "")]
    assert audio == []


def test_without_dsp_the_enhanced_passthrough_is_a_finding(smoke_run):
    run = json.loads((smoke_run / "run.json").read_text())
    if run["target"]["dsp_state"] != "absent":
        pytest.skip("native DSP present")
    findings, _ = load_findings((smoke_run / "findings.json").read_text())
    assert any(f.kind == "passthrough" for f in findings)


def test_standin_enables_processing(tmp_path):
    if not (STANDIN / "auralis_dsp.py").exists():
        pytest.skip("no ../shared/lab stand-in")
    r = run_cli(tmp_path / "standin", "--scenario", "smoke", "--duration", "60", "--auralis-dsp-standin")
    assert "VERDICT:" in r.stdout, r.stdout + r.stderr
    run = json.loads((tmp_path / "standin" / "run.json").read_text())
    assert run["target"]["dsp_state"] == "stand-in"
    findings, _ = load_findings((tmp_path / "standin" / "findings.json").read_text())
    assert not any(f.kind == "passthrough" for f in findings)


def test_backend_that_dies_mid_run_is_reported(tmp_path):
    """Kill the backend during the load: exit 2, what was captured is reported."""
    import threading
    import time

    out = tmp_path / "dies"
    proc = subprocess.Popen([sys.executable, "-m", "instrument.run", "--target", "auralis", "--auralis-root",
                             AURALIS_ROOT, "--auralis-python", AURALIS_PYTHON, "--out", str(out), "--quiet",
                             "--scenario", "concurrent-tracks", "--duration", "60"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def killer():
        for _ in range(600):
            time.sleep(0.5)
            try:
                run = json.loads((out / "run.json").read_text())
            except Exception:
                continue
            if run.get("timings", {}).get("scan_s") and (out / "streams").exists():
                time.sleep(3)
                import os
                import signal
                os.kill(run["target"]["pid"], signal.SIGKILL)
                return

    threading.Thread(target=killer, daemon=True).start()
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 2, stdout + stderr
    run = json.loads((out / "run.json").read_text())
    assert "died" in run["invalid_reason"]
    assert (out / "report.md").exists()
    assert stdout.strip().splitlines()[-1].startswith("VERDICT: INVALID")
