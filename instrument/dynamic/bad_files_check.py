"""The `bad_files` check: put broken audio files into the target's library
(corrupt, truncated, zero-length, wrong extension, and one that vanishes
after the scan), stream each with play_normal, and meanwhile check that
another client is still served. Raw observations only;
analysis.dynamic.bad_files judges them.

Everything this check streams is recorded under run_dir/checks/bad_files/,
not run_dir/streams/, so the audio analysis of the run never mistakes a
broken file's stream for a defect of the streaming path."""
from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests
import soundfile as sf

from scenarios.protocol_client import AuralisSession, ClientProfile

SUBDIR = "earshot-bad-files"  # under home/Music, beside the run's test tracks
SR = 44100
SEED = 7
STREAM_DEADLINE_S = 12.0  # a bad file must have ended or errored by then; else it hangs
OTHER_DEADLINE_S = 30.0
HTTP_TIMEOUT_S = 10.0
TEXT_EXCERPT = 600


def _wav_bytes(seconds: float = 10.0, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    t = np.arange(int(seconds * SR)) / SR
    x = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)], axis=1)
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), SR, format=fmt, subtype=subtype)
    return buf.getvalue()


def bad_files() -> list[tuple[str, str, bytes]]:
    """(name, what it is, content). Names are unique stems, so each is found in
    the track list by its file name or its title (Auralis titles an untagged
    file by its name)."""
    rng = np.random.default_rng(SEED)
    noise = rng.integers(0, 256, 64 * 1024, dtype=np.uint8).tobytes()
    wav, flac = _wav_bytes(), _wav_bytes(fmt="FLAC")
    return [
        ("bad_corrupt_wav.wav", "corrupt: 64 KiB of random bytes", noise),
        ("bad_corrupt_flac.flac", "corrupt: 64 KiB of random bytes", noise),
        ("bad_corrupt_mp3.mp3", "corrupt: 64 KiB of random bytes", noise),
        ("bad_truncated_wav.wav", "truncated: a valid 10 s WAV header, cut after 30% of its data", wav[: int(len(wav) * 0.3)]),
        ("bad_truncated_flac.flac", "truncated: a valid 10 s FLAC, cut after 30% of its bytes", flac[: int(len(flac) * 0.3)]),
        ("bad_empty_wav.wav", "zero-length", b""),
        ("bad_empty_flac.flac", "zero-length", b""),
        ("bad_empty_mp3.mp3", "zero-length", b""),
        ("bad_wav_named_mp3.mp3", "wrong extension: a valid WAV named .mp3", wav),
        ("bad_text_named_flac.flac", "wrong extension: a text file named .flac", b"not audio at all\n" * 64),
        ("bad_vanished_wav.wav", "vanished: a valid WAV, scanned, then deleted before play", wav),
    ]


def _scan(base: str, folder: Path, max_wait_s: float = 70.0) -> requests.Response:
    """Scan the folder; a 429 (Auralis allows 2 scans a minute, and the run
    used one at start) is waited out once, as its Retry-After says."""
    r = requests.post(f"{base}/api/library/scan", json={"directories": [str(folder)]}, timeout=120)
    if r.status_code == 429:
        try:
            wait = float(r.headers.get("retry-after", "60"))
        except ValueError:
            wait = 60.0
        time.sleep(min(max(wait, 1.0), max_wait_s))
        r = requests.post(f"{base}/api/library/scan", json={"directories": [str(folder)]}, timeout=120)
    return r


