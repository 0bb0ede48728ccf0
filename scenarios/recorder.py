"""Writes one captured stream into the run directory as it arrives.

audio.wav is a float32 WAV whose payload is the server's frames byte for byte
(Auralis sends little-endian float32 interleaved, which is exactly WAV's IEEE
float layout), so recording costs one write per frame and no conversion. We
write the container ourselves because the standard library's `wave` has no
IEEE float and soundfile gives no guarantee that the header is current after a
flush; here the header sizes are patched after every frame, and the reader in
analysis.rundir trusts the file size anyway, so a kill -9 loses nothing.
"""
from __future__ import annotations

import json
import os
import struct
import time
from pathlib import Path
from typing import Any

_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")


def _wav_header(sample_rate: int, channels: int, data_bytes: int) -> bytes:
    block = channels * 4
    return _HEADER.pack(
        b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16, 3, channels,
        sample_rate, sample_rate * block, block, 32, b"data", data_bytes,
    )


class JsonlWriter:
    """Append-only JSON Lines, flushed per record."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(path, "a", encoding="utf-8", buffering=1)

    def write(self, obj: dict[str, Any]) -> None:
        self.fh.write(json.dumps(obj, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self.fh.close()


class StreamRecorder:
    def __init__(self, stream_dir: Path, *, sample_rate: int, channels: int, info: dict[str, Any]):
        self.dir = stream_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.info = dict(info)
        self.meta = JsonlWriter(stream_dir / "meta.jsonl")
        self.wav = open(stream_dir / "audio.wav", "w+b", buffering=0)
        self.wav.write(_wav_header(self.sample_rate, self.channels, 0))
        self.data_bytes = 0
        self.frames = 0  # sample frames (one sample per channel)
        self.binary_frames = 0
        self.first_audio_t: float | None = None
        self.last_audio_t: float | None = None
        self.violations: list[dict[str, Any]] = []
        self.closed = False

    def event(self, kind: str, msg: Any, t: float, direction: str = "in", **extra: Any) -> None:
        rec = {"t": t, "dir": direction, "kind": kind, "msg": msg}
        rec.update(extra)
        self.meta.write(rec)

    def audio(self, payload: bytes, t: float) -> tuple[int, int]:
        """Append one binary frame. Returns (frame_offset, frames)."""
        offset = self.frames
        usable = len(payload) - len(payload) % (4 * self.channels)
        self.wav.seek(0, os.SEEK_END)
        self.wav.write(payload[:usable] if usable != len(payload) else payload)
        self.data_bytes += usable
        n = usable // (4 * self.channels)
        self.frames += n
        self.binary_frames += 1
        # patch RIFF and data sizes so the file is a valid WAV at every instant
        self.wav.seek(4)
        self.wav.write(struct.pack("<I", 36 + self.data_bytes))
        self.wav.seek(40)
        self.wav.write(struct.pack("<I", self.data_bytes))
        if self.first_audio_t is None:
            self.first_audio_t = t
        self.last_audio_t = t
        self.meta.write({"t": t, "dir": "in", "kind": "binary", "bytes": len(payload),
                         "frame_offset": offset, "frames": n})
        return offset, n

    def violation(self, kind: str, detail: str, t: float | None = None, **extra: Any) -> None:
        v = {"kind": kind, "detail": detail, "t": t or time.time(), **extra}
        self.violations.append(v)
        self.meta.write({"t": v["t"], "dir": "in", "kind": "violation", "msg": v})

    def close(self, ended: str, **summary: Any) -> None:
        if self.closed:
            return
        self.closed = True
        self.ended = ended
        doc = dict(self.info)
        doc.update(summary)
        doc.update(
            ended=ended,
            delivered_frames=self.frames,
            delivered_s=self.frames / self.sample_rate if self.sample_rate else 0.0,
            binary_frames=self.binary_frames,
            sample_rate=self.sample_rate,
            channels=self.channels,
            first_audio_t=self.first_audio_t,
            last_audio_t=self.last_audio_t,
            violations=self.violations,
            closed_t=time.time(),
        )
        try:
            (self.dir / "stream.json").write_text(json.dumps(doc, indent=1))
        finally:
            self.meta.close()
            self.wav.close()
