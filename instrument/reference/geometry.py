"""Chunk geometry, as Auralis's code has it since late 2025 (never 30 s/3 s):
normal path 15 s chunks, no overlap; enhanced path chunk 0 = [0, 15),
chunk k>=1 = [10k+5, 10k+15), each rendered with 5 s of context before it.
Seek mapping mirrors Auralis's stream_normal.py (normal) and
chunk_boundaries.chunk_for_position (enhanced)."""
from __future__ import annotations

import math
from dataclasses import dataclass

CHUNK_S = 15.0
ENH_INTERVAL_S = 10.0
CONTEXT_S = 5.0
# Auralis advances a seek that would leave less than this much of its chunk
# to the next chunk's start (SEEK_MIN_CHUNK_REMAINDER), and reports that
# effective position as seek_position.
SEEK_MIN_REMAINDER_S = 0.5


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int  # sample frames into the track (what this chunk delivers)
    end: int
    context_start: int  # where rendering starts (start - context)


@dataclass(frozen=True)
class StartPoint:
    """Where a stream starts: what audio_stream_start announces and how many
    frames of the first chunk are trimmed so that audio begins at `position`."""

    chunk: int
    offset_s: float  # seek_offset: seconds into the first chunk's delivered audio
    position_s: float  # seek_position: source time of the first delivered frame
    trim: int  # frames cut from the head of the first chunk


def plan(total: int, sr: int, enhanced: bool) -> list[Chunk]:
    c = int(CHUNK_S * sr)
    if not enhanced:
        n = max(1, math.ceil(total / c))
        return [Chunk(k, k * c, min(total, (k + 1) * c), k * c) for k in range(n)]
    out = [Chunk(0, 0, min(total, c), 0)]
    i = int(ENH_INTERVAL_S * sr)
    ctx = int(CONTEXT_S * sr)
    k = 1
    # as Auralis's content_chunk_count: only chunks that carry new audio
    while i * k + ctx < total:
        start = i * k + ctx
        out.append(Chunk(k, start, min(total, i * k + c), start - ctx))
        k += 1
    return out


def start_point(chunks: list[Chunk], sr: int, position_s: float, enhanced: bool) -> StartPoint:
    """The chunk a stream starting at `position_s` begins with, Auralis's way."""
    pos = max(0.0, float(position_s))
    last = len(chunks) - 1
    if not enhanced:
        # stream_normal.py: start_chunk = start_sample // interval, trim the rest
        c = int(CHUNK_S * sr)
        k = min(int(pos * sr) // c, last)
        trim = min(max(0, int(pos * sr) - k * c), chunks[k].end - chunks[k].start)
        return StartPoint(k, pos - k * CHUNK_S, pos, trim)
    k = 0 if pos < CHUNK_S else int((pos - CONTEXT_S) // ENH_INTERVAL_S)
    k = max(0, min(k, last))
    emitted_start = chunks[k].start / sr
    offset = max(0.0, pos - emitted_start)
    emitted_len = CHUNK_S if k == 0 else ENH_INTERVAL_S
    if k < last and emitted_len - offset < SEEK_MIN_REMAINDER_S:
        k, offset = k + 1, 0.0
        pos = chunks[k].start / sr
    trim = min(int(round(offset * sr)), chunks[k].end - chunks[k].start)
    return StartPoint(k, offset, pos, trim)