def _list_tracks(base: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    offset = 0
    for _ in range(50):  # bounded paging
        r = requests.get(f"{base}/api/library/tracks", params={"limit": 100, "offset": offset}, timeout=HTTP_TIMEOUT_S)
        if r.status_code != 200:
            break
        page = r.json().get("tracks", [])
        out += page
        offset += len(page)
        if not r.json().get("has_more") or not page:
            break
    return out


def _find(listed: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    stem = Path(name).stem
    for t in listed:
        for v in (t.get("filepath"), t.get("file_path"), t.get("path"), t.get("title")):
            if v and Path(str(v)).stem == stem:
                return t
    return None


def _stream(base_url: str, rec_dir: Path, track_id: Any, *, compression: bool, deadline_s: float,
            user: str) -> dict[str, Any]:
    """One play_normal; every message kind and error text it brought, and how it stopped."""
    events: list[dict[str, Any]] = []

    def on_event(kind: str, data: dict[str, Any]) -> None:
        if kind == "stream_start":  # our recorder's info: keep what the server said
            data = {k: data.get(k) for k in ("track_id", "stream_type", "stream_epoch")}
        if kind in ("stream_start", "stream_end", "stream_error", "error", "stream_closed"):
            events.append({"t": round(time.time() - t0, 3), "kind": kind, "data": _clip(data)})

    t0 = time.time()
    res: dict[str, Any] = {}
    s = AuralisSession(base_url, rec_dir, user=user, scenario="bad-files-check", tracks={},
                       profile=ClientProfile("browser"), compression=compression, on_event=on_event)
    try:
        s.connect()
        s.play(track_id, enhanced=False)
        why = s.pump(s.stream_done, deadline=t0 + deadline_s, idle_timeout=deadline_s + 5)
        rec = s.streams[-1].recorder if s.streams else None
        res.update(outcome=why, started=bool(s.streams), delivered_s=round(rec.frames / rec.sample_rate, 3) if rec else 0.0,
                   ended=next((e["data"].get("ended") for e in reversed(events) if e["kind"] == "stream_closed"),
                              None), play_error=_clip(s.play_error),
                   closed=s.closed_reason)
        if why == "deadline":
            try:  # free whatever the server holds for the hung stream
                s.send("stop")
            except Exception:
                pass
    except Exception as e:
        res.update(outcome="client_error", error=f"{type(e).__name__}: {e}")
    finally:
        try:
            s.close()
        except Exception:
            pass
    res.update(elapsed_s=round(time.time() - t0, 3), events=events)
    return res


def _clip(v: Any) -> Any:
    """Keep error texts whole enough to show a traceback, but bounded."""
    if isinstance(v, str):
        return v[:TEXT_EXCERPT]
    if isinstance(v, dict):
        return {k: _clip(x) for k, x in list(v.items())[:20]}
    if isinstance(v, list):
        return [_clip(x) for x in v[:10]]
    return v


def _other_client(base_url: str, rec_dir: Path, good: dict[str, Any] | None, compression: bool,
                  out: dict[str, Any]) -> None:
    """What a second, well-behaved client gets while a bad file streams."""
    t = time.monotonic()
    try:
        r = requests.get(f"{base_url}/api/health", timeout=HTTP_TIMEOUT_S)
        out["health"] = {"status": r.status_code, "ms": round((time.monotonic() - t) * 1000, 1)}
    except requests.RequestException as e:
        out["health"] = {"error": f"{type(e).__name__}: {e}", "ms": round((time.monotonic() - t) * 1000, 1)}
    if good is not None:
        out["good_stream"] = _stream(base_url, rec_dir, good["track_id"], compression=compression,
                                     deadline_s=OTHER_DEADLINE_S, user="bad-files-other")
        out["good_stream"]["expected_s"] = good.get("duration_s")


def bad_files_check(*, base_url: str, run_dir: Path, home: Path, tracks: list[dict[str, Any]] | None = None,
                    compression: bool = True, deadline_s: float = STREAM_DEADLINE_S, **_: Any) -> dict[str, Any]:
    base = base_url.rstrip("/")
    folder = Path(home) / "Music" / SUBDIR
    folder.mkdir(parents=True, exist_ok=True)
    rec_dir = Path(run_dir) / "checks" / "bad_files"
    files = bad_files()
    for name, _what, content in files:
        (folder / name).write_bytes(content)
    res: dict[str, Any] = {"folder": f"home/Music/{SUBDIR}", "deadline_s": deadline_s}
    t = time.monotonic()
    try:
        r = _scan(base, folder)
        res["scan"] = {"status": r.status_code, "body": r.text[:2000], "s": round(time.monotonic() - t, 2)}
    except requests.RequestException as e:
        res["scan"] = {"error": f"{type(e).__name__}: {e}"}
        return {**res, "outcome": "scan_failed"}
    if r.status_code >= 400:
        return {**res, "outcome": "scan_failed"}
    listed = _list_tracks(base)
    vanished = folder / "bad_vanished_wav.wav"
    vanished.unlink(missing_ok=True)
    good = min((t for t in (tracks or []) if t.get("track_id") is not None),
               key=lambda t: t.get("duration_s", 1e9), default=None)
    results = []
    for name, what, content in files:
        hit = _find(listed, name)
        item: dict[str, Any] = {"file": name, "what": what, "bytes": len(content), "listed": hit is not None}
        if hit is None:
            results.append(item)
            continue
        item["track"] = {k: hit.get(k) for k in ("id", "title", "duration", "sample_rate", "channels", "format")}
        other: dict[str, Any] = {}
        th = threading.Thread(target=_other_client, args=(base, rec_dir, good, compression, other), daemon=True)
        # the bad stream first, then the other client while it is in flight
        bad: dict[str, Any] = {}
        tb = threading.Thread(target=lambda: bad.update(_stream(base, rec_dir, hit.get("id"), compression=compression,
                                                                 deadline_s=deadline_s, user="bad-files")),
                              daemon=True)
        tb.start()
        time.sleep(0.2)
        th.start()
        tb.join(deadline_s + 30)
        th.join(OTHER_DEADLINE_S + 30)
        item.update(stream=bad, other_client=other)
        results.append(item)
    # a last health call: is the server still up after all of them?
    try:
        r = requests.get(f"{base}/api/health", timeout=HTTP_TIMEOUT_S)
        res["health_after"] = {"status": r.status_code}
    except requests.RequestException as e:
        res["health_after"] = {"error": f"{type(e).__name__}: {e}"}
    return {**res, "outcome": "done", "files": results}
