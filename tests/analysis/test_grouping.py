"""Root-cause grouping, severity by rule and measured locations, on findings
shaped as the detectors write them (fast: no run)."""
from __future__ import annotations

import json

from analysis.grouping import group_findings
from analysis.locate import locate_findings, match_route
from analysis.loop import explains, gap_attribution, leaf_frame, short_path
from analysis.model import Finding, Location, dump_findings, load_findings
from analysis.severity import apply_severity_rules

SR = 44100


def _f(kind, severity="HIGH", key="", sites=(), dimension="Chunked Processing", **kw) -> Finding:
    return Finding(kind=kind, title=f"{kind} title", severity=severity, dimension=dimension, description="d",
                   impact="i", suggested_fix="s", key=key or f"{kind}|normal|x", sites=list(sites), **kw)


def _bsites(stream, times, value=None):
    return [{"stream": stream, "t": t, "value": value} for t in times]


def _repeat_symptoms(span=5 * SR, with_click=True, with_length=True, stype="normal"):
    """What one repeat-overlap gives: continuity and alignment both see the
    repeat at 15 and 30 s, a click at the splice, the stream too long by 2 spans."""
    out = [_f("repeated_audio", key=f"repeated_audio|{stype}|{span}", sites=_bsites("s1", [15.0, 30.0], span)),
           _f("repeated_samples", key=f"repeated_samples|{stype}|every-boundary",
              sites=_bsites("s1", [15.0004, 30.0002], span))]
    if with_click:
        out.append(_f("click", key=f"click|{stype}|every-boundary", sites=_bsites("s1", [15.0, 30.0])))
    if with_length:
        out.append(_f("length_mismatch", severity="CRITICAL", key=f"length_mismatch|{stype}|off-boundary",
                      dimension="WebSocket Streaming", sites=[{"stream": "s1", "t": None, "value": 2 * span}]))
    return out


def test_one_repeat_is_one_finding_with_every_symptom_kept():
    [g] = group_findings(_repeat_symptoms())
    assert g.kind == "repeated_audio" and g.severity == "CRITICAL"  # the worst symptom's severity
    assert sorted(s["kind"] for s in g.symptoms) == ["click", "length_mismatch", "repeated_samples"]
    length = next(s for s in g.symptoms if s["kind"] == "length_mismatch")
    assert length["sites"][0]["value"] == 2 * 5 * SR  # its figures and sites survive
    g.symptoms[0]["figures"] = {"worst_magnitude": 7.0}
    assert g.all_figures()[f"{g.symptoms[0]['kind']}.worst_magnitude"] == 7.0  # namespaced, never overwritten
    assert g.cause == "audio:repeat"


def test_fingerprint_comes_from_the_cause_not_from_which_symptoms_were_seen():
    full = group_findings(_repeat_symptoms())[0].fingerprint
    partial = group_findings(_repeat_symptoms(with_click=False, with_length=False)[:1])[0].fingerprint
    assert full == partial
    other = group_findings([_f("dropped_samples", sites=_bsites("s1", [15.0], -64))])[0].fingerprint
    assert other != full


def test_a_click_at_other_boundaries_and_a_length_that_does_not_add_up_stay_apart():
    items = _repeat_symptoms(with_click=False, with_length=False)
    items.append(_f("click", key="click|normal|some", sites=_bsites("s1", [22.0, 44.0])))
    items.append(_f("length_mismatch", key="length_mismatch|normal|off-boundary",
                    sites=[{"stream": "s1", "t": None, "value": -1000}]))  # short, a repeat makes it long
    got = sorted(f.kind for f in group_findings(items))
    assert got == ["click", "length_mismatch", "repeated_audio"]


