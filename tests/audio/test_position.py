"""Position truth, known answers on synthetic captures: a stream that starts
off its request, jumps inside, plays stale audio before a seek's position,
is announced wrongly or is attenuated is found with the right kind, place
and size; clean seeks of every test track, bit-exact and mastered, give
nothing."""
from __future__ import annotations

import numpy as np
import pytest

from analysis import signals
from analysis.audio.position import (Request, aligned_by_trace, detect_attenuation, detect_position_defects,
                                     trace_positions)

from .synth import SR, per_chunk_master

FRAME = 1.0 / SR
_cache: dict = {}


def track(name: str) -> np.ndarray:
    if name not in _cache:
        gen, dur, _ = signals.TEST_TRACKS[name]
        _cache[name] = gen(duration_s=min(dur, 60.0), sr=SR)
    return _cache[name]


def cut(src: np.ndarray, a_s: float, b_s: float) -> np.ndarray:
    return src[int(round(a_s * SR)): int(round(b_s * SR))]


def kinds(defects) -> list[str]:
    return sorted(d.kind for d in defects)


def mastered(x: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    b = np.arange(int(4.3 * SR), len(x), int(10 * SR))
    return per_chunk_master(x, b, rng)


# (track, requested position): mid-chunk seeks, the start, inside the silent lead, the short track's tail
CLEAN = [("timecode", 0.0), ("timecode", 37.31), ("pink", 12.5), ("sweep", 21.07), ("sine", 33.3),
         ("silence-lead", 0.0), ("silence-lead", 18.2), ("silence-lead", 31.0), ("short", 0.0), ("short", 9.4)]


@pytest.mark.parametrize("enhanced", [False, True], ids=["normal", "enhanced"])
@pytest.mark.parametrize("name,pos", CLEAN)
def test_clean_seeks_of_every_track_give_nothing(name, pos, enhanced):
    src = track(name)
    x = cut(src, pos, min(len(src) / SR, pos + 14.0))
    if enhanced:
        x = mastered(x, seed=int(pos * 10))
    r = detect_position_defects(x, src, SR, Request(pos, "seek", announced_s=pos), enhanced=enhanced)
    assert r.defects == []
    if name != "sine" and not (name == "silence-lead" and pos + 14 < 25):
        assert r.start_s == pytest.approx(pos, abs=17 * FRAME)  # the start was measured, not guessed
    assert detect_attenuation(x, aligned_by_trace(src, r.trace, len(x)), SR) == []


@pytest.mark.parametrize("enhanced", [False, True], ids=["normal", "enhanced"])
@pytest.mark.parametrize("name,asked,actual", [("timecode", 20.0, 25.0), ("pink", 37.3, 30.0),
                                               ("sweep", 10.0, 15.0), ("short", 12.0, 0.0)])
def test_a_start_off_the_request_is_a_position_error_of_that_size(name, asked, actual, enhanced):
    src = track(name)
    x = cut(src, actual, min(len(src) / SR, actual + 8.0))
    if enhanced:
        x = mastered(x, seed=3)
    r = detect_position_defects(x, src, SR, Request(asked, "play_normal", announced_s=asked), enhanced=enhanced)
    assert kinds(r.defects) == ["position_error"]
    d = r.defects[0]
    assert d.magnitude == pytest.approx(actual - asked, abs=17 * FRAME)
    assert d.time_s == 0.0 and d.detail["requested_s"] == asked


def test_a_one_frame_rounding_is_no_error_but_two_frames_are():
    src = track("timecode")
    pos = 20.0 + 0.4 / SR  # between two frames: the server may floor or round
    assert detect_position_defects(cut(src, 20.0 + 1 / SR, 28), src, SR, Request(pos, "seek")).defects == []
    r = detect_position_defects(cut(src, 20.0 + 3 / SR, 28), src, SR, Request(20.0, "seek"))
    assert kinds(r.defects) == ["position_error"] and r.defects[0].magnitude == pytest.approx(3 / SR, abs=0.3 / SR)


def test_an_announced_advance_to_the_next_chunk_is_no_error_but_an_unannounced_one_is():
    src = track("pink")
    x = cut(src, 25.0, 33.0)
    assert detect_position_defects(x, src, SR, Request(24.7, "seek", announced_s=25.0)).defects == []
    r = detect_position_defects(x, src, SR, Request(24.7, "seek", announced_s=24.7))
    assert kinds(r.defects) == ["position_error"] and r.defects[0].magnitude == pytest.approx(0.3, abs=2 * FRAME)


def test_the_request_in_flight_nearest_the_audio_is_the_one_answered():
    src = track("pink")
    x = cut(src, 12.0, 16.0)
    r = detect_position_defects(x, src, SR, Request(40.0, "seek", candidates=[12.0]))
    assert r.defects == [] and r.requested_s == 12.0


def test_the_request_the_announcement_echoes_is_the_one_answered_even_when_another_is_nearer_the_audio():
    src = track("pink")
    x = cut(src, 44.32, 48.0)  # asked 39.32 (announced), landed 5 s late; 42.96 was the next seek, in flight
    r = detect_position_defects(x, src, SR, Request(42.96, "seek", announced_s=39.32, candidates=[39.32]))
    assert [d.kind for d in r.defects] == ["position_error"] and r.requested_s == 39.32
    assert r.defects[0].magnitude == pytest.approx(5.0, abs=2 * FRAME)


@pytest.mark.parametrize("enhanced", [False, True], ids=["normal", "enhanced"])
@pytest.mark.parametrize("name,a,b,c,d", [("timecode", 10.0, 14.3, 20.0, 26.0),  # forward 5.7 s mid-chunk
                                          ("pink", 30.0, 36.1, 21.0, 27.0),  # backward 15.1 s: a replay
                                          ("sweep", 5.0, 9.0, 9.5, 16.0)])  # forward 0.5 s
def test_a_jump_inside_a_stream_is_found_where_and_how_large_it_is(name, a, b, c, d, enhanced):
    src = track(name)
    x = np.concatenate([cut(src, a, b), cut(src, c, d)])
    if enhanced:
        x = mastered(x, seed=5)
    r = detect_position_defects(x, src, SR, Request(a, "play_normal"), enhanced=enhanced)
    assert kinds(r.defects) == ["position_jump"]
    j = r.defects[0]
    assert j.magnitude == pytest.approx(c - b, abs=0.002)
    assert j.time_s == pytest.approx(b - a, abs=0.002)
    assert j.boundary_index is None


def test_a_jump_at_a_boundary_within_the_continuity_search_is_left_to_continuity_and_a_larger_one_is_not():
    src = track("timecode")
    x = np.concatenate([cut(src, 0, 15), cut(src, 10, 20)])  # 5 s replayed at the boundary
    r = detect_position_defects(x, src, SR, Request(0.0, "play_normal"), boundaries=np.array([15 * SR]))
    assert r.defects == [] and len(r.jumps) == 1 and r.jumps[0]["size_s"] == pytest.approx(-5.0, abs=0.002)
    x = np.concatenate([cut(src, 0, 15), cut(src, 3.5, 18.5)])  # 11.5 s replayed at the boundary
    r = detect_position_defects(x, src, SR, Request(0.0, "play_normal"), boundaries=np.array([15 * SR]))
    assert kinds(r.defects) == ["position_jump"]
    assert r.defects[0].magnitude == pytest.approx(-11.5, abs=0.002) and r.defects[0].boundary_index == 0


@pytest.mark.parametrize("enhanced", [False, True], ids=["normal", "enhanced"])
def test_stale_audio_before_the_seek_position_is_one_stale_finding(enhanced):
    src = track("pink")
    stale = cut(src, 45.0, 45.0 + 0.87)  # the old stream's next chunk, its first frame
    x = np.concatenate([stale, cut(src, 12.0, 18.0)])
    if enhanced:
        x = mastered(x, seed=9)
    r = detect_position_defects(x, src, SR, Request(12.0, "seek", announced_s=12.0), enhanced=enhanced)
    assert kinds(r.defects) == ["stale_audio_after_seek"]
    d = r.defects[0]
    assert d.magnitude == pytest.approx(0.87, abs=0.002)
    assert d.detail["stale_from_s"] == pytest.approx(45.0, abs=0.001)


def test_a_wrong_announcement_of_a_right_start_is_an_announcement_mismatch():
    src = track("sweep")
    r = detect_position_defects(cut(src, 30, 36), src, SR, Request(30.0, "seek", announced_s=25.0))
    assert kinds(r.defects) == ["announced_position_mismatch"]
    assert r.defects[0].magnitude == pytest.approx(-5.0, abs=2 * FRAME)


def test_periodic_content_is_never_placed_away_from_the_request():
    src = track("sine")
    r = detect_position_defects(cut(src, 25.0, 31.0), src, SR, Request(20.0, "seek"))
    assert r.defects == []  # a sine cannot tell 20 s from 25 s: no claim either way


@pytest.mark.parametrize("enhanced", [False, True], ids=["normal", "enhanced"])
@pytest.mark.parametrize("name,onset,length,db", [("silence-lead", 25.0, 4.0, 30.0), ("pink", 7.3, 1.2, 22.0),
                                                  ("timecode", 3.0, 6.5, 40.0)])
def test_attenuation_is_found_with_onset_recovery_and_depth(name, onset, length, db, enhanced):
    src = track(name)
    x = cut(src, 0.0, 40.0).copy()
    if enhanced:
        x = mastered(x, seed=1)
    a, b = int(onset * SR), int((onset + length) * SR)
    x[a:b] *= np.float32(10 ** (-db / 20))
    r = detect_position_defects(x, src, SR, Request(0.0, "play_enhanced"), enhanced=enhanced)
    assert r.defects == []
    found = detect_attenuation(x, aligned_by_trace(src, r.trace, len(x)), SR)
    assert [d.kind for d in found] == ["attenuation"]
    d = found[0]
    assert d.time_s == pytest.approx(onset, abs=0.1)
    assert d.detail["recovery_s"] == pytest.approx(onset + length, abs=0.1)
    assert d.magnitude == pytest.approx(db, abs=2.5 if enhanced else 0.5)


def test_a_short_dip_or_a_mild_one_is_no_attenuation():
    src = track("pink")
    x = cut(src, 0, 20).copy()
    x[int(5 * SR): int(5.7 * SR)] *= np.float32(10 ** (-30 / 20))  # 0.7 s
    x[int(10 * SR): int(14 * SR)] *= np.float32(10 ** (-12 / 20))  # 12 dB
    tr = trace_positions(x, src, SR)
    assert detect_attenuation(x, aligned_by_trace(src, tr, len(x)), SR) == []
