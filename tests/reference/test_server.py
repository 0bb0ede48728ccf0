"""The clean reference backend over a real uvicorn server and a real
WebSocket client: REST library, the /ws protocol as Auralis speaks it,
stream geometry read from the metas, bit-exact normal path, continuous
enhanced joins, seek/stop/pause, heartbeat, rate limit, origin policy."""
from __future__ import annotations

import time

import numpy as np
import pytest
import requests
import websocket

from .helpers import SR, Client, scan, start_server, write_tracks

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ref")
    srv = start_server(tmp)
    src = write_tracks(srv.home / "Music")
    (srv.home / "Music" / "notes.txt").write_text("not audio")
    tracks = scan(srv)
    yield srv, src, tracks
    srv.stop()


@pytest.fixture
def client(env):
    c = Client(env[0])
    yield c
    c.close()


def test_health_and_library(env, tmp_path):
    srv, src, tracks = env
    h = requests.get(srv.base + "/api/health", timeout=5).json()
    assert h["status"] == "healthy" and h["injections"] == []
    assert [(t["id"], t["title"]) for t in tracks] == [(1, "a_noise"), (2, "b_sine")]  # sorted path order
    assert tracks[0]["duration"] == 40.0 and tracks[0]["sample_rate"] == SR and tracks[0]["channels"] == 2
    page = requests.get(srv.base + "/api/library/tracks", params={"limit": 1, "offset": 0}, timeout=5).json()
    assert page["total"] == 2 and page["has_more"] and len(page["tracks"]) == 1
    page = requests.get(srv.base + "/api/library/tracks", params={"limit": 1, "offset": 1}, timeout=5).json()
    assert not page["has_more"] and page["tracks"][0]["id"] == 2
    assert (srv.home / ".earshot-reference" / "library.json").exists()
    outside = requests.post(srv.base + "/api/library/scan", json={"directories": [str(tmp_path)]}, timeout=5)
    assert outside.status_code == 403
    missing = requests.post(srv.base + "/api/library/scan",
                            json={"directories": [str(srv.home / "Music" / "nope")]}, timeout=5)
    assert missing.status_code == 400
    again = requests.post(srv.base + "/api/library/scan", json={"directories": [str(srv.home / "Music")]},
                          timeout=30).json()
    assert again["files_found"] == 2 and again["files_added"] == 0  # a rescan keeps ids


def test_connect_pushes_settings_and_player_state(client):
    kinds = [m["type"] for m in client.hello]
    assert kinds == ["enhancement_settings_changed", "player_state"]
    assert client.hello[0]["data"] == {"enabled": True, "preset": "adaptive", "intensity": 1.0}
    assert client.hello[1]["data"]["state"] == "stopped"


def test_normal_stream_is_bit_exact_with_auralis_geometry(env, client):
    _, src, _ = env
    s = client.stream("play_normal", {"track_id": 1})
    assert s.start["stream_type"] == "normal" and s.start["total_chunks"] == 3 and "is_seek" not in s.start
    assert s.start["sample_rate"] == SR and s.start["channels"] == 2 and s.start["chunk_duration"] == 15.0
    assert [b / SR for b in s.boundaries()] == [15.0, 30.0]
    assert [m["seq"] for m in s.metas] == list(range(len(s.metas)))
    assert all(m["sample_count"] <= 76800 for m in s.metas)
    assert all(m["frame_count"] == sum(1 for n in s.metas if n["chunk_index"] == m["chunk_index"]) for m in s.metas)
    assert np.array_equal(s.audio(), src["a_noise"])
    assert s.end["reason"] == "completed" and s.end["total_samples"] == 40 * SR
    assert s.end["stream_epoch"] == s.start["stream_epoch"]


def test_enhanced_geometry_and_continuous_joins(env, client):
    _, src, _ = env
    s = client.stream("play_enhanced", {"track_id": 2, "preset": "adaptive", "intensity": 1.0})
    assert s.start["stream_type"] == "enhanced" and s.start["total_chunks"] == 4
    assert [b / SR for b in s.boundaries()] == [15.0, 25.0, 35.0]
    assert s.chunk_frames() == {0: 15 * SR, 1: 10 * SR, 2: 10 * SR, 3: 5 * SR}  # the last chunk is short
    y = s.audio()
    assert len(y) == 40 * SR and s.end["total_samples"] == 40 * SR
    assert not np.array_equal(y, src["b_sine"])  # it is mastered, not passed through
    d2 = np.abs(np.diff(y[:, 0].astype(np.float64), 2))
    jump = np.abs(np.diff(y[:, 0].astype(np.float64)))[:len(d2)]
    near = np.zeros(len(d2), bool)
    for b in s.boundaries():
        near[b - 3:b + 2] = True
    assert d2[near].max() <= d2[~near].max()
    assert jump[near].max() <= jump[~near].max()