def test_a_click_at_every_join_is_the_symptom_of_steps_at_most_of_those_joins():
    """Auralis's enhanced path (each chunk mastered on its own, butt-joined):
    a click at every boundary of four streams, level steps at nine joins,
    eight of them among the clicks. One join, one finding, the clicks' 20
    boundaries kept in the symptom; clicks sharing under half the steps'
    joins stay their own."""
    joins = [15.0, 25.0, 35.0, 45.0, 55.0]
    # two click findings (by pattern), neither alone at half the steps' joins
    every = _f("click", key="click|enhanced|every-boundary", sites=[s for st in ("a", "b") for s in _bsites(st, joins)])
    some = _f("click", key="click|enhanced|some-boundaries", sites=[s for st in ("c", "d") for s in _bsites(st, joins)])
    steps = _f("level_step", severity="MEDIUM", key="level_step|enhanced|some",
               sites=_bsites("a", [15.0, 25.0, 35.0, 55.0]) + _bsites("c", [35.0, 45.0, 55.0])
               + _bsites("d", [55.0]) + _bsites("e", [25.0]))
    [g] = group_findings([every, some, steps])
    assert g.kind == "level_step" and g.severity == "HIGH" and [s["kind"] for s in g.symptoms] == ["click", "click"]
    assert sum(len(s["sites"]) for s in g.symptoms) == 20
    few = _f("level_step", severity="MEDIUM", key="level_step|enhanced|some",
             sites=_bsites("a", [15.0]) + _bsites("e", [25.0, 35.0, 45.0]))
    assert sorted(f.kind for f in group_findings([_f("click", key="click|enhanced|every-boundary",
                                                     sites=[s for st in ("a", "b") for s in _bsites(st, joins)]),
                                                  few])) == ["click", "level_step"]


def test_two_causes_at_the_same_boundaries_stay_two():
    # silence and a repeat at the same joins: different content changes
    items = _repeat_symptoms(with_click=False, with_length=False)
    items.append(_f("gap", sites=_bsites("s1", [15.0, 30.0], None)))
    assert sorted(f.kind for f in group_findings(items)) == ["gap", "repeated_audio"]


def test_a_level_step_at_the_joins_of_a_gap_is_its_symptom_and_elsewhere_its_own():
    gap = _f("gap", sites=_bsites("s1", [15.0, 30.0]))
    same = _f("level_step", severity="MEDIUM", sites=_bsites("s1", [15.01, 30.01]))
    [g] = group_findings([gap, same])
    assert g.kind == "gap" and [s["kind"] for s in g.symptoms] == ["level_step"]
    gap = _f("gap", sites=_bsites("s1", [15.0, 30.0]))
    other = _f("level_step", severity="MEDIUM", sites=_bsites("s1", [20.0, 40.0]))
    assert sorted(f.kind for f in group_findings([gap, other])) == ["gap", "level_step"]


def test_a_repeat_and_a_loss_measured_at_one_join_are_one_cause():
    # continuity says 64 frames lost, alignment misreads the same join as 8 repeated
    exact = _f("missing_audio", sites=_bsites("s1", [15.0, 30.0], -64))
    misread = _f("repeated_samples", sites=_bsites("s1", [29.9986], 8))
    [g] = group_findings([exact, misread])
    assert g.kind == "missing_audio" and g.cause == "audio:loss"


def test_drop_found_by_continuity_and_alignment_is_one():
    items = [_f("missing_audio", sites=_bsites("s1", [15.0, 30.0], -64)),
             _f("dropped_samples", sites=_bsites("s1", [15.0, 30.0], -64)),
             _f("length_mismatch", dimension="WebSocket Streaming",
                sites=[{"stream": "s1", "t": None, "value": -128}])]
    [g] = group_findings(items)
    assert g.kind == "missing_audio" and len(g.symptoms) == 2


def test_the_same_repeat_on_both_paths_is_one_cause():
    items = _repeat_symptoms(stype="normal") + [
        _f("repeated_audio", key=f"repeated_audio|enhanced|{5 * SR}", sites=_bsites("e1", [15.0, 25.0], 5 * SR))]
    for f in items:
        f.title = f"{f.kind} ({f.key.split('|')[1]} path)"
    [g] = group_findings(items)
    assert g.title == "repeated_audio (enhanced and normal paths)"
    # a repeat of a different size on the other path is another defect
    other = _f("repeated_audio", key="repeated_audio|enhanced|1000", sites=_bsites("e1", [15.0, 25.0], 1000))
    assert len(group_findings(_repeat_symptoms() + [other])) == 2


def _stall(target_frame, leaf, max_ms=200.0, severity="HIGH"):
    return _f("loop_stall", severity=severity, dimension="Performance", key=target_frame,
              sites=[{"frame": target_frame}, {"leaf": leaf}], figures={"max_ms": max_ms})


