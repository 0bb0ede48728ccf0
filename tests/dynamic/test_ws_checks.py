"""Known answers for the WebSocket-side dynamic checks (ws_contract,
isolation, socket_input): each check runs against a real reference server,
clean and with the injection it must find, and its analyser judges the
result. The clean server must give no finding from any of the three."""
from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.dynamic import isolation as a_isolation
from analysis.dynamic import socket_input as a_socket_input
from analysis.dynamic import ws_contract as a_ws_contract
from analysis.model import Finding
from instrument.dynamic.isolation_check import isolation
from instrument.dynamic.socket_input_check import socket_input
from instrument.dynamic.ws_contract_check import load_contract, ws_contract

from ..reference.helpers import scan, start_server, write_tracks

FAST = {"settle_s": 0.3, "reply_timeout_s": 1.0, "case_min_s": 0.0, "recommendation_wait_s": 10.0}


def _server(tmp_path_factory, inject: str):
    tmp = tmp_path_factory.mktemp(inject or "clean")
    srv = start_server(tmp, inject=inject)
    write_tracks(srv.home / "Music", seconds=20.0)
    tracks = [{"track_id": t["id"], "name": t["title"], "duration_s": t["duration"]} for t in scan(srv)]
    return srv, tracks, tmp


def _run(check, env) -> dict:
    srv, tracks, tmp = env
    res = check(base_url=srv.base, run_dir=tmp / "run", tracks=tracks, compression=False, target_kind="reference",
                **FAST)
    json.dumps(res)  # it goes into run.json
    assert res["outcome"] == "done", res
    assert srv.proc.poll() is None, "the check must not take the server down"
    return res


def _served(inject: str):
    """A module-scoped reference server with `inject` switched on."""
    @pytest.fixture(scope="module")
    def fixture(tmp_path_factory):
        env = _server(tmp_path_factory, inject)
        yield env
        env[0].stop()
    return fixture


clean = _served("")
drift = _served("contract-drift")
shared = _served("shared-state")
crashy = _served("crash-on-bad-message")


def test_contract_file_is_valid_json_schema():
    contract = load_contract()
    validators = a_ws_contract.build_validators(contract)  # check_schema raises on a bad schema
    assert {"audio_stream_start", "audio_chunk_meta", "audio_stream_end", "audio_stream_error", "error"} <= set(validators)
    assert "unknown_message_type" in contract["error_codes"] and "STREAMING_ERROR" in contract["stream_error_codes"]
    assert any("AURALIS.md" in n for n in contract["notes"])  # where the two documents disagree, and who wins


def test_clean_reference_gives_no_ws_finding(clean):
    wc = _run(ws_contract, clean)
    # it really exercised the protocol: every step's stream and every answer was captured
    steps = {s["step"]: s for s in wc["streams"]}
    assert {"play_normal", "play_enhanced", "seek", "pause_resume", "stop"} <= set(steps)
    seek = [s for s in wc["streams"] if s["step"] == "seek" and (s["start"] or {}).get("is_seek")][0]
    assert seek["end"]["total_samples"] == seek["delivered_frames"] == 10 * 44100
    kinds = {m["msg"]["type"] for m in wc["received"]}
    assert {"pong", "error", "seek_started", "playback_paused", "playback_resumed", "playback_stopped",
            "audio_stream_end", "audio_chunk_meta", "enhancement_settings_changed"} <= kinds
    assert a_ws_contract.analyse(wc, "test") == []

    iso = _run(isolation, clean)
    assert iso["b_after"]["preset"] == iso["b_before"]["preset"] == "adaptive"
    assert iso["a_play"]["preset"] == iso["a_request"]["preset"] != "adaptive"
    assert iso["a_got_own_recommendation"]
    assert a_isolation.analyse(iso, "test") == []

    si = _run(socket_input, clean)
    by = {c["name"]: c for c in si["cases"]}
    assert by["oversized_1mb"]["reply"]["error_code"] == "message_too_large"
    assert by["malformed_json"]["reply"]["error_code"] == "invalid_json"
    assert by["track_id_string"]["reply"]["error_code"] == "invalid_track_id"
    assert by["seek_negative"]["reply"]["error_code"] == "invalid_seek_position"
    assert by["seek_past_end"]["followup"]["kind"] == "audio_stream_start"  # an empty stream that ends
    assert by["seek_past_end"]["stream_end"]["kind"] == "audio_stream_end"
    assert by["burst"]["accepted"] == 10 and by["burst"]["limited"] == 15
    assert all(c["same_connection"]["ping_ok"] and c["same_connection"]["play_ok"] for c in si["cases"])
    assert a_socket_input.analyse(si, "test") == []


