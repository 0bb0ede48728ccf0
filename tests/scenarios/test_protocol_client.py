"""Known-answer tests of the protocol client: exact message sequences in,
recorded streams and violations out."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from analysis.rundir import list_streams
from scenarios.protocol_client import AuralisSession, ClientProfile

from .fake_ws import ScriptedWS, end, meta, start


def session(tmp_path, script, profile=None):
    s = AuralisSession("http://127.0.0.1:1", tmp_path, user="u", scenario="test", tracks={1: {"name": "t", "file": "x"}},
                       profile=profile or ClientProfile(flow_control=False))
    s.ws = ScriptedWS(script)
    return s


def pcm(n_floats, seed=0):
    return np.random.default_rng(seed).standard_normal(n_floats).astype("<f4")


def run(s, timeout=5):
    return s.pump(lambda: False, deadline=time.time() + timeout)


def test_clean_stream_is_recorded_bit_exact_without_violations(tmp_path):
    a, b = pcm(8, 1), pcm(6, 2)
    s = session(tmp_path, [start(), meta(0, samples=8), a.tobytes(), {"type": "player_state", "data": {}},
                           meta(1, chunk=1, samples=6), b.tobytes(), end(7)])
    s.play_request = {"type": "play_normal", "data": {"track_id": 1}}
    run(s)
    (st,) = list_streams(tmp_path)
    audio, sr = st.audio()
    assert sr == 44100
    np.testing.assert_array_equal(audio.ravel(), np.concatenate([a, b]))
    assert st.summary["ended"] == "completed"
    assert st.summary["violations"] == []
    assert [m["frame_offset"] for m in st.chunk_metas()] == [0, 4]


@pytest.mark.parametrize("script,kind", [
    ([start(), meta(0), pcm(8).tobytes(), meta(2), pcm(8).tobytes(), end(8)], "seq_gap"),
    ([start(), meta(0, samples=10), pcm(8).tobytes(), end(4)], "sample_count_mismatch"),
    ([start(), pcm(8).tobytes(), end(4)], "binary_without_meta"),
    ([start(), meta(0), pcm(8).tobytes(), end(999)], "end_totals_mismatch"),
    ([start(), meta(0), meta(1), pcm(8).tobytes(), end(4)], "meta_without_frame"),
    ([start(), meta(0), pcm(8).tobytes()], "stream_never_ended"),
])
def test_each_violation_is_recorded_not_raised(tmp_path, script, kind):
    s = session(tmp_path, script)
    run(s)
    (st,) = list_streams(tmp_path)
    kinds = [v["kind"] for v in st.summary["violations"]]
    assert kind in kinds


def test_stale_epoch_after_seek_is_dropped(tmp_path):
    new = pcm(8, 5)
    s = session(tmp_path, [start(epoch=1), meta(0, epoch=1), pcm(8).tobytes(),
                           start(epoch=2, is_seek=True), meta(1, epoch=1), pcm(8, 9).tobytes(),  # stale
                           meta(0, epoch=2), new.tobytes(), end(4)])
    run(s)
    first, second = list_streams(tmp_path)
    assert first.summary["ended"] == "superseded"
    audio, _ = second.audio()
    np.testing.assert_array_equal(audio.ravel(), new)
    assert second.summary["violations"] == []


def test_json_ping_is_answered_with_pong(tmp_path):
    s = session(tmp_path, [{"type": "ping"}])
    run(s)
    assert {"type": "pong", "data": {}} in s.ws.sent


def test_malformed_text_is_a_violation_not_a_crash(tmp_path):
    s = session(tmp_path, [start(), "not json {", "[1,2]", meta(0), pcm(8).tobytes(), end(4)])
    run(s)
    (st,) = list_streams(tmp_path)
    assert {"malformed_json", "malformed_message"} <= {v["kind"] for v in st.summary["violations"]}


def test_browser_flow_control_sends_buffer_full(tmp_path):
    big = pcm(44100 * 2 * 2)  # 2 s of stereo audio in one frame
    s = session(tmp_path, [start(), meta(0, samples=big.size), big.tobytes()] * 1,
                profile=ClientProfile("browser", flow_control=True, buffer_s=2.0))
    run(s)
    assert any(m["type"] == "buffer_full" for m in s.ws.sent)


def test_rate_limit_keeps_commands_under_ten_per_second(tmp_path):
    s = session(tmp_path, [])
    t0 = time.monotonic()
    for _ in range(12):
        s.send("pause")
    # burst of 4, then 8/s: 12 commands take at least one second
    assert time.monotonic() - t0 >= 0.9


def test_stream_start_position_comes_from_the_server_not_the_last_request(tmp_path):
    """During rapid seeks the client's latest request is not the stream that
    arrives: the recorded position must be the server's seek_position."""
    s = session(tmp_path, [start(epoch=3, track_id=1, is_seek=True, seek_position=33.25, start_chunk=2),
                           meta(0, epoch=3), pcm(8).tobytes(), end(4)])
    s.play_request = {"type": "seek", "data": {"track_id": 2, "position": 7.53}}
    run(s)
    (st,) = list_streams(tmp_path)
    assert st.summary["start_position"] == 33.25
    assert st.summary["track_id"] == 1