def test_deflate_on_the_loop_is_one_finding():
    """Stalls in two functions of one send path whose samples end in the same
    compression call, and a saturation whose dominant frame is one of them."""
    leaf = "websockets/extensions/permessage_deflate.py:encode"
    items = [_stall("app/proto.py:122 safe_send_bytes", leaf),
             _stall("app/proto.py:91 safe_send", leaf, severity="MEDIUM"),
             _f("loop_saturation", severity="MEDIUM", dimension="Performance", key="saturation x",
                sites=[{"frame": "app/proto.py:122 safe_send_bytes"}]),
             _stall("app/other.py:10 scan", "app/other.py:scan")]
    got = group_findings(items)
    assert len(got) == 2
    deflate = next(g for g in got if g.symptoms)
    assert deflate.cause == f"frame:{leaf}" and deflate.severity == "HIGH"
    assert sorted(s["kind"] for s in deflate.symptoms) == ["loop_saturation", "loop_stall"]


def _saturation(frame, busy=0.78, seconds=17):
    return _f("loop_saturation", severity="MEDIUM", dimension="Performance", key=f"saturation {frame}",
              sites=[{"frame": frame}], figures={"busy_fraction": busy, "seconds": seconds})


def test_a_saturation_leads_when_its_frames_stalls_are_a_sliver_of_its_busy_time():
    """The loop-saturation injection's 8 ms turns, back to back, once kept the
    heartbeat out for 65 ms: that stall is the saturation's symptom. A frame
    whose stalls hold the loop for a real share of the time is a stall."""
    frame = "streaming.py:177 saturate_loop_turn"
    stray = _stall(frame, frame, max_ms=65.0, severity="MEDIUM")
    stray.figures["total_ms"] = 65.0
    (got,) = group_findings([stray, _saturation(frame)])
    assert got.kind == "loop_saturation" and [s["kind"] for s in got.symptoms] == ["loop_stall"]
    blocking = _stall(frame, frame, max_ms=300.0)
    blocking.figures["total_ms"] = 0.1 * 0.78 * 17 * 1000  # at the share: the stall leads
    (got,) = group_findings([blocking, _saturation(frame)])
    assert got.kind == "loop_stall" and got.severity == "HIGH"
    assert [s["kind"] for s in got.symptoms] == ["loop_saturation"]


def test_the_same_error_text_is_one_finding():
    a = _f("stream_error", dimension="Error Handling", sites=[{"error": "Audio processing timed out on chunk 3"}])
    b = _f("ws_contract_stream_without_end", dimension="Error Handling",
           sites=[{"error": "Audio processing timed out on chunk 7"}])
    c = _f("api_server_error", dimension="Route Handlers", sites=[{"error": "boom"}])
    got = group_findings([a, b, c])
    assert len(got) == 2 and any(len(g.symptoms) == 1 for g in got)


def test_old_findings_json_still_loads_and_new_fields_round_trip():
    old = {"schema_version": 1, "meta": {}, "findings": [
        {"kind": "click", "title": "t", "severity": "HIGH", "dimension": "Chunked Processing", "description": "d",
         "impact": "i", "suggested_fix": "s", "location": {}, "evidence": [], "figures": {}, "artifacts": [],
         "key": "k", "status": "NEW", "id": "B3-1", "fingerprint": "x", "location_text": "run-wide"}]}
    [f] = load_findings(json.dumps(old))[0]
    assert f.symptoms == [] and f.section == "target" and f.cause == ""
    [g] = group_findings(_repeat_symptoms())
    [back] = load_findings(dump_findings([g]))[0]
    assert back.fingerprint == g.fingerprint and len(back.symptoms) == 3


def test_severity_rules():
    lib = _f("loop_stall", dimension="Performance", sites=[{"leaf": "lib/x.py:f"}], figures={"max_ms": 300.0})
    long_lib = _f("loop_stall", dimension="Performance", sites=[{"leaf": "lib/x.py:f"}], figures={"max_ms": 1500.0})
    own = _f("loop_stall", dimension="Performance", sites=[{"frame": "app.py:1 f"}], figures={"max_ms": 300.0})
    lost = _f("dropped_samples", severity="HIGH", sites=_bsites("s1", [15.0], -64))
    passthrough = _f("passthrough", dimension="Processing Engine")
    ttfa = _f("slow_time_to_first_audio", severity="MEDIUM", dimension="Performance")
    out = apply_severity_rules([lib, long_lib, own, lost, passthrough, ttfa], None,
                               {"loadgen_cpu_max_percent": 99.0})
    assert [f.severity for f in out[:4]] == ["LOW", "HIGH", "HIGH", "CRITICAL"]
    assert passthrough.section == "target"  # no run.json: the DSP state is unknown, so it stays the target's
    assert ttfa.section == "environment" and not ttfa.counts_against_gate


