"""Chunk geometry read from the stream itself, never from a constant.

A boundary is where the chunk_index of the audio changes (or the epoch
changes, e.g. a seek restarting the stream within one capture). Where each
binary frame landed in the capture comes from the recorder's `frame_offset`
on the binary event (or on the meta event); when absent, frames are counted
from `frame_count` / `sample_count`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable


@dataclass
class Boundary:
    frame: int  # first frame of the new chunk, in capture frames
    chunk_before: int | None
    chunk_after: int | None
    epoch: Any = None
    epoch_change: bool = False


@dataclass
class Geometry:
    boundaries: list[Boundary] = field(default_factory=list)
    total_frames: int = 0
    chunks: list[tuple[int, int, int]] = field(default_factory=list)  # (chunk_index, first_frame, frames)
    problems: list[str] = field(default_factory=list)

    def frames(self) -> list[int]:
        return [b.frame for b in self.boundaries]


def _data(e: dict[str, Any]) -> dict[str, Any]:
    msg = e.get("msg") or {}
    return msg.get("data", msg) if isinstance(msg, dict) else {}


def geometry_from_events(events: Iterable[dict[str, Any]], channels: int = 2) -> Geometry:
    """Boundaries from a stream's meta.jsonl events (see analysis.rundir)."""
    g = Geometry()
    pending: dict[str, Any] | None = None
    cursor = 0
    prev_chunk: int | None = None
    prev_epoch: Any = None
    for e in events:
        kind = e.get("kind")
        if kind == "audio_stream_start":
            d = _data(e)
            ch = d.get("channels")
            if isinstance(ch, int) and ch > 0:
                channels = ch
        elif kind == "audio_chunk_meta":
            if pending is not None:
                g.problems.append(f"chunk meta seq {pending.get('seq')} without a binary frame")
            pending = dict(_data(e))
            if "frame_offset" in e:
                pending["frame_offset"] = e["frame_offset"]
        elif kind == "binary":
            meta, pending = pending, None
            if meta is None:
                g.problems.append("binary frame without chunk meta")
                meta = {}
            offset = e.get("frame_offset", meta.get("frame_offset", cursor))
            n = e.get("frames")
            if n is None:
                n = meta.get("frame_count")
            if n is None and meta.get("sample_count") is not None:
                n = int(meta["sample_count"]) // max(1, channels)
            if n is None and e.get("bytes") is not None:
                n = int(e["bytes"]) // (4 * max(1, channels))
            n = int(n or 0)
            offset = int(offset)
            chunk = meta.get("chunk_index")
            epoch = meta.get("stream_epoch", prev_epoch)
            epoch_change = prev_epoch is not None and epoch != prev_epoch
            if g.chunks and (chunk != prev_chunk or epoch_change):
                g.boundaries.append(Boundary(offset, prev_chunk, chunk, epoch, epoch_change))
            if not g.chunks or chunk != prev_chunk or epoch_change:
                g.chunks.append((chunk if isinstance(chunk, int) else -1, offset, n))
            else:
                ci, first, total = g.chunks[-1]
                g.chunks[-1] = (ci, first, total + n)
            prev_chunk, prev_epoch = chunk, epoch
            cursor = offset + n
    g.total_frames = cursor
    return g


def geometry_from_times(boundaries_s: Iterable[float], sr: int, total_frames: int) -> Geometry:
    """Boundaries given by hand (the CLI's --boundaries)."""
    g = Geometry(total_frames=total_frames)
    for i, t in enumerate(sorted(boundaries_s)):
        g.boundaries.append(Boundary(int(round(t * sr)), i, i + 1))
    return g
