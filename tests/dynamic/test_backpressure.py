"""Known answer for the backpressure check: the reference server with
unbounded-buffer holds about three copies of the track per client that
stopped reading (float64 work copies and the queued bytes); the clean
server, under the same procedure, holds a bounded amount and gives no
finding. RSS comes from the real out-of-process sampler, as in a run."""
from __future__ import annotations

import json

import pytest

from analysis.dynamic import backpressure as a_backpressure
from instrument.dynamic.backpressure_check import backpressure
from instrument.sampler import ProcessSampler

from ..reference.helpers import scan, start_server, write_tracks

pytestmark = pytest.mark.slow
SECONDS = 120.0
TRACK_MIB = SECONDS * 44100 * 2 * 4 / (1 << 20)
# one malloc arena: memory freed by render threads shows as freed, not as
# per-thread arena slack, so RSS measures what the app holds
STEADY_MALLOC = {"MALLOC_ARENA_MAX": "1"}


def _check(tmp_path, inject: str) -> dict:
    srv = start_server(tmp_path / (inject or "clean"), inject=inject, env=STEADY_MALLOC)
    run_dir = tmp_path / (inject or "clean") / "run"
    sampler = None
    try:
        write_tracks(srv.home / "Music", seconds=SECONDS)
        tracks = [{"track_id": t["id"], "name": t["title"], "duration_s": t["duration"]} for t in scan(srv)]
        sampler = ProcessSampler(srv.proc.pid, run_dir / "samples.jsonl").start()
        res = backpressure(base_url=srv.base, run_dir=run_dir, tracks=tracks, compression=False,
                           target_kind="reference", hold_s=5.0, settle_s=1.0)
        json.dumps(res)  # it goes into run.json
        assert res["outcome"] == "done", res
        assert srv.proc.poll() is None
        return res
    finally:
        if sampler:
            sampler.stop()
        srv.stop()


def test_unbounded_buffer_is_found_and_the_clean_server_is_not(tmp_path):
    clean = _check(tmp_path, "")
    found, metrics = a_backpressure.analyse(clean, "test")
    assert found == [], [f.description for f in found]
    assert metrics["backpressure_held_mib_per_reader"] < a_backpressure.FLOOR_MIB
    assert clean["track"]["sample_rate"] == 44100 and clean["track"]["duration_s"] == pytest.approx(SECONDS)
    assert all(s["binary_bytes"] < TRACK_MIB * (1 << 20) / 4 for s in clean["stalled"])  # they did stop reading

    bad = _check(tmp_path, "unbounded-buffer")
    found, metrics = a_backpressure.analyse(bad, "test")
    assert [f.kind for f in found] == ["no_backpressure"]
    f = found[0]
    assert f.severity == "HIGH" and f.location.file == "instrument/reference/streaming.py"
    # float64 work copies (2x) plus the queued float32 bytes (1x): ~3 tracks per stalled client
    assert 1.5 * TRACK_MIB <= f.figures["held_mib_per_reader"] <= 4.5 * TRACK_MIB, f.figures
    assert f.figures["track_mib"] == pytest.approx(TRACK_MIB, rel=0.01)


def test_analysis_is_silent_without_measurements():
    assert a_backpressure.analyse({}, "s") == ([], {})
    assert a_backpressure.analyse({"outcome": "error", "error": "x"}, "s") == ([], {})
    res = {"outcome": "done", "readers": 2, "rss_base_mib": [], "rss_hold_mib": [500.0],
           "track": {"duration_s": 60, "sample_rate": 44100, "channels": 2}}
    assert a_backpressure.analyse(res, "s") == ([], {})  # no baseline: nothing to judge
