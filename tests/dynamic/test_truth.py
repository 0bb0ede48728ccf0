"""The quiet truth phase: each track alone on each path, to its end, after
the load. Known answers: on the clean reference every track completes on
both paths and its streams are in streams/ for the audio analysis; with the
enhanced path failing (chunk-timeout), the verdict says the enhanced path is
uncovered and why. The judge is pure and tested on its own too."""
from __future__ import annotations

import json

import pytest

from analysis.dynamic import truth as a_truth
from analysis.rundir import list_streams
from instrument.dynamic.truth_check import truth

from .agent_reference import agent_reference


def _s(path, track, **kw):
    return {"track": track, "stream_type": path, "expected_s": 20.0, "outcome": "done", "ended": "completed",
            "delivered_s": 20.0, "wall_s": 1.0, **kw}


def test_both_paths_whole_gives_no_finding():
    res = {"outcome": "done", "paths": ["normal", "enhanced"], "streams": [_s("normal", "a"), _s("enhanced", "a")],
           "skipped": [], "stream_timeout_s": 60}
    assert a_truth.analyse(res, "release") == ([], {"truth_streams_whole": 2.0, "truth_stream_timeouts": 0.0,
                                                    "truth_streams_skipped": 0.0, "truth_paths_uncovered": 0.0})


def test_an_uncovered_path_says_why_for_every_stream():
    res = {"outcome": "done", "paths": ["normal", "enhanced"], "stream_timeout_s": 60, "quiet": False,
           "quiet_cpu_percent": 95.0,
           "streams": [_s("normal", "a"),
                       _s("enhanced", "a", outcome="deadline", timed_out=True, ended="stream_timeout",
                          delivered_s=0.0, wall_s=60.0),
                       _s("enhanced", "b", ended="errored", delivered_s=15.0,
                          error={"type": "audio_stream_error", "data": {"error": "timed out on chunk 1"}})],
           "skipped": [{"track": "c", "stream_type": "enhanced", "reason": "the check's 420 s budget was spent"}]}
    found, metrics = a_truth.analyse(res, "release")
    assert [f.kind for f in found] == ["truth_path_uncovered"]
    f = found[0]
    assert "enhanced" in f.title and "never went quiet" in f.description and "host was busy" not in f.description
    busy = {**res, "host_cpus": 2, "host_load_start": 14.7, "host_load_end": 12.0}
    assert "load average 14.7 on 2 CPUs" in a_truth.analyse(busy, "release")[0][0].description
    assert f.evidence == ["a: timed out after 60 s with 0.0 s delivered",
                          "b: ended 'errored' after 15.0 s: timed out on chunk 1",
                          "c: not played, the check's 420 s budget was spent"]
    assert metrics["truth_paths_uncovered"] == 1 and metrics["truth_stream_timeouts"] == 1
    # a stream that completed but short of its track is not whole
    short = {**res, "streams": [_s("normal", "a", delivered_s=12.0), _s("enhanced", "a")], "skipped": []}
    assert [f.key for f in a_truth.analyse(short, "r")[0]] == ["truth-uncovered-normal"]


def test_a_check_that_could_not_run_is_said():
    (f,), _ = a_truth.analyse({"outcome": "error", "error": "no track with a server id"}, "release")
    assert f.kind == "truth_phase_failed" and "no track" in f.description
    assert a_truth.analyse({}, "x") == ([], {})
    assert a_truth.analyse({"skipped": "not available in this version"}, "x") == ([], {})


def _run_truth(tmp_path, inject: str) -> tuple[dict, object]:
    run_dir = tmp_path / (inject or "clean")
    with agent_reference(run_dir, inject, ["short", "sine"], 25) as (base, tracks, _proc):
        res = truth(base_url=base, run_dir=run_dir, tracks=tracks, compression=False, stream_timeout_s=60,
                    quiet_timeout_s=15)
        json.dumps(res)
        return res, run_dir


@pytest.mark.slow
def test_clean_reference_covers_both_paths_and_chunk_timeout_leaves_enhanced_uncovered(tmp_path):
    res, run_dir = _run_truth(tmp_path, "")
    assert [(s["track"], s["stream_type"], s["ended"]) for s in res["streams"]] == [  # shortest first
        ("short", "normal", "completed"), ("sine", "normal", "completed"),
        ("short", "enhanced", "completed"), ("sine", "enhanced", "completed")]
    assert [s["delivered_s"] for s in res["streams"]] == pytest.approx([18.5, 25.0, 18.5, 25.0], abs=1e-3)
    assert a_truth.analyse(res, "release")[0] == []
    recorded = {(st.summary.get("scenario"), st.summary.get("stream_type")) for st in list_streams(run_dir)}
    assert recorded == {("truth-check", "normal"), ("truth-check", "enhanced")}  # the audio analysis sees them

    res, _ = _run_truth(tmp_path, "chunk-timeout")
    found, metrics = a_truth.analyse(res, "release")
    assert [f.key for f in found] == ["truth-uncovered-enhanced"]
    assert all("timed out on chunk" in e for e in found[0].evidence), found[0].evidence
    assert metrics["truth_paths_uncovered"] == 1
