"""--tracks and --track-file: chosen test tracks, a user's own audio copied
for the target and decoded for the analysis, and a clear exit 2 for what
cannot be decoded."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from scenarios import tracks as tracks_mod

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "instrument.run", "--quiet", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_a_file_soundfile_cannot_decode_is_bad_input_exit_2_one_line(tmp_path):
    bad = tmp_path / "notes.mp3"
    bad.write_bytes(b"ID3 this is not audio at all" * 10)
    out = tmp_path / "run"
    r = _cli("--scenario", "smoke", "--track-file", str(bad), "--out", str(out))
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --track-file notes.mp3: cannot decode it"), r.stderr
    assert not out.exists()  # nothing was started


@pytest.mark.parametrize("args, msg", [
    (["--tracks", "sine,nope"], "error: unknown test track 'nope'"),
    (["--tracks", ","], "error: --tracks names no track"),
    (["--track-file", "/nonexistent/x.wav"], "error: --track-file /nonexistent/x.wav: no such file"),
])
def test_bad_track_choices_exit_2(tmp_path, args, msg):
    r = _cli("--scenario", "smoke", *args, "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and r.stderr.strip().startswith(msg), r.stderr


def test_user_file_is_copied_for_the_target_and_decoded_for_the_analysis(tmp_path):
    sr = 48000
    x = (0.2 * np.random.default_rng(3).standard_normal((3 * sr, 2))).astype(np.float32)
    src = tmp_path / "My Song (live).flac"
    sf.write(src, x, sr, subtype="PCM_24")
    run_dir, home = tmp_path / "run", tmp_path / "run" / "home"
    (t,) = tracks_mod.import_track_files([src], home, run_dir, taken={"sine"})
    assert t["name"] == "My_Song_live"
    copied = home / "Music" / tracks_mod.MUSIC_SUBDIR / "My_Song_live.flac"
    assert copied.read_bytes() == src.read_bytes()  # the target decodes the user's own file
    decoded, dsr = sf.read(run_dir / t["file"], dtype="float32", always_2d=True)
    ref, _ = sf.read(src, dtype="float32", always_2d=True)
    assert dsr == sr and t["sample_rate"] == sr and t["frames"] == len(ref)
    assert np.array_equal(decoded, ref)  # the analysis aligns against the same decode
    assert sf.info(str(run_dir / t["file"])).subtype == "FLOAT"
    with pytest.raises(tracks_mod.TrackError, match="already in the run"):
        tracks_mod.import_track_files([src], home, run_dir, taken={"My_Song_live"})


def test_the_short_track_keeps_its_length_under_track_seconds(tmp_path):
    (short, sine) = tracks_mod.write_tracks(["short", "sine"], tmp_path / "home", tmp_path, seconds=40)
    assert short["duration_s"] == pytest.approx(18.5) and sine["duration_s"] == pytest.approx(40)