def test_every_play_sends_its_client_a_recommendation_between_pairs(env):
    # to the client that played only: Auralis's broadcast to every client is
    # the shared-state injection (isolation check)
    srv = env[0]
    listener, player = Client(srv), Client(srv)
    try:
        listener.stream("play_enhanced", {"track_id": 1}, stop_after_frames=1)
        player.send("play_normal", {"track_id": 2})
        s = listener.stream("play_enhanced", {"track_id": 1})  # a meta/frame pair is never split
        recs = [m["data"] for m in s.other if m["type"] == "mastering_recommendation"]
        assert recs and {r["track_id"] for r in recs} == {1}
        assert {"confidence_score", "predicted_loudness_change", "is_hybrid"} <= set(recs[0])
        assert player.until("mastering_recommendation")["data"]["track_id"] == 2
    finally:
        listener.close()
        player.close()


def test_seek_starts_a_new_epoch_where_auralis_does(env, client):
    _, src, _ = env
    first = client.stream("play_normal", {"track_id": 1}, stop_after_frames=2)
    s = client.stream("seek", {"track_id": 1, "position": 17.3})
    assert s.start["stream_epoch"] > first.start["stream_epoch"]
    assert s.start["is_seek"] and s.start["start_chunk"] == 1 and s.start["seek_position"] == 17.3
    assert s.start["seek_offset"] == pytest.approx(2.3)
    assert s.metas[0]["seq"] == 0 and s.metas[0]["chunk_index"] == 1
    assert any(m.get("type") == "seek_started" for m in s.other)
    assert np.array_equal(s.audio(), src["a_noise"][int(17.3 * SR):])  # the server trims to the position
    assert s.end["total_samples"] == 40 * SR - int(17.3 * SR)
    e = client.stream("play_enhanced", {"track_id": 2, "start_position": 24.8})
    assert e.start["is_seek"] and e.start["start_chunk"] == 2 and e.start["seek_position"] == 25.0  # sliver rule


def test_stop_sends_no_stream_end_and_pause_holds_between_chunks(env, client):
    client.stream("play_normal", {"track_id": 1}, stop_after_frames=1)
    client.send("stop")
    msgs = []
    for _ in range(100):
        op, m = client.recv()
        if op == websocket.ABNF.OPCODE_TEXT:
            msgs.append(m["type"])
            if m["type"] == "playback_stopped":
                break
    assert "playback_stopped" in msgs and "audio_stream_end" not in msgs

    client.send("pause")  # before any stream: harmless, each stream starts with open gates
    # the play's mastering_recommendation may arrive first on a loaded machine:
    # the only messages before the answer are broadcasts
    skipped = []
    while (m := client.recv_json())["type"] != "playback_paused":
        skipped.append(m["type"])
    assert set(skipped) <= {"mastering_recommendation", "player_state"}, skipped
    # the enhanced path renders each chunk (~0.1 s), so the pause lands well
    # before the end even when loopback buffers swallow whole chunks
    client.stream("play_enhanced", {"track_id": 1}, stop_after_frames=1)
    client.send("pause")
    assert held_at_chunk_end(client)
    client.send("resume")
    end = client.until("audio_stream_end")["data"]
    assert end["reason"] == "completed" and end["total_samples"] == 40 * SR


def held_at_chunk_end(client: Client, quiet: float = 1.0) -> bool:
    """Read until `quiet` seconds pass with nothing: the stream must have
    stopped after the last frame of a chunk, without ending."""
    client.ws.settimeout(quiet)
    last = None
    try:
        for _ in range(2000):
            op, m = client.recv()
            if op == websocket.ABNF.OPCODE_TEXT:
                assert m["type"] != "audio_stream_end", "the paused stream ran to its end"
                if m["type"] == "audio_chunk_meta":
                    last = m["data"]
    except websocket.WebSocketTimeoutException:
        pass
    finally:
        client.ws.settimeout(20)
    return last is None or last["frame_index"] == last["frame_count"] - 1


