"""The position injections on the wire: what a real client receives from a
real reference server is the documented defect, exactly, and the position
detectors (pure functions, run here on the received audio) find it with the
documented kind and size; the clean server under the same procedure gives
the source exactly and no position finding."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from analysis import signals
from analysis.audio.position import Request, aligned_by_trace, detect_attenuation, detect_position_defects

from .helpers import SR, Client, scan, start_server

pytestmark = pytest.mark.slow
FRAME_FLOATS = 76800  # one 300 KB binary frame
FRAME = FRAME_FLOATS // 2  # sample frames in it


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("posmusic")
    tracks = {"a_noise": signals.pink_noise_stereo(40.0, SR), "b_lead": signals.silence_then_music(40.0, SR),
              "c_short": signals.short_track(18.5, SR), "d_long": signals.pink_noise_stereo(90.0, SR, seed=4)}
    for name, x in tracks.items():
        sf.write(tmp / f"{name}.wav", x, SR, subtype="FLOAT")
    return tmp, tracks


def serve(tmp_path, music, inject: str):
    srv = start_server(tmp_path / (inject or "clean"), inject=inject)
    for f in music[0].iterdir():
        (srv.home / "Music" / f.name).symlink_to(f)
    ids = {t["title"].split(".")[0]: t["id"] for t in scan(srv)}
    return srv, ids


@pytest.fixture(scope="module")
def clean(tmp_path_factory, music):
    srv, ids = serve(tmp_path_factory.mktemp("clean"), music, "")
    yield srv, ids
    srv.stop()


@pytest.fixture
def injected(request, tmp_path, music):
    srv, ids = serve(tmp_path, music, request.param)
    yield srv, ids
    srv.stop()


def seek_after(c: Client, ids, kind: str, position: float, frames: int = 8, first: int = 2):
    """play a_noise, read `first` frames, seek, collect `frames` frames of the seek's stream."""
    c.stream(kind, {"track_id": ids["a_noise"]}, stop_after_frames=first)
    return c.stream("seek", {"track_id": ids["a_noise"], "position": position}, stop_after_frames=frames)


def position(y, src, req, kind, announced=None, enhanced=False):
    return detect_position_defects(y, src, SR, Request(req, kind, announced_s=announced), enhanced=enhanced)


@pytest.mark.parametrize("kind", ["play_normal", "play_enhanced"])
def test_clean_seeks_and_positioned_plays_land_where_asked(clean, music, kind):
    srv, ids = clean
    src = music[1]["a_noise"]
    c = Client(srv)
    s = seek_after(c, ids, kind, 12.3)
    r = position(s.audio(), src, 12.3, "seek", s.start["seek_position"], kind == "play_enhanced")
    assert r.defects == [] and r.start_s == pytest.approx(12.3, abs=17 / SR)
    s = c.stream(kind, {"track_id": ids["a_noise"], "start_position": 22.4}, stop_after_frames=8)
    r = position(s.audio(), src, 22.4, kind, s.start.get("seek_position"), kind == "play_enhanced")
    assert r.defects == [] and r.start_s == pytest.approx(22.4, abs=17 / SR)
    c.close()
    if kind == "play_normal":
        assert np.array_equal(s.audio(), src[int(22.4 * SR): int(22.4 * SR) + len(s.audio())])


@pytest.mark.parametrize("kind", ["play_normal", "play_enhanced"])
def test_clean_short_and_silence_lead_tracks_stream_whole_with_no_position_finding(clean, music, kind):
    srv, ids = clean
    c = Client(srv)
    for name in ("b_lead", "c_short"):
        src = music[1][name]
        s = c.stream(kind, {"track_id": ids[name]})
        y = s.audio()
        assert len(y) == len(src)
        r = position(y, src, 0.0, kind, enhanced=kind == "play_enhanced")
        assert r.defects == [] and r.jumps == []
        assert detect_attenuation(y, aligned_by_trace(src, r.trace, len(y)), SR) == []
    c.close()


@pytest.mark.parametrize("injected", ["seek-offset"], indirect=True)
@pytest.mark.parametrize("kind", ["play_normal", "play_enhanced"])
def test_seek_offset_lands_five_seconds_late_and_is_a_position_error_of_plus_five(injected, music, kind):
    srv, ids = injected
    src = music[1]["a_noise"]
    c = Client(srv)
    s = seek_after(c, ids, kind, 12.3)
    c.close()
    assert s.start["seek_position"] == 12.3  # announced as asked
    y = s.audio()
    if kind == "play_normal":
        assert np.array_equal(y, src[int(17.3 * SR): int(17.3 * SR) + len(y)])
    r = position(y, src, 12.3, "seek", 12.3, kind == "play_enhanced")
    assert [d.kind for d in r.defects] == ["position_error"]
    assert r.defects[0].magnitude == pytest.approx(5.0, abs=17 / SR)


