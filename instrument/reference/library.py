"""The reference backend's library: scanned folders (only under $HOME/Music
or $HOME/Documents, as Auralis), integer ids, persisted under $HOME."""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

AUDIO_EXT = {".wav", ".flac"}


class ScanError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Library:
    def __init__(self, home: Path | None = None):
        self.home = Path(home or os.path.expanduser("~"))
        self.db = self.home / ".earshot-reference" / "library.json"
        self.tracks: list[dict[str, Any]] = []
        self._audio: dict[int, tuple[np.ndarray, int]] = {}
        self._lock = threading.Lock()
        self._decoding: dict[int, threading.Lock] = {}
        if self.db.exists():
            self.tracks = json.loads(self.db.read_text())

    def allowed(self, d: Path) -> bool:
        d = d.resolve()
        return any(d == r or r in d.parents for r in ((self.home / "Music").resolve(), (self.home / "Documents").resolve()))

    def scan(self, directories: list[str]) -> dict[str, Any]:
        found = added = failed = 0
        failures = []
        if not directories:
            raise ScanError(400, "no directories given")
        dirs = []
        for raw in directories:
            d = Path(raw)
            if not d.is_absolute() or not self.allowed(d):
                raise ScanError(403, "directory not allowed: scans are limited to ~/Music and ~/Documents")
            if not d.is_dir():
                raise ScanError(400, "directory does not exist")
            dirs.append(d.resolve())
        # ids follow sorted path order across every directory of the request
        paths = sorted({p for d in dirs for p in d.rglob("*") if p.suffix.lower() in AUDIO_EXT and p.is_file()})
        for p in paths:
            found += 1
            try:
                info = sf.info(str(p))
            except Exception as e:
                failed += 1
                failures.append({"file": p.name, "error": type(e).__name__})
                continue
            with self._lock:
                if any(t["filepath"] == str(p) for t in self.tracks):
                    continue
                self.tracks.append({"id": len(self.tracks) + 1, "title": p.stem, "filepath": str(p),
                                    "duration": info.frames / info.samplerate, "sample_rate": info.samplerate,
                                    "channels": info.channels, "format": p.suffix[1:].upper()})
                added += 1
        self.db.parent.mkdir(parents=True, exist_ok=True)
        self.db.write_text(json.dumps(self.tracks))
        return {"files_found": found, "files_added": added, "files_failed": failed, "failures": failures}

    def page(self, limit: int, offset: int) -> dict[str, Any]:
        items = self.tracks[offset: offset + limit]
        return {"tracks": items, "total": len(self.tracks), "has_more": offset + len(items) < len(self.tracks)}

    def get(self, track_id: Any) -> dict[str, Any] | None:
        if not isinstance(track_id, int) or isinstance(track_id, bool):
            return None
        return next((t for t in self.tracks if t["id"] == track_id), None)

    def audio(self, track: dict[str, Any]) -> tuple[np.ndarray, int]:
        """Decoded float32 (frames, 2), cached: every stream of a track reads the same array."""
        with self._lock:
            hit = self._audio.get(track["id"])
            if hit is not None:
                return hit
            # one decode per track: two first plays at once would otherwise
            # each decode a copy, and the freed one stays in RSS
            decoding = self._decoding.setdefault(track["id"], threading.Lock())
        with decoding:
            with self._lock:
                hit = self._audio.get(track["id"])
            if hit is not None:
                return hit
            x, sr = sf.read(track["filepath"], dtype="float32", always_2d=True)
            if x.shape[1] == 1:
                x = np.repeat(x, 2, axis=1)
            with self._lock:
                self._audio[track["id"]] = (x, sr)
            return x, sr
