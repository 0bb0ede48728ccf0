"""Position truth end to end: the project's own protocol client drives a real
reference server (real uvicorn, real WebSockets) through seeks, positioned
plays and whole tracks, recording a run directory; the audio analysis family
then reports each position injection as the right kind with the right size,
attaches a position trace plot, and the clean server under the same
procedure gives none of these findings."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from analysis.audio.run import analyse_run
from scenarios.protocol_client import AuralisSession
from scenarios.tracks import save_manifest, scan_and_match, write_tracks
from tests.reference.helpers import start_server

pytestmark = pytest.mark.slow
POSITION_KINDS = {"position_error", "position_jump", "stale_audio_after_seek", "announced_position_mismatch",
                  "attenuation"}


def _play(s: AuralisSession, track: dict, *, enhanced: bool, start_position: float | None = None,
          frames: int | None = None) -> None:
    s.play(track["track_id"], enhanced=enhanced, start_position=start_position)
    _wait(s, frames)


def _seek(s: AuralisSession, track: dict, position: float, frames: int) -> None:
    s.seek(track["track_id"], position)
    _wait(s, frames)


def _wait(s: AuralisSession, frames: int | None) -> None:
    """Until the stream the last command started has `frames` binary frames (or has ended)."""
    req_t = s.play_sent_t
    s.pump(lambda: s.stream_done() or (frames is not None and bool(
        s.current and s.current.recorder.info.get("request_t") == req_t
        and s.current.recorder.binary_frames >= frames)), deadline=time.time() + 90)


def record(tmp: Path, inject: str) -> Path:
    """One run directory: a seek on each path, positioned plays on each path,
    the silence-lead and short tracks to their end."""
    run_dir = tmp / "run"
    srv = start_server(run_dir, inject=inject)  # its HOME inside the run directory, as a run's target has
    try:
        tracks = write_tracks(["timecode", "pink"], srv.home, run_dir, seconds=40.0)
        tracks += write_tracks(["silence-lead"], srv.home, run_dir, seconds=35.0)
        tracks += write_tracks(["short"], srv.home, run_dir)
        scan_and_match(srv.base, tracks, srv.home / "Music")
        save_manifest(tracks, run_dir)
        by = {t["name"]: t for t in tracks}
        s = AuralisSession(srv.base, run_dir, user="pos", scenario="position-truth",
                           tracks={t["track_id"]: t for t in tracks}).connect()
        _play(s, by["timecode"], enhanced=False, frames=2)
        _seek(s, by["timecode"], 21.3, frames=6)  # normal path seek
        _play(s, by["pink"], enhanced=True, frames=2)
        _seek(s, by["pink"], 31.0, frames=5)  # enhanced path seek (the reference keeps the path)
        _play(s, by["timecode"], enhanced=False, start_position=22.4, frames=6)  # a resume, normal
        _play(s, by["pink"], enhanced=True, start_position=27.2, frames=5)  # a resume, enhanced
        _play(s, by["silence-lead"], enhanced=False)  # to the end
        _play(s, by["short"], enhanced=True)  # to the end
        s.close()
    finally:
        srv.stop()
    return run_dir


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    run_dir = record(tmp_path_factory.mktemp("pos-clean"), "")
    return run_dir, *analyse_run(run_dir)


@pytest.fixture(scope="module")
def seeks(tmp_path_factory):
    run_dir = record(tmp_path_factory.mktemp("pos-seeks"), "seek-offset,resume-replay")
    return run_dir, *analyse_run(run_dir)


@pytest.fixture(scope="module")
def content(tmp_path_factory):
    run_dir = record(tmp_path_factory.mktemp("pos-content"),
                     "stale-after-seek,attenuate-after-silence,short-track-trim")
    return run_dir, *analyse_run(run_dir)


def by_kind(findings, kind, stype):
    return [f for f in findings if f.kind == kind and f.title.endswith(f"({stype} path)")]


def test_the_clean_reference_gives_no_position_finding_and_places_every_stream(clean):
    _, findings, metrics = clean
    assert [f.kind for f in findings if f.kind in POSITION_KINDS] == []
    assert [f.kind for f in findings] == []  # nothing else either: the procedure itself is clean
    assert metrics["position_streams_placed"] == 8 and metrics["position_error_max_s"] == 0.0
    assert metrics["position_jumps"] == 0 and metrics["attenuation_max_db"] == 0.0


def test_seek_offset_is_a_high_position_error_of_five_seconds_on_each_path_with_its_trace(seeks):
    run_dir, findings, metrics = seeks
    for stype in ("normal", "enhanced"):
        fs = by_kind(findings, "position_error", stype)
        assert len(fs) == 1, [f.title for f in findings]
        f = fs[0]
        assert f.severity == "HIGH" and f.dimension == "Seek & Buffering"
        seek_lines = [e for e in f.evidence if "seek asked" in e]
        assert len(seek_lines) == 1 and "(+5.000 s)" in seek_lines[0], f.evidence
        assert f.artifacts and all((run_dir / a).is_file() for a in f.artifacts)
    assert metrics["position_error_max_s"] == pytest.approx(7.4, abs=0.001)


def test_resume_replay_is_a_position_error_back_to_the_chunk_start(seeks):
    _, findings, _ = seeks
    normal = by_kind(findings, "position_error", "normal")[0]
    enhanced = by_kind(findings, "position_error", "enhanced")[0]
    # the normal chunk holding 22.4 s starts at 15 s; the enhanced one holding 27.2 s at 25 s
    assert any("play_normal asked 22.400 s, audio starts at 15.000 s of the source (-7.400 s)" in e
               for e in normal.evidence), normal.evidence
    assert any("play_enhanced asked 27.200 s, audio starts at 25.000 s of the source (-2.200 s)" in e
               for e in enhanced.evidence), enhanced.evidence
    assert not [f for f in findings if f.kind in {"position_jump", "stale_audio_after_seek", "attenuation"}]


def test_stale_after_seek_attenuation_and_short_track_trim_each_found_once(content):
    run_dir, findings, metrics = content
    # both seeks interrupted a stream of their track: each path's seek carries one stale frame
    for stype in ("normal", "enhanced"):
        stale = by_kind(findings, "stale_audio_after_seek", stype)
        assert len(stale) == 1 and stale[0].severity == "HIGH" and stale[0].dimension == "Seek & Buffering"
        assert stale[0].figures["worst_magnitude"] == pytest.approx(38400 / 44100, abs=0.003)
        assert stale[0].figures["affected_streams"] == 1
    att = [f for f in findings if f.kind == "attenuation"]
    assert len(att) == 1 and att[0].dimension == "Chunked Processing" and att[0].severity in ("HIGH", "CRITICAL")
    assert att[0].location.time_s == pytest.approx(25.0, abs=0.1)
    assert att[0].figures["worst_magnitude"] == pytest.approx(30.0, abs=1.0)
    assert any("recovers at 28.0" in e for e in att[0].evidence), att[0].evidence
    jumps = [f for f in findings if f.kind == "position_jump"]
    assert len(jumps) == 1 and jumps[0].title.endswith("(enhanced path)") and jumps[0].severity == "HIGH"
    assert jumps[0].figures["worst_magnitude"] == pytest.approx(-11.5, abs=0.002)
    assert jumps[0].location.time_s == pytest.approx(15.0, abs=0.002)
    # the replayed 11.5 s explain the stream's extra length: no second finding for it
    assert not [f for f in findings if f.kind == "length_mismatch"]
    assert not [f for f in findings if f.kind == "position_error"]
    assert metrics["stale_audio_streams"] == 2 and metrics["position_jumps"] == 1