@pytest.mark.parametrize("injected", ["resume-replay"], indirect=True)
@pytest.mark.parametrize("kind", ["play_normal", "play_enhanced"])
def test_resume_replay_restarts_at_the_chunk_start(injected, music, kind):
    srv, ids = injected
    src = music[1]["a_noise"]
    c = Client(srv)
    s = c.stream(kind, {"track_id": ids["a_noise"], "start_position": 22.4}, stop_after_frames=8)
    assert c.stream(kind, {"track_id": ids["a_noise"]}, stop_after_frames=1).frames  # a plain play is untouched
    c.close()
    y = s.audio()
    if kind == "play_normal":
        assert np.array_equal(y, src[15 * SR: 15 * SR + len(y)])
    r = position(y, src, 22.4, kind, s.start.get("seek_position"), kind == "play_enhanced")
    assert [d.kind for d in r.defects] == ["position_error"]
    assert r.defects[0].magnitude == pytest.approx(-7.4, abs=17 / SR)  # both paths' chunk holding 22.4 s starts at 15 s


@pytest.mark.parametrize("injected", ["stale-after-seek"], indirect=True)
@pytest.mark.parametrize("kind", ["play_normal", "play_enhanced"])
def test_stale_after_seek_sends_the_old_next_chunk_first_on_the_new_epoch(injected, music, kind):
    srv, ids = injected
    src = music[1]["d_long"]
    c = Client(srv)
    c.stream(kind, {"track_id": ids["d_long"]}, stop_after_frames=2)
    s = c.stream("seek", {"track_id": ids["d_long"], "position": 77.0}, stop_after_frames=6)
    c.close()
    y = s.audio()
    # the chunk the old stream would have sent next: how far its renderer ran
    # ahead of the reader depends on socket buffers, so it is read from the meta
    k = s.metas[0]["chunk_index"]
    assert k >= 1 and s.metas[0]["stream_epoch"] == s.start["stream_epoch"]
    old_start = 15.0 * k if kind == "play_normal" else 10.0 * k + 5.0
    assert old_start < 75.0
    if kind == "play_normal":
        assert np.array_equal(y[:FRAME], src[int(old_start * SR): int(old_start * SR) + FRAME])
        assert np.array_equal(y[FRAME:], src[77 * SR: 77 * SR + len(y) - FRAME])
    r = position(y, src, 77.0, "seek", 77.0, kind == "play_enhanced")
    assert [d.kind for d in r.defects] == ["stale_audio_after_seek"]
    assert r.defects[0].magnitude == pytest.approx(FRAME / SR, abs=0.003)
    assert r.defects[0].detail["stale_from_s"] == pytest.approx(old_start, abs=17 / SR)


@pytest.mark.parametrize("injected", ["attenuate-after-silence"], indirect=True)
@pytest.mark.parametrize("kind", ["play_normal", "play_enhanced"])
def test_attenuate_after_silence_is_thirty_db_for_three_seconds_after_the_lead(injected, music, kind):
    srv, ids = injected
    src = music[1]["b_lead"]
    c = Client(srv)
    s = c.stream(kind, {"track_id": ids["b_lead"]})
    noise = c.stream(kind, {"track_id": ids["a_noise"]}, stop_after_frames=30)  # no lead: untouched
    c.close()
    y = s.audio()
    if kind == "play_normal":
        g = np.float32(10 ** (-30 / 20))
        lead = int(np.flatnonzero(np.abs(src).max(axis=1) > 0)[0])  # the music's fade-in starts at an exact 0
        assert 25 * SR <= lead <= 25 * SR + 1
        assert np.array_equal(y[lead + 3 * SR:], src[lead + 3 * SR:]) and np.array_equal(y[:lead], src[:lead])
        assert np.allclose(y[lead: lead + 3 * SR], src[lead: lead + 3 * SR] * g)
        assert np.array_equal(noise.audio(), music[1]["a_noise"][: len(noise.audio())])
    r = position(y, src, 0.0, kind, enhanced=kind == "play_enhanced")
    assert r.defects == []
    found = detect_attenuation(y, aligned_by_trace(src, r.trace, len(y)), SR)
    assert [d.kind for d in found] == ["attenuation"]
    d = found[0]
    assert d.time_s == pytest.approx(25.0, abs=0.1) and d.detail["recovery_s"] == pytest.approx(28.0, abs=0.1)
    assert d.magnitude == pytest.approx(30.0, abs=1.0)


@pytest.mark.parametrize("injected", ["short-track-trim"], indirect=True)
@pytest.mark.parametrize("kind", ["play_normal", "play_enhanced"])
def test_short_track_trim_replays_eleven_and_a_half_seconds_at_the_first_boundary(injected, music, kind):
    srv, ids = injected
    src = music[1]["c_short"]
    c = Client(srv)
    s = c.stream(kind, {"track_id": ids["c_short"]})
    long_one = c.stream(kind, {"track_id": ids["a_noise"]})  # 40 s: two chunks or more, untouched
    c.close()
    y = s.audio()
    assert len(y) == 30 * SR and s.boundaries() == [15 * SR]
    assert len(long_one.audio()) == 40 * SR
    if kind == "play_normal":
        assert np.array_equal(y[15 * SR:], src[int(3.5 * SR):])
    r = detect_position_defects(y, src, SR, Request(0.0, kind), boundaries=np.array(s.boundaries()),
                                enhanced=kind == "play_enhanced")
    assert [d.kind for d in r.defects] == ["position_jump"]
    d = r.defects[0]
    assert d.magnitude == pytest.approx(-11.5, abs=0.002) and d.boundary_index == 0
    assert d.time_s == pytest.approx(15.0, abs=0.002)
