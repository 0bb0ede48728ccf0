"""Known answers for browser-faithful positioning: what the client sends
for a seek, a normal-path position and a resume after a dropped connection
(the web client's useEnhancedSeek.ts and websocketConnectionCore.ts), and
what it records as the stream's request."""
from __future__ import annotations

import time

import numpy as np

from analysis.rundir import list_streams
from scenarios.protocol_client import DEFAULT_INTENSITY, DEFAULT_PRESET, AuralisSession, ClientProfile

from .fake_ws import ScriptedWS, end, meta, start


def session(tmp_path, script):
    s = AuralisSession("http://127.0.0.1:1", tmp_path, user="u", scenario="test", tracks={1: {"name": "t", "file": "x"}},
                       profile=ClientProfile(flow_control=False))
    s.ws = ScriptedWS(script)
    return s


def frames(n_stereo):
    return np.zeros(2 * n_stereo, dtype="<f4").tobytes()


def test_seek_always_carries_the_announced_preset_and_intensity(tmp_path):
    s = session(tmp_path, [{"type": "enhancement_settings_changed",
                            "data": {"enabled": True, "preset": "warm", "intensity": 0.6}}])
    s.seek(1, 12.5)  # before the settings arrive: the web client's defaults
    s.pump(lambda: False, deadline=time.time() + 2)
    s.seek(1, 20.0)
    first, second = s.ws.sent
    assert first == {"type": "seek", "data": {"track_id": 1, "position": 12.5, "preset": DEFAULT_PRESET,
                                              "intensity": DEFAULT_INTENSITY}}
    assert second["data"] == {"track_id": 1, "position": 20.0, "preset": "warm", "intensity": 0.6}


def test_normal_path_is_positioned_by_play_normal_with_start_position(tmp_path):
    s = session(tmp_path, [])
    s.play(1, enhanced=False, start_position=17.25)
    assert s.ws.sent == [{"type": "play_normal", "data": {"track_id": 1, "start_position": 17.25}}]
    assert s.last_stream_command == s.ws.sent[0]


def test_resume_point_is_the_audio_received_plus_the_streams_start(tmp_path):
    """A stream announced at 10 s that delivered 1.5 s resumes at 11.5 s."""
    s = session(tmp_path, [start(is_seek=True, seek_position=10.0), meta(0, samples=2 * 44100),
                           frames(44100), meta(1, samples=44100), frames(22050)])
    s.play(1, enhanced=True, start_position=10.0, preset="adaptive", intensity=1.0)
    s.pump(lambda: bool(s.current and s.current.recorder.binary_frames >= 2), deadline=time.time() + 2)
    command, position = s.resume_point()
    assert command == {"type": "play_enhanced", "data": {"track_id": 1, "start_position": 10.0,
                                                         "preset": "adaptive", "intensity": 1.0}}
    assert abs(position - 11.5) < 1e-9


def test_resume_point_falls_back_to_the_requested_start_when_not_announced(tmp_path):
    s = session(tmp_path, [start(), meta(0, samples=44100), frames(22050)])
    s.play(1, enhanced=False, start_position=4.0)
    s.pump(lambda: bool(s.current and s.current.recorder.binary_frames >= 1), deadline=time.time() + 2)
    assert abs(s.resume_point()[1] - 4.5) < 1e-9


def test_no_resume_point_before_any_audio(tmp_path):
    s = session(tmp_path, [start()])
    s.play(1, enhanced=False)
    s.pump(lambda: s.current is not None, deadline=time.time() + 2)
    assert s.resume_point() is None
    assert session(tmp_path, []).resume_point() is None


def test_resume_resends_the_last_command_at_the_position_and_says_so(tmp_path):
    """The re-issued command keeps every field of the original (preset,
    intensity) with start_position replaced; the stream it starts records
    it as its request, with request_reason 'resume'."""
    s = session(tmp_path, [start(stream_type="enhanced", is_seek=True, seek_position=11.5), meta(0, samples=8),
                           frames(4), end(4)])
    original = {"type": "play_enhanced", "data": {"track_id": 1, "preset": "warm", "intensity": 0.6,
                                                  "start_position": 3.0}}
    s.resume(original, 11.5)
    assert s.ws.sent == [{"type": "play_enhanced", "data": {"track_id": 1, "preset": "warm", "intensity": 0.6,
                                                            "start_position": 11.5}}]
    s.pump(s.stream_done, deadline=time.time() + 2)
    (st,) = list_streams(tmp_path)
    assert st.summary["request"] == s.ws.sent[0]
    assert st.summary["request_reason"] == "resume"
    out = [e for e in st.events if e.get("dir") == "out"]
    assert out and out[0]["msg"] == s.ws.sent[0]


def test_an_ordinary_play_has_no_request_reason(tmp_path):
    s = session(tmp_path, [start(), meta(0, samples=8), frames(4), end(4)])
    s.resume({"type": "play_normal", "data": {"track_id": 1}}, 2.0)
    s.play(1, enhanced=False)
    s.pump(s.stream_done, deadline=time.time() + 2)
    (st,) = list_streams(tmp_path)
    assert "request_reason" not in st.summary
    assert st.summary["request"] == {"type": "play_normal", "data": {"track_id": 1}}
