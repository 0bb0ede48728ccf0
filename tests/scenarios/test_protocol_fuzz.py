"""The protocol client must never crash, whatever the server sends:
malformed, reordered and interleaved frames."""
from __future__ import annotations

import json
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.rundir import list_streams
from scenarios.protocol_client import AuralisSession, ClientProfile

from .fake_ws import ScriptedWS, end, meta, start

epochs = st.integers(min_value=0, max_value=3)
message = st.one_of(
    epochs.map(lambda e: start(epoch=e)),
    st.builds(lambda seq, e, n: meta(seq, epoch=e, samples=n), st.integers(-2, 6), epochs, st.integers(-1, 40)),
    st.binary(min_size=0, max_size=200),
    st.integers(-5, 100).map(end),
    st.just({"type": "ping"}),
    st.just({"type": "audio_stream_error", "data": {"error": "x", "code": "E"}}),
    st.just({"type": "error", "error": "rate_limit_exceeded", "message": "slow down"}),
    st.just({"type": "mastering_recommendation", "data": {}}),
    st.text(max_size=30),
    st.just("null"), st.just("[]"), st.just('{"type": 5, "data": "x"}'),
    st.just({"type": "audio_chunk_meta", "data": {"seq": "a", "sample_count": None}}),
    st.just({"type": "audio_stream_start", "data": {"sample_rate": "x", "channels": None}}),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=st.lists(message, max_size=25))
def test_any_sequence_is_survived_and_recorded(tmp_path_factory, script):
    run_dir = tmp_path_factory.mktemp("fuzz")
    s = AuralisSession("http://127.0.0.1:1", run_dir, user="f", scenario="fuzz", tracks={},
                       profile=ClientProfile(flow_control=False))
    s.ws = ScriptedWS(script)
    why = s.pump(lambda: False, deadline=time.time() + 5)
    assert why in ("closed", "deadline", "done", "idle")
    s.close()
    for stream in list_streams(run_dir):
        # every stream that was opened is closed with a summary and readable audio
        assert stream.summary.get("ended")
        audio, _ = stream.audio()
        assert audio.shape[0] == stream.summary["delivered_frames"]
        json.dumps(stream.summary)
