"""Test tracks with known truth, written into the run's fresh $HOME/Music and
loaded through the target's own scan API (track ids come from its list)."""
from __future__ import annotations

import contextlib
import io
import inspect
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import requests
import soundfile as sf

from analysis import signals

SAMPLE_RATE = 44100
MUSIC_SUBDIR = "earshot-tracks"
SHORT_TRACK_S = 20.0  # the shortest --track-seconds; a test track shorter than this keeps its length


class TrackError(Exception):
    pass


def render(name: str, sample_rate: int = SAMPLE_RATE, seconds: float | None = None) -> np.ndarray:
    gen, duration_s, _desc = signals.TEST_TRACKS[name]
    # --track-seconds sets the length of the ordinary tracks; one whose point
    # is being short (shorter than two chunks) keeps its own length
    if seconds and duration_s >= SHORT_TRACK_S:
        duration_s = seconds
    params = inspect.signature(gen).parameters
    kwargs: dict[str, Any] = {}
    for key in ("duration_s", "duration"):
        if key in params:
            kwargs[key] = duration_s
    for key in ("sr", "sample_rate"):
        if key in params:
            kwargs[key] = sample_rate
    x = np.asarray(gen(**kwargs), dtype=np.float32)
    return x if x.ndim == 2 else np.stack([x, x], axis=1)


def write_tracks(names: list[str], home: Path, run_dir: Path, cache_dir: Path | None = None,
                 seconds: float | None = None) -> list[dict[str, Any]]:
    """Write each named track as float32 WAV under home/Music. Generated audio
    is deterministic, so a cache directory may hold it between runs."""
    music = home / "Music" / MUSIC_SUBDIR
    music.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        if name not in signals.TEST_TRACKS:
            raise TrackError(f"unknown test track '{name}' (known: {', '.join(signals.TEST_TRACKS)})")
        path = music / f"{name}.wav"
        own = signals.TEST_TRACKS[name][1] < SHORT_TRACK_S  # keeps its length whatever --track-seconds says
        cached = cache_dir / f"{name}-{SAMPLE_RATE}-{('std' if own else seconds) or 'std'}.wav" if cache_dir else None
        if cached and cached.exists():
            path.write_bytes(cached.read_bytes())
            info = sf.info(str(path))
            frames, channels = info.frames, info.channels
        else:
            x = render(name, seconds=seconds)
            _write_wav(path, x, SAMPLE_RATE)
            frames, channels = x.shape
            if cached:
                cached.parent.mkdir(parents=True, exist_ok=True)
                cached.write_bytes(path.read_bytes())
        out.append({
            "name": name, "file": str(path.relative_to(run_dir)), "abs_path": str(path),
            "duration_s": frames / SAMPLE_RATE, "frames": frames, "sample_rate": SAMPLE_RATE,
            "channels": channels, "description": signals.TEST_TRACKS[name][2], "track_id": None,
            "placeable": name not in signals.UNPLACEABLE_TRACKS,
        })
    return out


def _write_wav(path: Path, x: np.ndarray, sample_rate: int) -> None:
    """Float32 WAV, encoded in memory and written by Python: libsndfile reports
    a full disk as an opaque "System error", a plain write as ENOSPC, which
    the wrapper turns into its one-line disk-full error."""
    buf = io.BytesIO()
    sf.write(buf, x, sample_rate, subtype="FLOAT", format="WAV")
    path.write_bytes(buf.getvalue())


def check_names(names: list[str]) -> None:
    """Every name is a test track (a clear error before anything starts)."""
    for name in names:
        if name not in signals.TEST_TRACKS:
            raise TrackError(f"unknown test track '{name}' (known: {', '.join(signals.TEST_TRACKS)})")