@pytest.fixture(scope="module")
def drift_found(drift):
    """The ws_contract check's findings on the drifted server, run once for the tests that read them
    (the grouping folds findings in place: each test gets fresh copies)."""
    return [f.to_dict() for f in a_ws_contract.analyse(_run(ws_contract, drift), "test")]


def _fresh(found):
    return [Finding.from_dict(d) for d in found]


def test_contract_drift_is_found(drift_found):
    found = {f.key: f for f in _fresh(drift_found)}
    assert set(found) == {"audio_stream_end:totals", "error:code:unknown_command", "ack:unknown_type"}
    totals = found["audio_stream_end:totals"]
    assert totals.kind == "ws_contract_wrong_totals" and totals.dimension == "WebSocket Streaming"
    # after the seek to 10 s of a 20 s track: the whole track is declared, half was delivered
    assert totals.figures["declared_frames"] == 20 * 44100 and totals.figures["delivered_frames"] == 10 * 44100
    # located later (analysis/locate.py) at the code that sent audio_stream_end in the running target;
    # the clause it breaks is shared with the load's protocol finding on it (folded into one)
    assert "seek" in totals.evidence[0]
    assert totals.sites == [{"message": "audio_stream_end"}, {"contract": "audio_stream_end:totals"}]
    code = found["error:code:unknown_command"]
    assert code.severity == "LOW" and code.dimension == "Schema Consistency" and "earshot" not in code.title
    assert '"error":"unknown_command"' in code.evidence[0]


def test_shared_state_is_found(shared):
    res = _run(isolation, shared)
    found = {f.key: f for f in a_isolation.analyse(res, "test")}
    assert set(found) == {"shared_settings", "recommendation_broadcast"}
    leak = found["shared_settings"]
    assert leak.figures["fields_leaked"] == 2 and leak.sites == [{"message": "audio_stream_start"}]
    assert "preset='warm'" in leak.evidence[1] and '"preset": "warm"' in leak.evidence[2]
    assert found["recommendation_broadcast"].figures["foreign_messages"] >= 1
    assert res["restore"]["preset"] == "adaptive"  # the check put the default back


def test_crash_on_bad_message_is_found(crashy):
    res = _run(socket_input, crashy)
    found = {f.key: f for f in a_socket_input.analyse(res, "test")}
    assert set(found) == {"dead", "silent"}
    hit = {"track_id_string", "start_position_string", "seek_position_string"}
    for key in ("dead", "silent"):
        assert {e.split(":")[0] for e in found[key].evidence} == hit
    assert found["dead"].severity == "HIGH" and found["dead"].dimension == "Error Handling"
    assert '"track_id": "abc"' in found["dead"].evidence[0]
    # a fresh connection still works: the server is alive, only that connection died
    assert all(c["fresh_connection"]["ok"] and c["health"]["status"] == 200 for c in res["cases"])


# -- analyser branches the reference has no injection for ----------------------

def _case(name="c", **kw):
    base = {"name": name, "msg_type": "play_normal", "sent": "{}", "sent_bytes": 2,
            "reply": {"kind": "error", "error_code": "invalid_track_id", "ms": 1.0, "excerpt": "{}"},
            "same_connection": {"ping_ok": True, "play_ok": True, "play": "audio_stream_start", "closed": None},
            "health": {"status": 200}, "fresh_connection": {"ok": True}, "texts": []}
    base.update(kw)
    return base


def test_socket_input_traceback_internal_error_crash_and_missing_rate_limit():
    tb = 'Traceback (most recent call last):\n  File "/srv/app/handlers.py", line 12, in play\nValueError'
    res = {"outcome": "done", "target_kind": "auralis", "reply_timeout_s": 3.0, "cases": [
        _case("start_position_string", reply={"kind": "error", "error_code": "internal_error", "ms": 2.0,
                                              "excerpt": '{"type":"error","error":"internal_error"}'}),
        _case("tb", texts=[json.dumps({"type": "error", "error": "x", "message": tb})]),
        _case("dies", health={"status": None, "error": "ConnectionError"}, fresh_connection={"ok": False}),
        _case("closes", reply=None, closed_after_send="closed 1011", same_connection=None),
        _case("seek_past_end", msg_type="seek", followup=None,
              reply={"kind": "seek_started", "error_code": None, "ms": 1.0, "excerpt": "{}"}),
        {"name": "burst", "msg_type": "resume", "sent_count": 25, "accepted": 25, "limited": 0, "send_s": 0.01,
         "health": {"status": 200}, "fresh_connection": {"ok": True}},
    ]}
    found = {f.key: f for f in a_socket_input.analyse(res, "release")}
    assert set(found) == {"internal", "traceback", "crash", "dropped", "rate_limit", "silent"}
    assert "seek_started after 1.0 ms, then neither a stream nor an error" in found["silent"].evidence[0]
    # no file from a table: located later at where the target read the message
    assert found["internal"].location.file is None and {"read": "play_normal"} in found["internal"].sites
    assert found["crash"].severity == "CRITICAL" and found["rate_limit"].dimension == "Middleware & Config"
    assert "handlers.py" in found["traceback"].evidence[0]


