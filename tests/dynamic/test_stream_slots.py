"""Known answers for the stream_slots check and its judge: against a real
reference server whose only slot another client holds, the check's fresh
streams are refused and it measures that (no error, no cycles) and the judge
makes a HIGH finding carrying the server's words; against a clean server
every cycle and both fresh streams are served and nothing is found. The
judge on recorded results: a refusal that cleared by the end is MEDIUM, and
with a measured permit leak the refusals fold into it."""
from __future__ import annotations

import json

from analysis.dynamic import stream_slots as judge
from analysis.grouping import group_findings
from analysis.model import Finding, Location
from instrument.dynamic.state_probe import play_through
from instrument.dynamic.stream_slots_check import stream_slots

from ..reference.helpers import Client, scan, start_server, write_tracks

BUSY = "Server busy - too many active streams"


def _tracks(srv) -> list[dict]:
    write_tracks(srv.home / "Music", seconds=60)  # more PCM than loopback buffers hold: a holder stays mid-stream
    return [{"track_id": t["id"], "name": t["title"], "duration_s": t["duration"]} for t in scan(srv)]


def test_clean_server_serves_every_cycle_and_nothing_is_found(tmp_path):
    srv = start_server(tmp_path)
    try:
        res = stream_slots(base_url=srv.base, tracks=_tracks(srv), compression=False, cycles=3, settle_s=0.3)
        json.dumps(res)  # it goes into run.json
        assert res["outcome"] == "done" and res["before"]["reply"] == res["after"]["reply"] == "binary"
        assert [c["reply"] for c in res["cycles"]] == ["binary"] * 6
        assert {c["cancel"] for c in res["cycles"]} == {"disconnect", "stop", "seek"}
        assert all(c["seek_reply"] == "audio_stream_start" for c in res["cycles"] if c["cancel"] == "seek")
        assert judge.analyse(res, "smoke") == ([], {"stream_slots_fresh_refused": 0.0})
    finally:
        srv.stop()


def test_slots_gone_before_the_check_are_measured_and_found(tmp_path):
    srv = start_server(tmp_path, env={"EARSHOT_REF_MAX_STREAMS": "1", "EARSHOT_REF_ACQUIRE_TIMEOUT": "0.3"})
    try:
        tracks = _tracks(srv)
        holder = Client(srv, timeout=10)  # stands for a slot a cancelled stream kept: it never comes back
        assert holder.stream("play_normal", {"track_id": tracks[0]["track_id"]}, stop_after_frames=1).start
        res = stream_slots(base_url=srv.base, tracks=tracks, compression=False, cycles=3, settle_s=0.3,
                           start_timeout_s=10.0)
        # the write check's stream, refused the same way, carries the server's message as it came
        played = play_through(srv.base, tracks[0], compression=False, timeout_s=10.0)
        holder.close()
    finally:
        srv.stop()
    assert res["outcome"] == "done", res
    assert (res["before"]["reply"], res["before"]["error"]) == ("audio_stream_error", BUSY)
    assert res["cycles"] == []  # no slot left to lose: the cycles are skipped
    assert (res["after"]["reply"], res["after"]["error"]) == ("audio_stream_error", BUSY)
    (f,), metrics = judge.analyse(res, "smoke")
    assert metrics == {"stream_slots_fresh_refused": 2.0}
    assert (f.kind, f.severity, f.location.stream) == ("stream_slots_exhausted", "HIGH", "stream_slots")
    assert f.sites == [{"error": BUSY}] and f.figures["cycles"] == 0
    assert "the load's own cancels had taken the slots" in f.evidence[0] and BUSY in f.evidence[-1]
    assert played["outcome"] == "error" and played["error"]["data"]["error"] == BUSY
    json.dumps(played)


def _result(before: str, after: str, cycles: list[str]) -> dict:
    def play(reply):
        return {"play": "play_normal", "cancel": "stop", "reply": reply, "ms": 5.0,
                **({"error": BUSY} if reply != "binary" else {})}
    return {"outcome": "done", "before": play(before), "after": play(after),
            "cycles": [{**play(r), "play": "play_enhanced"} for r in cycles]}


def test_refusals_are_judged_by_whether_they_clear():
    # slots lost during the cycles, still gone at the end: HIGH, the refused cycle in evidence
    (f,), m = judge.analyse(_result("binary", "audio_stream_error", ["binary"] * 9 + ["audio_stream_error"]), None)
    assert f.severity == "HIGH" and m["stream_slots_fresh_refused"] == 1.0 and f.figures["cycles_served"] == 9
    assert any(e.startswith("cycle 10 (play_enhanced) was refused") for e in f.evidence)
    # refused at first, served at the end: the slots came back late, MEDIUM
    (f,), _ = judge.analyse(_result("audio_stream_error", "binary", []), None)
    assert f.severity == "MEDIUM"
    # a check that could not judge is no finding; nor is a clean one
    assert judge.analyse({"outcome": "error", "error": "x"}, None) == ([], {})
    assert judge.analyse(_result("binary", "binary", ["binary"] * 4), None)[0] == []


def test_a_measured_permit_leak_leads_the_refusals():
    (refused,), _ = judge.analyse(_result("audio_stream_error", "audio_stream_error", []), "release")
    leak = Finding(kind="permit_leak", title="leak", severity="HIGH", dimension="Error Handling", description="",
                   impact="", suggested_fix="", location=Location(file="core/stream_enhanced.py", line_start=417),
                   sites=[{"frame": "core/stream_enhanced.py:417 f"}, {"error": BUSY}])
    (out,) = group_findings([refused, leak])
    assert out.kind == "permit_leak" and [s["kind"] for s in out.symptoms] == ["stream_slots_exhausted"]


def test_no_answer_before_the_check_is_an_error_not_a_finding():
    # a server that is not there: the check cannot judge slots, and says so
    res = stream_slots(base_url="http://127.0.0.1:9", tracks=[{"track_id": 1, "duration_s": 10}],
                       compression=False, start_timeout_s=1.0)
    assert res["outcome"] == "error" and res["before"]["reply"] is None and res["cycles"] == []
    assert judge.analyse(res, None) == ([], {})


def test_a_stream_the_write_check_could_not_start_for_lack_of_a_slot_is_the_leaks_symptom():
    """Seen with the slot-leak injection: the load's own cancels took all 10
    slots before the concurrent_writes check, whose stream was refused
    "Server busy"; that is the leak's symptom, not the writes' defect."""
    from analysis.dynamic import concurrent_writes

    refusal = {"type": "audio_stream_error", "data": {"track_id": 1, "error": BUSY, "code": "STREAMING_ERROR"}}
    result = {"outcome": "done", "routes": [], "read_back": {},
              "stream_results": [{"track": "timecode", "outcome": "error", "error": refusal, "delivered_s": 0.0,
                                  "expected_s": 20.0, "max_gap_s": 0.0}]}
    broken = [f for f in concurrent_writes.analyse(result, "release")[0] if f.kind == "stream_broken_by_writes"]
    assert broken and broken[0].sites == [{"error": BUSY}]
    leak = Finding(kind="permit_leak", title="leak", severity="HIGH", dimension="Error Handling", description="",
                   impact="", suggested_fix="", location=Location(file="session.py", line_start=411),
                   sites=[{"frame": "session.py:411 Session.stream"}, {"error": BUSY}])
    (out,) = group_findings([broken[0], leak])
    assert out.kind == "permit_leak" and [s["kind"] for s in out.symptoms] == ["stream_broken_by_writes"]