def test_buffer_full_holds_and_buffer_ready_resumes(client):
    client.stream("play_enhanced", {"track_id": 1}, stop_after_frames=1)
    client.send("buffer_full")
    assert held_at_chunk_end(client)
    client.send("buffer_ready")
    assert client.until("audio_stream_end")["data"]["total_samples"] == 40 * SR


def test_ping_pong_errors_and_rate_limit(client):
    for _ in range(15):  # exempt from the rate limit
        client.send("ping")
    assert [client.recv_json()["type"] for _ in range(15)] == ["pong"] * 15
    for _ in range(14):
        client.send("buffer_ready")  # silent when allowed
    errs = [client.recv_json() for _ in range(4)]
    assert [e["error"] for e in errs] == ["rate_limit_exceeded"] * 4 and all(e["type"] == "error" for e in errs)
    time.sleep(1.1)
    client.ws.send("{not json")
    assert client.recv_json()["error"] == "invalid_json"
    client.send("play_normal", {"track_id": "x"})
    assert client.recv_json()["error"] == "invalid_track_id"
    client.send("dance")
    assert client.recv_json()["error"] == "unknown_message_type"
    client.send("play_normal", {"track_id": 99})
    err = client.recv_json()
    assert err["type"] == "audio_stream_error" and err["data"]["error"] == "Track not found"
    assert err["data"]["code"] == "STREAMING_ERROR"


def test_origin_policy(env):
    srv = env[0]
    for origin in ("http://evil.example", "http://localhost:3000"):
        with pytest.raises(websocket.WebSocketBadStatusException) as e:
            websocket.create_connection(srv.ws_url, origin=origin, timeout=5)
        assert e.value.status_code == 403  # closed (1008) before accept: the handshake is refused
    for origin in ("http://localhost:8765", f"http://127.0.0.1:{srv.port}"):
        ok = Client(srv, origin=origin)
        assert ok.hello[0]["type"] == "enhancement_settings_changed"
        ok.close()


def close_code(c: Client, limit: int = 50) -> int | None:
    for _ in range(limit):
        op, frame = c.ws.recv_data_frame(control_frame=True)
        if op == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(frame.data[:2], "big")
    return None


def test_heartbeat_closes_silent_clients(tmp_path):
    srv = start_server(tmp_path, env={"EARSHOT_REF_PING_INTERVAL": "0.5", "EARSHOT_REF_PONG_TIMEOUT": "0.5"})
    try:
        polite, silent = Client(srv, timeout=10), Client(srv, timeout=10)
        t0 = time.monotonic()
        pings = 0
        while time.monotonic() - t0 < 2.0:  # answers every ping for 4 intervals and stays open
            if polite.recv_json()["type"] == "ping":
                polite.send("pong")
                pings += 1
        assert pings >= 3
        polite.send("ping")
        assert polite.until("pong")["type"] == "pong"
        assert close_code(silent) == 1001  # long closed by now: its first ping went unanswered
        polite.close()
    finally:
        srv.stop()


def test_busy_beyond_max_streams(tmp_path):
    srv = start_server(tmp_path, env={"EARSHOT_REF_MAX_STREAMS": "1", "EARSHOT_REF_ACQUIRE_TIMEOUT": "0.3"})
    try:
        write_tracks(srv.home / "Music", seconds=60)  # 21 MB of PCM: more than loopback buffers hold
        scan(srv)
        holder = Client(srv, timeout=10)
        held = holder.stream("play_normal", {"track_id": 1}, stop_after_frames=1)
        assert held.start is not None  # and it reads no more: backpressure keeps the only slot busy
        other = Client(srv, timeout=10)
        s = other.stream("play_normal", {"track_id": 1})
        assert s.start is None
        assert [m["data"]["error"] for m in s.other if m["type"] == "audio_stream_error"] == \
            ["Server busy - too many active streams"]
        holder.close()  # the slot comes back when its client leaves
        deadline = time.monotonic() + 10
        while requests.get(srv.base + "/api/health", timeout=5).json()["active_streams"] and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        assert other.stream("play_normal", {"track_id": 1}).end["reason"] == "completed"
        other.close()
    finally:
        srv.stop()
