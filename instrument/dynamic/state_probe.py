"""What the crash_restart, concurrent_writes and shutdown checks share: a
stream played to its end (or kept going in the background) with its
continuity measured, library scans through the target's own route, and the
target's SQLite databases found under its fresh HOME and checked on a copy."""
from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import requests

from .ws_probe import kind_is, try_open

SQLITE_MAGIC = b"SQLite format 3\x00"


def playable(tracks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in tracks if t.get("track_id") is not None]


def play_through(base_url: str, track: dict[str, Any], *, compression: bool, timeout_s: float = 60.0,
                 stop: threading.Event | None = None) -> dict[str, Any]:
    """play_normal one track and read it to audio_stream_end: what arrived,
    the longest silence between audio frames, and how it ended."""
    res: dict[str, Any] = {"track": track.get("name"), "track_id": track.get("track_id"),
                           "expected_s": track.get("duration_s"), "t_start": time.time()}
    p, why = try_open(base_url, compression=compression)
    if p is None:
        return {**res, "outcome": "connect_failed", "error": why, "delivered_s": 0.0}
    nbytes, last, max_gap, start = 0, None, 0.0, {}
    outcome, error = "timeout", None
    try:
        p.send("play_normal", {"track_id": track["track_id"]})
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            if stop is not None and stop.is_set() and not nbytes:
                outcome = "not_started"
                break
            r = p.wait_for(kind_is("audio_stream_start", "binary", "audio_stream_end", "audio_stream_error", "error"),
                           min(left, 1.0))
            if r is None:
                if p.closed:
                    outcome, error = "closed", p.closed
                    break
                continue
            if r.kind == "audio_stream_start":
                start = (r.msg or {}).get("data") or {}
            elif r.kind == "binary":
                nbytes += r.binary_bytes
                if last is not None:
                    max_gap = max(max_gap, r.t - last)
                last = r.t
            elif r.kind == "audio_stream_end":
                outcome = "completed" if ((r.msg or {}).get("data") or {}).get("reason", "completed") == "completed" \
                    else str(((r.msg or {}).get("data") or {}).get("reason"))
                break
            else:
                # the server's message as it came (JSON), not its repr: analysis reads
                # the server's words in it (a refusal is a slot leak's symptom)
                outcome, error = "error", r.msg if isinstance(r.msg, dict) else str(r.msg)[:300]
                break
    except OSError as e:
        outcome, error = "error", f"{type(e).__name__}: {e}"
    finally:
        p.close()
    sr, ch = int(start.get("sample_rate") or track.get("sample_rate") or 44100), int(start.get("channels") or 2)
    return {**res, "outcome": outcome, "error": error, "delivered_s": round(nbytes / 4 / ch / sr, 3),
            "max_gap_s": round(max_gap, 3), "t_end": time.time()}


class BackgroundStreams:
    """Streams played one after another on a thread until stopped."""

    def __init__(self, base_url: str, track: dict[str, Any], *, compression: bool):
        self.base_url, self.track, self.compression = base_url, track, compression
        self.results: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bg-streams", daemon=True)

    def start(self) -> "BackgroundStreams":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.results.append(play_through(self.base_url, self.track, compression=self.compression,
                                             stop=self._stop))

    def stop(self, wait_s: float = 60.0) -> list[dict[str, Any]]:
        """Let the stream in flight finish (its continuity is the point), then stop."""
        self._stop.set()
        self._thread.join(timeout=wait_s)
        return [r for r in self.results if r["outcome"] != "not_started"]


def scan_route(spec: dict[str, Any] | None) -> str | None:
    for path, item in ((spec or {}).get("paths") or {}).items():
        if "post" in (item or {}) and path.startswith("/api/library") and path.rstrip("/").endswith("/scan"):
            return path
    return None


def scan(base_url: str, path: str, music: Path, timeout_s: float = 120.0) -> dict[str, Any]:
    t0 = time.time()
    try:
        r = requests.post(base_url + path, json={"directories": [str(music)]}, timeout=timeout_s)
        return {"t": t0, "status": r.status_code, "elapsed_s": round(time.time() - t0, 3), "excerpt": r.text[:200]}
    except requests.RequestException as e:
        return {"t": t0, "status": None, "elapsed_s": round(time.time() - t0, 3), "error": f"{type(e).__name__}"}


def find_dbs(home: Path) -> list[Path]:
    """SQLite databases under the target's HOME (not its music library)."""
    out = []
    music = Path(home) / "Music"
    for p in sorted(Path(home).rglob("*")):
        if music in p.parents or not p.is_file() or p.name.endswith(("-wal", "-shm", "-journal")):
            continue
        try:
            with open(p, "rb") as fh:
                if fh.read(16) == SQLITE_MAGIC:
                    out.append(p)
        except OSError:
            continue
    return out


def integrity(db: Path, scratch: Path, home: Path) -> dict[str, Any]:
    """PRAGMA integrity_check on a copy of the database with its WAL (the
    target's own file is never opened by us), the copy opened read-only."""
    rel = str(db.relative_to(home))
    scratch.mkdir(parents=True, exist_ok=True)
    copy = scratch / db.name
    res: dict[str, Any] = {"db": rel}
    try:
        for suffix in ("", "-wal"):
            src = Path(str(db) + suffix)
            if src.exists():
                shutil.copyfile(src, Path(str(copy) + suffix))
        res["wal_bytes"] = Path(str(db) + "-wal").stat().st_size if Path(str(db) + "-wal").exists() else 0
        # the copy's WAL must be replayed, which read-only mode cannot do: recover it first on the copy
        con = sqlite3.connect(str(copy), timeout=5)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.close()
        con = sqlite3.connect(f"file:{copy}?mode=ro", uri=True, timeout=5)
        try:
            rows = [r[0] for r in con.execute("PRAGMA integrity_check").fetchall()]
        finally:
            con.close()
        res["result"] = "ok" if rows == ["ok"] else "; ".join(rows[:10])
    except sqlite3.DatabaseError as e:
        res["result"] = f"error: {e}"
    return res