def user_track_name(path: Path) -> str:
    """The manifest name of a user's file: its stem, in characters the
    target's scan and our matching keep intact."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem).strip("._") or "track"


@contextlib.contextmanager
def _quiet_native_stderr():
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def probe_track_file(path: str | Path) -> dict[str, Any]:
    """Decode a user's audio file with soundfile, wholly (a file whose header
    reads but whose audio does not is as useless as one that does not open).
    Raises TrackError with a one-line message."""
    p = Path(path)
    if not p.is_file():
        raise TrackError(f"--track-file {p}: no such file")
    try:
        with _quiet_native_stderr():  # decoders (libmpg123) print warnings straight to fd 2
            info = sf.info(str(p))
            x, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, TypeError by format
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        msg = re.sub(r"^Error opening '.*?': ", "", msg)  # the path is the user's; the name says it
        raise TrackError(f"--track-file {p.name}: cannot decode it with soundfile ({msg}); formats: "
                         f"{', '.join(sorted(sf.available_formats()))}") from None
    if len(x) < sr:
        raise TrackError(f"--track-file {p.name}: {len(x) / max(1, sr):.2f} s of audio; at least 1 s is needed")
    return {"path": p, "format": info.format, "subtype": info.subtype, "sample_rate": int(sr),
            "channels": int(x.shape[1]), "frames": int(len(x))}


def import_track_files(paths: list[str | Path], home: Path, run_dir: Path,
                       taken: set[str] | None = None) -> list[dict[str, Any]]:
    """Copy each user file, unchanged, into home/Music for the target to scan
    and decode itself; write our own decode of the same file as a float32 WAV
    in the run directory: the manifest's `file`, which the analysis aligns
    the captured audio against."""
    music = home / "Music" / MUSIC_SUBDIR
    decoded_dir = run_dir / "tracks"
    if paths:
        decoded_dir.mkdir(parents=True, exist_ok=True)
    taken = set(taken or ())
    out = []
    for path in paths:
        probe = probe_track_file(path)
        src = probe["path"]
        name = user_track_name(src)
        if name in taken:
            raise TrackError(f"--track-file {src.name}: a track named '{name}' is already in the run; rename the file")
        taken.add(name)
        music.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, music / f"{name}{src.suffix.lower()}")
        x, sr = sf.read(str(src), dtype="float32", always_2d=True)
        decoded = decoded_dir / f"{name}.wav"
        _write_wav(decoded, x, sr)
        out.append({
            "name": name, "file": str(decoded.relative_to(run_dir)), "abs_path": str(music / f"{name}{src.suffix.lower()}"),
            "duration_s": len(x) / sr, "frames": len(x), "sample_rate": sr, "channels": x.shape[1],
            "description": f"user file {src.name} ({probe['format']}/{probe['subtype']})", "track_id": None,
            "user_file": src.name,
        })
    return out


def scan_and_match(base_url: str, tracks: list[dict[str, Any]], music_dir: Path, timeout_s: float = 120) -> None:
    """Ask the target to scan the folder, then find each track's id in its list."""
    try:
        r = requests.post(f"{base_url}/api/library/scan", json={"directories": [str(music_dir)]}, timeout=timeout_s)
    except requests.RequestException as e:
        raise TrackError(f"library scan failed: {e}") from None
    if r.status_code >= 400:
        raise TrackError(f"library scan answered HTTP {r.status_code}: {r.text[:200]}")
    listed: list[dict[str, Any]] = []
    offset = 0
    for _ in range(100):  # bounded paging
        r = requests.get(f"{base_url}/api/library/tracks", params={"limit": 100, "offset": offset}, timeout=30)
        if r.status_code != 200:
            raise TrackError(f"track list answered HTTP {r.status_code}: {r.text[:200]}")
        doc = r.json()
        page = doc.get("tracks", [])
        listed += page
        offset += len(page)
        if not doc.get("has_more") or not page:
            break
    by_stem: dict[str, dict[str, Any]] = {}
    for t in listed:
        path = t.get("filepath") or t.get("file_path") or t.get("path") or ""
        by_stem[Path(path or str(t.get("title", ""))).stem] = t
        if t.get("title"):  # Auralis titles an untagged file by its file name
            by_stem.setdefault(Path(str(t["title"])).stem, t)
    for tr in tracks:
        hit = by_stem.get(tr["name"])
        if hit is None:
            raise TrackError(f"track '{tr['name']}' not in the target's library after scan "
                             f"({len(listed)} tracks listed)")
        tr["track_id"] = hit.get("id")
        tr["listed"] = {k: hit.get(k) for k in ("duration", "sample_rate", "channels", "title")}


def save_manifest(tracks: list[dict[str, Any]], run_dir: Path) -> None:
    doc = [{k: v for k, v in t.items() if k != "abs_path"} for t in tracks]
    (run_dir / "tracks.json").write_text(json.dumps(doc, indent=1))
