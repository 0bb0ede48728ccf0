"""analysis/permits.py on recorded ledgers: one finding per semaphore, at the
line the leaking tasks left the acquiring function at; permits handed back
later are not leaks; a fresh stream's refusal is the same cause as other
findings refused with the same words, and the leak leads them."""
from __future__ import annotations

import json
from pathlib import Path

from analysis.grouping import group_findings
from analysis.model import Finding, Location
from analysis.permits import analyse_permits

CREATED = [{"file": "core/controller.py", "line": 123, "function": "<module>"}]
ACQ = {"enhanced": [{"file": "routers/system.py", "line": 117, "function": "stream_audio"},
                    {"file": "core/stream_enhanced.py", "line": 72, "function": "stream_enhanced_audio"}],
       "normal": [{"file": "core/stream_normal.py", "line": 79, "function": "stream_normal_audio"}]}
LEFT = {"enhanced": 417, "normal": 509}


def _leak(path: str, ended: str = "returned") -> dict:
    left = {**ACQ[path][-1], "line": LEFT[path]}
    return {"event": "leaked", "semaphore": 1, "permits": 1, "capacity": 10, "created": CREATED,
            "acquired": ACQ[path], "ended": ended, "left_at": left,
            "exception": "CancelledError" if ended == "cancelled" else None,
            "exit": [left, {"file": "core/chunk_ops.py", "line": 252, "function": "drain"}] if ended == "cancelled"
            else []}


def _run_dir(tmp_path: Path, records: list[dict], checks: dict | None = None) -> Path:
    (tmp_path / "agent").mkdir(parents=True)
    (tmp_path / "agent" / "permits.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "run.json").write_text(json.dumps({"scenario": "release", "checks": checks or {}}))
    return tmp_path


def test_leaks_of_one_semaphore_are_one_finding_at_the_most_frequent_exit_line(tmp_path):
    recs = [_leak("enhanced")] * 5 + [_leak("enhanced", "cancelled")] + [_leak("normal")] * 2
    findings, metrics = analyse_permits(_run_dir(tmp_path, recs))
    assert metrics == {"permits_leaked": 8}
    (f,) = findings
    assert (f.kind, f.severity, f.dimension) == ("permit_leak", "HIGH", "Error Handling")
    assert (f.location.file, f.location.line_start, f.location.function) == \
        ("core/stream_enhanced.py", 417, "stream_enhanced_audio")
    assert f.figures == {"permits_leaked": 8, "capacity": 10, "tasks": 8, "exit_sites": 2, "exhausted": 0}
    assert f.key == "permit_leak|core/controller.py:123"
    text = "\n".join(f.evidence)
    assert "6 task(s) left stream_enhanced_audio at core/stream_enhanced.py:417" in text
    assert "2 task(s) left stream_normal_audio at core/stream_normal.py:509" in text
    assert "(the exception was caught by a caller)" in text


def test_permits_handed_back_later_are_no_leak(tmp_path):
    recs = [_leak("normal"), {"event": "reclaimed", "semaphore": 1}]
    assert analyse_permits(_run_dir(tmp_path, recs)) == ([], {"permits_leaked": 0})
    assert analyse_permits(_run_dir(tmp_path / "none", [])) == ([], {"permits_leaked": 0})


def test_every_permit_gone_and_the_refusals_it_caused_are_one_finding(tmp_path):
    busy = "Server busy - too many active streams"
    checks = {"stream_slots": {"outcome": "done", "after": {"reply": "audio_stream_error", "error": busy}}}
    findings, _ = analyse_permits(_run_dir(tmp_path, [_leak("enhanced", "cancelled")] * 10, checks))
    (leak,) = findings
    assert leak.figures["exhausted"] == 1 and "refuses all further work" in leak.description
    assert {"error": busy} in leak.sites
    # the recovery check and a bad-files neighbour were refused with the same words (CRITICAL would lead on
    # severity alone): the measured cause leads them
    refused = [Finding(kind=k, title=k, severity=s, dimension="Error Handling", description="", impact="",
                       suggested_fix="", location=Location(stream=k), sites=[{"error": busy}])
               for k, s in (("no_recovery_after_storm", "CRITICAL"), ("bad_file_starves_others", "HIGH"))]
    other = Finding(kind="stream_error", title="x", severity="HIGH", dimension="Error Handling", description="",
                    impact="", suggested_fix="", sites=[{"error": "Track not found"}])
    out = group_findings(refused + [leak, other])
    assert sorted(f.kind for f in out) == ["permit_leak", "stream_error"]
    lead = next(f for f in out if f.kind == "permit_leak")
    assert lead.severity == "CRITICAL" and sorted(s["kind"] for s in lead.symptoms) == \
        ["bad_file_starves_others", "no_recovery_after_storm"]