def test_passthrough_with_a_dsp_stand_in_is_the_environment(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"target": {"dsp_state": "stand-in"}}))
    f = _f("passthrough", dimension="Processing Engine")
    apply_severity_rules([f], tmp_path, {})
    assert f.section == "environment"


def test_a_stall_explains_a_gap_only_when_overlap_and_length_agree():
    assert explains(10.0, 100.0, 9.99, 10.12)  # a 130 ms gap over a 100 ms stall
    assert not explains(10.0, 100.0, 9.0, 33.4)  # a 24 s gap is not a 100 ms stall's
    assert not explains(10.0, 100.0, 10.5, 10.7)  # no overlap
    gaps = [("a", 9.99, 10.12), ("b", 9.0, 33.4), ("c", 50.0, 50.1)]
    m = gap_attribution([{"t": 10.0, "duration_ms": 100.0}], gaps)
    assert m["frame_gap_visible_total_ms"] == round((33.4 - 9.0) * 1000, 1)  # only gaps >= 250 ms are visible
    assert m["frame_gap_explained_by_stalls_fraction"] == 0.0


def test_library_and_native_frames_are_named_without_machine_paths():
    assert short_path("/opt/u/venv/lib/python3.13/site-packages/websockets/frames.py") == "websockets/frames.py"
    assert short_path("/usr/lib/python3.13/threading.py") == "stdlib/threading.py"
    native = {"stacks": [{"frames": [{"file": "<frozen runpy>", "line": 1, "function": "_run_code"},
                                     {"file": "/x/instrument/agent/__main__.py", "line": 9, "function": "main"}]}]}
    assert leaf_frame(native) is None


def test_locations_are_measured_from_the_running_app(tmp_path):
    agent = tmp_path / "agent"
    agent.mkdir()
    (agent / "routes.json").write_text(json.dumps([
        {"methods": ["GET"], "path": "/api/albums/{album_id}/artwork", "function": "get_artwork",
         "endpoint": "app.routers.get_artwork", "file": "app/routers/art.py", "line": 42},
        {"methods": ["GET"], "path": "/api/albums/recent", "function": "recent", "file": "app/a.py", "line": 7}]))
    (agent / "ws_sites.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"kind": "send", "type": "binary", "frames": [{"file": "app/ws.py", "line": 5, "function": "loop"},
                                                      {"file": "app/proto.py", "line": 122, "function": "send_pcm"}]},
        {"kind": "send", "type": "audio_stream_end", "frames": [{"file": "app/end.py", "line": 3, "function": "end"}]},
        {"kind": "receive", "type": "message", "frames": [{"file": "app/ws.py", "line": 9, "function": "loop"}]},
    ]) + "\n")
    assert match_route(json.loads((agent / "routes.json").read_text()), "GET", "/api/albums/recent")["line"] == 7
    http = _f("api_server_error", dimension="Route Handlers", location=Location(route="GET /api/albums/{album_id}/artwork"))
    ws = _f("ws_contract_wrong_totals", dimension="WebSocket Streaming", sites=[{"message": "audio_stream_end"}])
    silent = _f("socket_input_no_reply", dimension="Error Handling", sites=[{"read": "play_normal"}])
    audio = _f("click", sites=_bsites("s1", [15.0]), location=Location(stream="s1", time_s=15.0))
    locate_findings([http, ws, silent, audio], tmp_path)
    assert http.location.code_span() == "app/routers/art.py:42" and http.location.function == "get_artwork"
    assert ws.location.code_span() == "app/end.py:3"
    assert silent.location.code_span() == "app/ws.py:9"
    assert audio.location.code_span() == "app/proto.py:122" and audio.location.stream == "s1"


