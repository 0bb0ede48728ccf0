from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis import signals
from analysis.audio.__main__ import main as cli_main
from analysis.audio.geometry import geometry_from_events
from analysis.audio.run import analyse_run

from .synth import SR, write_float_wav, write_stream

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", list(signals.TEST_TRACKS))
def test_tracks_deterministic_and_in_level(name):
    gen, dur, desc = signals.TEST_TRACKS[name]
    a, b = gen(duration_s=min(dur, 30.0), sr=SR), gen(duration_s=min(dur, 30.0), sr=SR)
    assert a.dtype == np.float32 and a.shape == (int(round(min(dur, 30.0) * SR)), 2)
    assert np.array_equal(a, b)
    assert np.max(np.abs(a)) <= 10 ** (-12 / 20) + 1e-6
    assert desc


def test_track_set():
    assert set(signals.TEST_TRACKS) == {"sine", "pink", "sweep", "timecode", "silence-lead", "short"}
    assert signals.TEST_TRACKS["short"][1] == 18.5
    x = signals.silence_then_music(40.0)
    assert not np.any(x[: 25 * SR]) and np.all(np.abs(x[25 * SR + SR // 10:]).max() > 0.1)


def test_pink_channels_uncorrelated():
    x = signals.pink_noise_stereo(10.0)
    assert abs(np.corrcoef(x[:, 0], x[:, 1])[0, 1]) < 0.05


def test_time_code_decodes_and_locates():
    x = signals.time_coded(60.0)
    slots = signals.decode_time_code(x, SR)
    assert np.array_equal(slots, np.arange(len(slots)))
    off = int(23.4567 * SR)
    assert abs(signals.locate_time_code(x[off:], SR) - off) <= 0.05 * SR
    assert signals.locate_time_code(signals.pink_noise_stereo(5.0), SR) is None


def _events(chunks, epoch=1, with_offsets=True):
    ev, off, seq = [], 0, 0
    for ci, n in chunks:
        ev.append({"kind": "audio_chunk_meta", "msg": {"data": {"seq": seq, "chunk_index": ci, "stream_epoch": epoch,
                                                                "frame_count": n, "sample_count": 2 * n}}})
        b = {"kind": "binary", "bytes": 8 * n, "frames": n}
        if with_offsets:
            b["frame_offset"] = off
        ev.append(b)
        off += n
        seq += 1
    return ev


@pytest.mark.parametrize("with_offsets", [True, False])
def test_geometry_from_chunk_index_changes(with_offsets):
    # enhanced-like: chunk 0 = 15 s in two frames, then 10 s chunks, last short
    chunks = [(0, 400000), (0, 261500), (1, 441000), (2, 300000), (2, 141000), (3, 123)]
    g = geometry_from_events(_events(chunks, with_offsets=with_offsets))
    assert g.frames() == [661500, 1102500, 1543500]
    assert g.total_frames == 1543623
    assert [b.chunk_after for b in g.boundaries] == [1, 2, 3]


def test_geometry_epoch_change_is_a_boundary():
    ev = _events([(0, 1000), (1, 1000)], epoch=1)
    ev2 = _events([(3, 500)], epoch=2)
    ev2[1]["frame_offset"] = 2000
    g = geometry_from_events(ev + ev2)
    assert g.frames() == [1000, 2000] and g.boundaries[1].epoch_change


def test_cli_json_and_exit_codes(tmp_path):
    src = signals.sine(30.0)
    cap = src.copy()
    cap[20 * SR:] *= np.float32(10 ** (1 / 20))
    write_float_wav(tmp_path / "cap.wav", cap)
    write_float_wav(tmp_path / "src.wav", src)
    out = tmp_path / "o.json"
    assert cli_main([str(tmp_path / "cap.wav"), "--boundaries", "10,20", "--source", str(tmp_path / "src.wav"),
                     "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert set(doc) == {"findings", "boundaries_s", "duration_s"}
    assert doc["boundaries_s"] == [10.0, 20.0] and doc["duration_s"] == 30.0
    kinds = {(f["kind"], f["boundary_index"]) for f in doc["findings"]}
    assert ("level_step", 1) in kinds and all(bi == 1 for _, bi in kinds)
    for f in doc["findings"]:
        assert set(f) == {"kind", "time_s", "boundary_index", "magnitude", "unit", "score"}
    (tmp_path / "bad.wav").write_bytes(b"not a wav")
    (tmp_path / "bad.jsonl").write_text("{nope\n{}\n")
    for args in ([str(tmp_path / "cap.wav"), "--boundaries", "10,40"],
                 [str(tmp_path / "missing.wav"), "--boundaries", "10"],
                 [str(tmp_path / "bad.wav"), "--boundaries", "10"],
                 [str(tmp_path / "cap.wav"), "--meta", str(tmp_path / "bad.jsonl")]):
        r = subprocess.run([sys.executable, "-m", "analysis.audio", *args], cwd=ROOT, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 2, args
        assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1


def _run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    src = signals.sine(40.0)
    write_float_wav(run / "tracks" / "sine.wav", src)
    (run / "tracks.json").write_text(json.dumps([{"name": "sine", "file": "tracks/sine.wav", "track_id": 7,
                                                   "duration_s": 40.0, "sample_rate": SR, "channels": 2}]))
    geo = [(0, 15 * SR), (1, 10 * SR), (2, 10 * SR), (3, 5 * SR)]
    # normal: bit-exact, complete -> clean
    write_stream(run, "n1", src, geo, track_id=7, stream_type="normal")
    # enhanced: butt-joined per-chunk gain -> level steps + clicks at 15, 25 s
    enh = src.copy()
    for k, (lo, g) in enumerate([(15 * SR, 1.0), (25 * SR, -1.2)]):
        enh[lo:] *= np.float32(10 ** (g / 20))
    write_stream(run, "e1", enh, geo, track_id=7, stream_type="enhanced")
    # enhanced, pass-through, superseded by a seek after 20 s: no length finding
    write_stream(run, "e2", src, [(0, 15 * SR), (1, 5 * SR)], track_id=7, stream_type="enhanced", ended="superseded")
    # normal seek stream from 12.5 s that ended completed but one sample short
    seek = src[int(12.5 * SR):]
    write_stream(run, "n2", seek, [(0, int(2.5 * SR)), (1, 15 * SR), (2, 10 * SR - 1)], track_id=7,
                 stream_type="normal", start_position=12.5)
    return run


def test_analyse_run(tmp_path):
    run = _run_dir(tmp_path)
    findings, metrics = analyse_run(run)
    by = {(f.kind, f.key.split("|")[1]): f for f in findings}
    assert metrics["audio_streams_analysed"] == 4
    assert ("passthrough", "enhanced") in by and by[("passthrough", "enhanced")].dimension == "Processing Engine"
    ls = by[("level_step", "enhanced")]
    assert ls.severity == "MEDIUM" and ls.dimension == "Chunked Processing"
    assert ls.figures["affected_boundaries"] == 2 and abs(ls.figures["worst_magnitude"]) > 1.1
    assert ls.location.stream == "e1" and ls.location.time_s in (15.0, 25.0)
    assert ls.artifacts and (run / ls.artifacts[0]).exists()
    lm = by[("length_mismatch", "normal")]
    assert lm.location.stream == "n2" and lm.figures["worst_magnitude"] == -1
    assert not any(f.location.stream == "e2" and f.kind == "length_mismatch" for f in findings)
    assert not any(f.location.stream == "n1" for f in findings)
    assert ("click", "enhanced") in by


def test_a_stream_type_with_no_audio_is_counted_as_unanalysed(tmp_path):
    run = _run_dir(tmp_path)
    _, metrics = analyse_run(run, plots=False)
    assert metrics["audio_streams_analysed_normal"] == 2 and metrics["audio_streams_analysed_enhanced"] == 2
    assert metrics["audio_stream_types_unanalysed"] == 0
    # the enhanced streams now errored before any audio (Auralis's chunk-0 timeout):
    # the normal path is still checked, the enhanced one is not
    src = signals.sine(40.0)
    for sid in ("e1", "e2"):
        shutil.rmtree(run / "streams" / sid)
        write_stream(run, sid, src, [], track_id=7, stream_type="enhanced", ended="errored")
    _, metrics = analyse_run(run, plots=False)
    assert metrics["audio_streams_analysed_enhanced"] == 0 and metrics["audio_streams_analysed_normal"] == 2
    assert metrics["audio_stream_types_unanalysed"] == 1