def test_ws_contract_schema_problems_and_stream_without_end():
    contract = load_contract()
    start = {"track_id": 1, "sample_rate": 44100, "channels": 2, "total_chunks": 1, "chunk_duration": 15.0,
             "total_duration": 1.0, "stream_type": "normal", "stream_epoch": 3}
    res = {"outcome": "done", "target_kind": "auralis", "contract": contract, "steps": [{"name": "play_normal", "t": 0}],
           "sent": [], "received": [
               {"t": 0.1, "stream": "s1", "msg": {"type": "audio_stream_start", "data": {**start, "extra": 1}}},
               {"t": 0.2, "stream": "s1", "msg": {"type": "audio_chunk_meta", "data": {"seq": "0", "track_id": 1}}},
               {"t": 0.3, "stream": None, "msg": {"type": "audio_stream_error", "data": {"error": "x", "code": "SEEK_ERROR"}}},
               {"t": 0.4, "stream": None, "msg": {"type": "surprise", "data": {}}},
           ],
           "streams": [{"id": "s1", "step": "play_normal", "start": start, "end": None, "ended": "never_ended",
                        "delivered_frames": 100, "sample_rate": 44100, "violations": []}]}
    found = {f.key: f for f in a_ws_contract.analyse(res, "release")}
    assert "audio_stream_start:unknown:data.extra" in found
    assert "audio_chunk_meta:value:data.seq" in found and "audio_chunk_meta:missing:data.sample_count" in found
    assert found["audio_stream_error:code:SEEK_ERROR"].severity == "LOW"
    assert found["type:surprise"].kind == "ws_contract_undocumented_type"
    assert found["stream_end:never_ended"].severity == "HIGH"
    assert found["audio_chunk_meta:value:data.seq"].sites == [{"message": "audio_chunk_meta"}]


def test_the_loads_end_totals_and_the_checks_wrong_totals_are_one_finding(drift_found, tmp_path):
    """One wrong number in audio_stream_end, seen twice: by the load's protocol
    client (a positioned stream completes, 4 frames delivered, the whole track
    declared) and by the ws_contract check after its seek. One finding, at the
    code that sent audio_stream_end; and no audio finding, as the audio is whole."""
    import time

    from analysis.client import analyse_client
    from analysis.grouping import group_findings
    from analysis.locate import locate_findings
    from scenarios.protocol_client import AuralisSession, ClientProfile

    from ..scenarios.fake_ws import ScriptedWS, end, meta, start

    run_dir = tmp_path / "run"
    s = AuralisSession("http://127.0.0.1:1", run_dir, user="seeker0", scenario="seek-storm",
                       tracks={1: {"name": "t", "file": "x"}}, profile=ClientProfile(flow_control=False))
    s.ws = ScriptedWS([start(is_seek=True, seek_position=10.0), meta(0, samples=8),
                       np.zeros(8, "<f4").tobytes(), end(20 * 44100)])
    s.play_request = {"type": "play_normal", "data": {"track_id": 1, "start_position": 10.0}}
    s.pump(lambda: False, deadline=time.time() + 5)
    load = [f for f in analyse_client(run_dir)[0] if f.kind == "protocol_end_totals_mismatch"]
    assert len(load) == 1, [f.kind for f in analyse_client(run_dir)[0]]
    found = _fresh(drift_found)
    check = [f for f in found if f.key == "audio_stream_end:totals"]
    other = [f for f in found if f.key != "audio_stream_end:totals"]
    (run_dir / "agent").mkdir(exist_ok=True)
    (run_dir / "agent" / "ws_sites.jsonl").write_text(json.dumps(
        {"kind": "send", "type": "audio_stream_end",
         "frames": [{"file": "core/stream_messages.py", "line": 131, "function": "send_stream_end"}]}) + "\n")
    out = locate_findings(group_findings(load + check + other), run_dir)
    totals = [f for f in out if {"protocol_end_totals_mismatch", "ws_contract_wrong_totals"}
              & ({f.kind} | {m["kind"] for m in f.symptoms})]
    assert len(totals) == 1, [(f.kind, [m["kind"] for m in f.symptoms]) for f in out]
    members = {totals[0].kind} | {m["kind"] for m in totals[0].symptoms}
    assert members == {"protocol_end_totals_mismatch", "ws_contract_wrong_totals"}
    assert totals[0].location.code_span() == "core/stream_messages.py:131"
    assert len(out) == 1 + len(other)  # the check's other findings stay their own