def test_a_stall_outside_every_python_callback_is_contention_not_a_finding(tmp_path):
    """The loop thread sampled only in the agent's run_until_complete: native
    code, most often waiting for the GIL another thread holds; and a stall the
    watchdog could not sample at all. Neither is a line of the target."""
    from analysis.loop import analyse_loop

    main = [{"file": "<frozen runpy>", "line": 88, "function": "_run_code", "own": False},
            {"file": "/x/instrument/agent/__main__.py", "line": 172, "function": "main", "own": False}]
    own = main + [{"file": "/app/core/send.py", "line": 40, "function": "send_blocking", "own": True}]
    stalls = [{"t": 1.0 + i, "duration_ms": 150.0, "location": None, "stacks": [{"frames": main}], "gc_ms": 0.0,
               "cpu_ms": 100.0, "runq_wait_ms": 0.0} for i in range(3)]
    stalls.append({"t": 9.0, "duration_ms": 120.0, "location": None, "stacks": [], "gc_ms": 0.0, "cpu_ms": 1.0,
                   "runq_wait_ms": 0.0})
    stalls.append({"t": 12.0, "duration_ms": 130.0, "stacks": [{"frames": own}], "gc_ms": 0.0, "cpu_ms": 1.0,
                   "runq_wait_ms": 0.0, "location": {"file": "core/send.py", "line": 40, "function": "send_blocking"}})
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "agent.json").write_text(json.dumps({"stall_threshold_ms": 50}))
    (tmp_path / "agent" / "stalls.jsonl").write_text("".join(json.dumps(s) + "\n" for s in stalls))
    findings, metrics = analyse_loop(tmp_path)
    assert [f.location.function for f in findings if f.kind == "loop_stall"] == ["send_blocking"]
    assert metrics["loop_contention_stall_count"] == 4 and metrics["loop_stall_count"] == 1


def test_a_stall_inside_the_tools_own_spec_fetch_is_its_cost_not_a_finding(tmp_path):
    """FastAPI builds the OpenAPI spec on the loop at its first request: on
    Auralis a 331 ms stall, inside the openapi check's fetch of the spec,
    was filed as a LOW finding in library code (tokenize) and set the gate's
    loop_stall_max_ms. That request is the tool's, for its own use: the
    stall is counted as the tool's, and a stall of the target's own a second
    later is still its finding."""
    from analysis.loop import analyse_loop

    lib = [{"file": "/v/site-packages/fastapi/applications.py", "line": 1086, "function": "openapi", "own": False},
           {"file": "/usr/lib/python3.13/tokenize.py", "line": 483, "function": "tokenize", "own": False}]
    own = [{"file": "/app/core/send.py", "line": 40, "function": "send_blocking", "own": True}]
    stalls = [{"t": 100.02, "duration_ms": 331.0, "location": None, "stacks": [{"frames": lib}], "gc_ms": 0.0,
               "cpu_ms": 320.0, "runq_wait_ms": 0.0},
              {"t": 101.5, "duration_ms": 130.0, "stacks": [{"frames": own}], "gc_ms": 0.0, "cpu_ms": 120.0,
               "runq_wait_ms": 0.0, "location": {"file": "core/send.py", "line": 40, "function": "send_blocking"}}]
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "agent.json").write_text(json.dumps({"stall_threshold_ms": 50}))
    (tmp_path / "agent" / "stalls.jsonl").write_text("".join(json.dumps(s) + "\n" for s in stalls))
    (tmp_path / "run.json").write_text(json.dumps({"checks": {"openapi": {"spec_fetch": {"t_start": 100.0,
                                                                                         "t_end": 100.4}}}}))
    findings, metrics = analyse_loop(tmp_path)
    assert [f.location.function for f in findings if f.kind == "loop_stall"] == ["send_blocking"]
    assert metrics["loop_tool_request_stall_count"] == 1 and metrics["loop_tool_request_stall_total_ms"] == 331.0
    assert metrics["loop_stall_max_ms"] == 130.0
    (tmp_path / "run.json").write_text(json.dumps({}))  # without the check's window: the stall is the target's
    findings, metrics = analyse_loop(tmp_path)
    assert metrics["loop_stall_max_ms"] == 331.0 and len([f for f in findings if f.kind == "loop_stall"]) == 2
